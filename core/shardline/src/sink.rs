//! Choosing and building the sink a pipeline names in `[sink] type`.
//!
//! The built-in sinks (`stdout`, `file`) are compiled in; the plugin host
//! adds the others (S3, Redshift, DynamoDB, Elasticsearch) from shared
//! libraries.

use std::sync::Arc;

use serde::Deserialize;
use shardline_api::Sink;
use shardline_pipeline::sinks::{FileSinkConfig, StdoutSinkConfig};

use crate::config::BUILT_IN_SINKS;

/// Why a sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    /// `[sink]` has no string `type`.
    #[error("`[sink]` needs `type`, one of: {}", BUILT_IN_SINKS.join(", "))]
    MissingType,
    /// No built-in sink or plugin provides the type.
    #[error("unknown sink type `{kind}`: available sink types are {} (no sink plugin provides `{kind}`)", BUILT_IN_SINKS.join(", "))]
    UnknownType {
        /// The type asked for.
        kind: String,
    },
    /// The sink's keys are wrong.
    #[error("sink `{kind}`: {message}")]
    Config {
        /// The sink type.
        kind: String,
        /// What is wrong.
        message: String,
    },
}

/// Checks `[sink]` without I/O. On error returns the offending key (when
/// one can be named) and a message.
pub fn validate(table: &toml::Table) -> Result<(), (Option<String>, String)> {
    let kind = match table.get("type") {
        Some(toml::Value::String(s)) => s.as_str(),
        Some(_) => return Err((Some("type".into()), "must be a string".into())),
        None => return Err((None, SinkBuildError::MissingType.to_string())),
    };
    let rest = without_type(table);
    let result = match kind {
        "stdout" => StdoutSinkConfig::deserialize(rest).map(|_| ()),
        "file" => match FileSinkConfig::deserialize(rest) {
            Ok(cfg) => {
                return cfg.validate().map_err(|problems| {
                    let (key, message) = problems.into_iter().next().unwrap_or_default();
                    (Some(key), format!("sink `file`: {message}"))
                })
            }
            Err(e) => Err(e),
        },
        other => {
            return Err((Some("type".into()), SinkBuildError::UnknownType { kind: other.to_owned() }.to_string()));
        }
    };
    result.map_err(|e| {
        let message = e.to_string();
        (offending_key(&message), format!("sink `{kind}`: {}", message.trim()))
    })
}

/// Builds the sink `[sink]` describes.
///
/// # Errors
/// [`SinkBuildError`] naming the type or key at fault.
pub fn build(table: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, SinkBuildError> {
    let kind = table.get("type").and_then(|v| v.as_str()).ok_or(SinkBuildError::MissingType)?;
    let config_error = |message: String| SinkBuildError::Config { kind: kind.to_owned(), message };
    let rest = without_type(table);
    match kind {
        "stdout" => {
            let cfg = StdoutSinkConfig::deserialize(rest).map_err(|e| config_error(e.to_string()))?;
            shardline_pipeline::sinks::build_stdout_sink(&cfg, pipeline).map_err(|e| config_error(e.to_string()))
        }
        "file" => {
            let cfg = FileSinkConfig::deserialize(rest).map_err(|e| config_error(e.to_string()))?;
            shardline_pipeline::sinks::build_file_sink(&cfg, pipeline).map_err(|e| config_error(e.to_string()))
        }
        other => Err(SinkBuildError::UnknownType { kind: other.to_owned() }),
    }
}

fn without_type(table: &toml::Table) -> toml::Value {
    let mut rest = table.clone();
    rest.remove("type");
    toml::Value::Table(rest)
}

/// Pulls the key out of serde messages such as "unknown field `pth`, expected
/// ..." or "missing field `path`".
pub(crate) fn offending_key(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "invalid value for `", "for key `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                return Some(rest[..end].to_owned());
            }
        }
    }
    None
}

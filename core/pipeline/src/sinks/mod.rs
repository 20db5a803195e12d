//! The built-in sinks: `stdout` and `file`.
//!
//! Both write one line per record: with `format = "payload"` (the default)
//! the payload bytes (JSON payloads compact) followed by `\n`; with
//! `format = "envelope"` an [`envelope`](crate::envelope) object carrying the
//! Kinesis metadata and the pipeline name.

pub mod file;
pub mod stdout;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use shardline_api::{ByteSize, Record, Sink};

use crate::config::Problems;
use crate::error::BuildError;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// The `type` names of the built-in sinks.
pub const BUILTIN: &[&str] = &["stdout", "file"];

/// How a record is written as a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The payload bytes (JSON payloads compact) and `\n`.
    #[default]
    Payload,
    /// One JSON object with the record's metadata, the pipeline name and
    /// the payload as `data` (UTF-8) or `data_base64`.
    Envelope,
}

impl Format {
    /// Appends the line for `record` to `out`.
    pub(crate) fn write(self, out: &mut Vec<u8>, pipeline: &str, record: &Record) {
        match self {
            Format::Payload => crate::envelope::write_payload_line(out, record),
            Format::Envelope => crate::envelope::write_line(out, pipeline, record, None),
        }
    }

    pub(crate) fn encode(self, pipeline: &str, batch: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for record in batch {
            self.write(&mut out, pipeline, record);
        }
        out
    }
}

/// `[sink]` with `type = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// `"payload"` or `"envelope"`. Default `"payload"`.
    pub format: Format,
}

/// `[sink]` with `type = "file"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Directory of the output files (created if missing), which are named
    /// `{pipeline}-{unix_millis}-{pid}-{n}.ndjson`. Required.
    pub path: PathBuf,
    /// `"payload"` or `"envelope"`. Default `"payload"`.
    #[serde(default)]
    pub format: Format,
    /// Size after which a new file is started. Default `"100MiB"`.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
}

fn default_max_file_size() -> ByteSize {
    ByteSize(100 << 20)
}

impl FileSinkConfig {
    /// Checks the values without I/O.
    ///
    /// # Errors
    /// Every `(key, message)` problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        if self.path.as_os_str().is_empty() {
            problems.push(("path".to_owned(), "must not be empty".to_owned()));
        }
        if self.max_file_size.bytes() == 0 {
            problems.push(("max_file_size".to_owned(), "must be at least 1B".to_owned()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A `[sink]` section naming a built-in sink by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuiltinSinkConfig {
    /// `type = "stdout"`.
    Stdout(StdoutSinkConfig),
    /// `type = "file"`.
    File(FileSinkConfig),
}

impl BuiltinSinkConfig {
    /// Checks the values without I/O.
    ///
    /// # Errors
    /// Every `(key, message)` problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        match self {
            BuiltinSinkConfig::Stdout(_) => Ok(()),
            BuiltinSinkConfig::File(c) => c.validate(),
        }
    }

    /// Builds the sink for `pipeline`.
    ///
    /// # Errors
    /// As [`build_file_sink`].
    pub fn build(&self, pipeline: &str) -> Result<Arc<dyn Sink>, BuildError> {
        match self {
            BuiltinSinkConfig::Stdout(c) => build_stdout_sink(c, pipeline),
            BuiltinSinkConfig::File(c) => build_file_sink(c, pipeline),
        }
    }
}

/// Builds a file sink for `pipeline`. Does no I/O (the directory is
/// created by the healthcheck or the first write).
///
/// # Errors
/// [`BuildError::InvalidConfig`] when [`FileSinkConfig::validate`] fails.
pub fn build_file_sink(cfg: &FileSinkConfig, pipeline: &str) -> Result<Arc<dyn Sink>, BuildError> {
    cfg.validate().map_err(|p| BuildError::from_problems("sink.file", p))?;
    Ok(Arc::new(FileSink::new(cfg, pipeline)))
}

/// Builds a stdout sink for `pipeline`.
///
/// # Errors
/// None today; the `Result` keeps every builder alike.
pub fn build_stdout_sink(cfg: &StdoutSinkConfig, pipeline: &str) -> Result<Arc<dyn Sink>, BuildError> {
    Ok(Arc::new(StdoutSink::new(cfg, pipeline)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_from_toml() {
        let c: BuiltinSinkConfig = toml::from_str("type = \"stdout\"").expect("stdout");
        assert_eq!(c, BuiltinSinkConfig::Stdout(StdoutSinkConfig { format: Format::Payload }));
        let c: BuiltinSinkConfig =
            toml::from_str("type = \"file\"\npath = \"out\"\nformat = \"envelope\"").expect("file");
        assert_eq!(
            c,
            BuiltinSinkConfig::File(FileSinkConfig {
                path: "out".into(),
                format: Format::Envelope,
                max_file_size: ByteSize(100 << 20)
            })
        );
        let err = toml::from_str::<BuiltinSinkConfig>("type = \"file\"").expect_err("path is required");
        assert!(err.to_string().contains("path"), "{err}");
        let err = toml::from_str::<FileSinkConfig>("path = \"x\"\nformat = \"xml\"").expect_err("bad format");
        assert!(err.to_string().contains("envelope"), "{err}");
        let err = toml::from_str::<FileSinkConfig>("path = \"x\"\nrotate = 1").expect_err("unknown key");
        assert!(err.to_string().contains("rotate"), "{err}");
    }
}

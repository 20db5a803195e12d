//! Shardline's record transforms, one module per transform.
//!
//! A pipeline's `[[transforms]]` entries name a transform by `type` and
//! carry its options; [`validate`] checks such an entry without I/O (used by
//! `shardline validate`) and [`build`] makes one instance (one per shard
//! worker, so a transform may keep per-shard state).
//!
//! Every transform documents what it does with a record it cannot handle:
//! it returns a [`TransformError`](shardline_api::TransformError) whose
//! reason names the place in the record (a field path or a byte offset), and
//! the engine dead-letters the record with the stage `transform:<name>`.
#![warn(missing_docs)]

mod config;
pub mod add_fields;
pub mod add_metadata;
pub mod csv_to_json;
pub mod decode_cloudwatch_logs;
pub mod drop_fields;
pub mod encode_json;
pub mod filter;
pub mod parse_json;
pub mod parse_log;
pub mod path;
pub mod rename;
pub mod select;
pub mod split;
pub mod timestamp;
pub mod window_count;

#[cfg(test)]
pub(crate) mod test_support;

use serde_json::Value;
use shardline_api::{Payload, Record, Transform, TransformError};

/// Every transform type this crate knows, as written in configuration.
pub const KNOWN: &[&str] = &[
    parse_json::NAME,
    encode_json::NAME,
    csv_to_json::NAME,
    parse_log::NAME,
    select::NAME,
    rename::NAME,
    add_fields::NAME,
    drop_fields::NAME,
    add_metadata::NAME,
    filter::NAME,
    timestamp::NAME,
    window_count::NAME,
    split::NAME,
    decode_cloudwatch_logs::NAME,
];

/// A transform entry that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformBuildError {
    /// No transform has this type name.
    #[error("unknown transform type {type_name:?}; known types: {known}")]
    UnknownType {
        /// The rejected type name.
        type_name: String,
        /// The known type names, comma separated.
        known: String,
    },
    /// The options do not fit the transform (unknown key, wrong type, bad
    /// regex, bad condition…).
    #[error("invalid options for transform {type_name:?}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    InvalidConfig {
        /// The transform's type name.
        type_name: String,
        /// The offending option key, when one can be named (so that
        /// `shardline validate` can point at its line).
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl TransformBuildError {
    /// The offending option key, if any (`None` for an unknown type: the
    /// `type` key is at fault).
    pub fn key(&self) -> Option<&str> {
        match self {
            TransformBuildError::UnknownType { .. } => Some("type"),
            TransformBuildError::InvalidConfig { key, .. } => key.as_deref(),
        }
    }
}

/// Checks a transform entry without building it: the type exists and the
/// options deserialize and make sense (paths, regexes and conditions
/// parse). Does no I/O.
///
/// `config` holds the entry's options (the `type` key, if still present, is
/// ignored).
///
/// # Errors
/// [`TransformBuildError::UnknownType`] listing the known types, or
/// [`TransformBuildError::InvalidConfig`] naming the offending key.
pub fn validate(type_name: &str, config: &toml::Table) -> Result<(), TransformBuildError> {
    build(type_name, config).map(|_| ())
}

/// Builds one instance of a transform.
///
/// `config` holds the entry's options (the `type` key, if still present, is
/// ignored).
///
/// # Errors
/// As [`validate`].
pub fn build(type_name: &str, config: &toml::Table) -> Result<Box<dyn Transform>, TransformBuildError> {
    Ok(match type_name {
        parse_json::NAME => Box::new(parse_json::ParseJson::new(config::parse(type_name, config)?)),
        encode_json::NAME => Box::new(encode_json::EncodeJson::new(config::parse(type_name, config)?)),
        csv_to_json::NAME => Box::new(csv_to_json::CsvToJson::new(config::parse(type_name, config)?)?),
        parse_log::NAME => Box::new(parse_log::ParseLog::new(config::parse(type_name, config)?)?),
        select::NAME => Box::new(select::Select::new(config::parse(type_name, config)?)?),
        rename::NAME => Box::new(rename::Rename::new(config::parse(type_name, config)?)?),
        add_fields::NAME => Box::new(add_fields::AddFields::new(config::parse(type_name, config)?)?),
        drop_fields::NAME => Box::new(drop_fields::DropFields::new(config::parse(type_name, config)?)?),
        add_metadata::NAME => Box::new(add_metadata::AddMetadata::new(config::parse(type_name, config)?)?),
        filter::NAME => Box::new(filter::Filter::new(config::parse(type_name, config)?)?),
        timestamp::NAME => Box::new(timestamp::Timestamp::new(config::parse(type_name, config)?)?),
        window_count::NAME => Box::new(window_count::WindowCount::new(config::parse(type_name, config)?)?),
        split::NAME => Box::new(split::Split::new(config::parse(type_name, config)?)),
        decode_cloudwatch_logs::NAME => {
            Box::new(decode_cloudwatch_logs::DecodeCloudwatchLogs::new(config::parse(type_name, config)?)?)
        }
        other => {
            return Err(TransformBuildError::UnknownType { type_name: other.to_owned(), known: KNOWN.join(", ") })
        }
    })
}

/// The record's parsed JSON payload, or an error telling to put
/// `parse_json` first.
pub(crate) fn json_mut<'r>(name: &str, record: &'r mut Record) -> Result<&'r mut Value, TransformError> {
    match &mut record.payload {
        Payload::Json(v) => Ok(v),
        Payload::Bytes(_) => Err(needs_json(name)),
    }
}

/// The record's parsed JSON payload, borrowed.
pub(crate) fn json_ref<'r>(name: &str, record: &'r Record) -> Result<&'r Value, TransformError> {
    match &record.payload {
        Payload::Json(v) => Ok(v),
        Payload::Bytes(_) => Err(needs_json(name)),
    }
}

fn needs_json(name: &str) -> TransformError {
    TransformError::new(format!("{name} needs a parsed JSON payload, got raw bytes (put parse_json before {name})"))
}

/// The record's JSON object, or an error naming what it is instead.
pub(crate) fn object_mut<'r>(
    name: &str,
    record: &'r mut Record,
) -> Result<&'r mut serde_json::Map<String, Value>, TransformError> {
    match json_mut(name, record)? {
        Value::Object(map) => Ok(map),
        other => Err(TransformError::new(format!("{name} needs a JSON object, got {}", path::kind(other)))),
    }
}

/// Text of raw bytes or of a JSON string payload; invalid UTF-8 names the
/// byte offset.
pub(crate) fn text_of<'r>(name: &str, record: &'r Record) -> Result<&'r str, TransformError> {
    match &record.payload {
        Payload::Bytes(b) => std::str::from_utf8(b)
            .map_err(|e| TransformError::new(format!("{name}: invalid UTF-8 at byte {}", e.valid_up_to()))),
        Payload::Json(Value::String(s)) => Ok(s),
        Payload::Json(other) => {
            Err(TransformError::new(format!("{name} needs text, got a parsed JSON payload that is {}", path::kind(other))))
        }
    }
}

/// RFC 3339 text of a time in milliseconds since the epoch.
pub(crate) fn rfc3339_millis(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| millis.to_string())
}

/// Milliseconds since the epoch (negative before it).
pub(crate) fn system_time_millis(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("test TOML parses")
    }

    /// The least options each transform needs to build.
    fn minimal(name: &str) -> toml::Table {
        table(match name {
            "select" | "drop_fields" | "csv_to_json" => "fields = [\"a\"]",
            "rename" => "fields = { a = \"b\" }",
            "add_fields" => "fields = { a = 1 }",
            "filter" => "condition = \"exists a\"",
            "timestamp" => "field = \"t\"",
            "window_count" => "window = \"60s\"",
            "parse_log" => "format = \"apache_common\"",
            _ => "",
        })
    }

    #[test]
    fn unknown_type_lists_known_ones() {
        let err = build("parse_jsn", &toml::Table::new()).err().expect("unknown type is an error");
        let text = err.to_string();
        assert!(text.contains("\"parse_jsn\""), "{text}");
        for known in KNOWN {
            assert!(text.contains(known), "{text}");
        }
        assert_eq!(err.key(), Some("type"));
    }

    #[test]
    fn every_known_type_builds_with_minimal_options() {
        for name in KNOWN {
            let mut options = minimal(name);
            let t = build(name, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name(), *name);
            options.insert("type".into(), toml::Value::String("x".into()));
            validate(name, &options).expect("type key is ignored");
        }
    }

    #[test]
    fn unknown_option_is_rejected_naming_it() {
        for name in KNOWN {
            let mut options = minimal(name);
            options.insert("colour".into(), toml::Value::String("red".into()));
            let err = validate(name, &options).expect_err("unknown key rejected");
            assert!(err.to_string().contains("colour"), "{err}");
            assert_eq!(err.key(), Some("colour"), "{name}");
        }
    }
}

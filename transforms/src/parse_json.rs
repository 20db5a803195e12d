//! `parse_json`: raw bytes → a parsed JSON payload.
//!
//! ```toml
//! [[transforms]]
//! type = "parse_json"     # no options
//! ```
//!
//! Records that already carry JSON pass through unchanged. Bytes that are
//! not valid JSON fail the record (it is dead-lettered) with the byte
//! offset, line and column of the error, e.g.
//! `invalid JSON at byte 10 (line 2, column 9)8): expected value`.

use serde::Deserialize;
use shardline_api::{Payload, Record, Transform, TransformError};

/// The type name in configuration.
pub const NAME: &str = "parse_json";

/// Options of `parse_json` (none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseJsonConfig {}

/// The `parse_json` transform.
#[derive(Debug, Clone, Default)]
pub struct ParseJson {
    _config: ParseJsonConfig,
}

impl ParseJson {
    /// A `parse_json` transform.
    pub fn new(config: ParseJsonConfig) -> Self {
        ParseJson { _config: config }
    }
}

/// The reason for a JSON error in `input`: byte offset, line, column and
/// serde_json's message without its own position suffix.
pub(crate) fn describe_error(input: &[u8], e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    if e.line() == 0 {
        return format!("invalid JSON: {message}");
    }
    // serde_json counts columns in bytes from 1; 0 means "before the line".
    let line_start = if e.line() == 1 {
        0
    } else {
        input
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(e.line() - 2)
            .map_or(input.len(), |(i, _)| i + 1)
    };
    let offset = (line_start + e.column().saturating_sub(1)).min(input.len());
    format!("invalid JSON at byte {offset} (line {}, column {}): {message}", e.line(), e.column())
}

impl Transform for ParseJson {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Payload::Bytes(bytes) = &record.payload {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| TransformError::new(describe_error(bytes, &e)))?;
            record.payload = Payload::Json(value);
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    pub(crate) use crate::test_support::record;

    #[test]
    fn parses_bytes_into_json() {
        let mut out = Vec::new();
        ParseJson::default()
            .apply(record(Payload::Bytes(Bytes::from_static(br#"{"a": [1, 2]}"#))), &mut out)
            .expect("valid JSON");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, Payload::Json(json!({"a": [1, 2]})));
    }

    #[test]
    fn invalid_json_names_byte_line_and_column() {
        let mut out = Vec::new();
        let err = ParseJson::default()
            .apply(record(Payload::Bytes(Bytes::from_static(b"{\n  \"a\": nope}"))), &mut out)
            .expect_err("invalid JSON");
        assert!(err.reason.starts_with("invalid JSON at byte 10 (line 2, column 9)"), "{}", err.reason);
        assert!(out.is_empty());
        let err = ParseJson::default()
            .apply(record(Payload::Bytes(Bytes::from_static(b"{\"a\": 1"))), &mut out)
            .expect_err("truncated");
        assert!(err.reason.contains("byte 6"), "{}", err.reason);
        assert!(err.reason.contains("EOF"), "{}", err.reason);
    }

    #[test]
    fn json_passes_through() {
        let mut out = Vec::new();
        ParseJson::default().apply(record(Payload::Json(json!([1]))), &mut out).expect("passes");
        assert_eq!(out[0].payload, Payload::Json(json!([1])));
    }
}

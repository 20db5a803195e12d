//! `encode_json`: a parsed JSON payload → compact JSON bytes.
//!
//! ```toml
//! [[transforms]]
//! type = "encode_json"
//! newline = false   # append "\n" (NDJSON lines); default false
//! ```
//!
//! Raw-bytes records pass through unchanged. Never fails: every JSON value
//! a payload can hold serialises.

use bytes::Bytes;
use serde::Deserialize;
use shardline_api::{Payload, Record, Transform, TransformError};

/// The type name in configuration.
pub const NAME: &str = "encode_json";

/// Options of `encode_json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeJsonConfig {
    /// Append a newline after each encoded value (NDJSON). Default `false`
    /// (the file and stdout sinks add their own).
    #[serde(default)]
    pub newline: bool,
}

/// The `encode_json` transform.
#[derive(Debug, Clone, Default)]
pub struct EncodeJson {
    config: EncodeJsonConfig,
    /// Capacity of the last encoding, to size the next buffer in one go.
    last_len: usize,
}

impl EncodeJson {
    /// An `encode_json` transform.
    pub fn new(config: EncodeJsonConfig) -> Self {
        EncodeJson { config, last_len: 256 }
    }
}

impl Transform for EncodeJson {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Payload::Json(value) = &record.payload {
            let mut buf = Vec::with_capacity(self.last_len + 16);
            serde_json::to_writer(&mut buf, value).map_err(|e| TransformError::new(format!("cannot encode JSON: {e}")))?;
            if self.config.newline {
                buf.push(b'\n');
            }
            self.last_len = buf.len();
            record.payload = Payload::Bytes(Bytes::from(buf));
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, record};

    #[test]
    fn encodes_compactly() {
        let mut out = Vec::new();
        EncodeJson::default()
            .apply(record(Payload::Json(json!({"a": [1, 2], "b": "x y"}))), &mut out)
            .expect("encodes");
        assert_eq!(out[0].payload, Payload::Bytes(Bytes::from_static(br#"{"a":[1,2],"b":"x y"}"#)));
    }

    #[test]
    fn newline_option_makes_ndjson() {
        let mut t = build(NAME, "newline = true");
        let mut out = Vec::new();
        t.apply(record(Payload::Json(json!({"a": 1}))), &mut out).expect("encodes");
        assert_eq!(out[0].payload, Payload::Bytes(Bytes::from_static(b"{\"a\":1}\n")));
    }

    #[test]
    fn bytes_pass_through() {
        let mut out = Vec::new();
        EncodeJson::default()
            .apply(record(Payload::Bytes(Bytes::from_static(b"not json"))), &mut out)
            .expect("passes");
        assert_eq!(out[0].payload, Payload::Bytes(Bytes::from_static(b"not json")));
    }
}

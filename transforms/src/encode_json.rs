//! `encode_json`: a parsed JSON payload → compact JSON bytes.
//!
//! Raw-bytes records pass through unchanged.

use bytes::Bytes;
use serde::Deserialize;
use shardline_api::{Payload, Record, Transform, TransformError};

/// The type name in configuration.
pub const NAME: &str = "encode_json";

/// Options of `encode_json` (none yet).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeJsonConfig {}

/// The `encode_json` transform.
#[derive(Debug, Clone, Default)]
pub struct EncodeJson {
    _config: EncodeJsonConfig,
}

impl EncodeJson {
    /// An `encode_json` transform.
    pub fn new(config: EncodeJsonConfig) -> Self {
        EncodeJson { _config: config }
    }
}

impl Transform for EncodeJson {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Payload::Json(value) = &record.payload {
            let encoded = serde_json::to_vec(value)
                .map_err(|e| TransformError::new(format!("cannot encode JSON: {e}")))?;
            record.payload = Payload::Bytes(Bytes::from(encoded));
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse_json::tests::record;

    #[test]
    fn encodes_compactly() {
        let mut out = Vec::new();
        EncodeJson::default()
            .apply(record(Payload::Json(json!({"a": [1, 2], "b": "x y"}))), &mut out)
            .expect("encodes");
        assert_eq!(out[0].payload, Payload::Bytes(Bytes::from_static(br#"{"a":[1,2],"b":"x y"}"#)));
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

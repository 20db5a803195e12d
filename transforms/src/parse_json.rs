//! `parse_json`: raw bytes → a parsed JSON payload.
//!
//! Records that already carry JSON pass through unchanged. Bytes that are
//! not valid JSON fail the record with serde_json's message (which names
//! the line and column), so it goes to the dead-letter destination.

use serde::Deserialize;
use shardline_api::{Payload, Record, Transform, TransformError};

/// The type name in configuration.
pub const NAME: &str = "parse_json";

/// Options of `parse_json` (none yet).
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

impl Transform for ParseJson {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Payload::Bytes(bytes) = &record.payload {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| TransformError::new(format!("invalid JSON: {e}")))?;
            record.payload = Payload::Json(value);
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use bytes::Bytes;
    use serde_json::json;
    use shardline_api::{RecordMeta, SequenceNumber};

    use super::*;

    pub(crate) fn record(payload: Payload) -> Record {
        let meta = RecordMeta {
            stream: Arc::from("s"),
            shard_id: Arc::from("shardId-000000000000"),
            sequence_number: SequenceNumber::parse("42").expect("valid"),
            sub_sequence_number: 0,
            partition_key: "pk".to_owned(),
            explicit_hash_key: None,
            arrival_time: SystemTime::UNIX_EPOCH,
            aggregated: false,
        };
        Record { payload, meta: Arc::new(meta), event_time: None }
    }

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
    fn invalid_json_names_line_and_column() {
        let mut out = Vec::new();
        let err = ParseJson::default()
            .apply(record(Payload::Bytes(Bytes::from_static(b"{\n  \"a\": nope}"))), &mut out)
            .expect_err("invalid JSON");
        assert!(err.reason.starts_with("invalid JSON: "), "{}", err.reason);
        assert!(err.reason.contains("line 2 column"), "{}", err.reason);
        assert!(out.is_empty());
    }

    #[test]
    fn json_passes_through() {
        let mut out = Vec::new();
        ParseJson::default().apply(record(Payload::Json(json!([1]))), &mut out).expect("passes");
        assert_eq!(out[0].payload, Payload::Json(json!([1])));
    }
}

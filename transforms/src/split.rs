//! `split`: a JSON array → one record per element (1:N).
//!
//! ```toml
//! [[transforms]]
//! type = "split"   # no options
//! ```
//!
//! Every output keeps the input's metadata and event time. An empty array
//! yields no record (the input counts as filtered). Anything but a parsed
//! JSON array fails the record; put `parse_json` before `split`.

use serde::Deserialize;
use serde_json::Value;
use shardline_api::{json_kind as kind, Payload, Record, Transform, TransformError};

/// The type name in configuration.
pub const NAME: &str = "split";

/// Options of `split` (none yet).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {}

/// The `split` transform.
#[derive(Debug, Clone, Default)]
pub struct Split {
    _config: SplitConfig,
}

impl Split {
    /// A `split` transform.
    pub fn new(config: SplitConfig) -> Self {
        Split { _config: config }
    }
}


impl Transform for Split {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let Record { payload, meta, event_time } = record;
        match payload {
            Payload::Json(Value::Array(items)) => {
                out.extend(items.into_iter().map(|item| Record {
                    payload: Payload::Json(item),
                    meta: meta.clone(),
                    event_time,
                }));
                Ok(())
            }
            Payload::Json(other) => {
                Err(TransformError::new(format!("split needs a JSON array, got {}", kind(&other))))
            }
            Payload::Bytes(_) => Err(TransformError::new(
                "split needs a parsed JSON array, got raw bytes (put parse_json before split)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::test_support::record;

    #[test]
    fn one_record_per_element_sharing_meta() {
        let input = record(Payload::Json(json!([{"a": 1}, 2, "three"])));
        let meta = input.meta.clone();
        let mut out = Vec::new();
        Split::default().apply(input, &mut out).expect("array splits");
        let payloads: Vec<_> = out.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(
            payloads,
            vec![Payload::Json(json!({"a": 1})), Payload::Json(json!(2)), Payload::Json(json!("three"))]
        );
        assert!(out.iter().all(|r| Arc::ptr_eq(&r.meta, &meta)));
    }

    #[test]
    fn empty_array_yields_nothing() {
        let mut out = Vec::new();
        Split::default().apply(record(Payload::Json(json!([]))), &mut out).expect("empty array");
        assert!(out.is_empty());
    }

    #[test]
    fn non_array_is_an_error() {
        let mut out = Vec::new();
        let err = Split::default().apply(record(Payload::Json(json!({"a": 1}))), &mut out).expect_err("object");
        assert_eq!(err.reason, "split needs a JSON array, got an object");
        let err = Split::default()
            .apply(record(Payload::Bytes(Bytes::from_static(b"[1]"))), &mut out)
            .expect_err("bytes");
        assert!(err.reason.contains("parse_json"), "{}", err.reason);
        assert!(out.is_empty());
    }
}

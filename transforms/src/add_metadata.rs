//! `add_metadata`: copy the record's Kinesis metadata into its JSON body
//! so sinks can use it.
//!
//! ```toml
//! [[transforms]]
//! type = "add_metadata"
//! fields = ["stream", "shard_id", "sequence_number", "partition_key", "arrival_time"]  # the default
//! target = "kinesis"   # path of the object that receives them; "" = the top level; default "kinesis"
//! ```
//!
//! Known fields: `stream`, `shard_id`, `sequence_number`,
//! `sub_sequence_number`, `partition_key`, `explicit_hash_key` (null when
//! unset), `arrival_time` and `event_time` (RFC 3339; `event_time` falls
//! back to the arrival time). A payload that is not a parsed JSON object
//! fails the record.

use serde::Deserialize;
use serde_json::{Map, Value};
use shardline_api::{Record, Transform, TransformError};

use crate::path::JsonPath;
use crate::{config, object_mut, rfc3339_millis, system_time_millis, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "add_metadata";

const KNOWN_FIELDS: &[&str] = &[
    "stream",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "partition_key",
    "explicit_hash_key",
    "arrival_time",
    "event_time",
];

/// Options of `add_metadata`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMetadataConfig {
    /// Which metadata to add. Default `["stream", "shard_id",
    /// "sequence_number", "partition_key", "arrival_time"]`.
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// Path of the object receiving the fields; `""` merges them into the
    /// top level. Default `"kinesis"`.
    #[serde(default = "default_target")]
    pub target: String,
}

fn default_fields() -> Vec<String> {
    ["stream", "shard_id", "sequence_number", "partition_key", "arrival_time"].map(String::from).to_vec()
}

fn default_target() -> String {
    "kinesis".to_owned()
}

/// The `add_metadata` transform.
#[derive(Debug, Clone)]
pub struct AddMetadata {
    fields: Vec<String>,
    target: Option<JsonPath>,
}

impl AddMetadata {
    /// An `add_metadata` transform.
    ///
    /// # Errors
    /// An unknown field name (naming `fields`) or a bad `target` path.
    pub fn new(config: AddMetadataConfig) -> Result<Self, TransformBuildError> {
        for f in &config.fields {
            if !KNOWN_FIELDS.contains(&f.as_str()) {
                return Err(config::invalid(
                    NAME,
                    "fields",
                    format!("unknown metadata field {f:?}; known: {}", KNOWN_FIELDS.join(", ")),
                ));
            }
        }
        let target = if config.target.is_empty() {
            None
        } else {
            Some(crate::path::parse_all(NAME, "target", [&config.target])?.remove(0))
        };
        Ok(AddMetadata { fields: config.fields, target })
    }
}

fn metadata(field: &str, record: &Record) -> Value {
    let meta = &record.meta;
    match field {
        "stream" => Value::String(meta.stream.to_string()),
        "shard_id" => Value::String(meta.shard_id.to_string()),
        "sequence_number" => Value::String(meta.sequence_number.to_string()),
        "sub_sequence_number" => Value::from(meta.sub_sequence_number),
        "partition_key" => Value::String(meta.partition_key.clone()),
        "explicit_hash_key" => meta.explicit_hash_key.clone().map_or(Value::Null, Value::String),
        "arrival_time" => Value::String(rfc3339_millis(system_time_millis(meta.arrival_time))),
        "event_time" => Value::String(rfc3339_millis(system_time_millis(record.time()))),
        _ => Value::Null,
    }
}

impl Transform for AddMetadata {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let values: Vec<(String, Value)> = self.fields.iter().map(|f| (f.clone(), metadata(f, &record))).collect();
        let map = object_mut(NAME, &mut record)?;
        match &self.target {
            None => map.extend(values),
            Some(path) => {
                let mut value = Value::Object(std::mem::take(map));
                path.insert(&mut value, Value::Object(values.into_iter().collect::<Map<_, _>>()))
                    .map_err(|e| TransformError::new(format!("add_metadata: {e}")))?;
                if let Value::Object(m) = value {
                    *object_mut(NAME, &mut record)? = m;
                }
            }
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, build_error, json, one_json};

    #[test]
    fn adds_default_fields_under_kinesis() {
        let mut t = build(NAME, "");
        let v = one_json(t.as_mut(), json(json!({"a": 1})));
        assert_eq!(
            v,
            json!({"a": 1, "kinesis": {"stream": "s", "shard_id": "shardId-000000000000", "sequence_number": "42",
                "partition_key": "pk", "arrival_time": "1970-01-01T00:00:42Z"}})
        );
    }

    #[test]
    fn top_level_target_and_unknown_field() {
        let mut t = build(NAME, "fields = [\"partition_key\", \"sub_sequence_number\"]\ntarget = \"\"");
        assert_eq!(one_json(t.as_mut(), json(json!({}))), json!({"partition_key": "pk", "sub_sequence_number": 0}));
        assert_eq!(build_error(NAME, "fields = [\"region\"]").key(), Some("fields"));
    }
}

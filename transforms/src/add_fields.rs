//! `add_fields`: set constant values at JSON paths.
//!
//! ```toml
//! [[transforms]]
//! type = "add_fields"
//! fields = { "env" = "prod", "source.version" = 2 }   # required: path = TOML value
//! overwrite = true   # replace existing values; default true (false keeps them)
//! ```
//!
//! TOML values become JSON (dates become RFC 3339 strings). Missing
//! objects on the way are created. A payload that is not a parsed JSON
//! object fails the record, as does a path blocked by a non-object.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use shardline_api::{Record, Transform, TransformError};

use crate::path::JsonPath;
use crate::{config, object_mut, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "add_fields";

/// Options of `add_fields`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFieldsConfig {
    /// Path → value. Required, not empty.
    pub fields: BTreeMap<String, toml::Value>,
    /// Replace values that already exist. Default `true`.
    #[serde(default = "yes")]
    pub overwrite: bool,
}

fn yes() -> bool {
    true
}

/// A TOML value as JSON (datetimes as their RFC 3339 text).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// The `add_fields` transform.
#[derive(Debug, Clone)]
pub struct AddFields {
    fields: Vec<(JsonPath, Value)>,
    overwrite: bool,
}

impl AddFields {
    /// An `add_fields` transform.
    ///
    /// # Errors
    /// An empty table or a path that does not parse, naming `fields`.
    pub fn new(config: AddFieldsConfig) -> Result<Self, TransformBuildError> {
        if config.fields.is_empty() {
            return Err(config::invalid(NAME, "fields", "must set at least one path"));
        }
        let paths = crate::path::parse_all(NAME, "fields", config.fields.keys())?;
        let fields = paths.into_iter().zip(config.fields.values().map(toml_to_json)).collect();
        Ok(AddFields { fields, overwrite: config.overwrite })
    }
}

impl Transform for AddFields {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let map = object_mut(NAME, &mut record)?;
        let mut value = Value::Object(std::mem::take(map));
        for (path, v) in &self.fields {
            if !self.overwrite && path.get(&value).is_some() {
                continue;
            }
            path.insert(&mut value, v.clone()).map_err(|e| TransformError::new(format!("add_fields: {e}")))?;
        }
        if let Value::Object(m) = value {
            *object_mut(NAME, &mut record)? = m;
        }
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, json, one_json, run};

    #[test]
    fn sets_values_creating_objects() {
        let mut t = build(NAME, r#"fields = { "env" = "prod", "m.v" = 2, "tags" = ["a"], "when" = 2026-01-02T03:04:05Z }"#);
        let v = one_json(t.as_mut(), json(json!({"env": "dev"})));
        assert_eq!(v, json!({"env": "prod", "m": {"v": 2}, "tags": ["a"], "when": "2026-01-02T03:04:05Z"}));
    }

    #[test]
    fn overwrite_false_keeps_values_and_bad_input_fails() {
        let mut t = build(NAME, "fields = { env = \"prod\" }\noverwrite = false");
        assert_eq!(one_json(t.as_mut(), json(json!({"env": "dev"}))), json!({"env": "dev"}));
        assert!(run(t.as_mut(), json(json!(1))).is_err());
    }
}

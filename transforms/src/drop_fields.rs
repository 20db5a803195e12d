//! `drop_fields`: remove the listed JSON paths from an object.
//!
//! ```toml
//! [[transforms]]
//! type = "drop_fields"
//! fields = ["password", "headers.cookie"]   # required, at least one path
//! ```
//!
//! Missing paths are ignored. A payload that is not a parsed JSON object
//! fails the record.

use serde::Deserialize;
use serde_json::Value;
use shardline_api::{Record, Transform, TransformError};

use crate::path::JsonPath;
use crate::{config, object_mut, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "drop_fields";

/// Options of `drop_fields`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropFieldsConfig {
    /// Paths to remove. Required, not empty.
    pub fields: Vec<String>,
}

/// The `drop_fields` transform.
#[derive(Debug, Clone)]
pub struct DropFields {
    paths: Vec<JsonPath>,
}

impl DropFields {
    /// A `drop_fields` transform.
    ///
    /// # Errors
    /// An empty list or a path that does not parse, naming `fields`.
    pub fn new(config: DropFieldsConfig) -> Result<Self, TransformBuildError> {
        if config.fields.is_empty() {
            return Err(config::invalid(NAME, "fields", "must list at least one path"));
        }
        Ok(DropFields { paths: crate::path::parse_all(NAME, "fields", &config.fields)? })
    }
}

impl Transform for DropFields {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let map = object_mut(NAME, &mut record)?;
        let mut value = Value::Object(std::mem::take(map));
        for path in &self.paths {
            path.remove(&mut value);
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
    fn removes_paths_and_ignores_missing_ones() {
        let mut t = build(NAME, r#"fields = ["a", "u.secret", "nope.x"]"#);
        let v = one_json(t.as_mut(), json(json!({"a": 1, "b": 2, "u": {"id": 7, "secret": "x"}})));
        assert_eq!(v, json!({"b": 2, "u": {"id": 7}}));
        assert!(run(t.as_mut(), json(json!("s"))).is_err());
    }
}

//! `select`: keep only the listed JSON paths of an object.
//!
//! ```toml
//! [[transforms]]
//! type = "select"
//! fields = ["user.id", "resource", "items[0]"]  # required, at least one path
//! required = false   # true: a missing path fails the record; default false (skipped)
//! ```
//!
//! The output keeps the nesting of each path (`user.id` stays under
//! `user`). Values are moved, not copied. A payload that is not a parsed
//! JSON object fails the record; with `required = true` so does a missing
//! path, naming it.

use serde::Deserialize;
use serde_json::{Map, Value};
use shardline_api::{Payload, Record, Transform, TransformError};

use crate::path::JsonPath;
use crate::{config, object_mut, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "select";

/// Options of `select`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// Paths to keep. Required, not empty.
    pub fields: Vec<String>,
    /// Fail the record when a path is missing. Default `false`.
    #[serde(default)]
    pub required: bool,
}

/// The `select` transform.
#[derive(Debug, Clone)]
pub struct Select {
    paths: Vec<JsonPath>,
    required: bool,
}

impl Select {
    /// A `select` transform.
    ///
    /// # Errors
    /// An empty list or a path that does not parse, naming `fields`.
    pub fn new(config: SelectConfig) -> Result<Self, TransformBuildError> {
        if config.fields.is_empty() {
            return Err(config::invalid(NAME, "fields", "must list at least one path"));
        }
        Ok(Select { paths: crate::path::parse_all(NAME, "fields", &config.fields)?, required: config.required })
    }
}

impl Transform for Select {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let source = object_mut(NAME, &mut record)?;
        let mut source = Value::Object(std::mem::take(source));
        let mut selected = Value::Object(Map::with_capacity(self.paths.len()));
        for path in &self.paths {
            match path.remove(&mut source) {
                Some(value) => path.insert(&mut selected, value).map_err(TransformError::new)?,
                None if self.required => {
                    return Err(TransformError::new(format!("select: field `{path}` is missing")));
                }
                None => {}
            }
        }
        record.payload = Payload::Json(selected);
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, build_error, json, one_json, run, text};

    #[test]
    fn keeps_listed_paths_with_their_nesting() {
        let mut t = build(NAME, r#"fields = ["a", "u.id", "missing"]"#);
        let v = one_json(t.as_mut(), json(json!({"a": 1, "b": 2, "u": {"id": 7, "name": "x"}})));
        assert_eq!(v, json!({"a": 1, "u": {"id": 7}}));
    }

    #[test]
    fn required_names_the_missing_field_and_bad_input_fails() {
        let mut t = build(NAME, "fields = [\"a\", \"b.c\"]\nrequired = true");
        let err = run(t.as_mut(), json(json!({"a": 1}))).expect_err("missing");
        assert_eq!(err.reason, "select: field `b.c` is missing");
        let err = run(t.as_mut(), json(json!([1]))).expect_err("array");
        assert!(err.reason.contains("JSON object, got an array"), "{}", err.reason);
        let err = run(t.as_mut(), text("{}")).expect_err("bytes");
        assert!(err.reason.contains("parse_json"), "{}", err.reason);
    }

    #[test]
    fn bad_options_name_fields() {
        assert_eq!(build_error(NAME, "fields = []").key(), Some("fields"));
        let err = build_error(NAME, "fields = [\"a..b\"]");
        assert_eq!(err.key(), Some("fields"));
        assert!(err.to_string().contains("character 3"), "{err}");
    }
}

//! `rename`: move JSON values from one path to another.
//!
//! ```toml
//! [[transforms]]
//! type = "rename"
//! fields = { "ua" = "client.user_agent", "ts" = "time" }   # required: old path = new path
//! ```
//!
//! Renames are applied in the order of the old paths (sorted). A missing
//! old path is ignored; an existing value at a new path is replaced.
//! A payload that is not a parsed JSON object fails the record, as does a
//! new path blocked by a non-object (the reason names it).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use shardline_api::{Record, Transform, TransformError};

use crate::path::JsonPath;
use crate::{config, object_mut, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "rename";

/// Options of `rename`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// Old path → new path. Required, not empty.
    pub fields: BTreeMap<String, String>,
}

/// The `rename` transform.
#[derive(Debug, Clone)]
pub struct Rename {
    moves: Vec<(JsonPath, JsonPath)>,
}

impl Rename {
    /// A `rename` transform.
    ///
    /// # Errors
    /// An empty table or a path that does not parse, naming `fields`.
    pub fn new(config: RenameConfig) -> Result<Self, TransformBuildError> {
        if config.fields.is_empty() {
            return Err(config::invalid(NAME, "fields", "must map at least one old path to a new one"));
        }
        let olds = crate::path::parse_all(NAME, "fields", config.fields.keys())?;
        let news = crate::path::parse_all(NAME, "fields", config.fields.values())?;
        Ok(Rename { moves: olds.into_iter().zip(news).collect() })
    }
}

impl Transform for Rename {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let map = object_mut(NAME, &mut record)?;
        let mut value = Value::Object(std::mem::take(map));
        for (old, new) in &self.moves {
            if let Some(v) = old.remove(&mut value) {
                new.insert(&mut value, v).map_err(|e| TransformError::new(format!("rename: {e}")))?;
            }
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
    fn moves_values_between_paths() {
        let mut t = build(NAME, r#"fields = { "ua" = "client.agent", "x" = "y" }"#);
        let v = one_json(t.as_mut(), json(json!({"ua": "curl", "keep": 1})));
        assert_eq!(v, json!({"client": {"agent": "curl"}, "keep": 1}));
    }

    #[test]
    fn blocked_target_names_the_path() {
        let mut t = build(NAME, r#"fields = { "a" = "b.c" }"#);
        let err = run(t.as_mut(), json(json!({"a": 1, "b": 5}))).expect_err("b is a number");
        assert!(err.reason.contains("`b` is a number"), "{}", err.reason);
    }
}

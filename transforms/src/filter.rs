//! `filter`: keep the records that satisfy a condition.
//!
//! ```toml
//! [[transforms]]
//! type = "filter"
//! condition = 'status >= 500 or (path matches "^/api/" and not exists user.id)'   # required
//! ```
//!
//! The condition language (see [`condition`]) has comparisons (`==`, `!=`,
//! `<`, `<=`, `>`, `>=`) against literals (`"text"`, numbers, `true`,
//! `false`, `null`), `exists path`, `path matches "regex"`,
//! `path contains literal`, `and`, `or`, `not` and parentheses, on JSON
//! paths (`user.id`, `items[0]`, `headers["user-agent"]`) and on the
//! record's `@stream`, `@shard_id`, `@partition_key` and
//! `@sequence_number`. It is parsed when the pipeline is built: a mistake
//! fails `shardline validate` with the column inside the condition.
//!
//! Records that do not match produce no output: they are acknowledged (the
//! checkpoint passes them) and counted in
//! `shardline_records_filtered_total`, never lost silently. A condition
//! that reads JSON paths fails records whose payload is not parsed JSON
//! (put `parse_json` first).

pub mod condition;

use serde::Deserialize;
use shardline_api::{Payload, Record, Transform, TransformError};

use self::condition::Condition;
use crate::{config, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "filter";

/// Options of `filter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The condition records must satisfy to be kept. Required.
    pub condition: String,
}

/// The `filter` transform.
#[derive(Debug, Clone)]
pub struct Filter {
    condition: Condition,
    needs_json: bool,
}

impl Filter {
    /// A `filter` transform.
    ///
    /// # Errors
    /// A condition that does not parse, naming `condition` and the column.
    pub fn new(config: FilterConfig) -> Result<Self, TransformBuildError> {
        let condition = Condition::parse(&config.condition)
            .map_err(|e| config::invalid(NAME, "condition", format!("{e} in {:?}", config.condition)))?;
        let needs_json = condition.reads_paths();
        Ok(Filter { condition, needs_json })
    }
}

impl Transform for Filter {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let json = match &record.payload {
            Payload::Json(v) => Some(v),
            Payload::Bytes(_) if self.needs_json => {
                return Err(TransformError::new(
                    "filter: the condition reads JSON fields but the payload is raw bytes (put parse_json before filter)",
                ))
            }
            Payload::Bytes(_) => None,
        };
        if self.condition.eval(json, &record) {
            out.push(record);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::condition::Condition;
    use super::*;
    use crate::test_support::{build, build_error, json, run, text};

    fn keeps(condition: &str, value: serde_json::Value) -> bool {
        let mut t = build(NAME, &format!("condition = {}", toml::Value::String(condition.to_owned())));
        !run(t.as_mut(), json(value)).expect("filters").is_empty()
    }

    #[test]
    fn comparisons_exists_regex_and_logic() {
        let v = json!({"status": 503, "path": "/api/x", "user": {"id": 7}, "tags": ["a", "b"], "ok": true, "f": 1.5});
        assert!(keeps("status >= 500", v.clone()));
        assert!(!keeps("status < 500", v.clone()));
        assert!(keeps("status == 503.0", v.clone()));
        assert!(keeps("f > 1 and f < 2", v.clone()));
        assert!(keeps("path == \"/api/x\" and user.id == 7", v.clone()));
        assert!(keeps("path matches \"^/api/\"", v.clone()));
        assert!(!keeps("path matches '^/web/'", v.clone()));
        assert!(keeps("exists user.id and not exists user.name", v.clone()));
        assert!(keeps("tags contains \"b\" and path contains \"api\"", v.clone()));
        assert!(keeps("ok", v.clone()));
        assert!(keeps("not (status == 200 or status == 204)", v.clone()));
        assert!(keeps("@partition_key == \"pk\"", v.clone()));
        // Missing paths and mismatched types compare false, even with !=.
        assert!(!keeps("nope != 1", v.clone()));
        assert!(!keeps("path > 3", v.clone()));
        assert!(keeps("not exists nope or nope != 1", v));
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        assert!(keeps("a == 1 or a == 2 and b == 3", json!({"a": 1, "b": 0})));
        assert!(!keeps("(a == 1 or a == 2) and b == 3", json!({"a": 1, "b": 0})));
    }

    #[test]
    fn parse_errors_carry_columns() {
        let column = |text: &str| Condition::parse(text).expect_err(text).column;
        assert_eq!(column("status >="), 10);
        assert_eq!(column("status = 5"), 8);
        assert_eq!(column("(a == 1"), 8);
        assert_eq!(column("a == 1 b"), 8);
        assert_eq!(column("a matches \"(\""), 11);
        assert_eq!(column("a.. == 1"), 3);
        assert_eq!(column("@region == \"x\""), 1);
        assert_eq!(column("a == \"open"), 6);
        assert_eq!(column("a == 1 and"), 11);
        assert_eq!(column(""), 1);
        let e = Condition::parse("a matches \"(\"").expect_err("bad regex");
        assert!(e.message.contains("invalid regex"), "{e}");
    }

    #[test]
    fn bad_condition_is_a_build_error_naming_the_key_and_column() {
        let err = build_error(NAME, "condition = \"status >= \"");
        assert_eq!(err.key(), Some("condition"));
        assert!(err.to_string().contains("column 11"), "{err}");
    }

    #[test]
    fn raw_bytes_fail_only_when_paths_are_read() {
        let mut t = build(NAME, "condition = \"a == 1\"");
        assert!(run(t.as_mut(), text("{}")).expect_err("bytes").reason.contains("parse_json"));
        let mut t = build(NAME, "condition = \"@partition_key == 'pk'\"");
        assert_eq!(run(t.as_mut(), text("x")).expect("metadata only").len(), 1);
    }
}

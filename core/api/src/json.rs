//! Wording shared by every message about a JSON value.

use serde_json::Value;

/// What kind of JSON value `value` is, for messages: `null`, `a boolean`,
/// `a number`, `a string`, `an array` or `an object`.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::json_kind;

    #[test]
    fn every_kind_has_its_words() {
        let kinds: Vec<&str> = ["null", "true", "1.5", "\"x\"", "[]", "{}"]
            .iter()
            .map(|text| json_kind(&serde_json::from_str(text).expect("JSON")))
            .collect();
        assert_eq!(kinds, ["null", "a boolean", "a number", "a string", "an array", "an object"]);
    }
}

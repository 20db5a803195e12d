//! `csv_to_json`: one delimited line → a JSON object, as the Kinesis
//! Agent's CSVTOJSON.
//!
//! ```toml
//! [[transforms]]
//! type = "csv_to_json"
//! fields = ["time", "user", "action"]   # required: one name per column
//! delimiter = ","        # one character; default ","
//! quote = "\""           # one character; "" turns quoting off; default "\""
//! skip_header = false    # drop records whose values equal `fields`; default false
//! infer_types = false    # numbers, true/false become JSON numbers/booleans; default false (strings)
//! trim = false           # trim spaces around unquoted values; default false
//! ```
//!
//! One record holds one row (a trailing `\n` or `\r\n` is ignored; quoted
//! values may span lines, and `""` inside quotes is a quote). A row with
//! more or fewer values than `fields`, an unterminated quote or text after
//! a closing quote fails the record with the byte offset and column
//! number. Skipped header rows count as filtered.

use serde::Deserialize;
use serde_json::{Map, Value};
use shardline_api::{Payload, Record, Transform, TransformError};

use crate::{config, text_of, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "csv_to_json";

/// Options of `csv_to_json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvToJsonConfig {
    /// Column names, in order. Required, not empty.
    pub fields: Vec<String>,
    /// Field separator, one character. Default `","`.
    #[serde(default = "comma")]
    pub delimiter: String,
    /// Quote character, or `""` for none. Default `"\""`.
    #[serde(default = "double_quote")]
    pub quote: String,
    /// Drop records whose values equal the field names. Default `false`.
    #[serde(default)]
    pub skip_header: bool,
    /// Turn numbers and `true`/`false` into JSON numbers and booleans.
    /// Default `false`.
    #[serde(default)]
    pub infer_types: bool,
    /// Trim spaces around unquoted values. Default `false`.
    #[serde(default)]
    pub trim: bool,
}

fn comma() -> String {
    ",".to_owned()
}
fn double_quote() -> String {
    "\"".to_owned()
}

/// The `csv_to_json` transform.
#[derive(Debug, Clone)]
pub struct CsvToJson {
    fields: Vec<String>,
    delimiter: char,
    quote: Option<char>,
    skip_header: bool,
    infer_types: bool,
    trim: bool,
    /// Reused per record.
    values: Vec<String>,
}

fn one_char(key: &str, text: &str, allow_empty: bool) -> Result<Option<char>, TransformBuildError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (None, _) if allow_empty => Ok(None),
        (Some(c), None) if c != '\n' && c != '\r' => Ok(Some(c)),
        _ => Err(config::invalid(NAME, key, format!("{text:?} must be exactly one character (not a line break)"))),
    }
}

impl CsvToJson {
    /// A `csv_to_json` transform.
    ///
    /// # Errors
    /// No fields, or a delimiter/quote that is not one character.
    pub fn new(config: CsvToJsonConfig) -> Result<Self, TransformBuildError> {
        if config.fields.is_empty() {
            return Err(config::invalid(NAME, "fields", "must name at least one column"));
        }
        let delimiter = one_char("delimiter", &config.delimiter, false)?.unwrap_or(',');
        let quote = one_char("quote", &config.quote, true)?;
        if quote == Some(delimiter) {
            return Err(config::invalid(NAME, "quote", "must differ from the delimiter"));
        }
        Ok(CsvToJson {
            fields: config.fields,
            delimiter,
            quote,
            skip_header: config.skip_header,
            infer_types: config.infer_types,
            trim: config.trim,
            values: Vec::new(),
        })
    }

    /// Splits `line` into `self.values`.
    fn split(&mut self, line: &str) -> Result<(), String> {
        self.values.clear();
        let mut current = String::new();
        let mut quoted = false; // the current value started with a quote
        let mut in_quotes = false;
        let mut quote_start = 0;
        let mut chars = line.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            if in_quotes {
                if Some(c) == self.quote {
                    if chars.peek().map(|&(_, n)| n) == self.quote {
                        current.push(c);
                        chars.next();
                    } else {
                        in_quotes = false;
                        match chars.peek() {
                            None => {}
                            Some(&(_, n)) if n == self.delimiter => {}
                            Some(&(at, n)) => {
                                return Err(format!(
                                    "unexpected {n:?} after the closing quote at byte {at} (column {})",
                                    self.values.len() + 1
                                ))
                            }
                        }
                    }
                } else {
                    current.push(c);
                }
            } else if c == self.delimiter {
                self.finish_value(&mut current, quoted);
                quoted = false;
            } else if Some(c) == self.quote && (current.is_empty() || (self.trim && current.trim().is_empty())) {
                current.clear();
                quoted = true;
                in_quotes = true;
                quote_start = offset;
            } else {
                current.push(c);
            }
        }
        if in_quotes {
            return Err(format!("unterminated quote starting at byte {quote_start} (column {})", self.values.len() + 1));
        }
        self.finish_value(&mut current, quoted);
        Ok(())
    }

    fn finish_value(&mut self, current: &mut String, quoted: bool) {
        let value = std::mem::take(current);
        self.values.push(if self.trim && !quoted { value.trim().to_owned() } else { value });
    }

    fn typed(&self, value: String) -> Value {
        if self.infer_types {
            match value.as_str() {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                text => {
                    if let Ok(i) = text.parse::<i64>() {
                        return Value::from(i);
                    }
                    if let Some(n) = text.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(serde_json::Number::from_f64) {
                        if text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
                            return Value::Number(n);
                        }
                    }
                }
            }
        }
        Value::String(value)
    }
}

impl Transform for CsvToJson {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let text = text_of(NAME, &record)?;
        let line = text.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(text);
        self.split(line).map_err(|e| TransformError::new(format!("csv_to_json: {e}")))?;
        if self.values.len() != self.fields.len() {
            return Err(TransformError::new(format!(
                "csv_to_json: the row has {} values, expected {} ({})",
                self.values.len(),
                self.fields.len(),
                self.fields.join(", ")
            )));
        }
        if self.skip_header && self.values == self.fields {
            return Ok(());
        }
        let mut map = Map::with_capacity(self.fields.len());
        let values = std::mem::take(&mut self.values);
        for (name, value) in self.fields.iter().zip(values) {
            map.insert(name.clone(), self.typed(value));
        }
        record.payload = Payload::Json(Value::Object(map));
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, build_error, one_json, run, text};

    #[test]
    fn splits_quoted_values_and_infers_types() {
        let mut t = build(NAME, "fields = [\"a\", \"b\", \"c\", \"d\"]\ninfer_types = true");
        let v = one_json(t.as_mut(), text("1,\"x, \"\"y\"\"\",true,2.5\r\n"));
        assert_eq!(v, json!({"a": 1, "b": "x, \"y\"", "c": true, "d": 2.5}));
        let mut t = build(NAME, "fields = [\"a\", \"b\"]\ndelimiter = \"\\t\"\ntrim = true");
        assert_eq!(one_json(t.as_mut(), text(" 1 \t\"multi\nline\"")), json!({"a": "1", "b": "multi\nline"}));
    }

    #[test]
    fn header_rows_are_skipped() {
        let mut t = build(NAME, "fields = [\"a\", \"b\"]\nskip_header = true");
        assert!(run(t.as_mut(), text("a,b\n")).expect("header").is_empty());
        assert_eq!(run(t.as_mut(), text("1,2")).expect("row").len(), 1);
    }

    #[test]
    fn bad_rows_name_the_place() {
        let mut t = build(NAME, "fields = [\"a\", \"b\"]");
        let err = run(t.as_mut(), text("1,2,3")).expect_err("too many");
        assert_eq!(err.reason, "csv_to_json: the row has 3 values, expected 2 (a, b)");
        let err = run(t.as_mut(), text("1,\"open")).expect_err("unterminated");
        assert_eq!(err.reason, "csv_to_json: unterminated quote starting at byte 2 (column 2)");
        let err = run(t.as_mut(), text("\"a\"x,2")).expect_err("after quote");
        assert_eq!(err.reason, "csv_to_json: unexpected 'x' after the closing quote at byte 3 (column 1)");
        let err = run(t.as_mut(), crate::test_support::record(Payload::Bytes(bytes::Bytes::from_static(b"a,\xff")))).expect_err("utf8");
        assert_eq!(err.reason, "csv_to_json: invalid UTF-8 at byte 2");
    }

    #[test]
    fn bad_options() {
        assert_eq!(build_error(NAME, "fields = [\"a\"]\ndelimiter = \";;\"").key(), Some("delimiter"));
        assert_eq!(build_error(NAME, "fields = [\"a\"]\nquote = \",\"").key(), Some("quote"));
        assert_eq!(build_error(NAME, "fields = []").key(), Some("fields"));
    }
}

//! JSON paths as written in transform options and filter conditions:
//! `user.id`, `items[0].name`, `headers["user-agent"]`.
//!
//! A path is a list of object keys and array indexes. Reading never
//! allocates; writing creates missing objects on the way.

use std::fmt;

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
    text: String,
}

/// A path that does not parse: what is wrong and the 0-based character
/// offset in the path text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// Character offset from the start of the path text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '$'
}

impl JsonPath {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`PathError`] naming the offset of the first bad character.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let chars: Vec<char> = text.chars().collect();
        let mut segments = Vec::new();
        let mut i = 0;
        let err = |offset: usize, message: &str| PathError { offset, message: message.to_owned() };
        if chars.is_empty() {
            return Err(err(0, "empty path"));
        }
        loop {
            match chars.get(i) {
                Some('[') => {
                    i += 1;
                    match chars.get(i) {
                        Some('"') => {
                            i += 1;
                            let mut key = String::new();
                            loop {
                                match chars.get(i) {
                                    Some('"') => break,
                                    Some('\\') if chars.get(i + 1).is_some() => {
                                        key.push(chars[i + 1]);
                                        i += 2;
                                    }
                                    Some(&c) => {
                                        key.push(c);
                                        i += 1;
                                    }
                                    None => return Err(err(i, "unterminated quoted key")),
                                }
                            }
                            i += 1;
                            segments.push(Segment::Key(key));
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let start = i;
                            while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                                i += 1;
                            }
                            let digits: String = chars[start..i].iter().collect();
                            let index = digits.parse().map_err(|_| err(start, "array index too large"))?;
                            segments.push(Segment::Index(index));
                        }
                        _ => return Err(err(i, "expected an array index or a quoted key after `[`")),
                    }
                    if chars.get(i) != Some(&']') {
                        return Err(err(i, "expected `]`"));
                    }
                    i += 1;
                }
                Some(&c) if is_key_char(c) => {
                    let start = i;
                    while chars.get(i).is_some_and(|&c| is_key_char(c)) {
                        i += 1;
                    }
                    segments.push(Segment::Key(chars[start..i].iter().collect()));
                }
                Some(_) => return Err(err(i, "expected a key")),
                None => return Err(err(i, "path ends after `.`")),
            }
            match chars.get(i) {
                None => break,
                Some('.') => i += 1,
                Some('[') => {}
                Some(_) => return Err(err(i, "expected `.`, `[` or the end of the path")),
            }
        }
        Ok(JsonPath { segments, text: text.to_owned() })
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if there is one.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut current = value;
        for segment in &self.segments {
            current = match (segment, current) {
                (Segment::Key(k), Value::Object(map)) => map.get(k)?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Removes and returns the value at this path.
    pub fn remove(&self, value: &mut Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut current = value;
        for segment in parents {
            current = match (segment, current) {
                (Segment::Key(k), Value::Object(map)) => map.get_mut(k)?,
                (Segment::Index(i), Value::Array(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        match (last, current) {
            (Segment::Key(k), Value::Object(map)) => map.remove(k),
            (Segment::Index(i), Value::Array(items)) if *i < items.len() => Some(items.remove(*i)),
            _ => None,
        }
    }

    /// Sets the value at this path, creating missing objects on the way.
    ///
    /// # Errors
    /// A message naming the segment that is in the way (a non-object where
    /// a key is needed, an index past the end of an array).
    pub fn insert(&self, value: &mut Value, new: Value) -> Result<(), String> {
        let Some((last, parents)) = self.segments.split_last() else {
            *value = new;
            return Ok(());
        };
        let mut current = value;
        for (n, segment) in parents.iter().enumerate() {
            current = match segment {
                Segment::Key(k) => match current {
                    Value::Object(map) => map.entry(k.clone()).or_insert_with(|| Value::Object(Map::new())),
                    other => return Err(self.in_the_way(n, other)),
                },
                Segment::Index(i) => {
                    let fits = matches!(current, Value::Array(items) if *i < items.len());
                    if !fits {
                        return Err(self.in_the_way(n, current));
                    }
                    match current {
                        Value::Array(items) => &mut items[*i],
                        other => return Err(self.in_the_way(n, other)),
                    }
                }
            };
        }
        match (last, current) {
            (Segment::Key(k), Value::Object(map)) => {
                map.insert(k.clone(), new);
                Ok(())
            }
            (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
                items[*i] = new;
                Ok(())
            }
            (_, other) => Err(self.in_the_way(parents.len(), other)),
        }
    }

    fn in_the_way(&self, n: usize, found: &Value) -> String {
        let prefix = if n == 0 { "the record".to_owned() } else { format!("`{}`", self.prefix_text(n)) };
        format!("cannot set `{}`: {prefix} is {}", self.text, kind(found))
    }

    fn prefix_text(&self, n: usize) -> String {
        let mut out = String::new();
        for segment in &self.segments[..n] {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// `a string`, `an object`… for messages.
pub use shardline_api::json_kind as kind;

/// Parses every path of a list option, naming the option and the bad path.
pub(crate) fn parse_all<'a>(
    type_name: &str,
    key: &str,
    paths: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<JsonPath>, crate::TransformBuildError> {
    paths
        .into_iter()
        .map(|p| {
            JsonPath::parse(p).map_err(|e| {
                crate::config::invalid(type_name, key, format!("path {p:?}: {} at character {}", e.message, e.offset + 1))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_keys_indexes_and_quoted_keys() {
        let p = JsonPath::parse("a.b[2][\"x y\"].c").expect("valid");
        assert_eq!(
            p.segments(),
            &[
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(2),
                Segment::Key("x y".into()),
                Segment::Key("c".into())
            ]
        );
        assert_eq!(JsonPath::parse("a..b").expect_err("bad").offset, 2);
        assert_eq!(JsonPath::parse("a[x]").expect_err("bad").offset, 2);
        assert!(JsonPath::parse("").is_err());
        assert!(JsonPath::parse("a.").is_err());
    }

    #[test]
    fn get_remove_insert() {
        let mut v = json!({"a": {"b": [1, {"c": 2}]}});
        let p = JsonPath::parse("a.b[1].c").expect("valid");
        assert_eq!(p.get(&v), Some(&json!(2)));
        assert_eq!(p.remove(&mut v), Some(json!(2)));
        assert_eq!(p.get(&v), None);
        JsonPath::parse("x.y").expect("valid").insert(&mut v, json!(true)).expect("creates");
        assert_eq!(v["x"]["y"], json!(true));
        let err = JsonPath::parse("a.b.z").expect("valid").insert(&mut v, json!(1)).expect_err("array in the way");
        assert!(err.contains("`a.b` is an array"), "{err}");
    }
}

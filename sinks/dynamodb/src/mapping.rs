//! JSON records to DynamoDB items.
//!
//! A record's payload must be a JSON object; each field becomes an
//! attribute: numbers → `N` (the JSON text as written, so no precision is
//! lost; DynamoDB's 38-digit and magnitude limits are checked), strings →
//! `S`, booleans → `BOOL`, `null` → `NULL`, objects → `M`, arrays → `L`.
//! Binary values (`B`) come from two conventions: an object with exactly
//! one key, the `binary_marker` (default `$binary`), whose value is a
//! base64 string (`{"$binary": "AAEC"}`), at any depth; and the top-level
//! fields named in `binary_fields`, whose string values are base64.
//!
//! Then `attributes` (when set) keeps only the listed top-level fields,
//! `rename` renames fields (both name fields as they are in the record),
//! and `add_metadata` adds `kinesis_shard_id` (S),
//! `kinesis_sequence_number` (S: sequence numbers have more digits than a
//! DynamoDB number keeps) and `kinesis_sub_sequence_number` (N), replacing
//! record fields of the same names.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use base64::Engine as _;
use serde_json::value::RawValue;
use shardline_plugin_sdk::Record;

use crate::number::{Decimal, NumberError};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Deepest nesting of lists and maps DynamoDB stores.
pub const MAX_NESTING: usize = 32;

/// Attribute names `add_metadata` adds.
pub const METADATA_ATTRIBUTES: [&str; 3] = ["kinesis_shard_id", "kinesis_sequence_number", "kinesis_sub_sequence_number"];

/// Why a record cannot become an item (the record is rejected with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The payload is not JSON text.
    #[error("record is not JSON: {message}")]
    NotJson {
        /// The parser's message, with line and column.
        message: String,
    },
    /// The payload is JSON but not an object.
    #[error("a DynamoDB item must be a JSON object, the record is {found}")]
    NotAnObject {
        /// `an array`, `a string`, ….
        found: &'static str,
    },
    /// A value inside the record cannot be stored.
    #[error("field `{path}`: {problem}")]
    Value {
        /// Dotted path of the field (`a.b[2]`).
        path: String,
        /// What is wrong with it.
        problem: ValueProblem,
    },
    /// Two fields end up with the same attribute name after `rename`.
    #[error("attribute `{name}` appears twice after rename")]
    DuplicateAttribute {
        /// The attribute name.
        name: String,
    },
    /// A top-level field with an empty name.
    #[error("attribute names must not be empty")]
    EmptyAttributeName,
}

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// A number DynamoDB cannot store.
    #[error(transparent)]
    Number(#[from] NumberError),
    /// A binary value that is not base64.
    #[error("invalid base64 in a binary value: {message}")]
    Base64 {
        /// The decoder's message.
        message: String,
    },
    /// A `binary_fields` field that is not a string.
    #[error("a binary field must be a base64 string, found {found}")]
    NotABinaryString {
        /// What was found.
        found: &'static str,
    },
    /// Lists and maps nested deeper than [`MAX_NESTING`].
    #[error("Nesting Levels have exceeded supported limits (at most {MAX_NESTING} levels of lists and maps)")]
    TooDeep,
    /// JSON that failed to parse at this depth (cannot happen for text
    /// that parsed as a whole; kept rather than panic).
    #[error("{message}")]
    Json {
        /// The parser's message.
        message: String,
    },
}

impl MappingError {
    fn within(self, segment: &str) -> MappingError {
        match self {
            MappingError::Value { path, problem } => {
                let path = if path.is_empty() {
                    segment.to_owned()
                } else if path.starts_with('[') {
                    format!("{segment}{path}")
                } else {
                    format!("{segment}.{path}")
                };
                MappingError::Value { path, problem }
            }
            other => other,
        }
    }
}

fn problem(problem: impl Into<ValueProblem>) -> MappingError {
    MappingError::Value { path: String::new(), problem: problem.into() }
}

fn json_problem(e: serde_json::Error) -> MappingError {
    problem(ValueProblem::Json { message: e.to_string() })
}

/// How records become items: the mapping keys of the sink's config.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Record field → attribute name.
    pub rename: HashMap<String, String>,
    /// Top-level fields kept; `None` keeps all.
    pub attributes: Option<HashSet<String>>,
    /// Top-level fields whose string values are base64 binaries.
    pub binary_fields: HashSet<String>,
    /// The key of a `{"<marker>": "<base64>"}` binary object; `None`
    /// disables the convention.
    pub binary_marker: Option<String>,
    /// Add the [`METADATA_ATTRIBUTES`].
    pub add_metadata: bool,
}

fn kind_of(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

impl Mapping {
    /// The item for `record`.
    ///
    /// # Errors
    /// A [`MappingError`] saying why the record cannot be stored.
    pub fn item(&self, record: &Record) -> Result<Item, MappingError> {
        let bytes = record.payload.to_bytes();
        let text = std::str::from_utf8(&bytes).map_err(|e| MappingError::NotJson { message: format!("not UTF-8: {e}") })?;
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| MappingError::NotJson { message: e.to_string() })?;
        let json = raw.get().trim_start();
        if !json.starts_with('{') {
            return Err(MappingError::NotAnObject { found: kind_of(json) });
        }
        let fields: BTreeMap<String, &RawValue> = serde_json::from_str(json).map_err(json_problem)?;
        let mut item = Item::with_capacity(fields.len() + 3);
        for (field, value) in fields {
            if self.attributes.as_ref().is_some_and(|keep| !keep.contains(&field)) {
                continue;
            }
            let converted = if self.binary_fields.contains(&field) {
                binary_field(value)
            } else {
                self.value(value, 1)
            };
            let value = converted.map_err(|e| e.within(&field))?;
            let name = self.rename.get(&field).cloned().unwrap_or(field);
            if name.is_empty() {
                return Err(MappingError::EmptyAttributeName);
            }
            if item.contains_key(&name) {
                return Err(MappingError::DuplicateAttribute { name });
            }
            item.insert(name, value);
        }
        if self.add_metadata {
            let meta = &record.meta;
            let [shard, sequence, sub_sequence] = METADATA_ATTRIBUTES;
            item.insert(shard.to_owned(), AttributeValue::S(meta.shard_id.to_string()));
            item.insert(sequence.to_owned(), AttributeValue::S(meta.sequence_number.as_str().to_owned()));
            item.insert(sub_sequence.to_owned(), AttributeValue::N(meta.sub_sequence_number.to_string()));
        }
        Ok(item)
    }

    /// One JSON value at nesting `depth` (1 for a top-level attribute).
    fn value(&self, raw: &RawValue, depth: usize) -> Result<AttributeValue, MappingError> {
        let json = raw.get().trim();
        match json.as_bytes().first() {
            Some(b'{') => {
                if depth > MAX_NESTING {
                    return Err(problem(ValueProblem::TooDeep));
                }
                let fields: BTreeMap<String, &RawValue> = serde_json::from_str(json).map_err(json_problem)?;
                if let Some(marker) = &self.binary_marker {
                    if let (1, Some(encoded)) = (fields.len(), fields.get(marker)) {
                        if encoded.get().trim_start().starts_with('"') {
                            return decode_binary(encoded).map_err(|e| e.within(marker));
                        }
                    }
                }
                let mut map = HashMap::with_capacity(fields.len());
                for (key, value) in fields {
                    let converted = self.value(value, depth + 1).map_err(|e| e.within(&key))?;
                    map.insert(key, converted);
                }
                Ok(AttributeValue::M(map))
            }
            Some(b'[') => {
                if depth > MAX_NESTING {
                    return Err(problem(ValueProblem::TooDeep));
                }
                let elements: Vec<&RawValue> = serde_json::from_str(json).map_err(json_problem)?;
                let mut list = Vec::with_capacity(elements.len());
                for (i, element) in elements.into_iter().enumerate() {
                    list.push(self.value(element, depth + 1).map_err(|e| e.within(&format!("[{i}]")))?);
                }
                Ok(AttributeValue::L(list))
            }
            Some(b'"') => Ok(AttributeValue::S(serde_json::from_str(json).map_err(json_problem)?)),
            Some(b't') => Ok(AttributeValue::Bool(true)),
            Some(b'f') => Ok(AttributeValue::Bool(false)),
            Some(b'n') => Ok(AttributeValue::Null(true)),
            _ => {
                Decimal::parse_storable(json).map_err(problem)?;
                Ok(AttributeValue::N(json.to_owned()))
            }
        }
    }
}

/// A `binary_fields` value: a base64 string (or `null`).
fn binary_field(raw: &RawValue) -> Result<AttributeValue, MappingError> {
    let json = raw.get().trim();
    match json.as_bytes().first() {
        Some(b'"') => decode_binary(raw),
        Some(b'n') => Ok(AttributeValue::Null(true)),
        _ => Err(problem(ValueProblem::NotABinaryString { found: kind_of(json) })),
    }
}

fn decode_binary(raw: &RawValue) -> Result<AttributeValue, MappingError> {
    let encoded: String = serde_json::from_str(raw.get()).map_err(json_problem)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| problem(ValueProblem::Base64 { message: e.to_string() }))?;
    Ok(AttributeValue::B(Blob::new(bytes)))
}

/// An item as JSON, the inverse of [`Mapping::item`] without rename or
/// projection: `N` becomes a JSON number (a string when it does not parse
/// as one), `B` becomes `{"$binary": "<base64>"}`, sets become arrays.
/// Used to read a table back (tests, tools).
pub fn item_to_json(item: &Item) -> serde_json::Value {
    serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

fn value_to_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    let number = |n: &String| serde_json::from_str::<serde_json::Number>(n).map(Value::Number).unwrap_or_else(|_| Value::String(n.clone()));
    let binary = |b: &Blob| serde_json::json!({ "$binary": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) });
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => binary(b),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(list) => Value::Array(list.iter().map(value_to_json).collect()),
        AttributeValue::M(map) => item_to_json(map),
        AttributeValue::Ss(set) => Value::Array(set.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(set) => Value::Array(set.iter().map(number).collect()),
        AttributeValue::Bs(set) => Value::Array(set.iter().map(binary).collect()),
        _ => Value::Null,
    }
}

/// The item in DynamoDB's JSON wire form (`{"a":{"S":"x"}}`), for tests of
/// the wire size estimate.
#[cfg(test)]
pub(crate) fn item_to_request_json(item: &Item) -> String {
    fn wire(value: &AttributeValue) -> serde_json::Value {
        use serde_json::json;
        match value {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null(_) => json!({ "NULL": true }),
            AttributeValue::L(l) => json!({ "L": l.iter().map(wire).collect::<Vec<_>>() }),
            AttributeValue::M(m) => json!({ "M": m.iter().map(|(k, v)| (k.clone(), wire(v))).collect::<serde_json::Map<_, _>>() }),
            _ => json!({}),
        }
    }
    serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), wire(v))).collect()).to_string()
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;

//! The table's primary key (read with `DescribeTable`): checking that an
//! item has its key attributes with the right types before sending it, and
//! the identity of an item within a batch, so that duplicate keys collapse
//! to the last record (DynamoDB refuses a `BatchWriteItem` that writes one
//! key twice).

use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ScalarAttributeType, TableDescription};

use crate::mapping::Item;
use crate::number::Decimal;
use crate::size::value_size;

/// Largest partition key value DynamoDB takes, in bytes.
pub const MAX_PARTITION_KEY_SIZE: u64 = 2048;
/// Largest sort key value DynamoDB takes, in bytes.
pub const MAX_SORT_KEY_SIZE: u64 = 1024;

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValueType {
    /// `S`.
    String,
    /// `N`.
    Number,
    /// `B`.
    Binary,
}

impl KeyValueType {
    fn code(self) -> &'static str {
        match self {
            KeyValueType::String => "S",
            KeyValueType::Number => "N",
            KeyValueType::Binary => "B",
        }
    }
}

/// One key attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// Its type.
    pub kind: KeyValueType,
}

/// A table's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// The partition (hash) key.
    pub partition: KeyAttribute,
    /// The sort (range) key, when the table has one.
    pub sort: Option<KeyAttribute>,
}

/// Short name of an attribute value's type, as DynamoDB's messages write it.
pub fn type_code(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        _ => "unknown",
    }
}

impl KeySchema {
    /// The key of a described table.
    ///
    /// # Errors
    /// A message when the description lacks the key schema or a key
    /// attribute's type.
    pub fn from_description(table: &TableDescription) -> Result<KeySchema, String> {
        let types = table.attribute_definitions();
        let attribute = |name: &str| -> Result<KeyAttribute, String> {
            let definition = types
                .iter()
                .find(|d| d.attribute_name() == name)
                .ok_or_else(|| format!("the table description has no type for key attribute `{name}`"))?;
            let kind = match definition.attribute_type() {
                ScalarAttributeType::S => KeyValueType::String,
                ScalarAttributeType::N => KeyValueType::Number,
                ScalarAttributeType::B => KeyValueType::Binary,
                other => return Err(format!("key attribute `{name}` has an unknown type {other:?}")),
            };
            Ok(KeyAttribute { name: name.to_owned(), kind })
        };
        let schema = table.key_schema();
        let named = |key_type: KeyType| schema.iter().find(|k| *k.key_type() == key_type).map(|k| k.attribute_name());
        let partition = named(KeyType::Hash).ok_or("the table description has no partition (HASH) key")?;
        Ok(KeySchema { partition: attribute(partition)?, sort: named(KeyType::Range).map(attribute).transpose()? })
    }

    fn attributes(&self) -> impl Iterator<Item = (&KeyAttribute, u64)> {
        std::iter::once((&self.partition, MAX_PARTITION_KEY_SIZE)).chain(self.sort.iter().map(|s| (s, MAX_SORT_KEY_SIZE)))
    }

    /// Checks the key attributes of `item` as DynamoDB does: present, of
    /// the table's type, not empty, within the key size limits.
    ///
    /// # Errors
    /// DynamoDB's message for the first problem.
    pub fn check(&self, item: &Item) -> Result<(), String> {
        for (key, max_size) in self.attributes() {
            let name = &key.name;
            let Some(value) = item.get(name) else {
                return Err(format!("One or more parameter values were invalid: Missing the key {name} in the item"));
            };
            let actual = type_code(value);
            if actual != key.kind.code() {
                return Err(format!(
                    "One or more parameter values were invalid: Type mismatch for key {name} expected: {} actual: {actual}",
                    key.kind.code()
                ));
            }
            let empty = match value {
                AttributeValue::S(s) => s.is_empty(),
                AttributeValue::B(b) => b.as_ref().is_empty(),
                _ => false,
            };
            if empty {
                let what = if actual == "S" { "string" } else { "binary" };
                return Err(format!(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {what} value. Key: {name}"
                ));
            }
            let size = value_size(value);
            if size > max_size {
                let which = if max_size == MAX_PARTITION_KEY_SIZE { "partition" } else { "sort" };
                return Err(format!(
                    "One or more parameter values were invalid: Size of {which} key {name} ({size} bytes) has exceeded the maximum size limit of {max_size} bytes"
                ));
            }
        }
        Ok(())
    }

    /// The identity of an item's key: equal for items DynamoDB sees as
    /// the same key (numbers compared by value). `None` when a key
    /// attribute is missing or mistyped (see [`check`](Self::check)).
    pub fn identity(&self, item: &Item) -> Option<String> {
        let mut identity = String::new();
        for (key, _) in self.attributes() {
            let part = match item.get(&key.name)? {
                AttributeValue::S(s) if key.kind == KeyValueType::String => s.clone(),
                AttributeValue::N(n) if key.kind == KeyValueType::Number => Decimal::parse(n).ok()?.canonical(),
                AttributeValue::B(b) if key.kind == KeyValueType::Binary => b.as_ref().iter().map(|byte| format!("{byte:02x}")).collect(),
                _ => return None,
            };
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            identity.push_str(&format!("{}:{part};", part.len()));
        }
        Some(identity)
    }

    /// The key attributes of `item`, for logs.
    pub fn describe(&self, item: &Item) -> String {
        self.attributes()
            .map(|(key, _)| match item.get(&key.name) {
                Some(AttributeValue::S(s)) => format!("{}={s:?}", key.name),
                Some(AttributeValue::N(n)) => format!("{}={n}", key.name),
                Some(other) => format!("{}=<{}>", key.name, type_code(other)),
                None => format!("{}=<missing>", key.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;

    fn schema() -> KeySchema {
        KeySchema {
            partition: KeyAttribute { name: "id".into(), kind: KeyValueType::String },
            sort: Some(KeyAttribute { name: "n".into(), kind: KeyValueType::Number }),
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn key_problems_are_reported_as_dynamodb_does() {
        let s = schema();
        assert_eq!(s.check(&item(&[("id", AttributeValue::S("a".into())), ("n", AttributeValue::N("1".into()))])), Ok(()));
        let missing = s.check(&item(&[("id", AttributeValue::S("a".into()))])).expect_err("missing");
        assert!(missing.contains("Missing the key n in the item"), "{missing}");
        let mistyped = s.check(&item(&[("id", AttributeValue::N("5".into())), ("n", AttributeValue::N("1".into()))])).expect_err("type");
        assert!(mistyped.contains("Type mismatch for key id expected: S actual: N"), "{mistyped}");
        let empty = s.check(&item(&[("id", AttributeValue::S(String::new())), ("n", AttributeValue::N("1".into()))])).expect_err("empty");
        assert!(empty.contains("cannot contain an empty string value. Key: id"), "{empty}");
        let long = s.check(&item(&[("id", AttributeValue::S("x".repeat(2049))), ("n", AttributeValue::N("1".into()))])).expect_err("size");
        assert!(long.contains("maximum size limit of 2048 bytes"), "{long}");
    }

    #[test]
    fn identities_compare_numbers_by_value_and_ignore_other_attributes() {
        let s = schema();
        let a = item(&[("id", AttributeValue::S("k".into())), ("n", AttributeValue::N("1".into())), ("x", AttributeValue::Bool(true))]);
        let b = item(&[("id", AttributeValue::S("k".into())), ("n", AttributeValue::N("1.00".into()))]);
        let c = item(&[("id", AttributeValue::S("k".into())), ("n", AttributeValue::N("2".into()))]);
        assert_eq!(s.identity(&a), s.identity(&b));
        assert_ne!(s.identity(&a), s.identity(&c));
        assert_eq!(s.identity(&item(&[("id", AttributeValue::S("k".into()))])), None);
        let binary = KeySchema { partition: KeyAttribute { name: "b".into(), kind: KeyValueType::Binary }, sort: None };
        let one = item(&[("b", AttributeValue::B(Blob::new(vec![1, 2])))]);
        assert_eq!(binary.identity(&one).as_deref(), Some("4:0102;"));
    }
}

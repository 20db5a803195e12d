//! Sizes: an item's size as DynamoDB counts it against its 400 KB limit,
//! and an estimate of an item's size on the wire (its JSON in a
//! `BatchWriteItem` request), to keep each request under 16 MB.
//!
//! DynamoDB's rule ("Item sizes and formats" in the developer guide): the
//! size of an item is the sum over its attributes of the UTF-8 length of
//! the name plus the size of the value, where a string counts its UTF-8
//! bytes, a binary its raw bytes (not its base64), a number one byte per
//! two significant digits plus one ([`Decimal::stored_size`]), a boolean or
//! null one byte, and a list or map 3 bytes plus one byte per element plus
//! its elements (a map's elements with their names).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::number::Decimal;

/// DynamoDB's item size limit: 400 KB, names and values included.
pub const MAX_ITEM_SIZE: u64 = 400 * 1024;

/// The size DynamoDB counts for `item`.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter().map(|(name, value)| name.len() as u64 + value_size(value)).sum()
}

/// The size DynamoDB counts for one value (without its name).
pub fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() as u64 + value_size(v)).sum::<u64>(),
        AttributeValue::Ss(set) => set.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len() as u64).sum(),
        // A type this SDK version does not know: count nothing rather than
        // guess; DynamoDB still enforces its limit.
        _ => 0,
    }
}

fn number_size(text: &str) -> u64 {
    // A number that does not parse is refused by DynamoDB anyway; its text
    // length is a generous estimate.
    Decimal::parse(text).map(|d| d.stored_size()).unwrap_or(text.len() as u64)
}

/// An upper estimate of `item`'s bytes in a request body:
/// `{"PutRequest":{"Item":{"name":{"S":"value"},...}}}` with JSON escaping
/// and base64 for binaries.
pub fn wire_size(item: &HashMap<String, AttributeValue>) -> u64 {
    let attributes: u64 = item.iter().map(|(name, value)| json_string_len(name) + 1 + value_wire_size(value) + 1).sum();
    "{\"PutRequest\":{\"Item\":{}}},".len() as u64 + attributes
}

fn value_wire_size(value: &AttributeValue) -> u64 {
    // `{"T":` … `}`
    const WRAP: u64 = 8;
    WRAP + match value {
        AttributeValue::S(s) => json_string_len(s),
        AttributeValue::N(n) => n.len() as u64 + 2,
        AttributeValue::B(b) => base64_len(b.as_ref().len()) + 2,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 5,
        AttributeValue::L(list) => 2 + list.iter().map(|v| value_wire_size(v) + 1).sum::<u64>(),
        AttributeValue::M(map) => 2 + map.iter().map(|(k, v)| json_string_len(k) + 1 + value_wire_size(v) + 1).sum::<u64>(),
        AttributeValue::Ss(set) => 2 + set.iter().map(|s| json_string_len(s) + 1).sum::<u64>(),
        AttributeValue::Ns(set) => 2 + set.iter().map(|n| n.len() as u64 + 3).sum::<u64>(),
        AttributeValue::Bs(set) => 2 + set.iter().map(|b| base64_len(b.as_ref().len()) + 3).sum::<u64>(),
        _ => 0,
    }
}

/// Length of `s` as a JSON string literal, quotes and escapes included.
fn json_string_len(s: &str) -> u64 {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<u64>()
}

fn base64_len(raw: usize) -> u64 {
    (raw as u64).div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn sizes_follow_the_documented_rules() {
        // Strings count UTF-8 bytes, names included.
        assert_eq!(item_size(&item(&[("id", AttributeValue::S("abc".into()))])), 2 + 3);
        assert_eq!(item_size(&item(&[("né", AttributeValue::S("€".into()))])), 3 + 3);
        // Binaries count raw bytes, not base64.
        assert_eq!(item_size(&item(&[("b", AttributeValue::B(Blob::new(vec![0u8; 10])))])), 1 + 10);
        // Booleans and nulls one byte.
        assert_eq!(item_size(&item(&[("t", AttributeValue::Bool(true)), ("n", AttributeValue::Null(true))])), 2 + 2);
        // Numbers: 1 byte per two significant digits + 1.
        assert_eq!(item_size(&item(&[("n", AttributeValue::N("123".into()))])), 1 + 3);
        assert_eq!(item_size(&item(&[("n", AttributeValue::N("12300".into()))])), 1 + 3, "trailing zeros are trimmed");
        // Lists and maps: 3 bytes, 1 per element, and the elements.
        assert_eq!(item_size(&item(&[("l", AttributeValue::L(vec![]))])), 1 + 3);
        let list = AttributeValue::L(vec![AttributeValue::S("ab".into()), AttributeValue::Bool(false)]);
        assert_eq!(item_size(&item(&[("l", list)])), 1 + 3 + (1 + 2) + (1 + 1));
        let map = AttributeValue::M(item(&[("k", AttributeValue::S("v".into()))]));
        assert_eq!(item_size(&item(&[("m", map)])), 1 + 3 + (1 + 1 + 1));
    }

    #[test]
    fn the_limit_is_400_kib_names_included() {
        let at_limit = item(&[("id", AttributeValue::S("x".repeat(MAX_ITEM_SIZE as usize - 2)))]);
        assert_eq!(item_size(&at_limit), MAX_ITEM_SIZE);
        let over = item(&[("idx", AttributeValue::S("x".repeat(MAX_ITEM_SIZE as usize - 2)))]);
        assert_eq!(item_size(&over), MAX_ITEM_SIZE + 1);
    }

    #[test]
    fn wire_size_is_an_upper_bound_of_the_json() {
        let value = AttributeValue::M(item(&[
            ("s", AttributeValue::S("quote \" and \u{1} control".into())),
            ("b", AttributeValue::B(Blob::new(vec![1, 2, 3, 4]))),
            ("l", AttributeValue::L(vec![AttributeValue::N("-1.5e3".into()), AttributeValue::Null(true)])),
        ]));
        let it = item(&[("nested", value), ("id", AttributeValue::S("k".into()))]);
        let json = crate::mapping::item_to_request_json(&it);
        let actual = format!("{{\"PutRequest\":{{\"Item\":{json}}}}},").len() as u64;
        assert!(wire_size(&it) >= actual, "estimate {} < actual {actual}: {json}", wire_size(&it));
        assert!(wire_size(&it) <= actual * 2, "estimate {} far above {actual}", wire_size(&it));
    }
}

//! Unit tests of [`super::Mapping`]: JSON → `AttributeValue`.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use shardline_plugin_sdk::{Record, RecordMeta, SequenceNumber};

use super::*;

fn record(json: &str) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("orders"),
        shard_id: Arc::from("shardId-000000000001"),
        sequence_number: SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898").expect("digits"),
        sub_sequence_number: 3,
        partition_key: "pk".into(),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    };
    Record::new(json.as_bytes().to_vec().into(), Arc::new(meta))
}

fn item(mapping: &Mapping, json: &str) -> Item {
    mapping.item(&record(json)).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn default_mapping() -> Mapping {
    Mapping { binary_marker: Some("$binary".into()), ..Mapping::default() }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

#[test]
fn every_json_type_maps_to_its_attribute_type() {
    let it = item(
        &default_mapping(),
        r#"{"s":"héllo","i":42,"f":-1.5,"t":true,"no":false,"z":null,"m":{"a":{"b":[1,"x",null]}},"l":[],"e":{}}"#,
    );
    assert_eq!(it["s"], s("héllo"));
    assert_eq!(it["i"], n("42"));
    assert_eq!(it["f"], n("-1.5"));
    assert_eq!(it["t"], AttributeValue::Bool(true));
    assert_eq!(it["no"], AttributeValue::Bool(false));
    assert_eq!(it["z"], AttributeValue::Null(true));
    let inner = AttributeValue::M([("b".to_owned(), AttributeValue::L(vec![n("1"), s("x"), AttributeValue::Null(true)]))].into());
    assert_eq!(it["m"], AttributeValue::M([("a".to_owned(), inner)].into()));
    assert_eq!(it["l"], AttributeValue::L(vec![]));
    assert_eq!(it["e"], AttributeValue::M(HashMap::new()));
    assert_eq!(it.len(), 9);
}

#[test]
fn numbers_keep_their_exact_text() {
    let big = "123456789012345678901234567890.12345678";
    let it = item(&default_mapping(), &format!(r#"{{"big":{big},"tenth":0.1,"exp":1.5E+3,"neg":-0.000001,"u64max":18446744073709551616}}"#));
    assert_eq!(it["big"], n(big), "38 significant digits survive, no f64 detour");
    assert_eq!(it["tenth"], n("0.1"));
    assert_eq!(it["exp"], n("1.5E+3"));
    assert_eq!(it["neg"], n("-0.000001"));
    assert_eq!(it["u64max"], n("18446744073709551616"));
}

#[test]
fn numbers_dynamodb_cannot_store_reject_the_record_naming_the_field() {
    let err = default_mapping().item(&record(r#"{"a":{"b":[1, 1234567890123456789012345678901234567890]}}"#)).expect_err("39 digits");
    assert!(matches!(&err, MappingError::Value { path, problem: ValueProblem::Number(NumberError::TooPrecise { .. }) } if path == "a.b[1]"), "{err}");
    assert!(err.to_string().contains("more than 38 significant digits"), "{err}");
    let err = default_mapping().item(&record(r#"{"x":1e200}"#)).expect_err("overflow");
    assert!(err.to_string().contains("Number overflow") && err.to_string().contains("`x`"), "{err}");
}

#[test]
fn binaries_come_from_the_marker_and_from_binary_fields() {
    let mut mapping = default_mapping();
    mapping.binary_fields.insert("raw".into());
    let it = item(&mapping, r#"{"nested":{"data":{"$binary":"AAEC/w=="}},"raw":"aGk=","plain":"aGk=","two":{"$binary":"AA==","x":1},"nil":null}"#);
    let nested = AttributeValue::M([("data".to_owned(), AttributeValue::B(Blob::new(vec![0, 1, 2, 255])))].into());
    assert_eq!(it["nested"], nested);
    assert_eq!(it["raw"], AttributeValue::B(Blob::new(b"hi".to_vec())));
    assert_eq!(it["plain"], s("aGk="), "fields not listed stay strings");
    assert!(matches!(&it["two"], AttributeValue::M(m) if m.len() == 2), "an object with other keys is a map");

    mapping.binary_fields.insert("nil".into());
    assert_eq!(item(&mapping, r#"{"nil":null}"#)["nil"], AttributeValue::Null(true));
    let err = mapping.item(&record(r#"{"raw":"not base64!"}"#)).expect_err("bad base64");
    assert!(matches!(&err, MappingError::Value { path, problem: ValueProblem::Base64 { .. } } if path == "raw"), "{err}");
    let err = mapping.item(&record(r#"{"raw":5}"#)).expect_err("not a string");
    assert!(err.to_string().contains("base64 string, found a number"), "{err}");
    let err = mapping.item(&record(r#"{"a":[{"$binary":"%%"}]}"#)).expect_err("bad base64");
    assert!(matches!(&err, MappingError::Value { path, .. } if path == "a[0].$binary"), "{err}");

    let no_marker = Mapping::default();
    assert!(matches!(&item(&no_marker, r#"{"d":{"$binary":"AA=="}}"#)["d"], AttributeValue::M(_)), "the marker can be disabled");
}

#[test]
fn rename_projection_and_metadata() {
    let mapping = Mapping {
        rename: [("user".to_owned(), "pk".to_owned())].into(),
        attributes: Some(["user".to_owned(), "n".to_owned()].into()),
        add_metadata: true,
        ..default_mapping()
    };
    let it = item(&mapping, r#"{"user":"u1","n":1,"secret":"x","kinesis_shard_id":"forged"}"#);
    assert_eq!(it["pk"], s("u1"));
    assert_eq!(it["n"], n("1"));
    assert!(!it.contains_key("user") && !it.contains_key("secret"));
    assert_eq!(it["kinesis_shard_id"], s("shardId-000000000001"));
    assert_eq!(it["kinesis_sequence_number"], s("49590338271490256608559692538361571095921575989136588898"));
    assert_eq!(it["kinesis_sub_sequence_number"], n("3"));
    assert_eq!(it.len(), 5);

    let renaming = Mapping { rename: [("a".to_owned(), "b".to_owned())].into(), ..Mapping::default() };
    let err = renaming.item(&record(r#"{"a":1,"b":2}"#)).expect_err("collision");
    assert_eq!(err, MappingError::DuplicateAttribute { name: "b".into() });
}

#[test]
fn records_that_are_not_json_objects_are_refused() {
    let mapping = default_mapping();
    let err = mapping.item(&record(r#"{"id": 1, oops"#)).expect_err("not JSON");
    assert!(matches!(&err, MappingError::NotJson { message } if message.contains("line 1")), "{err}");
    let bytes = Record::new(vec![0xff, 0xfe].into(), record("{}").meta.clone());
    assert!(matches!(mapping.item(&bytes), Err(MappingError::NotJson { .. })));
    assert_eq!(mapping.item(&record("[1,2]")), Err(MappingError::NotAnObject { found: "an array" }));
    assert_eq!(mapping.item(&record(" \"x\" ")), Err(MappingError::NotAnObject { found: "a string" }));
    assert_eq!(mapping.item(&record(r#"{"":1}"#)), Err(MappingError::EmptyAttributeName));
}

#[test]
fn nesting_is_limited_to_32_levels() {
    let nested = |levels: usize| format!("{{\"a\":{}1{}}}", "[".repeat(levels), "]".repeat(levels));
    assert!(default_mapping().item(&record(&nested(MAX_NESTING))).is_ok());
    let err = default_mapping().item(&record(&nested(MAX_NESTING + 1))).expect_err("too deep");
    assert!(matches!(&err, MappingError::Value { problem: ValueProblem::TooDeep, .. }), "{err}");
}

#[test]
fn items_read_back_as_the_json_they_came_from() {
    let json = r#"{"b":{"$binary":"AAE="},"l":[1,2.5,"x",null,true],"m":{"k":{"z":-3}},"s":"t"}"#;
    let back = item_to_json(&item(&default_mapping(), json));
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).expect("json"));
}

//! Unit tests of the schema checks and of the JSON-to-cell conversions:
//! every type, every misfit reason, nulls, `required`, nested paths.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::convert::{convert, Cell, Misfit};
use super::schema::{schema_key, ColumnType, ParquetConfig, Schema};

fn config(columns: &[(&str, &str)], required: &[&str]) -> ParquetConfig {
    ParquetConfig {
        schema: columns
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        required: required.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn schema(columns: &[(&str, &str)], required: &[&str]) -> Schema {
    Schema::from_config(&config(columns, required)).expect("valid schema")
}

fn one(ty: &str, value: Value) -> Result<Cell, Misfit> {
    convert(&schema(&[("f", ty)], &[]), &json!({ "f": value })).map(|mut cells| cells.remove(0))
}

fn reason(ty: &str, value: Value) -> String {
    one(ty, value).expect_err("misfit").to_string()
}

#[test]
fn schema_columns_are_in_name_order_with_their_types_and_nullability() {
    let s = schema(
        &[
            ("user", "string"),
            ("amount", "double"),
            ("geo.country", "string"),
            ("ok", "bool"),
        ],
        &["user"],
    );
    let names: Vec<(&str, ColumnType, bool)> = s
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty, c.required))
        .collect();
    assert_eq!(
        names,
        [
            ("amount", ColumnType::Double, false),
            ("geo.country", ColumnType::String, false),
            ("ok", ColumnType::Bool, false),
            ("user", ColumnType::String, true)
        ]
    );
    assert_eq!(s.columns[1].path, ["geo", "country"]);
    let message = s.message_type().expect("message type");
    assert_eq!(message.get_fields().len(), 4);
}

#[test]
fn schema_problems_name_their_keys() {
    let problems = Schema::from_config(&config(
        &[
            ("n", "integer"),
            ("geo.country", "strin"),
            ("a..b", "string"),
        ],
        &["n", "nope"],
    ))
    .expect_err("bad");
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "parquet.schema.\"a..b\"",
            "parquet.schema.\"geo.country\"",
            "parquet.schema.n",
            "parquet.required[1]"
        ]
    );
    assert!(
        problems[1].1.contains("unknown column type `strin`")
            && problems[1].1.contains("timestamp_ms"),
        "{problems:?}"
    );
    assert!(
        problems[3].1.contains("`nope` is not a column"),
        "{problems:?}"
    );
    let empty = Schema::from_config(&config(&[], &[])).expect_err("empty");
    assert_eq!(empty[0].0, "parquet.schema");
    assert!(empty[0].1.contains("at least one column"));
    assert_eq!(schema_key("user_id-2"), "parquet.schema.user_id-2");
}

#[test]
fn string_takes_strings_only() {
    assert_eq!(
        one("string", json!("héllo")),
        Ok(Cell::Text("héllo".into()))
    );
    assert_eq!(
        reason("string", json!(5)),
        "field `f` (string): expected a string, found a number 5"
    );
    assert_eq!(
        reason("string", json!({"a": 1})),
        "field `f` (string): expected a string, found an object"
    );
}

#[test]
fn int64_takes_integers_only() {
    assert_eq!(one("int64", json!(-42)), Ok(Cell::Int64(-42)));
    assert_eq!(one("int64", json!(i64::MAX)), Ok(Cell::Int64(i64::MAX)));
    assert_eq!(
        reason("int64", json!("5")),
        "field `f` (int64): expected an integer, found a string \"5\""
    );
    assert_eq!(
        reason("int64", json!(1.5)),
        "field `f` (int64): expected an integer, found a number 1.5"
    );
    assert_eq!(
        reason("int64", json!(1.0)),
        "field `f` (int64): expected an integer, found a number 1.0"
    );
    assert_eq!(reason("int64", json!(u64::MAX)), "field `f` (int64): expected an integer within the int64 range, found a number 18446744073709551615");
    assert!(reason("int64", json!(true)).contains("found a boolean true"));
}

#[test]
fn double_takes_any_number() {
    assert_eq!(one("double", json!(1.5)), Ok(Cell::Double(1.5)));
    assert_eq!(one("double", json!(7)), Ok(Cell::Double(7.0)));
    assert_eq!(one("double", json!(-1e300)), Ok(Cell::Double(-1e300)));
    assert_eq!(
        reason("double", json!("1.5")),
        "field `f` (double): expected a number, found a string \"1.5\""
    );
}

#[test]
fn bool_takes_true_and_false_only() {
    assert_eq!(one("bool", json!(true)), Ok(Cell::Bool(true)));
    assert_eq!(one("bool", json!(false)), Ok(Cell::Bool(false)));
    assert_eq!(
        reason("bool", json!(1)),
        "field `f` (bool): expected true or false, found a number 1"
    );
    assert!(reason("bool", json!("true")).contains("found a string \"true\""));
}

#[test]
fn timestamp_ms_takes_epoch_millis_and_rfc3339() {
    assert_eq!(
        one("timestamp_ms", json!(1_700_000_000_123i64)),
        Ok(Cell::Int64(1_700_000_000_123))
    );
    assert_eq!(
        one("timestamp_ms", json!("2023-11-14T22:13:20.123Z")),
        Ok(Cell::Int64(1_700_000_000_123))
    );
    assert_eq!(
        one("timestamp_ms", json!("2023-11-14T23:13:20.1239+01:00")),
        Ok(Cell::Int64(1_700_000_000_123)),
        "offsets, sub-ms truncated"
    );
    assert_eq!(
        one("timestamp_ms", json!("1969-12-31T23:59:59.9995Z")),
        Ok(Cell::Int64(-1)),
        "before the epoch, towards the past"
    );
    assert!(reason("timestamp_ms", json!("yesterday"))
        .starts_with("field `f` (timestamp_ms): `yesterday` is not an RFC 3339 time"));
    assert!(reason("timestamp_ms", json!(1.5)).contains("expected milliseconds since the epoch (an integer) or an RFC 3339 string, found a number 1.5"));
}

#[test]
fn json_takes_anything_as_compact_text() {
    assert_eq!(
        one("json", json!({"b": [1, 2], "a": null})),
        Ok(Cell::Text(r#"{"a":null,"b":[1,2]}"#.into()))
    );
    assert_eq!(
        one("json", json!("text")),
        Ok(Cell::Text("\"text\"".into()))
    );
    assert_eq!(one("json", json!(3.25)), Ok(Cell::Text("3.25".into())));
}

#[test]
fn missing_and_null_are_null_unless_required() {
    let s = schema(
        &[("user", "string"), ("n", "int64"), ("tags", "json")],
        &["user"],
    );
    assert_eq!(
        convert(&s, &json!({"user": "u", "n": null})),
        Ok(vec![Cell::Null, Cell::Null, Cell::Text("u".into())])
    );
    assert_eq!(
        convert(&s, &json!({"n": 1}))
            .expect_err("missing")
            .to_string(),
        "field `user` (string): required field is missing"
    );
    assert_eq!(
        convert(&s, &json!({"user": null}))
            .expect_err("null")
            .to_string(),
        "field `user` (string): required field is null"
    );
}

#[test]
fn nested_fields_by_dotted_path() {
    let s = schema(
        &[("geo.country", "string"), ("geo.lat", "double")],
        &["geo.country"],
    );
    assert_eq!(
        convert(&s, &json!({"geo": {"country": "fr", "lat": 48.85}})),
        Ok(vec![Cell::Text("fr".into()), Cell::Double(48.85)])
    );
    assert_eq!(
        convert(&s, &json!({"geo": {"country": "fr"}})),
        Ok(vec![Cell::Text("fr".into()), Cell::Null])
    );
    let e = convert(&s, &json!({"geo": "fr"})).expect_err("not an object on the way");
    assert_eq!(
        e.to_string(),
        "field `geo.country` (string): required field is missing"
    );
    assert_eq!(
        convert(&s, &json!({"geo.country": "fr"}))
            .expect_err("a dotted key is not a path")
            .to_string(),
        "field `geo.country` (string): required field is missing"
    );
}

#[test]
fn records_must_be_objects() {
    let s = schema(&[("a", "string")], &[]);
    assert_eq!(
        convert(&s, &json!([1])),
        Err(Misfit::NotAnObject { found: "an array" })
    );
    assert_eq!(
        convert(&s, &json!("x")).expect_err("string").to_string(),
        "record is not a JSON object (encoding = \"parquet\" needs JSON objects), it is a string"
    );
}

#[test]
fn long_values_are_cut_in_reasons() {
    let long = "x".repeat(100);
    let text = reason("int64", json!(long));
    assert!(
        text.len() < 120 && text.ends_with("...") && text.contains("\"xxxx"),
        "{text}"
    );
}

//! Records built as CloudWatch Logs writes them to Kinesis: the JSON
//! documents of the CloudWatch Logs user guide ("Using subscription filters
//! with Kinesis", "Validate the flow of log events"), gzip-compressed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use super::*;
use crate::test_support::{build, build_error, record, run};

/// The DATA_MESSAGE of the user guide, byte for byte (its CloudTrail
/// messages are cut short there, so they are not valid JSON).
const DOCUMENTED_DATA_MESSAGE: &str = include_str!("documented-data-message.json");

/// The reachability check CloudWatch Logs writes when a subscription filter
/// is created.
const DOCUMENTED_CONTROL_MESSAGE: &str = include_str!("documented-control-message.json");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("in-memory gzip");
    encoder.finish().expect("in-memory gzip")
}

fn gzipped(document: &str) -> Record {
    record(Payload::Bytes(Bytes::from(gzip(document.as_bytes()))))
}

/// A DATA_MESSAGE of Lambda-style events with these messages.
fn data_message(messages: &[&str]) -> String {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("3729283735581749239127364816519293847561928374659128{i:04}"), "timestamp": 1_767_225_600_000i64 + i as i64, "message": m}))
        .collect();
    json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/orders",
        "logStream": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "subscriptionFilters": ["to-kinesis"], "logEvents": events,
    })
    .to_string()
}

fn payloads(out: &[Record]) -> Vec<Value> {
    out.iter()
        .map(|r| match &r.payload {
            Payload::Json(v) => v.clone(),
            Payload::Bytes(b) => panic!("expected JSON, got bytes {:?}", String::from_utf8_lossy(b)),
        })
        .collect()
}

/// `gzip` with its CRC-32 trailer damaged.
fn damage_crc(mut gzip: Vec<u8>) -> Record {
    let crc = gzip.len() - 8;
    gzip[crc] ^= 0xff;
    record(Payload::Bytes(Bytes::from(gzip)))
}

fn reason(options: &str, input: Record) -> String {
    let mut t = build(NAME, options);
    let mut out = Vec::new();
    let err = t.apply(input, &mut out).expect_err("dead-lettered");
    assert!(out.is_empty(), "nothing is emitted for a failed record: {out:?}");
    err.reason
}

#[test]
fn documented_data_message_yields_one_record_per_event_in_order() {
    let input = gzipped(DOCUMENTED_DATA_MESSAGE);
    let meta = input.meta.clone();
    let out = run(build(NAME, "").as_mut(), input).expect("decodes");
    let expected: Vec<Value> = [29, 30, 31]
        .iter()
        .map(|n| {
            json!({
                "id": format!("31953106606966983378809025079804211143289615424{n}EXAMPLE"),
                "timestamp": 1432826855000i64,
                "message": "{\"eventVersion\":\"1.03\",\"userIdentity\":{\"type\":\"Root\"}",
                "owner": "111111111111",
                "logGroup": "CloudTrail/logs",
                "logStream": "111111111111_CloudTrail/logs_us-east-1",
                "subscriptionFilters": ["RecipientStream"],
            })
        })
        .collect();
    assert_eq!(payloads(&out), expected);
    for r in &out {
        assert!(Arc::ptr_eq(&r.meta, &meta), "every event keeps the Kinesis record's position");
        assert_eq!(r.event_time, Some(UNIX_EPOCH + Duration::from_millis(1_432_826_855_000)));
    }
    // The documented messages are cut short: parse_message keeps them as text.
    let parsed = run(build(NAME, "parse_message = true").as_mut(), gzipped(DOCUMENTED_DATA_MESSAGE)).expect("decodes");
    assert_eq!(payloads(&parsed), expected);
}

#[test]
fn documented_control_message_yields_nothing() {
    let out = run(build(NAME, "").as_mut(), gzipped(DOCUMENTED_CONTROL_MESSAGE)).expect("not an error");
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_replayed_record_yields_the_same_events() {
    let text = data_message(&["a", "b", "c"]);
    let mut t = build(NAME, "parse_message = true");
    let first = run(t.as_mut(), gzipped(&text)).expect("decodes");
    let again = run(t.as_mut(), gzipped(&text)).expect("decodes");
    assert_eq!(first.len(), 3);
    assert_eq!(first, again);
    assert!(first.iter().all(|r| r.meta.position() == again[0].meta.position()));
}

#[test]
fn parse_message_parses_json_objects_and_arrays_only() {
    let messages = [
        "{\"level\":\"info\",\"order\":{\"id\":7}}\n",
        "  [1, 2]",
        "START RequestId: 8f5c Version: $LATEST",
        "42",
        "null",
        "{broken",
    ];
    let text = data_message(&messages);
    let parsed = run(build(NAME, "parse_message = true").as_mut(), gzipped(&text)).expect("decodes");
    let got: Vec<Value> = payloads(&parsed).into_iter().map(|v| v["message"].clone()).collect();
    assert_eq!(
        got,
        vec![
            json!({"level": "info", "order": {"id": 7}}),
            json!([1, 2]),
            json!("START RequestId: 8f5c Version: $LATEST"),
            json!("42"),
            json!("null"),
            json!("{broken"),
        ]
    );
    let kept = run(build(NAME, "").as_mut(), gzipped(&text)).expect("decodes");
    let got: Vec<Value> = payloads(&kept).into_iter().map(|v| v["message"].clone()).collect();
    assert_eq!(got, messages.iter().map(|m| json!(m)).collect::<Vec<_>>(), "default: messages stay text");
    let first = &payloads(&kept)[0];
    assert_eq!(first["logGroup"], "/aws/lambda/orders");
    assert_eq!(first["id"], "37292837355817492391273648165192938475619283746591280000");
    assert_eq!(first["timestamp"], 1_767_225_600_000i64);
    assert_eq!(kept[5].event_time, Some(UNIX_EPOCH + Duration::from_millis(1_767_225_600_005)));
}

#[test]
fn extra_event_keys_are_kept() {
    let text = json!({
        "messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s", "subscriptionFilters": [],
        "logEvents": [{"id": "1", "timestamp": 0, "message": "m", "extractedFields": {"status": "500"}}],
    })
    .to_string();
    let out = run(build(NAME, "").as_mut(), gzipped(&text)).expect("decodes");
    assert_eq!(payloads(&out)[0]["extractedFields"], json!({"status": "500"}));
    assert_eq!(out[0].event_time, Some(UNIX_EPOCH));
}

#[test]
fn a_data_message_without_events_yields_nothing() {
    let out = run(build(NAME, "").as_mut(), gzipped(&data_message(&[]))).expect("not an error");
    assert!(out.is_empty());
}

#[test]
fn bad_gzip_is_dead_lettered_with_the_reason() {
    let plain = record(Payload::Bytes(Bytes::from(DOCUMENTED_CONTROL_MESSAGE)));
    assert_eq!(
        reason("", plain),
        "decode_cloudwatch_logs: not gzip: the record starts with bytes [7b 22], not 1f 8b \
         (CloudWatch Logs writes gzip-compressed JSON)"
    );
    assert!(reason("", record(Payload::Bytes(Bytes::new()))).contains("starts with bytes []"));
    let whole = gzip(DOCUMENTED_DATA_MESSAGE.as_bytes());
    let truncated = record(Payload::Bytes(Bytes::copy_from_slice(&whole[..whole.len() / 2])));
    let why = reason("", truncated);
    assert!(why.starts_with("decode_cloudwatch_logs: invalid gzip after "), "{why}");
    let why = reason("", damage_crc(whole));
    assert!(why.starts_with("decode_cloudwatch_logs: invalid gzip"), "{why}");
}

#[test]
fn gzip_of_something_else_than_json_is_dead_lettered() {
    let why = reason("", gzipped("CWL CONTROL MESSAGE"));
    assert!(why.starts_with("decode_cloudwatch_logs: decompressed record: invalid JSON at byte 0"), "{why}");
    let why = reason("", record(Payload::Bytes(Bytes::from(gzip(&[0xff, 0xfe, 0x00])))));
    assert!(why.contains("invalid JSON"), "{why}");
}

#[test]
fn json_of_the_wrong_shape_is_dead_lettered_naming_the_field() {
    let good: Value = serde_json::from_str(DOCUMENTED_DATA_MESSAGE).expect("documented JSON");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        gzipped(&v.to_string())
    };
    let cases: Vec<(Record, &str)> = vec![
        (gzipped("[1, 2]"), "expected a JSON object, got an array"),
        (with(&|v| v["messageType"] = json!("DATA")), "unknown `messageType` \"DATA\" (expected \"DATA_MESSAGE\" or \"CONTROL_MESSAGE\")"),
        (with(&|v| drop(v.as_object_mut().map(|m| m.remove("messageType")))), "`messageType` is missing"),
        (with(&|v| drop(v.as_object_mut().map(|m| m.remove("owner")))), "`owner` is missing"),
        (with(&|v| v["logGroup"] = json!(7)), "`logGroup` must be a string, got a number"),
        (with(&|v| v["subscriptionFilters"] = json!("RecipientStream")), "`subscriptionFilters` must be an array, got a string"),
        (with(&|v| v["subscriptionFilters"] = json!(["a", null])), "`subscriptionFilters[1]` must be a string, got null"),
        (with(&|v| drop(v.as_object_mut().map(|m| m.remove("logEvents")))), "`logEvents` is missing"),
        (with(&|v| v["logEvents"] = json!({})), "`logEvents` must be an array, got an object"),
        (with(&|v| v["logEvents"][1] = json!("line")), "`logEvents[1]` must be an object, got a string"),
        (with(&|v| v["logEvents"][2]["timestamp"] = json!("1432826855000")), "`logEvents[2].timestamp` must be a number, got a string"),
        (with(&|v| v["logEvents"][2]["timestamp"] = json!(1.5)), "`logEvents[2].timestamp` must be whole milliseconds since the epoch, got 1.5"),
        (with(&|v| drop(v["logEvents"][0].as_object_mut().map(|m| m.remove("id")))), "`logEvents[0].id` is missing"),
        (with(&|v| v["logEvents"][1]["message"] = json!({"a": 1})), "`logEvents[1].message` must be a string, got an object"),
    ];
    for (input, needle) in cases {
        let why = reason("", input);
        assert_eq!(why, format!("decode_cloudwatch_logs: not a CloudWatch Logs subscription record: {needle}"));
    }
}

#[test]
fn a_parsed_payload_is_an_error_telling_to_put_it_first() {
    let why = reason("", record(Payload::Json(serde_json::from_str(DOCUMENTED_DATA_MESSAGE).expect("JSON"))));
    assert!(why.contains("put decode_cloudwatch_logs first"), "{why}");
}

#[test]
fn a_record_over_max_decompressed_bytes_is_dead_lettered() {
    let text = data_message(&["x".repeat(900).as_str()]);
    let exact = format!("max_decompressed_bytes = {}", text.len());
    assert_eq!(run(build(NAME, &exact).as_mut(), gzipped(&text)).expect("at the limit").len(), 1);
    let one_less = format!("max_decompressed_bytes = {}", text.len() - 1);
    let why = reason(&one_less, gzipped(&text));
    assert!(why.starts_with(&format!(
        "decode_cloudwatch_logs: the record decompresses to more than max_decompressed_bytes ({}B)",
        text.len() - 1
    )), "{why}");
}

#[test]
fn a_gzip_bomb_is_dead_lettered_at_the_default_limit() {
    // 11 MiB of zeros inflate from about 11 KiB.
    let bomb = gzip(&vec![0u8; 11 << 20]);
    assert!(bomb.len() < 64 << 10, "{} compressed bytes", bomb.len());
    let why = reason("", record(Payload::Bytes(Bytes::from(bomb.clone()))));
    assert!(why.contains("decompresses to more than max_decompressed_bytes (10MiB)"), "{why}");
    // Inflating stops at the limit: a damaged trailer 1 MiB past it is never
    // reached (reading on would fail on its CRC instead).
    let why = reason("", damage_crc(bomb));
    assert!(why.contains("decompresses to more than max_decompressed_bytes (10MiB)"), "{why}");
}

#[test]
fn options_are_checked() {
    let err = build_error(NAME, "max_decompressed_bytes = 0");
    assert_eq!(err.key(), Some("max_decompressed_bytes"));
    assert!(err.to_string().contains("at least 1 byte"), "{err}");
    let err = build_error(NAME, "max_decompressed_bytes = \"lots\"");
    assert_eq!(err.key(), Some("max_decompressed_bytes"), "{err}");
    let err = build_error(NAME, "parse_message = \"yes\"");
    assert_eq!(err.key(), Some("parse_message"), "{err}");
    assert_eq!(DecodeCloudwatchLogsConfig::default().max_decompressed_bytes.bytes(), 10 << 20);
    build(NAME, "max_decompressed_bytes = \"512KiB\"\nparse_message = true");
}

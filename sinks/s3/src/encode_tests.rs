//! Unit tests of row encoding and body compression.

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::json;
use shardline_plugin_sdk::{Payload, Record, RecordMeta, SequenceNumber};

use super::*;

fn record(payload: Payload) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("s"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::parse("1").expect("digits"),
        sub_sequence_number: 0,
        partition_key: "pk".into(),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH,
        aggregated: false,
    };
    Record { payload, meta: Arc::new(meta), event_time: None }
}

fn bytes(text: &[u8]) -> Record {
    record(Payload::Bytes(Bytes::copy_from_slice(text)))
}

pub(crate) fn decompress(compression: Compression, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        Compression::None | Compression::Snappy => out.extend_from_slice(body),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("valid gzip");
        }
        Compression::Zstd => out = zstd::decode_all(body).expect("valid zstd"),
    }
    out
}

fn ndjson(compression: Compression) -> Encoder {
    Encoder::new(Encoding::Ndjson, &[], true, "\n", compression, None)
}

#[test]
fn ndjson_keeps_one_line_json_as_is_and_compacts_the_rest() {
    let encoder = ndjson(Compression::None);
    let row = encoder.row(&bytes(br#"{"a": 1,  "b":"x"}"#), false).expect("valid");
    assert_eq!(&row.bytes[..], br#"{"a": 1,  "b":"x"}"#);
    assert!(row.value.is_none());
    let row = encoder.row(&bytes(b"{\n  \"a\": 1\n}\n"), false).expect("valid");
    assert_eq!(&row.bytes[..], br#"{"a":1}"#);
    let row = encoder.row(&record(Payload::Json(json!({"k": [1, 2]}))), true).expect("valid");
    assert_eq!(&row.bytes[..], br#"{"k":[1,2]}"#);
    assert_eq!(row.value, Some(json!({"k": [1, 2]})));
}

#[test]
fn ndjson_rejects_what_is_not_json_with_the_reason() {
    let encoder = ndjson(Compression::Gzip);
    for bad in [&b"not json"[..], b"{\"a\": 1", b"{\"a\":1} trailing", &[0xff, 0xfe], b""] {
        let reason = encoder.row(&bytes(bad), false).expect_err("not JSON");
        assert!(reason.contains("not valid JSON") && reason.contains("ndjson"), "{reason}");
        assert!(encoder.row(&bytes(bad), true).is_err());
    }
}

#[test]
fn csv_rows_quote_and_flatten_fields() {
    let fields = ["id".to_owned(), "user.name".to_owned(), "tags".to_owned(), "missing".to_owned()];
    let encoder = Encoder::new(Encoding::Csv, &fields, true, "\n", Compression::None, None);
    let row = encoder.row(&bytes(br#"{"id": 7, "user": {"name": "O'Neil, \"Bo\""}, "tags": ["a"]}"#), false).expect("object");
    assert_eq!(String::from_utf8_lossy(&row.bytes), r#"7,"O'Neil, ""Bo""","[""a""]","#);
    let reason = encoder.row(&bytes(b"[1, 2]"), false).expect_err("not an object");
    assert!(reason.contains("not a JSON object"), "{reason}");
    let body = encoder.body([&row.bytes, &row.bytes], 0).expect("body");
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    assert_eq!(text.lines().collect::<Vec<_>>()[0], "id,user.name,tags,missing");
    assert_eq!(text.lines().count(), 3);
    let headless = Encoder::new(Encoding::Csv, &fields, false, "\n", Compression::None, None);
    assert_eq!(headless.body([&row.bytes], 0).expect("body").iter().filter(|b| **b == b'\n').count(), 1);
}

#[test]
fn raw_rows_are_the_bytes_with_the_delimiter() {
    let encoder = Encoder::new(Encoding::Raw, &[], true, "\u{1e}", Compression::None, None);
    let a = encoder.row(&bytes(&[0, 159, 146, 150]), false).expect("any bytes");
    let b = encoder.row(&bytes(b"text"), false).expect("any bytes");
    assert_eq!(&encoder.body([&a.bytes, &b.bytes], 0).expect("body")[..], b"\x00\x9f\x92\x96\x1etext\x1e");
    let reason = encoder.row(&bytes(b"not json"), true).expect_err("fields need JSON");
    assert!(reason.contains("{field.*}"), "{reason}");
}

#[test]
fn compression_round_trips_and_is_deterministic() {
    let rows: Vec<Bytes> = (0..500).map(|i| Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50)))).collect();
    let mut expected = Vec::new();
    for row in &rows {
        expected.extend_from_slice(row);
        expected.push(b'\n');
    }
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let encoder = ndjson(compression);
        let body = encoder.body(&rows, expected.len()).expect("compresses");
        assert_eq!(decompress(compression, &body), expected, "{compression:?}");
        assert_eq!(body, encoder.body(&rows, 0).expect("again"), "{compression:?} output must be deterministic");
        if compression != Compression::None {
            assert!(body.len() < expected.len() / 3, "{compression:?} compresses: {} of {}", body.len(), expected.len());
        }
    }
    let fast = Encoder::new(Encoding::Ndjson, &[], true, "\n", Compression::Zstd, Some(1)).body(&rows, 0).expect("level 1");
    assert_eq!(decompress(Compression::Zstd, &fast), expected);
}

#[test]
fn levels_extensions_and_content_types() {
    assert!(Compression::Gzip.check_level(9).is_ok() && Compression::Gzip.check_level(10).is_err());
    assert!(Compression::Zstd.check_level(19).is_ok() && Compression::Zstd.check_level(0).is_err());
    assert!(Compression::None.check_level(1).is_err());
    assert_eq!(Compression::Zstd.content_encoding(), Some("zstd"));
    assert_eq!(Compression::None.content_encoding(), None);
    assert_eq!(format!("{}{}", Encoding::Csv.extension(), Compression::Gzip.extension()), ".csv.gz");
    assert_eq!(Encoding::Ndjson.content_type(), "application/x-ndjson");
}

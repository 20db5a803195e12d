//! The NDJSON envelope: one record with its Kinesis metadata as one JSON
//! object, used by dead-letter files and by the file and stdout sinks'
//! `format = "envelope"`.
//!
//! ```json
//! {"pipeline":"p","stream":"s","shard_id":"shardId-000000000000",
//!  "sequence_number":"4959…","sub_sequence_number":0,"partition_key":"k",
//!  "explicit_hash_key":null,"arrival_time":"2024-01-01T00:00:00.000Z",
//!  "stage":"transform:parse_json","reason":"invalid JSON: …","data":"…"}
//! ```
//!
//! `data` holds the payload as a string when its bytes are valid UTF-8
//! (JSON payloads serialised compactly); otherwise `data_base64` holds them
//! base64-encoded (standard alphabet, padded). `stage` and `reason` appear
//! in dead-letter entries only.

use base64::Engine;
use serde::Serialize;
use shardline_api::Record;

#[derive(Serialize)]
struct Envelope<'a> {
    pipeline: &'a str,
    stream: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
    sub_sequence_number: u64,
    partition_key: &'a str,
    explicit_hash_key: Option<&'a str>,
    arrival_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

/// Why a record is in a dead-letter entry.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// `transform:<name>` or `sink`.
    pub stage: &'a str,
    /// The reason given by the transform or the sink.
    pub reason: &'a str,
}

/// Appends the envelope of `record` as one JSON line (with a trailing
/// `\n`) to `out`.
pub fn write_line(out: &mut Vec<u8>, pipeline: &str, record: &Record, failure: Option<Failure<'_>>) {
    let bytes = record.payload.to_bytes();
    let text = std::str::from_utf8(&bytes).ok();
    let meta = &record.meta;
    let envelope = Envelope {
        pipeline,
        stream: &meta.stream,
        shard_id: &meta.shard_id,
        sequence_number: meta.sequence_number.as_str(),
        sub_sequence_number: meta.sub_sequence_number,
        partition_key: &meta.partition_key,
        explicit_hash_key: meta.explicit_hash_key.as_deref(),
        arrival_time: humantime::format_rfc3339_millis(meta.arrival_time).to_string(),
        stage: failure.map(|f| f.stage),
        reason: failure.map(|f| f.reason),
        data: text,
        data_base64: match text {
            Some(_) => None,
            None => Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        },
    };
    // Serialising this struct of strings and integers into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &envelope).is_ok() {
        out.push(b'\n');
    }
}

/// Appends the payload of `record` followed by `\n` (JSON payloads
/// compact) to `out`.
pub fn write_payload_line(out: &mut Vec<u8>, record: &Record) {
    out.extend_from_slice(&record.payload.to_bytes());
    out.push(b'\n');
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use serde_json::json;
    use shardline_api::{Payload, RecordMeta, SequenceNumber};

    use super::*;

    pub(crate) fn record(data: &'static [u8]) -> Record {
        let meta = RecordMeta {
            stream: Arc::from("orders"),
            shard_id: Arc::from("shardId-000000000007"),
            sequence_number: SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
                .expect("digits"),
            sub_sequence_number: 3,
            partition_key: "pk-1".to_owned(),
            explicit_hash_key: Some("123".to_owned()),
            arrival_time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            aggregated: true,
        };
        Record::new(Bytes::from_static(data), Arc::new(meta))
    }

    fn parse(line: &[u8]) -> serde_json::Value {
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(line).expect("one JSON object")
    }

    #[test]
    fn dead_letter_entry_with_utf8_data() {
        let mut out = Vec::new();
        write_line(&mut out, "p1", &record(b"hello"), Some(Failure { stage: "transform:parse_json", reason: "bad" }));
        assert_eq!(
            parse(&out),
            json!({
                "pipeline": "p1", "stream": "orders", "shard_id": "shardId-000000000007",
                "sequence_number": "49590338271490256608559692538361571095921575989136588898",
                "sub_sequence_number": 3, "partition_key": "pk-1", "explicit_hash_key": "123",
                "arrival_time": "2023-11-14T22:13:20.123Z",
                "stage": "transform:parse_json", "reason": "bad", "data": "hello"
            })
        );
    }

    #[test]
    fn binary_data_is_base64_and_envelope_has_no_stage() {
        let mut out = Vec::new();
        let mut r = record(b"\xff\x00");
        Arc::make_mut(&mut r.meta).explicit_hash_key = None;
        write_line(&mut out, "p1", &r, None);
        let v = parse(&out);
        assert_eq!(v["data_base64"], "/wA=");
        assert_eq!(v["explicit_hash_key"], serde_json::Value::Null);
        assert!(v.get("data").is_none() && v.get("stage").is_none() && v.get("reason").is_none());
    }

    #[test]
    fn payload_lines_are_compact() {
        let mut out = Vec::new();
        let mut r = record(b"");
        r.payload = Payload::Json(json!({"a": [1, 2]}));
        write_payload_line(&mut out, &r);
        write_payload_line(&mut out, &record(b"raw"));
        assert_eq!(out, b"{\"a\":[1,2]}\nraw\n");
    }
}

//! Records and helpers for the transforms' unit tests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;
use shardline_api::{Payload, Record, RecordMeta, SequenceNumber, Transform, TransformError};

/// A record at sequence number 42 with the given payload.
pub(crate) fn record(payload: Payload) -> Record {
    record_at(42, payload)
}

/// A record at sequence number `seq`, arrival time `seq` seconds after the
/// epoch.
pub(crate) fn record_at(seq: u64, payload: Payload) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("s"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::parse(&seq.to_string()).expect("valid"),
        sub_sequence_number: 0,
        partition_key: "pk".to_owned(),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
        aggregated: false,
    };
    Record { payload, meta: Arc::new(meta), event_time: None }
}

/// A raw-bytes record.
pub(crate) fn text(data: &str) -> Record {
    record(Payload::Bytes(Bytes::from(data.to_owned())))
}

/// A JSON record.
pub(crate) fn json(value: Value) -> Record {
    record(Payload::Json(value))
}

/// Builds a transform from TOML options.
pub(crate) fn build(name: &str, options: &str) -> Box<dyn Transform> {
    let table: toml::Table = options.parse().expect("test TOML parses");
    crate::build(name, &table).unwrap_or_else(|e| panic!("{name} builds: {e}"))
}

/// Applies `t` to one record: the outputs or the error.
pub(crate) fn run(t: &mut dyn Transform, r: Record) -> Result<Vec<Record>, TransformError> {
    let mut out = Vec::new();
    t.apply(r, &mut out).map(|()| out)
}

/// Applies `t` to one record expecting exactly one JSON output.
pub(crate) fn one_json(t: &mut dyn Transform, r: Record) -> Value {
    let mut out = run(t, r).unwrap_or_else(|e| panic!("transform failed: {e}"));
    assert_eq!(out.len(), 1, "one output expected");
    match out.remove(0).payload {
        Payload::Json(v) => v,
        Payload::Bytes(b) => panic!("expected JSON, got bytes {:?}", String::from_utf8_lossy(&b)),
    }
}

/// The build error's text for options expected to be invalid.
pub(crate) fn build_error(name: &str, options: &str) -> crate::TransformBuildError {
    let table: toml::Table = options.parse().expect("test TOML parses");
    crate::build(name, &table).err().unwrap_or_else(|| panic!("{name} with {options:?} should not build"))
}

//! The record that flows from the source through transforms to a sink.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::sequence::{Position, SequenceNumber};

/// Where a user record came from. Shared (behind an `Arc`) by every record a
/// 1:N transform makes from one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// Stream name.
    pub stream: Arc<str>,
    /// Shard id, e.g. `shardId-000000000001`.
    pub shard_id: Arc<str>,
    /// Kinesis sequence number of the (possibly aggregated) Kinesis record.
    pub sequence_number: SequenceNumber,
    /// Index inside a KPL aggregate; 0 for records that were not aggregated.
    pub sub_sequence_number: u64,
    /// Partition key of the user record.
    pub partition_key: String,
    /// Explicit hash key of the user record, when the producer set one.
    pub explicit_hash_key: Option<String>,
    /// `ApproximateArrivalTimestamp` of the Kinesis record.
    pub arrival_time: SystemTime,
    /// True when the record was taken out of a KPL aggregate.
    pub aggregated: bool,
}

impl RecordMeta {
    /// `(sequence, sub_sequence)` of this record.
    pub fn position(&self) -> Position {
        Position::new(self.sequence_number.clone(), self.sub_sequence_number)
    }
}

/// A record's body: raw bytes as read, or a JSON value once a transform
/// parsed it (so a chain of JSON transforms does not re-parse).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Raw bytes.
    Bytes(Bytes),
    /// A parsed JSON value.
    Json(serde_json::Value),
}

impl Payload {
    /// The payload as bytes: raw bytes as they are, JSON serialised compactly.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Payload::Bytes(b) => b.clone(),
            Payload::Json(v) => match serde_json::to_vec(v) {
                Ok(buf) => Bytes::from(buf),
                // serde_json only fails to serialise maps with non-string
                // keys, which `serde_json::Value` cannot hold.
                Err(_) => Bytes::new(),
            },
        }
    }

    /// Size in bytes of the raw payload; for JSON an estimate that does not
    /// serialise (used for buffer accounting only).
    pub fn approximate_len(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            Payload::Json(v) => approximate_json_len(v),
        }
    }
}

fn approximate_json_len(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approximate_json_len(x) + 1).sum::<usize>(),
        Value::Object(o) => 2 + o.iter().map(|(k, x)| k.len() + 4 + approximate_json_len(x)).sum::<usize>(),
    }
}

/// One user record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The body.
    pub payload: Payload,
    /// Where it came from.
    pub meta: Arc<RecordMeta>,
    /// Event time set by a transform (e.g. `timestamp`); sinks and windows
    /// fall back to `meta.arrival_time` when it is `None`.
    pub event_time: Option<SystemTime>,
}

impl Record {
    /// A raw-bytes record.
    pub fn new(data: Bytes, meta: Arc<RecordMeta>) -> Self {
        Record { payload: Payload::Bytes(data), meta, event_time: None }
    }

    /// The event time, or the arrival time when no transform set one.
    pub fn time(&self) -> SystemTime {
        self.event_time.unwrap_or(self.meta.arrival_time)
    }
}

/// A record the source read but will not hand to the pipeline, with the
/// reason (e.g. a KPL aggregate the Java KCL would skip). The engine writes
/// it to the dead-letter destination and acknowledges its position like any
/// other record, so it is never skipped silently.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// The record as read (for an aggregate: the whole raw aggregate), with
    /// the position it takes in the shard's order.
    pub record: Record,
    /// Where it was rejected, e.g. `source:kpl`.
    pub stage: String,
    /// Why, naming what is wrong.
    pub reason: String,
}

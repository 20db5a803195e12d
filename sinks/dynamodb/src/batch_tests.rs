//! Unit tests of [`super::prepare`] and [`super::answer_superseded`].

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use shardline_plugin_sdk::{Record, RecordMeta, RecordStatus, SequenceNumber};

use super::*;
use crate::keys::{KeyAttribute, KeySchema, KeyValueType};

fn record(i: usize, json: &str) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("s"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::parse(&format!("{}", 1000 + i)).expect("digits"),
        sub_sequence_number: 0,
        partition_key: "pk".into(),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    };
    Record::new(json.as_bytes().to_vec().into(), Arc::new(meta))
}

fn keys() -> KeySchema {
    KeySchema { partition: KeyAttribute { name: "id".into(), kind: KeyValueType::String }, sort: None }
}

fn records(jsons: &[&str]) -> Vec<Record> {
    jsons.iter().enumerate().map(|(i, j)| record(i, j)).collect()
}

fn sent(prepared: &Prepared) -> Vec<usize> {
    prepared.chunks.iter().flatten().map(|e| e.record).collect()
}

#[test]
fn duplicate_keys_collapse_to_the_last_record() {
    let batch = records(&[r#"{"id":"a","v":1}"#, r#"{"id":"b","v":1}"#, r#"{"id":"a","v":2}"#, r#"{"id":"a","v":3}"#]);
    let prepared = prepare(&batch, &Mapping::default(), &keys());
    assert_eq!(sent(&prepared), [1, 3]);
    let last = prepared.chunks.iter().flatten().find(|e| e.record == 3).expect("the last a");
    assert_eq!(last.item["v"], AttributeValue::N("3".into()));
    let mut superseded = prepared.superseded.clone();
    superseded.sort();
    assert_eq!(superseded, [(0, 3), (2, 3)], "both earlier records point at the final one");
    assert!(prepared.statuses.iter().all(Option::is_none));
}

#[test]
fn numeric_keys_are_the_same_key_whatever_their_spelling() {
    let numeric = KeySchema { partition: KeyAttribute { name: "n".into(), kind: KeyValueType::Number }, sort: None };
    let batch = records(&[r#"{"n":1}"#, r#"{"n":1.0}"#, r#"{"n":2}"#]);
    assert_eq!(sent(&prepare(&batch, &Mapping::default(), &numeric)), [1, 2]);
}

#[test]
fn superseded_records_answer_what_their_successor_answered() {
    let batch = records(&[r#"{"id":"a"}"#, r#"{"id":"a"}"#, r#"{"id":"b"}"#, r#"{"id":"b"}"#, r#"{"id":"c"}"#, r#"{"id":"c"}"#]);
    let prepared = prepare(&batch, &Mapping::default(), &keys());
    let mut statuses = prepared.statuses.clone();
    statuses[1] = Some(RecordStatus::Delivered);
    statuses[3] = Some(RecordStatus::Rejected { reason: "too big".into() });
    statuses[5] = Some(RecordStatus::Retriable { reason: "throttled".into(), backoff: None });
    answer_superseded(&mut statuses, &prepared.superseded, &batch);
    assert_eq!(statuses[0], Some(RecordStatus::Delivered));
    assert!(matches!(&statuses[2], Some(RecordStatus::Rejected { reason }) if reason.contains("superseded") && reason.contains("too big")));
    assert!(matches!(&statuses[4], Some(RecordStatus::Retriable { reason, .. }) if reason.contains("throttled")));
}

#[test]
fn bad_records_are_rejected_with_the_reason_and_do_not_supersede() {
    let big = "x".repeat(crate::size::MAX_ITEM_SIZE as usize);
    let batch = records(&[
        r#"{"id":"a","v":1}"#,
        &format!(r#"{{"id":"a","big":"{big}"}}"#),
        r#"{"id":5}"#,
        r#"{"other":1}"#,
        "not json",
        r#"{"id":""}"#,
    ]);
    let prepared = prepare(&batch, &Mapping::default(), &keys());
    assert_eq!(sent(&prepared), [0], "the valid record is not superseded by the oversized one");
    let reason = |i: usize| match &prepared.statuses[i] {
        Some(RecordStatus::Rejected { reason }) => reason.clone(),
        other => panic!("record {i}: {other:?}"),
    };
    assert!(reason(1).contains("Item size has exceeded the maximum allowed size") && reason(1).contains("409606 bytes"), "{}", reason(1));
    assert!(reason(2).contains("Type mismatch for key id expected: S actual: N"), "{}", reason(2));
    assert!(reason(3).contains("Missing the key id"), "{}", reason(3));
    assert!(reason(4).contains("not JSON"), "{}", reason(4));
    assert!(reason(5).contains("empty string"), "{}", reason(5));
    assert!(prepared.superseded.is_empty());
}

#[test]
fn requests_hold_at_most_25_items_and_16_mb() {
    let batch: Vec<Record> = (0..60).map(|i| record(i, &format!(r#"{{"id":"k{i}"}}"#))).collect();
    let prepared = prepare(&batch, &Mapping::default(), &keys());
    assert_eq!(prepared.chunks.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 10]);
    assert_eq!(sent(&prepared), (0..60).collect::<Vec<_>>(), "order is kept");

    // 25 items of ~390 KB of escaped control characters: ~2.3 MB each on
    // the wire, so far fewer than 25 fit in 16 MB.
    let escaped = "\\u0001".repeat(390_000);
    let batch: Vec<Record> = (0..25).map(|i| record(i, &format!(r#"{{"id":"k{i}","v":"{escaped}"}}"#))).collect();
    let prepared = prepare(&batch, &Mapping::default(), &keys());
    assert!(prepared.statuses.iter().all(Option::is_none), "each item is under 400 KB");
    assert!(prepared.chunks.len() > 1);
    for chunk in &prepared.chunks {
        let bytes: u64 = chunk.iter().map(|e| wire_size(&e.item)).sum();
        assert!(bytes <= MAX_REQUEST_BYTES, "{bytes}");
    }
    assert_eq!(prepared.chunks.iter().map(Vec::len).sum::<usize>(), 25);
}

//! Unit tests of batch planning: grouping, rejections, deterministic keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use shardline_plugin_sdk::{Record, RecordMeta, SequenceNumber};

use super::*;
use crate::encode::{Compression, Encoding};
use crate::template::{TimeZoneSpec, Zone};

/// A record of shard 2 with sequence number 1000 + `i` (also used by the
/// Parquet tests).
pub(crate) fn record(i: u64, payload: &str, arrival_secs: u64) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("clicks"),
        shard_id: Arc::from("shardId-000000000002"),
        sequence_number: SequenceNumber::parse(&format!("{}", 1000 + i)).expect("digits"),
        sub_sequence_number: 0,
        partition_key: "pk".into(),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH + Duration::from_secs(arrival_secs),
        aggregated: false,
    };
    Record::new(Bytes::from(payload.to_owned()), Arc::new(meta))
}

fn planner(key: &str, max_partitions: usize) -> Planner {
    Planner {
        template: KeyTemplate::parse(key).expect("template"),
        zone: Zone::resolve(&TimeZoneSpec::parse("+01:00").expect("offset")).expect("zone"),
        extension: ".ndjson".into(),
        encoder: Encoder::new(Encoding::Ndjson, &[], true, "\n", Compression::None, None),
        pipeline: "p".into(),
        max_partitions,
        content_type: "application/x-ndjson",
        content_encoding: None,
    }
}

fn body(plan: &Plan, i: usize) -> String {
    String::from_utf8(plan.objects[i].0.body.to_vec()).expect("utf-8")
}

#[test]
fn one_object_per_batch_named_after_its_first_and_last_records() {
    let p = planner(crate::config::DEFAULT_KEY, 10);
    // 2023-11-14T22:13:20Z is 23h in +01:00; the oldest record decides.
    let batch = vec![record(0, r#"{"a":0}"#, 1_700_000_000 + 4000), record(1, "not json", 1_700_000_000), record(2, r#"{"a":2}"#, 1_700_000_000)];
    let plan = p.plan(&batch).expect("plan");
    assert_eq!(plan.objects.len(), 1);
    let (object, members) = &plan.objects[0];
    assert_eq!(object.key, "clicks/2023/11/14/23/shardId-000000000002-1000-0-1002-0.ndjson");
    assert_eq!(members, &[0, 2]);
    assert_eq!(body(&plan, 0), "{\"a\":0}\n{\"a\":2}\n");
    assert!(plan.rejected[1].as_deref().is_some_and(|r| r.contains("not valid JSON")), "{:?}", plan.rejected);
    assert!(plan.rejected[0].is_none() && plan.rejected[2].is_none());
    let again = p.plan(&batch).expect("plan");
    assert_eq!(again.objects[0].0.key, object.key, "the same batch maps to the same key");
}

#[test]
fn field_partitions_make_one_object_each_and_reject_records_without_the_field() {
    let p = planner("c={field.country}/{shard_id}-{first_seq}-{first_subseq}-{last_seq}", 10);
    let batch = vec![
        record(0, r#"{"country":"fr","n":0}"#, 100),
        record(1, r#"{"country":"de","n":1}"#, 50),
        record(2, r#"{"n":2}"#, 100),
        record(3, r#"{"country":"fr","n":3}"#, 100),
    ];
    let plan = p.plan(&batch).expect("plan");
    let keys: Vec<&str> = plan.objects.iter().map(|(o, _)| o.key.as_str()).collect();
    assert_eq!(keys, ["c=fr/shardId-000000000002-1000-0-1003.ndjson", "c=de/shardId-000000000002-1001-0-1001.ndjson"]);
    assert_eq!(body(&plan, 0), "{\"country\":\"fr\",\"n\":0}\n{\"country\":\"fr\",\"n\":3}\n");
    assert!(plan.rejected[2].as_deref().is_some_and(|r| r.contains("{field.country}") && r.contains("missing")));
    // A re-sent subset (say the `fr` object failed) renders the same key.
    let retry = p.plan(&[batch[0].clone(), batch[3].clone()]).expect("plan");
    assert_eq!(retry.objects[0].0.key, plan.objects[0].0.key);
}

#[test]
fn partitions_beyond_the_cap_are_rejected_with_the_reason() {
    let p = planner("{field.k}/{shard_id}/{first_seq}/{first_subseq}", 2);
    let batch: Vec<Record> = (0..5).map(|i| record(i, &format!(r#"{{"k":{}}}"#, i % 3), 0)).collect();
    let plan = p.plan(&batch).expect("plan");
    assert_eq!(plan.objects.len(), 2);
    let rejected: Vec<usize> = plan.rejected.iter().enumerate().filter(|(_, r)| r.is_some()).map(|(i, _)| i).collect();
    assert_eq!(rejected, [2], "only the record of the third partition");
    assert!(plan.rejected[2].as_deref().is_some_and(|r| r.contains("max_partitions (2)")));
    assert_eq!(plan.objects[0].1, [0, 3]);
    assert_eq!(plan.objects[1].1, [1, 4]);
}

#[test]
fn keys_longer_than_s3_allows_reject_their_records() {
    let p = planner("{field.k}/{shard_id}/{first_seq}/{first_subseq}", 10);
    let long = "x".repeat(1100);
    let batch = vec![record(0, &format!(r#"{{"k":"{long}"}}"#), 0), record(1, r#"{"k":"short"}"#, 0)];
    let plan = p.plan(&batch).expect("plan");
    assert_eq!(plan.objects.len(), 1);
    assert!(plan.rejected[0].as_deref().is_some_and(|r| r.contains("1024")));
}

//! Unit tests of [`super::user_records`].

use super::*;
use crate::kpl::{aggregate, UserRecord, MAGIC};
use aws_smithy_types::{Blob, DateTime};
use md5::{Digest, Md5};

fn shard(start: u128, end: u128) -> ShardInfo {
    ShardInfo {
        shard_id: "shardId-000000000001".into(),
        parent_shard_ids: vec![],
        starting_hash_key: start.to_string(),
        ending_hash_key: end.to_string(),
        closed: false,
    }
}

fn kinesis(seq: &str, data: Vec<u8>) -> aws_sdk_kinesis::types::Record {
    aws_sdk_kinesis::types::Record::builder()
        .sequence_number(seq)
        .partition_key("outer")
        .data(Blob::new(data))
        .approximate_arrival_timestamp(DateTime::from_secs(1_700_000_000))
        .build()
        .unwrap()
}

fn user(pk: &str, ehk: Option<&str>, data: &str) -> UserRecord {
    UserRecord { partition_key: pk.into(), explicit_hash_key: ehk.map(Into::into), data: Bytes::copy_from_slice(data.as_bytes()) }
}

fn summary(records: &[Record]) -> Vec<(String, u64, String, bool)> {
    records
        .iter()
        .map(|r| {
            let data = String::from_utf8(r.payload.to_bytes().to_vec()).unwrap();
            (r.meta.sequence_number.to_string(), r.meta.sub_sequence_number, data, r.meta.aggregated)
        })
        .collect()
}

fn raw_blob(body: &[u8]) -> Vec<u8> {
    let mut blob = MAGIC.to_vec();
    blob.extend_from_slice(body);
    blob.extend_from_slice(&Md5::digest(body));
    blob
}

#[test]
fn passes_plain_records_and_splits_aggregates() {
    let ctx = RecordContext::new("p", "s", &shard(0, u128::MAX));
    let agg = aggregate(&[user("a", None, "x"), user("b", Some("7"), "y"), user("c", None, "")]);
    let out = user_records(vec![kinesis("10", b"plain".to_vec()), kinesis("11", agg)], &ctx, None).unwrap().records;
    assert_eq!(
        summary(&out),
        vec![
            ("10".into(), 0, "plain".into(), false),
            ("11".into(), 0, "x".into(), true),
            ("11".into(), 1, "y".into(), true),
            ("11".into(), 2, "".into(), true),
        ]
    );
    assert_eq!(out[0].meta.partition_key, "outer");
    assert_eq!(out[2].meta.partition_key, "b");
    assert_eq!(out[2].meta.explicit_hash_key.as_deref(), Some("7"));
    assert_eq!(&*out[2].meta.stream, "s");
    assert_eq!(out[2].meta.arrival_time, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
}

#[test]
fn drops_what_the_position_covers() {
    let ctx = RecordContext::new("p", "s", &shard(0, u128::MAX));
    let agg = aggregate(&[user("a", None, "0"), user("a", None, "1"), user("a", None, "2")]);
    let records = vec![kinesis("5", b"old".to_vec()), kinesis("9", agg), kinesis("12", b"new".to_vec())];
    let after = Position::new(SequenceNumber::parse("9").unwrap(), 1);
    let out = user_records(records, &ctx, Some(&after)).unwrap().records;
    assert_eq!(summary(&out), vec![("9".into(), 2, "2".into(), true), ("12".into(), 0, "new".into(), false)]);
}

#[test]
fn aggregate_with_a_record_outside_the_range_is_dead_lettered_whole() {
    let ctx = RecordContext::new("p", "s", &shard(100, 200));
    let in_range = aggregate(&[user("a", Some("100"), "in1"), user("a", Some("200"), "in2")]);
    let mixed = aggregate(&[user("a", Some("150"), "in"), user("a", Some("201"), "out"), user("a", Some("150"), "in")]);
    let all = user_records(vec![kinesis("1", in_range), kinesis("2", mixed.clone()), kinesis("3", b"raw".to_vec())], &ctx, None).unwrap();
    // The KCL skips the whole aggregate: none of it reaches the pipeline...
    let out = all.records;
    assert_eq!(
        summary(&out),
        vec![("1".into(), 0, "in1".into(), true), ("1".into(), 1, "in2".into(), true), ("3".into(), 0, "raw".into(), false)]
    );
    // ...but it is not lost: the raw aggregate goes to the dead letters at its position.
    assert_eq!(all.rejected.len(), 1);
    let rejected = &all.rejected[0];
    assert_eq!((rejected.record.meta.sequence_number.as_str(), rejected.record.meta.sub_sequence_number), ("2", 0));
    assert_eq!(rejected.record.payload.to_bytes(), Bytes::from(mixed));
    assert_eq!(rejected.stage, crate::KPL_STAGE);
    assert!(rejected.reason.contains("user record 1") && rejected.reason.contains("100..=200"), "{}", rejected.reason);
    // partition-key hashing: MD5("a") is far above 200
    let out = user_records(vec![kinesis("4", aggregate(&[user("a", None, "x")]))], &ctx, None).unwrap();
    assert!(out.records.is_empty());
    assert_eq!(out.rejected.len(), 1);
    // negative and oversized explicit hash keys are out of every range
    let ctx_all = RecordContext::new("p", "s", &shard(0, u128::MAX));
    let big = aggregate(&[user("a", Some("340282366920938463463374607431768211456"), "x")]);
    let neg = aggregate(&[user("a", Some("-1"), "x")]);
    let out = user_records(vec![kinesis("5", big), kinesis("6", neg)], &ctx_all, None).unwrap();
    assert!(out.records.is_empty());
    assert_eq!(out.rejected.len(), 2);
    // A position the checkpoint already covers is not dead-lettered again.
    let after = Position::new(SequenceNumber::parse("4").unwrap(), 0);
    let out = user_records(vec![kinesis("4", aggregate(&[user("a", None, "x")]))], &ctx, Some(&after)).unwrap();
    assert!(out.records.is_empty() && out.rejected.is_empty());
}

#[test]
fn broken_sub_record_keeps_earlier_ones_like_the_kcl() {
    let ctx = RecordContext::new("p", "s", &shard(0, u128::MAX));
    // record 1 points at partition key 5 of a one-key table
    let body = crate::kpl::proto_for_tests::encode(&["a"], &[], &[(0, None, b"ok"), (5, None, b"bad"), (0, None, b"never")]);
    let all = user_records(vec![kinesis("1", raw_blob(&body))], &ctx, None).unwrap();
    assert_eq!(summary(&all.records), vec![("1".into(), 0, "ok".into(), true)]);
    // The rest of the aggregate is dead-lettered from the broken record on.
    assert_eq!(all.rejected.len(), 1);
    assert_eq!(all.rejected[0].record.meta.sub_sequence_number, 1);
    assert_eq!(all.rejected[0].record.payload.to_bytes(), Bytes::from(raw_blob(&body)));
    // an explicit hash key that is not a number stops the aggregate the same way
    let agg = aggregate(&[user("a", None, "ok"), user("a", Some("12x"), "bad"), user("a", None, "never")]);
    let all = user_records(vec![kinesis("2", agg)], &ctx, None).unwrap();
    assert_eq!(summary(&all.records), vec![("2".into(), 0, "ok".into(), true)]);
    assert_eq!(all.rejected.len(), 1);
    assert_eq!(all.rejected[0].record.meta.sub_sequence_number, 1);
}

#[test]
fn invalid_aggregates_pass_through_unfiltered() {
    let ctx = RecordContext::new("p", "s", &shard(100, 200));
    let mut bad_md5 = aggregate(&[user("a", None, "x")]);
    let n = bad_md5.len();
    bad_md5[n - 1] ^= 0xff;
    let garbage = raw_blob(&[0xff, 0xff]);
    let all = user_records(vec![kinesis("1", bad_md5.clone()), kinesis("2", garbage.clone())], &ctx, None).unwrap();
    assert!(all.rejected.is_empty());
    let out = all.records;
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].payload.to_bytes(), Bytes::from(bad_md5));
    assert_eq!(out[1].payload.to_bytes(), Bytes::from(garbage));
    assert!(!out[0].meta.aggregated && out[0].meta.sub_sequence_number == 0);
}

#[test]
fn non_numeric_sequence_number_is_malformed() {
    let ctx = RecordContext::new("p", "s", &shard(0, u128::MAX));
    let err = user_records(vec![kinesis("12ab", vec![])], &ctx, None).unwrap_err();
    assert_eq!(err.kind(), shardline_api::ErrorKind::Permanent);
    assert!(err.to_string().contains("12ab"), "{err}");
}

//! Checks of the test harness itself against the emulators (no binary
//! needed): stream creation, puts, KPL aggregates routed to the right shard,
//! splits, NDJSON reading, lease table scans.

use std::collections::HashMap;

use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::json;
use shardline_e2e::*;

#[tokio::test]
async fn kinesis_helpers_work_against_the_emulator() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-harness", 2)
        .await
        .expect("create stream");
    let shards = kinesis.list_shards(&stream).await.expect("list shards");
    assert_eq!(shards.len(), 2);

    let records: Vec<TestRecord> = (0..1200)
        .map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": i })))
        .collect();
    let puts = kinesis.put_records(&stream, &records).await.expect("put");
    assert_eq!(puts.len(), 1200);
    for (record, put) in records.iter().zip(&puts) {
        let shard = shards
            .iter()
            .find(|s| s.shard_id == put.shard_id)
            .expect("known shard");
        assert!(
            shard.contains(record.hash_key()),
            "md5 routing of {}",
            record.partition_key
        );
    }

    let users: Vec<TestRecord> = (0..50)
        .map(|i| TestRecord::json(format!("user-{i}"), &json!({ "u": i })))
        .collect();
    let aggregated = kinesis
        .put_aggregated(&stream, &users, 7)
        .await
        .expect("put aggregated");
    for (user, put) in users.iter().zip(&aggregated) {
        let shard = shards
            .iter()
            .find(|s| s.shard_id == put.shard_id)
            .expect("known shard");
        assert!(
            shard.contains(user.hash_key()),
            "aggregate of {} went to the wrong shard",
            user.partition_key
        );
    }

    // Read one shard back: the aggregates start with the KPL magic.
    let shard_id = &aggregated[0].shard_id;
    let iterator = kinesis
        .client
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator()
        .expect("iterator string")
        .to_owned();
    let got = kinesis
        .client
        .get_records()
        .shard_iterator(iterator)
        .limit(10_000)
        .send()
        .await
        .expect("get records");
    let by_seq: HashMap<&str, &[u8]> = got
        .records()
        .iter()
        .map(|r| (r.sequence_number(), r.data().as_ref()))
        .collect();
    let data = by_seq
        .get(aggregated[0].sequence_number.as_str())
        .expect("aggregate read back");
    assert_eq!(&data[..4], &AGGREGATION_MAGIC);

    let (low, high) = kinesis
        .split_shard_in_half(&stream, &shards[0].shard_id)
        .await
        .expect("split");
    let after = kinesis.list_shards(&stream).await.expect("list shards");
    assert_eq!(after.len(), 4);
    assert!(!after
        .iter()
        .find(|s| s.shard_id == shards[0].shard_id)
        .unwrap()
        .is_open());
    let low = after.iter().find(|s| s.shard_id == low).unwrap();
    let high = after.iter().find(|s| s.shard_id == high).unwrap();
    assert_eq!(low.starting_hash_key, shards[0].starting_hash_key);
    assert_eq!(low.ending_hash_key + 1, high.starting_hash_key);
    assert_eq!(high.ending_hash_key, shards[0].ending_hash_key);
    // Records now go to the children.
    let puts = kinesis
        .put_records(&stream, &records[..100])
        .await
        .expect("put after split");
    assert!(
        puts.iter().all(|p| p.shard_id != shards[0].shard_id),
        "a record went to the closed parent"
    );
}

#[tokio::test]
async fn lease_table_scan_of_a_missing_table_is_empty() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, &unique_name("no-such-table"));
    assert!(leases.scan().await.expect("scan").is_empty());
}

#[test]
fn ndjson_reader_skips_a_cut_last_line_only() {
    let dir = TestDir::new("ndjson");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/a-1.ndjson"), "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
    std::fs::write(dir.join("out/b-2.ndjson"), "{\"b\":1}\n").unwrap();
    std::fs::write(dir.join("out/ignored.txt"), "not json").unwrap();
    let values = read_ndjson_dir(&dir.join("out"));
    assert_eq!(values, vec![json!({"a":1}), json!({"a":2}), json!({"b":1})]);
    assert!(read_ndjson_dir(&dir.join("missing")).is_empty());
}

#[test]
fn envelope_data_may_be_text_json_or_base64() {
    let base = json!({"shard_id":"s","sequence_number":"1","partition_key":"k"});
    let with = |field: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[field] = value;
        OutputRecord::parse(&v).expect("parse")
    };
    assert_eq!(
        with("data", json!("{\"id\":\"x\"}")).json_str("id"),
        Some("x")
    );
    assert_eq!(with("data", json!({"id":"y"})).json_str("id"), Some("y"));
    assert_eq!(with("data_base64", json!("/w==")).payload, vec![0xff]);
    assert_eq!(with("data", json!("plain")).payload, b"plain");
}

#[test]
fn parent_before_child_check_catches_a_violation() {
    let line = |shard: &str, n: u64| {
        OutputRecord::parse(&json!({
            "shard_id": shard, "sequence_number": "1", "partition_key": "k",
            "data": json!({"id": format!("k-{n}"), "key": "k", "n": n}).to_string()
        }))
        .unwrap()
    };
    let good = [line("p", 1), line("p", 2), line("c", 3)];
    assert!(check_parent_counters_precede_children(&good, &["p"], &["c"]).is_ok());
    let bad = [line("p", 1), line("p", 5), line("c", 3)];
    assert!(check_parent_counters_precede_children(&bad, &["p"], &["c"]).is_err());
}

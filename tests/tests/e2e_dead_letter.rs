//! A record `parse_json` cannot parse goes to the dead-letter directory
//! (with the stage and a reason) and the shard goes on: the records after
//! it are delivered and the checkpoint passes it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

const NOT_JSON: &[u8] = b"{\"id\": \"bad-1\", this is not json";
const NOT_UTF8: &[u8] = &[0xff, 0xfe, 0x00, 0x80, b'{'];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_dead_lettered_and_the_shard_goes_on() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("dead-letter");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-dead-letter", 1)
        .await
        .expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-dl", dir.path());

    // 10 good, not JSON, 10 good, not UTF-8, 10 good: one shard, in order.
    let good = |i: usize| TestRecord::json("pk", &json!({ "id": format!("good-{i:02}"), "i": i }));
    let bad = |data: &[u8]| TestRecord {
        partition_key: "pk".into(),
        explicit_hash_key: None,
        data: data.to_vec(),
    };
    let mut records: Vec<TestRecord> = (0..10).map(good).collect();
    records.push(bad(NOT_JSON));
    records.extend((10..20).map(good));
    records.push(bad(NOT_UTF8));
    records.extend((20..30).map(good));
    let puts = kinesis
        .put_records(&stream, &records)
        .await
        .expect("put records");
    let (not_json_put, not_utf8_put) = (&puts[10], &puts[21]);

    let ids: HashSet<String> = (0..30).map(|i| format!("good-{i:02}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;
    wait_until(Duration::from_secs(30), "two dead letters", || async {
        worker.ensure_running()?;
        Ok(read_ndjson_dir(&spec.dead_letter_dir).len() >= 2)
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; dead letters so far: {:?}",
            read_ndjson_dir(&spec.dead_letter_dir)
        )
    });

    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    for (put, payload, what) in [
        (not_json_put, NOT_JSON, "invalid JSON"),
        (not_utf8_put, NOT_UTF8, "non-UTF-8 bytes"),
    ] {
        let entry = dead
            .iter()
            .find(|d| d.sequence_number == put.sequence_number)
            .unwrap_or_else(|| {
                panic!(
                    "the {what} record ({}) is not among the dead letters: {dead:#?}",
                    put.sequence_number
                )
            });
        assert_eq!(
            entry.shard_id, put.shard_id,
            "dead letter shard_id: {}",
            entry.line
        );
        assert_eq!(
            entry.partition_key, "pk",
            "dead letter partition_key: {}",
            entry.line
        );
        assert_eq!(
            entry.payload, payload,
            "dead letter keeps the {what} payload as read: {}",
            entry.line
        );
        let stage = entry
            .stage
            .as_deref()
            .unwrap_or_else(|| panic!("dead letter without stage: {}", entry.line));
        assert!(
            stage.contains("parse_json"),
            "stage {stage:?} does not name parse_json: {}",
            entry.line
        );
        let reason = entry.reason.as_deref().unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "dead letter without a reason: {}",
            entry.line
        );
    }
    assert_eq!(
        dead.len(),
        2,
        "only the two bad records are dead letters: {dead:#?}"
    );
    let output = OutputRecord::read_dir(&spec.sink_dir);
    for out in &output {
        assert!(
            out.sequence_number != not_json_put.sequence_number
                && out.sequence_number != not_utf8_put.sequence_number,
            "a bad record reached the sink: {}",
            out.line
        );
    }

    // The counters agree.
    wait_until(
        Duration::from_secs(10),
        "dead-letter and delivery counters",
        || async {
            let dead = worker.metric("shardline_records_dead_lettered_total")?;
            let delivered = worker.metric("shardline_records_delivered_total")?;
            Ok(dead == 2.0 && delivered >= 30.0)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; /metrics:\n{}",
            worker.http_get("/metrics").map(|r| r.1).unwrap_or_default()
        )
    });

    // The checkpoint passes the dead letters: it is at the last record.
    worker
        .sigterm_and_wait(Duration::from_secs(30))
        .map(|s| assert_eq!(s.code(), Some(0), "exit status"))
        .expect("shutdown");
    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    assert_eq!(table.len(), 1, "{:#?}", Lease::summary(&table));
    assert_eq!(
        table[0].checkpoint.as_deref(),
        last.get(&table[0].lease_key).map(String::as_str),
        "checkpoint after shutdown: {:#?}",
        Lease::summary(&table)
    );
}

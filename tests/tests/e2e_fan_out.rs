//! Enhanced fan-out (`read = "fan_out"`): two workers deliver every record,
//! plain and KPL-aggregated, and checkpoint the last one on shutdown.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_workers_deliver_everything() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("fan-out");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-fan-out", 2)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.read = "fan_out".into();
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let a = Worker::start(&bin, &pipeline, "worker-a", dir.path());
    let b = Worker::start(&bin, &pipeline, "worker-b", dir.path());

    let record = |i: usize| {
        TestRecord::json(
            format!("pk-{}", i % 17),
            &json!({ "id": format!("f-{i:04}") }),
        )
    };
    let plain: Vec<TestRecord> = (0..800).map(record).collect();
    let aggregated: Vec<TestRecord> = (800..1000).map(record).collect();
    let mut puts = kinesis
        .put_records(&stream, &plain)
        .await
        .expect("put records");
    puts.extend(
        kinesis
            .put_aggregated(&stream, &aggregated, 25)
            .await
            .expect("put aggregates"),
    );
    let ids: HashSet<String> = (0..1000).map(|i| format!("f-{i:04}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&a, &b], DELIVERY_TIMEOUT).await;

    Worker::shutdown_all(&[&a, &b], Duration::from_secs(30)).expect("graceful shutdown");
    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    assert_eq!(table.len(), 2, "{:#?}", Lease::summary(&table));
    for lease in &table {
        assert_eq!(
            lease.checkpoint.as_deref(),
            last.get(&lease.lease_key).map(String::as_str),
            "checkpoint of {}: {:#?}",
            lease.lease_key,
            Lease::summary(&table)
        );
        assert_eq!(
            lease.lease_owner, None,
            "lease {} still owned after graceful shutdown",
            lease.lease_key
        );
    }
}

//! SIGTERM drains: records read but still buffered (the buffer's limits
//! are far away) are flushed to the sink and checkpointed before the
//! worker exits 0 and releases its lease. Also checks the worker's
//! /health, /ready and /metrics endpoints along the way.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

const RECORDS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_records_and_checkpoints_them() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("drain");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-drain", 1)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.buffer_max_records = 100_000;
    spec.buffer_max_bytes = "64MiB".into();
    spec.buffer_max_age = "10m".into();
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-drain", dir.path());

    wait_until(Duration::from_secs(60), "/ready answering 200", || async {
        worker.ensure_running()?;
        Ok(worker
            .http_get("/ready")
            .map(|(status, _)| status == 200)
            .unwrap_or(false))
    })
    .await
    .expect("worker ready");
    let (status, body) = worker.http_get("/health").expect("GET /health");
    assert_eq!(status, 200, "/health: {body}");

    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| TestRecord::json("pk", &json!({ "id": format!("d-{i:03}") })))
        .collect();
    let puts = kinesis
        .put_records(&stream, &records)
        .await
        .expect("put records");
    wait_until(
        Duration::from_secs(60),
        "all records received (shardline_records_received_total)",
        || async {
            worker.ensure_running()?;
            Ok(worker.metric("shardline_records_received_total")? >= RECORDS as f64)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; /metrics:\n{}",
            worker.http_get("/metrics").map(|r| r.1).unwrap_or_default()
        )
    });
    let flushed_early = read_ndjson_dir(&spec.sink_dir).len();
    assert_eq!(
        flushed_early, 0,
        "records flushed although no buffer limit was reached"
    );

    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let ids: HashSet<String> = (0..RECORDS).map(|i| format!("d-{i:03}")).collect();
    let delivered = delivered_ids(&OutputRecord::read_dir(&spec.sink_dir));
    let missing: Vec<&String> = ids.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} buffered records not flushed on SIGTERM: {missing:?}",
        missing.len()
    );

    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    assert_eq!(table.len(), 1, "{:#?}", Lease::summary(&table));
    assert_eq!(
        table[0].checkpoint.as_deref(),
        last.get(&table[0].lease_key).map(String::as_str),
        "checkpoint after drain"
    );
    assert_eq!(table[0].lease_owner, None, "lease released after drain");
}

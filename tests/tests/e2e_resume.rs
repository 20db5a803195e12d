//! A worker stopped gracefully and started again resumes after its
//! checkpoints: nothing it delivered before is delivered again, with the
//! DynamoDB lease table and with the embedded store.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

async fn put_ids(kinesis: &Kinesis, stream: &str, prefix: &str, count: usize) -> (HashSet<String>, Vec<PutResult>) {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::json(format!("pk-{}", i % 13), &json!({ "id": format!("{prefix}-{i:04}") })))
        .collect();
    let puts = kinesis.put_records(stream, &records).await.expect("put records");
    ((0..count).map(|i| format!("{prefix}-{i:04}")).collect(), puts)
}

async fn resume_after_graceful_restart(embedded: bool) {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new(if embedded { "resume-embedded" } else { "resume-dynamodb" });
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-resume", 2).await.expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    if embedded {
        spec.leases = LeaseStore::Embedded { state_dir: dir.join("state") };
    }
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let worker = Worker::start(&bin, &pipeline, "worker-resume", dir.path());

    let (first, mut puts) = put_ids(&kinesis, &stream, "first", 300).await;
    wait_for_ids(&spec.sink_dir, &first, &[&worker], DELIVERY_TIMEOUT).await;
    let status = worker.sigterm_and_wait(Duration::from_secs(30)).expect("first shutdown");
    assert_eq!(status.code(), Some(0), "first run exit status");

    let (second, more) = put_ids(&kinesis, &stream, "second", 300).await;
    puts.extend(more);
    worker.restart();
    wait_for_ids(&spec.sink_dir, &second, &[&worker], DELIVERY_TIMEOUT).await;
    let status = worker.sigterm_and_wait(Duration::from_secs(30)).expect("second shutdown");
    assert_eq!(status.code(), Some(0), "second run exit status");

    let counts = delivery_counts(&OutputRecord::read_dir(&spec.sink_dir));
    let mut again: Vec<(&String, &usize)> = counts.iter().filter(|(_, &n)| n > 1).collect();
    again.sort();
    assert!(
        again.is_empty(),
        "{} ids delivered more than once across a graceful restart (first: {:?})",
        again.len(),
        &again[..again.len().min(10)]
    );
    assert_eq!(counts.len(), first.len() + second.len());

    if !embedded {
        let table = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table()).scan().await.expect("scan");
        let last = last_sequence_per_shard(&puts);
        for lease in &table {
            assert_eq!(
                lease.checkpoint.as_deref(),
                last.get(&lease.lease_key).map(String::as_str),
                "checkpoint of {} after the second shutdown: {:#?}",
                lease.lease_key,
                Lease::summary(&table)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_resumes_after_checkpoints_with_dynamodb_leases() {
    resume_after_graceful_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_resumes_after_checkpoints_with_the_embedded_store() {
    resume_after_graceful_restart(true).await;
}

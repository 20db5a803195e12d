//! A worker stopped gracefully and started again resumes after its
//! checkpoints: nothing it delivered before is delivered again, with the
//! DynamoDB lease table and with the embedded store.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

async fn put_ids(
    kinesis: &Kinesis,
    stream: &str,
    prefix: &str,
    count: usize,
) -> (HashSet<String>, Vec<PutResult>) {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| {
            TestRecord::json(
                format!("pk-{}", i % 13),
                &json!({ "id": format!("{prefix}-{i:04}") }),
            )
        })
        .collect();
    let puts = kinesis
        .put_records(stream, &records)
        .await
        .expect("put records");
    (
        (0..count).map(|i| format!("{prefix}-{i:04}")).collect(),
        puts,
    )
}

/// Sequence-number checkpoints per shard found in the embedded store's JSON
/// files (objects with `leaseKey` and `checkpoint`, anywhere in the file).
fn embedded_checkpoints(state_dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let (Some(key), Some(checkpoint)) = (
                    map.get("leaseKey").and_then(|k| k.as_str()),
                    map.get("checkpoint").and_then(|c| c.as_str()),
                ) {
                    if is_sequence_number(checkpoint) {
                        out.insert(key.to_owned(), checkpoint.to_owned());
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(state_dir).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            if let Ok(v) = serde_json::from_str(&text) {
                walk(&v, &mut out);
            }
        }
    }
    out
}

async fn resume_after_graceful_restart(embedded: bool) {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new(if embedded {
        "resume-embedded"
    } else {
        "resume-dynamodb"
    });
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-resume", 2)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    if embedded {
        spec.leases = LeaseStore::Embedded {
            state_dir: dir.join("state"),
        };
    }
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let worker = Worker::start(&bin, &pipeline, "worker-resume", dir.path());

    let (first, mut puts) = put_ids(&kinesis, &stream, "first", 300).await;
    wait_for_ids(&spec.sink_dir, &first, &[&worker], DELIVERY_TIMEOUT).await;
    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("first shutdown");
    assert_eq!(status.code(), Some(0), "first run exit status");

    let (second, more) = put_ids(&kinesis, &stream, "second", 300).await;
    puts.extend(more);
    worker.restart();
    wait_for_ids(&spec.sink_dir, &second, &[&worker], DELIVERY_TIMEOUT).await;
    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("second shutdown");
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
        let table = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table())
            .scan()
            .await
            .expect("scan");
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

/// The embedded store survives a SIGKILL: the restarted worker resumes from
/// the last checkpoint it wrote (at-least-once, nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_kill_9() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("resume-embedded-kill");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-resume-kill", 2)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.leases = LeaseStore::Embedded {
        state_dir: dir.join("state"),
    };
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let worker = Worker::start(&bin, &pipeline, "worker-embedded", dir.path());

    let (mut ids, _) = put_ids(&kinesis, &stream, "before", 1000).await;
    // Kill once the store holds a checkpoint on disk (its file is JSON with
    // KCL attribute names; read generically).
    let state_dir = dir.join("state");
    wait_until(
        DELIVERY_TIMEOUT,
        "a checkpoint in the embedded store",
        || async {
            worker.ensure_running()?;
            Ok(!embedded_checkpoints(&state_dir).is_empty())
        },
    )
    .await
    .expect("a checkpoint before the kill");
    let checkpoints = embedded_checkpoints(&state_dir);
    let at_kill = read_ndjson_dir(&spec.sink_dir).len();
    worker.kill9();
    eprintln!("killed the worker (-9) after {at_kill} output lines, checkpoints {checkpoints:?}");
    let (more, _) = put_ids(&kinesis, &stream, "after", 300).await;
    ids.extend(more);
    worker.restart();
    let restarted_pid = worker.pid().expect("restarted");
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;
    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status");

    // The restarted process resumed after the checkpoints on disk.
    for line in read_ndjson_dir_of_pid(&spec.sink_dir, restarted_pid) {
        let out = OutputRecord::parse(&line).expect("envelope");
        if let Some(checkpoint) = checkpoints.get(&out.shard_id) {
            assert_eq!(
                cmp_sequence(&out.sequence_number, checkpoint),
                std::cmp::Ordering::Greater,
                "the restarted worker re-delivered {} of {}, at or before the checkpoint {checkpoint} it had stored",
                out.sequence_number,
                out.shard_id
            );
        }
    }
    let lines = read_ndjson_dir(&spec.sink_dir).len();
    eprintln!(
        "{lines} output lines for {} ids after a kill -9 with the embedded store",
        ids.len()
    );
}

//! A pipeline writing to S3 through the `s3` plugin, killed with SIGKILL and
//! restarted, re-sends the batches it had not checkpointed, and they
//! overwrite the objects they wrote before: the bucket holds no duplicate
//! object and no record twice. Batches are sealed by `max_records` only
//! (a long `max_age`), so a re-read shard forms the same batches, and the
//! sink's keys (the default template: shard, first and last positions,
//! the oldest arrival time) are the same. The bucket is versioned, so the
//! overwrites are visible as second versions of the same keys.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::s3::{self, S3};
use shardline_e2e::*;

const RECORDS: usize = 200;
const BATCH: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_overwrites_the_same_objects() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(endpoint) = s3::endpoint_from_env() else { return };
    let Some(plugins) = s3::plugin_dir() else { return };
    let Some(bin) = shardline_bin() else { return };
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let dir = TestDir::new("s3-kill-restart");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-s3-kill", 1).await.expect("create stream");
    let s3 = S3::new(&endpoint);
    let bucket = s3.create_bucket("s3-kill").await.expect("create bucket");
    s3.enable_versioning(&bucket).await.expect("versioning");

    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.transforms = Vec::new();
    spec.buffer_max_records = BATCH;
    spec.buffer_max_bytes = "8MiB".into();
    spec.buffer_max_age = "1h".into();
    // No checkpoint before the kill: the restarted worker re-reads and
    // re-sends everything the first one wrote.
    spec.checkpoint_interval = Some("1h".into());
    let sink = format!("type = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true");
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&spec, &sink)).expect("write the pipeline");

    let records: Vec<TestRecord> = (0..RECORDS).map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("k-{i:03}") }))).collect();
    kinesis.put_records(&stream, &records).await.expect("put records");
    let expected_objects = RECORDS / BATCH as usize;

    let worker = Worker::start(&bin, &pipeline, "s3-kill", dir.path());
    let before = s3::wait_for_objects(&s3, &bucket, "", &[&worker], DELIVERY_TIMEOUT, |objects| objects.len() >= 2).await;
    worker.kill9();
    // The batches after the stored checkpoint are read and sent again.
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let checkpoint = leases.scan().await.expect("scan leases").into_iter().find_map(|l| l.checkpoint.filter(|c| is_sequence_number(c)));
    let resend: Vec<String> = before
        .iter()
        .filter(|o| !matches!(checkpoint.as_deref(), Some(c) if cmp_sequence(first_seq(&o.key), c) != std::cmp::Ordering::Greater))
        .map(|o| o.key.clone())
        .collect();
    eprintln!("killed the worker (-9) after {} objects, checkpoint {checkpoint:?}; {} to be re-sent; restarting it", before.len(), resend.len());
    assert!(!resend.is_empty(), "the checkpoint passed every object written before the kill: nothing to re-send");
    worker.restart();

    wait_until(DELIVERY_TIMEOUT, "the restarted worker re-sending the unacknowledged batches", || async {
        worker.ensure_running()?;
        let versions = s3.version_counts(&bucket, "").await?;
        Ok(resend.iter().all(|key| versions.get(key).is_some_and(|n| *n >= 2)))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let objects = s3::wait_for_objects(&s3, &bucket, "", &[&worker], DELIVERY_TIMEOUT, |objects| {
        s3::ndjson_ids(objects).len() >= RECORDS
    })
    .await;
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");

    // The restarted worker re-sent what the first had written: same keys, new versions.
    let keys = s3.keys(&bucket, "").await.expect("keys");
    let versions = s3.version_counts(&bucket, "").await.expect("versions");
    for object in &before {
        assert!(keys.contains(&object.key), "a re-sent batch got a new key instead of {}: {keys:#?}", object.key);
    }
    for key in &resend {
        assert!(versions[key] >= 2, "{key} was not re-sent (versions: {versions:?})");
    }
    assert_eq!(keys.len(), expected_objects, "one object per batch of {BATCH}, no duplicates: {keys:#?}");

    // Every record exactly once, each object a batch of consecutive records.
    let final_objects = s3.objects(&bucket, "").await.expect("objects");
    let ids = s3::ndjson_ids(&final_objects);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), RECORDS, "every record delivered");
    assert!(counts.values().all(|n| *n == 1), "a record is in two objects: {:?}", counts.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>());
    for object in &final_objects {
        assert_eq!(object.lines().len(), BATCH as usize, "{} holds one whole batch", object.key);
    }
    assert_eq!(objects.len(), expected_objects);
}

/// `{first_seq}` of a key made by the default template
/// (`.../{shard_id}-{first_seq}-{first_subseq}-{last_seq}-{last_subseq}.ndjson.gz`).
fn first_seq(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.split('-').nth(2).unwrap_or_else(|| panic!("unexpected key {key}"))
}

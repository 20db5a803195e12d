//! A worker killed with SIGKILL mid-run and restarted with the same worker
//! id loses nothing: every record is delivered at least once, and no
//! shard's checkpoint ever moves backwards.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

const RECORDS: usize = 3_000;
const BATCH: usize = 100;

/// One observation of a shard's checkpoint.
type Sample = (String, String, u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_loses_nothing_and_checkpoints_only_move_forward() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("kill-restart");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-kill-restart", 4)
        .await
        .expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());

    let a = Worker::start(&bin, &pipeline, "worker-a", dir.path());
    let b = Worker::start(&bin, &pipeline, "worker-b", dir.path());

    // Sample every checkpoint all through the run.
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampler = tokio::spawn({
        let (leases, stop, samples) = (leases.clone(), stop.clone(), samples.clone());
        async move {
            while !stop.load(AtomicOrdering::Relaxed) {
                if let Ok(table) = leases.scan().await {
                    let mut samples = samples.lock().unwrap();
                    for lease in table {
                        if let Some((checkpoint, sub)) = lease.checkpoint_position() {
                            samples.push((lease.lease_key.clone(), checkpoint.to_owned(), sub));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });

    // Produce steadily in the background.
    let producer = tokio::spawn({
        let (kinesis, stream) = (kinesis.clone(), stream.clone());
        async move {
            let mut puts = Vec::new();
            for start in (0..RECORDS).step_by(BATCH) {
                let batch: Vec<TestRecord> = (start..start + BATCH)
                    .map(|i| {
                        TestRecord::json(
                            format!("pk-{}", i % 31),
                            &json!({ "id": format!("k-{i:05}") }),
                        )
                    })
                    .collect();
                puts.extend(
                    kinesis
                        .put_records(&stream, &batch)
                        .await
                        .expect("put records"),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            puts
        }
    });

    // Once records flow and worker-a holds leases, kill it and start it again.
    wait_until(
        DELIVERY_TIMEOUT,
        "output from both workers' leases",
        || async {
            a.ensure_running()?;
            b.ensure_running()?;
            let delivered = read_ndjson_dir(&spec.sink_dir).len();
            let counts = leases.owner_counts().await?;
            Ok(delivered >= 300 && counts.get("worker-a").is_some_and(|&n| n > 0))
        },
    )
    .await
    .expect("records flowing before the kill");
    let before_kill = read_ndjson_dir(&spec.sink_dir).len();
    let checkpoints_before_kill: BTreeMap<String, String> = leases
        .scan()
        .await
        .expect("scan leases")
        .into_iter()
        .filter_map(|l| {
            l.checkpoint
                .filter(|c| is_sequence_number(c))
                .map(|c| (l.lease_key, c))
        })
        .collect();
    a.kill9();
    eprintln!("killed worker-a (-9) after {before_kill} output lines; restarting it");
    a.restart();
    let restarted_pid = a.pid().expect("restarted");

    let puts = producer.await.expect("producer task");
    let ids: HashSet<String> = (0..RECORDS).map(|i| format!("k-{i:05}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&a, &b], DELIVERY_TIMEOUT).await;

    Worker::shutdown_all(&[&a, &b], Duration::from_secs(30)).expect("graceful shutdown");
    stop.store(true, AtomicOrdering::Relaxed);
    sampler.await.expect("sampler task");

    // Final checkpoints: the last record of every shard.
    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    for lease in &table {
        assert_eq!(
            lease.checkpoint.as_deref(),
            last.get(&lease.lease_key).map(String::as_str),
            "lease {} not checkpointed at the shard's last record: {:#?}",
            lease.lease_key,
            Lease::summary(&table)
        );
        assert_eq!(
            lease.lease_owner, None,
            "lease {} still owned after graceful shutdown",
            lease.lease_key
        );
    }

    // Whatever the restarted process read, it read after the checkpoints
    // stored before the kill.
    for line in read_ndjson_dir_of_pid(&spec.sink_dir, restarted_pid) {
        let out = OutputRecord::parse(&line).expect("envelope");
        if let Some(checkpoint) = checkpoints_before_kill.get(&out.shard_id) {
            assert_eq!(
                cmp_sequence(&out.sequence_number, checkpoint),
                Ordering::Greater,
                "restarted worker-a delivered {} of {}, at or before the checkpoint {checkpoint} stored before the kill",
                out.sequence_number,
                out.shard_id
            );
        }
    }

    // Checkpoints only moved forward, sample after sample.
    let mut samples = samples.lock().unwrap().clone();
    for lease in &table {
        if let Some((checkpoint, sub)) = lease.checkpoint_position() {
            samples.push((lease.lease_key.clone(), checkpoint.to_owned(), sub));
        }
    }
    let mut by_shard: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (shard, checkpoint, sub) in samples {
        by_shard.entry(shard).or_default().push((checkpoint, sub));
    }
    for (shard, history) in &by_shard {
        for pair in history.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            assert_ne!(
                cmp_checkpoint((&before.0, before.1), (&after.0, after.1)),
                Ordering::Greater,
                "checkpoint of {shard} moved backwards: {before:?} then {after:?}"
            );
        }
    }
    let sample_count: usize = by_shard.values().map(Vec::len).sum();
    let total_lines = read_ndjson_dir(&spec.sink_dir).len();
    eprintln!("{sample_count} checkpoint samples over {} shards; {total_lines} output lines for {RECORDS} records", by_shard.len());
}

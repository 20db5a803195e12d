//! Splitting a shard while records keep arriving: for every partition key,
//! the records the worker read from the parent shard are delivered before
//! any from a child shard, nothing is lost, and the parent's lease ends
//! with checkpoint `SHARD_END`.
//!
//! Every record carries its key's counter (`n`), which the producer
//! increments in put order. One worker runs, so its output file's line
//! order is its delivery order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

const KEYS: usize = 24;
const ROUNDS: usize = 80;
const SPLIT_AFTER_ROUND: usize = 30;

fn key(k: usize) -> String {
    format!("key-{k:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_delivers_parent_before_children_and_ends_parent_at_shard_end() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("split");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-split", 2).await.expect("create stream");
    let shards = kinesis.list_shards(&stream).await.expect("list shards");
    let parent = shards[0].clone();
    let keys_in_parent: Vec<String> = (0..KEYS)
        .map(key)
        .filter(|k| parent.contains(TestRecord::json(k.clone(), &json!({})).hash_key()))
        .collect();
    assert!(keys_in_parent.len() >= 4, "test setup: too few keys route to {}: {keys_in_parent:?}", parent.shard_id);

    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-split", dir.path());

    // Rounds of one record per key, in one PutRecords call each, so a key's
    // counter grows with its sequence number.
    let rounds_done = Arc::new(AtomicUsize::new(0));
    let producer = tokio::spawn({
        let (kinesis, stream, rounds_done) = (kinesis.clone(), stream.clone(), rounds_done.clone());
        async move {
            let mut puts = Vec::new();
            for n in 0..ROUNDS {
                let batch: Vec<TestRecord> = (0..KEYS)
                    .map(|k| TestRecord::json(key(k), &json!({ "id": format!("{}-{n:03}", key(k)), "key": key(k), "n": n })))
                    .collect();
                puts.extend(kinesis.put_records(&stream, &batch).await.expect("put records"));
                rounds_done.store(n + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            puts
        }
    });

    wait_until(DELIVERY_TIMEOUT, "the first rounds put and read", || async {
        worker.ensure_running()?;
        Ok(rounds_done.load(Ordering::SeqCst) >= SPLIT_AFTER_ROUND && !read_ndjson_dir(&spec.sink_dir).is_empty())
    })
    .await
    .expect("records flowing before the split");
    let (low, high) = kinesis.split_shard_in_half(&stream, &parent.shard_id).await.expect("split shard");
    eprintln!("split {} into {low} and {high} after {} rounds", parent.shard_id, rounds_done.load(Ordering::SeqCst));

    let puts = producer.await.expect("producer task");
    let children: HashSet<&str> = [low.as_str(), high.as_str()].into();
    let child_puts = puts.iter().filter(|p| children.contains(p.shard_id.as_str())).count();
    assert!(child_puts > 0, "test setup: no record went to a child shard");

    let ids: HashSet<String> = (0..KEYS).flat_map(|k| (0..ROUNDS).map(move |n| format!("{}-{n:03}", key(k)))).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;

    let parent_done = wait_until(Duration::from_secs(60), "parent lease checkpointed at SHARD_END", || async {
        worker.ensure_running()?;
        let table = leases.scan().await?;
        Ok(table.iter().any(|l| l.lease_key == parent.shard_id && l.checkpoint.as_deref() == Some("SHARD_END")))
    })
    .await;
    if let Err(e) = parent_done {
        panic!("{e:#}; lease table: {:#?}", leases.scan().await.map(|l| Lease::summary(&l)));
    }
    let table = leases.scan().await.expect("scan leases");
    for child in [&low, &high] {
        let lease = table.iter().find(|l| &l.lease_key == child);
        let lease = lease.unwrap_or_else(|| panic!("no lease for child {child}: {:#?}", Lease::summary(&table)));
        assert_eq!(lease.parent_shard_ids, vec![parent.shard_id.clone()], "parentShardId of {child}");
    }

    // Per key: counters read from the parent all precede those from a child.
    let output = OutputRecord::read_dir(&spec.sink_dir);
    let mut parent_max: HashMap<String, u64> = HashMap::new();
    let mut child_min: HashMap<String, u64> = HashMap::new();
    for out in &output {
        let (Some(k), Some(n)) = (out.json_str("key"), out.json_u64("n")) else { panic!("bad output line {}", out.line) };
        if out.shard_id == parent.shard_id {
            let max = parent_max.entry(k.to_owned()).or_insert(n);
            *max = (*max).max(n);
        } else if children.contains(out.shard_id.as_str()) {
            let min = child_min.entry(k.to_owned()).or_insert(n);
            *min = (*min).min(n);
        }
    }
    for (k, min) in &child_min {
        if let Some(max) = parent_max.get(k) {
            assert!(max < min, "key {k}: counter {max} read from the parent {} but {min} from a child", parent.shard_id);
        }
    }

    // Per key, in the worker's delivery order (each output file in line
    // order): no parent record after a child record.
    let mut by_file: BTreeMap<PathBuf, Vec<OutputRecord>> = BTreeMap::new();
    for file in std::fs::read_dir(&spec.sink_dir).expect("sink dir").flatten() {
        let path = file.path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            let lines = std::fs::read_to_string(&path).expect("read output file");
            let records = lines
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .map(|v| OutputRecord::parse(&v).expect("envelope"))
                .collect();
            by_file.insert(path, records);
        }
    }
    for (path, records) in &by_file {
        let mut seen_child: HashMap<&str, usize> = HashMap::new();
        for (line, out) in records.iter().enumerate() {
            let k = out.json_str("key").unwrap_or_default();
            if children.contains(out.shard_id.as_str()) {
                seen_child.entry(k).or_insert(line + 1);
            } else if out.shard_id == parent.shard_id {
                if let Some(child_line) = seen_child.get(k) {
                    panic!(
                        "{}: key {k}: parent record (n={:?}) on line {} after a child record on line {child_line}",
                        path.display(),
                        out.json_u64("n"),
                        line + 1
                    );
                }
            }
        }
    }

    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");
}

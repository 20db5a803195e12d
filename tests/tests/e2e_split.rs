//! Splitting a shard while records keep arriving: for every partition key,
//! the records read from the parent shard are delivered before any from a
//! child shard, nothing is lost, the parent's lease ends with checkpoint
//! `SHARD_END`, and no child lease makes progress before that.
//!
//! Every record carries its key's counter (`n`), which grows with the
//! key's sequence number. One worker runs, so its output file's line order
//! is its delivery order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use shardline_e2e::*;

const KEYS: usize = 24;
const SPLIT_AFTER_ROUND: usize = 30;
const ROUNDS_AFTER_RESHARD: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_delivers_parent_before_children_and_ends_parent_at_shard_end() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("split");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-split", 2)
        .await
        .expect("create stream");
    let parent = kinesis.list_shards(&stream).await.expect("list shards")[0].clone();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:02}")).collect();
    let in_parent = keys.iter().filter(|k| {
        parent.contains(TestRecord::json(k.as_str(), &serde_json::Value::Null).hash_key())
    });
    assert!(
        in_parent.count() >= 4,
        "test setup: too few keys route to {}",
        parent.shard_id
    );

    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-split", dir.path());
    let producer = KeyedProducer::spawn(&kinesis, &stream, keys.clone(), Duration::from_millis(25));

    wait_until(
        DELIVERY_TIMEOUT,
        "the first rounds put and read",
        || async {
            worker.ensure_running()?;
            Ok(producer.rounds() >= SPLIT_AFTER_ROUND
                && !read_ndjson_dir(&spec.sink_dir).is_empty())
        },
    )
    .await
    .expect("records flowing before the split");
    let (low, high) = kinesis
        .split_shard_in_half(&stream, &parent.shard_id)
        .await
        .expect("split shard");
    eprintln!(
        "split {} into {low} and {high} after {} rounds",
        parent.shard_id,
        producer.rounds()
    );
    let sampler = ReshardOrderSampler::spawn(
        &leases,
        std::slice::from_ref(&parent.shard_id),
        &[low.clone(), high.clone()],
    );

    producer
        .wait_more_rounds(ROUNDS_AFTER_RESHARD)
        .await
        .expect("producer rounds after the reshard");
    let (rounds, puts) = producer.stop().await;
    let children = [low.as_str(), high.as_str()];
    for child in children {
        assert!(
            puts.iter().any(|p| p.shard_id == child),
            "test setup: no record went to child {child}"
        );
    }
    let ids: HashSet<String> = keys
        .iter()
        .flat_map(|k| (0..rounds).map(move |n| keyed_id(k, n)))
        .collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;

    let parent_done = wait_until(
        Duration::from_secs(60),
        "parent lease checkpointed at SHARD_END",
        || async {
            worker.ensure_running()?;
            Ok(leases
                .get(&parent.shard_id)
                .await?
                .and_then(|l| l.checkpoint)
                .as_deref()
                == Some("SHARD_END"))
        },
    )
    .await;
    if let Err(e) = parent_done {
        panic!(
            "{e:#}; lease table: {:#?}",
            leases.scan().await.map(|l| Lease::summary(&l))
        );
    }
    let (samples, violations) = sampler.finish().await;
    assert!(
        violations.is_empty(),
        "{} of {samples} samples saw a child progress before its parent ended: {violations:#?}",
        violations.len()
    );
    let table = leases.scan().await.expect("scan leases");
    for child in children {
        let lease = table.iter().find(|l| l.lease_key == child);
        let lease = lease
            .unwrap_or_else(|| panic!("no lease for child {child}: {:#?}", Lease::summary(&table)));
        assert_eq!(
            lease.parent_shard_ids,
            vec![parent.shard_id.clone()],
            "parentShardId of {child}"
        );
    }

    let output = OutputRecord::read_dir(&spec.sink_dir);
    check_parent_counters_precede_children(&output, &[&parent.shard_id], &children)
        .unwrap_or_else(|e| panic!("{e}"));

    // Per key, in the worker's delivery order (each output file in line
    // order): no parent record after a child record.
    let mut by_file: BTreeMap<PathBuf, Vec<OutputRecord>> = BTreeMap::new();
    for file in std::fs::read_dir(&spec.sink_dir)
        .expect("sink dir")
        .flatten()
    {
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
        let mut first_child_line: HashMap<&str, usize> = HashMap::new();
        for (line, out) in records.iter().enumerate() {
            let key = out.json_str("key").unwrap_or_default();
            if children.contains(&out.shard_id.as_str()) {
                first_child_line.entry(key).or_insert(line + 1);
            } else if out.shard_id == parent.shard_id {
                if let Some(child_line) = first_child_line.get(key) {
                    panic!(
                        "{}: key {key}: parent record n={:?} on line {} after a child record on line {child_line}",
                        path.display(),
                        out.json_u64("n"),
                        line + 1
                    );
                }
            }
        }
    }

    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

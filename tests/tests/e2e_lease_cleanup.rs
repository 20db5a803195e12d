//! Lease cleanup in a running worker: after a split, the parent's
//! `SHARD_END` lease is deleted once both children are being read
//! (`leases.cleanup_interval`), shard sync does not create it again, and
//! nothing is lost.

use std::collections::HashSet;
use std::time::Duration;

use shardline_e2e::*;

const KEYS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_parent_lease_is_deleted_once_its_children_are_read() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("lease-cleanup");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-cleanup", 1).await.expect("create stream");
    let parent = kinesis.list_shards(&stream).await.expect("list shards")[0].clone();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:02}")).collect();

    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let failover = format!("failover_time = \"{}\"\n", spec.failover_time);
    let toml = spec.to_toml().replace(&failover, &format!("{failover}cleanup_interval = \"1s\"\n"));
    assert!(toml.contains("cleanup_interval"), "test setup: {toml}");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, toml).expect("write pipeline");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-cleanup", dir.path());
    let producer = KeyedProducer::spawn(&kinesis, &stream, keys.clone(), Duration::from_millis(25));

    wait_until(DELIVERY_TIMEOUT, "the first records read", || async {
        worker.ensure_running()?;
        Ok(producer.rounds() >= 5 && !read_ndjson_dir(&spec.sink_dir).is_empty())
    })
    .await
    .expect("records flowing before the split");
    let (low, high) = kinesis.split_shard_in_half(&stream, &parent.shard_id).await.expect("split shard");
    producer.wait_more_rounds(20).await.expect("producer rounds after the split");
    let (rounds, _) = producer.stop().await;
    let ids: HashSet<String> = keys.iter().flat_map(|k| (0..rounds).map(move |n| keyed_id(k, n))).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;

    let deleted = wait_until(Duration::from_secs(60), "the parent lease deleted", || async {
        worker.ensure_running()?;
        Ok(leases.get(&parent.shard_id).await?.is_none())
    })
    .await;
    let table = leases.scan().await.expect("scan leases");
    if let Err(e) = deleted {
        panic!("{e:#}; lease table: {:#?}", Lease::summary(&table));
    }
    for child in [&low, &high] {
        let lease = table.iter().find(|l| &l.lease_key == child);
        let checkpoint = lease.and_then(|l| l.checkpoint.clone()).unwrap_or_default();
        assert!(
            checkpoint.chars().all(|c| c.is_ascii_digit()) && !checkpoint.is_empty(),
            "child {child} is read (a sequence-number checkpoint): {:#?}",
            Lease::summary(&table)
        );
    }

    let status = worker.sigterm_and_wait(Duration::from_secs(30)).expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(
        leases.get(&parent.shard_id).await.expect("get lease").is_none(),
        "shard sync created the finished parent's lease again"
    );
}

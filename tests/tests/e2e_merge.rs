//! Merging two shards while two workers read and records keep arriving:
//! the child waits for both parents (no child progress before both are at
//! `SHARD_END`), per key every parent record precedes every child record,
//! and nothing is lost.

use std::collections::HashSet;
use std::time::Duration;

use shardline_e2e::*;

const KEYS: usize = 16;
const MERGE_AFTER_ROUND: usize = 25;
const ROUNDS_AFTER_RESHARD: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_with_two_workers_keeps_parents_before_child() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("merge");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-merge", 2)
        .await
        .expect("create stream");
    let shards = kinesis.list_shards(&stream).await.expect("list shards");
    let (p0, p1) = (shards[0].shard_id.clone(), shards[1].shard_id.clone());

    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let a = Worker::start(&bin, &pipeline, "worker-a", dir.path());
    let b = Worker::start(&bin, &pipeline, "worker-b", dir.path());
    let keys: Vec<String> = (0..KEYS).map(|k| format!("mkey-{k:02}")).collect();
    let producer = KeyedProducer::spawn(&kinesis, &stream, keys.clone(), Duration::from_millis(25));

    wait_until(
        DELIVERY_TIMEOUT,
        "the first rounds put and read by both workers",
        || async {
            a.ensure_running()?;
            b.ensure_running()?;
            let counts = leases.owner_counts().await?;
            Ok(producer.rounds() >= MERGE_AFTER_ROUND
                && counts.len() == 2
                && !read_ndjson_dir(&spec.sink_dir).is_empty())
        },
    )
    .await
    .expect("records flowing before the merge");
    kinesis
        .client
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&p0)
        .adjacent_shard_to_merge(&p1)
        .send()
        .await
        .expect("MergeShards");
    kinesis
        .wait_active(&stream)
        .await
        .expect("stream active after merge");
    let child = kinesis
        .list_shards(&stream)
        .await
        .expect("list shards")
        .into_iter()
        .find(|s| s.parent_shard_id.is_some())
        .expect("merged child shard")
        .shard_id;
    eprintln!(
        "merged {p0} and {p1} into {child} after {} rounds",
        producer.rounds()
    );
    let sampler = ReshardOrderSampler::spawn(
        &leases,
        &[p0.clone(), p1.clone()],
        std::slice::from_ref(&child),
    );

    producer
        .wait_more_rounds(ROUNDS_AFTER_RESHARD)
        .await
        .expect("producer rounds after the reshard");
    let (rounds, puts) = producer.stop().await;
    assert!(
        puts.iter().any(|p| p.shard_id == child),
        "test setup: no record went to the child"
    );
    let ids: HashSet<String> = keys
        .iter()
        .flat_map(|k| (0..rounds).map(move |n| keyed_id(k, n)))
        .collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&a, &b], DELIVERY_TIMEOUT).await;

    let parents_done = wait_until(
        Duration::from_secs(60),
        "both parents at SHARD_END",
        || async {
            let p0_end =
                leases.get(&p0).await?.and_then(|l| l.checkpoint).as_deref() == Some("SHARD_END");
            let p1_end =
                leases.get(&p1).await?.and_then(|l| l.checkpoint).as_deref() == Some("SHARD_END");
            Ok(p0_end && p1_end)
        },
    )
    .await;
    if let Err(e) = parents_done {
        panic!(
            "{e:#}; lease table: {:#?}",
            leases.scan().await.map(|l| Lease::summary(&l))
        );
    }
    let (samples, violations) = sampler.finish().await;
    assert!(
        violations.is_empty(),
        "{} of {samples} samples saw the child progress early: {violations:#?}",
        violations.len()
    );

    let table = leases.scan().await.expect("scan leases");
    let child_lease = table
        .iter()
        .find(|l| l.lease_key == child)
        .expect("child lease");
    let mut parents = child_lease.parent_shard_ids.clone();
    parents.sort();
    assert_eq!(
        parents,
        vec![p0.clone(), p1.clone()],
        "parentShardId of the merged child"
    );

    let output = OutputRecord::read_dir(&spec.sink_dir);
    check_parent_counters_precede_children(&output, &[&p0, &p1], &[&child])
        .unwrap_or_else(|e| panic!("{e}"));
    Worker::shutdown_all(&[&a, &b], Duration::from_secs(30)).expect("graceful shutdown");
}

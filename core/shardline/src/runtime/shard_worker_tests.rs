//! Shard worker tests on the embedded Kinesis server and the in-memory
//! lease store: checkpoints that were not written (item 1 of issue 9),
//! vanished shards (item 5), abandoned `GetRecords` calls (item 11).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shardline_api::Checkpoint;
use tokio_util::sync::CancellationToken;

use super::shard_worker::ShardExit;
use super::test_support::{wait_until, FlakySink, Harness, KinesisProxy, WorkerSetup};
use crate::metrics::Telemetry;

const DEADLINE: Duration = Duration::from_secs(15);

fn at(sequence: &str) -> Checkpoint {
    Checkpoint::from_parts(sequence, 0).expect("a sequence number")
}

#[tokio::test]
async fn a_postponed_checkpoint_is_written_at_shutdown_and_a_graceful_restart_does_not_redeliver() {
    let harness = Harness::start(1).await;
    let mut last = String::new();
    for i in 0..5 {
        last = harness.put(0, &format!("r{i}")).await;
    }
    // Every flush fails while the shard is read: each checkpoint is postponed.
    let sink = Arc::new(FlakySink::default());
    sink.fail_flushes.store(u32::MAX, Ordering::SeqCst);
    let setup = WorkerSetup::new(harness.source(None).await, sink.clone());
    let (coordinator, mut acquired) = harness.coordinator("w1").await;
    let handle = acquired.recv().await.expect("a lease");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run());
    wait_until("5 records delivered and a flush failed", DEADLINE, || sink.received().len() == 5 && sink.flushes.load(Ordering::SeqCst) >= 1).await;
    assert_eq!(harness.checkpoint(0).await, Checkpoint::TrimHorizon, "no flush succeeded, so nothing may be checkpointed");
    // At shutdown the sink recovers after two more failures.
    sink.fail_flushes.store(2, Ordering::SeqCst);
    shutdown.cancel();
    let exit = worker.await.expect("worker task").expect("worker");
    assert!(matches!(exit, ShardExit::Shutdown), "{exit:?}");
    assert_eq!(harness.checkpoint(0).await, at(&last), "the final checkpoint is written before the lease is released");
    coordinator.shutdown().await;

    // A graceful restart reads only what came after.
    let after = harness.put(0, "after the restart").await;
    let sink = Arc::new(FlakySink::default());
    let setup = WorkerSetup::new(harness.source(None).await, sink.clone());
    let (coordinator, mut acquired) = harness.coordinator("w2").await;
    let handle = acquired.recv().await.expect("a lease");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run());
    wait_until("the new record delivered", DEADLINE, || !sink.received().is_empty()).await;
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
    assert_eq!(sink.received(), vec![after], "a graceful restart re-delivered records");
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_postponed_checkpoint_of_an_idle_shard_is_retried() {
    let harness = Harness::start(1).await;
    let mut last = String::new();
    for i in 0..3 {
        last = harness.put(0, &format!("r{i}")).await;
    }
    // The first flush fails; nothing else arrives afterwards.
    let sink = Arc::new(FlakySink::default());
    sink.fail_flushes.store(1, Ordering::SeqCst);
    let setup = WorkerSetup::new(harness.source(None).await, sink.clone());
    let (coordinator, mut acquired) = harness.coordinator("w1").await;
    let handle = acquired.recv().await.expect("a lease");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run());
    wait_until("3 records delivered", DEADLINE, || sink.received().len() == 3).await;
    harness.wait_for_checkpoint(0, &at(&last), DEADLINE).await;
    assert!(sink.flushes.load(Ordering::SeqCst) >= 2, "the checkpoint was written only after a retried flush");
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_vanished_shard_ends_its_lease_and_the_other_shards_go_on() {
    let harness = Harness::start(3).await;
    let proxy = KinesisProxy::start(harness.address);
    let source = harness.source(Some(&proxy)).await;
    let sink = Arc::new(FlakySink::default());
    let setup = WorkerSetup::new(source, sink.clone());
    let (coordinator, mut acquired) = harness.coordinator("w1").await;
    let shutdown = CancellationToken::new();
    // Shard 2 is gone before its worker starts (GetShardIterator).
    proxy.vanish(&harness.shards[2].shard_id);
    let mut workers = std::collections::HashMap::new();
    for _ in 0..3 {
        let handle = acquired.recv().await.expect("a lease");
        let shard_id = handle.lease_key().to_owned();
        workers.insert(shard_id, tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run()));
    }
    let first = [harness.put(0, "a0").await, harness.put(1, "b0").await];
    wait_until("a record of shards 0 and 1 delivered", DEADLINE, || {
        let received = sink.received();
        first.iter().all(|s| received.contains(s))
    })
    .await;
    // Shard 0 goes while it is read (GetRecords).
    proxy.vanish(&harness.shards[0].shard_id);
    for shard in [0, 2] {
        let worker = workers.remove(&harness.shards[shard].shard_id).expect("a worker");
        let exit = tokio::time::timeout(DEADLINE, worker).await.expect("the worker of a vanished shard ends").expect("task");
        match exit {
            Ok(ShardExit::ShardEnd(children)) => assert!(children.is_empty(), "{children:?}"),
            other => panic!("shard {shard}: expected a shard end, got {other:?}"),
        }
        assert_eq!(harness.checkpoint(shard).await, Checkpoint::ShardEnd, "shard {shard}");
    }
    assert!(proxy.seen.resource_not_found.load(Ordering::SeqCst) >= 2);
    // Shard 1 goes on.
    let later = harness.put(1, "b1").await;
    wait_until("shard 1 read after the others vanished", DEADLINE, || sink.received().contains(&later)).await;
    shutdown.cancel();
    let exit = workers.remove(&harness.shards[1].shard_id).expect("a worker").await.expect("task").expect("worker");
    assert!(matches!(exit, ShardExit::Shutdown), "{exit:?}");
    coordinator.shutdown().await;
}

/// The value of `metric` for the `pipeline` label, summed over shards.
fn counter(metric: &str, pipeline: &str) -> u64 {
    let label = format!("pipeline=\"{pipeline}\"");
    Telemetry::global()
        .render()
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn get_records_in_flight_survive_competing_events() {
    let harness = Harness::start(1).await;
    let proxy = KinesisProxy::start(harness.address);
    // Slow GetRecords calls, while a producer keeps the shard busy and the
    // sink acknowledges each batch 30 ms after it was sent: the pipeline's
    // progress events keep winning the worker's `select!` while a call is
    // in flight.
    proxy.delay_get_records(Duration::from_millis(80));
    let sink = Arc::new(FlakySink { send_delay: Duration::from_millis(10), ..FlakySink::default() });
    let mut setup = WorkerSetup::new(harness.source(Some(&proxy)).await, sink.clone());
    setup.reader_options.pipeline = "abandon-test".into();
    let (coordinator, mut acquired) = harness.coordinator("w1").await;
    let handle = acquired.recv().await.expect("a lease");
    let shutdown = CancellationToken::new();
    let producing = CancellationToken::new();
    let producer = tokio::spawn({
        let (producing, client, stream, hash) = (producing.clone(), harness.client.clone(), harness.stream.clone(), harness.shards[0].starting_hash_key.clone());
        async move {
            let mut n = 0;
            while !producing.is_cancelled() {
                let data = aws_sdk_kinesis::primitives::Blob::new(format!("r{n}").into_bytes());
                client.put_record().stream_name(&stream).partition_key("k").explicit_hash_key(&hash).data(data).send().await.expect("put");
                n += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    });
    let worker = tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run());
    // (or 10 dropped ones: enough to fail below)
    wait_until("30 GetRecords calls", DEADLINE, || {
        proxy.seen.get_records.load(Ordering::SeqCst) >= 30 || proxy.seen.get_records_abandoned.load(Ordering::SeqCst) >= 10
    })
    .await;
    let sent = counter("shardline_get_records_total", "abandon-test");
    let abandoned = counter("shardline_get_records_abandoned_total", "abandon-test");
    let dropped_at_proxy = proxy.seen.get_records_abandoned.load(Ordering::SeqCst);
    let batches = sink.batches.load(Ordering::SeqCst);
    println!("GetRecords: {sent} sent, {abandoned} abandoned (metric), {dropped_at_proxy} dropped as seen by the proxy; {batches} batches delivered");
    assert!(dropped_at_proxy <= 1, "{dropped_at_proxy} GetRecords calls dropped mid-flight");
    assert!(batches >= 10, "only {batches} batches delivered: too few competing events");
    assert!(sent >= 25, "{sent}");
    assert!(abandoned <= 1, "{abandoned} of {sent} GetRecords calls abandoned");
    producing.cancel();
    producer.await.expect("producer");
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
    coordinator.shutdown().await;
}

#[tokio::test]
async fn back_off_sleeps_are_not_cut_short_by_competing_events() {
    let harness = Harness::start(1).await;
    let proxy = KinesisProxy::start(harness.address);
    harness.put(0, "r0").await;
    // A watermark that cannot be checkpointed (every flush fails): the
    // checkpoint timer wins the worker's `select!` every 10 ms.
    let sink = Arc::new(FlakySink::default());
    sink.fail_flushes.store(u32::MAX, Ordering::SeqCst);
    let mut setup = WorkerSetup::new(harness.source(Some(&proxy)).await, sink.clone());
    setup.checkpoint_interval = Duration::from_millis(10);
    let (coordinator, mut acquired) = harness.coordinator("w1").await;
    let handle = acquired.recv().await.expect("a lease");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(setup.worker(&harness, handle, shutdown.clone()).run());
    wait_until("the record delivered", DEADLINE, || !sink.received().is_empty()).await;
    proxy.throttle_get_records(true);
    wait_until("6 throttled GetRecords calls", DEADLINE, || proxy.seen.throttled.lock().expect("throttled").len() >= 6).await;
    let times = proxy.seen.throttled.lock().expect("throttled").clone();
    // Back-off from 100 ms, doubling, capped at 500 ms (WorkerSetup), each
    // delay at least half its ceiling: 50 + 100 + 200 + 250 + 250 ms at least
    // between the first and the sixth call.
    let spread = times[5] - times[0];
    println!("6 throttled GetRecords calls within {spread:?}");
    assert!(spread >= Duration::from_millis(850), "back-off cut short: 6 throttled calls within {spread:?}");
    proxy.throttle_get_records(false);
    sink.fail_flushes.store(0, Ordering::SeqCst);
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
    coordinator.shutdown().await;
}

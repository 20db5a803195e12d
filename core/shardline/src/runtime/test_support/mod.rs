//! In-process setup for the runtime tests: the embedded Kinesis server
//! (optionally behind the fault proxy), the in-memory lease store, a lease
//! coordinator, a test double of the sink, and shard workers built from
//! them.

pub(crate) mod kinesis_proxy;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shardline_api::{Checkpoint, Record, RecordStatus, ShardInfo, Sink, SinkError};
use shardline_kinesis::{KinesisSource, ReadMode, ReaderOptions};
use shardline_lease::{CoordinatorConfig, EmbeddedLeaseStore, LeaseCoordinator, LeaseHandle, LeaseStore};
use shardline_pipeline::dead_letter::StderrDeadLetter;
use shardline_pipeline::{BufferConfig, DeliveryConfig, ShardContext, ShardPipeline};
use tokio_util::sync::CancellationToken;

use super::shard_worker::ShardWorker;
use crate::metrics::Telemetry;
pub(crate) use kinesis_proxy::KinesisProxy;

/// Polls `condition` every 20 ms until it holds; panics with `what` after
/// `deadline`.
pub(crate) async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(tokio::time::Instant::now() < end, "timed out after {deadline:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sink test double: records what it was sent, acknowledges
/// everything (`send_delay` after it was sent), and fails the next
/// `fail_flushes` flushes.
#[derive(Default)]
pub(crate) struct FlakySink {
    pub received: Mutex<Vec<Record>>,
    pub send_delay: Duration,
    pub batches: AtomicU32,
    pub fail_flushes: AtomicU32,
    pub flushes: AtomicU32,
}

impl FlakySink {
    pub(crate) fn received(&self) -> Vec<String> {
        self.received.lock().expect("received").iter().map(|r| r.meta.sequence_number.to_string()).collect()
    }
}

#[async_trait]
impl Sink for FlakySink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        tokio::time::sleep(self.send_delay).await;
        self.received.lock().expect("received").extend(batch.iter().cloned());
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        let failing = self.fail_flushes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(SinkError::retriable("flush failed (test double)"));
        }
        Ok(())
    }
}

/// A stream on the embedded Kinesis server, the lease store, and how to
/// build workers for it.
pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    stop: CancellationToken,
    pub address: std::net::SocketAddr,
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
    pub shards: Vec<ShardInfo>,
    pub store: Arc<dyn LeaseStore>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    /// A stream of `shards` shards with a lease (at `TRIM_HORIZON`) for each.
    pub(crate) async fn start(shards: i32) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let stop = CancellationToken::new();
        let server = shardline_local_kinesis::start(shardline_local_kinesis::LocalKinesisConfig::new(dir.path().join("kinesis")), stop.clone())
            .await
            .expect("local kinesis");
        let address = server.address();
        let client = aws_sdk_kinesis::Client::new(&shardline_aws::emulator_sdk_config(&server.endpoint()));
        let stream = "runtime-test".to_owned();
        client.create_stream().stream_name(&stream).shard_count(shards).send().await.expect("create stream");
        let source = KinesisSource::connect(client.clone(), &stream).await.expect("connect");
        let shards = source.list_shards().await.expect("list shards");
        let store: Arc<dyn LeaseStore> = Arc::new(EmbeddedLeaseStore::in_memory());
        store.ensure_table().await.expect("table");
        // A fresh stream: every shard is open, so every listing is the same.
        shardline_lease::sync_leases(store.as_ref(), &Checkpoint::TrimHorizon, |_listing| {
            let shards = shards.clone();
            async move { Ok::<_, shardline_lease::LeaseError>(shards) }
        })
        .await
        .expect("sync leases");
        Harness { _dir: dir, stop, address, client, stream, shards, store }
    }

    /// Puts `data` into shard number `shard` and returns its sequence number.
    pub(crate) async fn put(&self, shard: usize, data: &str) -> String {
        let out = self
            .client
            .put_record()
            .stream_name(&self.stream)
            .partition_key("k")
            .explicit_hash_key(&self.shards[shard].starting_hash_key)
            .data(aws_sdk_kinesis::primitives::Blob::new(data.as_bytes().to_vec()))
            .send()
            .await
            .expect("put record");
        out.sequence_number
    }

    /// The source, directly or through `proxy`.
    pub(crate) async fn source(&self, proxy: Option<&KinesisProxy>) -> KinesisSource {
        let endpoint = proxy.map_or_else(|| format!("http://{}", self.address), |p| p.endpoint.clone());
        let client = aws_sdk_kinesis::Client::new(&shardline_aws::emulator_sdk_config(&endpoint));
        KinesisSource::connect(client, &self.stream).await.expect("connect")
    }

    /// A coordinator on the store (failover time 3 s), and the channel of
    /// the leases it acquires.
    pub(crate) async fn coordinator(&self, worker_id: &str) -> (LeaseCoordinator, tokio::sync::mpsc::Receiver<LeaseHandle>) {
        self.coordinator_with(worker_id, Duration::from_secs(3))
    }

    pub(crate) fn coordinator_with(&self, worker_id: &str, failover_time: Duration) -> (LeaseCoordinator, tokio::sync::mpsc::Receiver<LeaseHandle>) {
        let config = CoordinatorConfig { pipeline: "runtime-test".into(), worker_id: worker_id.into(), failover_time, ..CoordinatorConfig::default() };
        LeaseCoordinator::start(self.store.clone(), config)
    }

    /// The stored checkpoint of shard number `shard`.
    pub(crate) async fn checkpoint(&self, shard: usize) -> Checkpoint {
        let lease = self.store.get_lease(&self.shards[shard].shard_id).await.expect("get lease").expect("a lease");
        lease.checkpoint
    }

    /// Waits until shard number `shard` is checkpointed at `expected`.
    pub(crate) async fn wait_for_checkpoint(&self, shard: usize, expected: &Checkpoint, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let stored = self.checkpoint(shard).await;
            if &stored == expected {
                return;
            }
            assert!(tokio::time::Instant::now() < end, "shard {shard}: checkpoint {stored} after {deadline:?}, expected {expected}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Settings of a test worker.
pub(crate) struct WorkerSetup {
    pub source: KinesisSource,
    pub sink: Arc<FlakySink>,
    pub checkpoint_interval: Duration,
    pub reader_options: ReaderOptions,
}

impl WorkerSetup {
    pub(crate) fn new(source: KinesisSource, sink: Arc<FlakySink>) -> WorkerSetup {
        let reader_options = ReaderOptions {
            pipeline: "runtime-test".into(),
            idle_interval: Duration::from_millis(50),
            poll_interval: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            ..ReaderOptions::default()
        };
        WorkerSetup { source, sink, checkpoint_interval: Duration::from_millis(100), reader_options }
    }

    pub(crate) fn worker(&self, harness: &Harness, handle: LeaseHandle, shutdown: CancellationToken) -> ShardWorker {
        let shard = harness.shards.iter().find(|s| s.shard_id == handle.lease_key()).cloned().expect("a listed shard");
        let context = ShardContext {
            pipeline: Arc::from("runtime-test"),
            stream: Arc::from(harness.stream.as_str()),
            shard_id: Arc::from(shard.shard_id.as_str()),
        };
        let buffer = BufferConfig { max_records: 1, max_age: shardline_api::HumanDuration::from_millis(10), ..BufferConfig::default() };
        let sink: Arc<dyn Sink> = self.sink.clone();
        let pipeline = ShardPipeline::new(
            context,
            Vec::new(),
            buffer,
            DeliveryConfig::default(),
            sink.clone(),
            Arc::new(StderrDeadLetter::new()),
        );
        ShardWorker {
            pipeline_name: Arc::from("runtime-test"),
            handle,
            shard,
            source: self.source.clone(),
            store: harness.store.clone(),
            read_mode: ReadMode::Polling,
            reader_options: self.reader_options.clone(),
            at_timestamp: None,
            checkpoint_interval: self.checkpoint_interval,
            parent_poll_interval: Duration::from_millis(200),
            pipeline,
            sink,
            shutdown,
            telemetry: Telemetry::global(),
        }
    }
}

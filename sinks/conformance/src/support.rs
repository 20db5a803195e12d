//! What the checks share: records, an in-memory dead-letter destination, a
//! sink wrapper that repairs the destination after a retriable answer, a
//! runtime with a local Prometheus recorder, and the engine driver.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use shardline_api::{
    ByteSize, HumanDuration, Position, Record, RecordMeta, RecordStatus, SequenceNumber, Sink, SinkError,
};
use shardline_pipeline::{
    BufferConfig, DeadLetter, DeadLetterEntry, DeliveryConfig, PipelineStats, ShardContext, ShardPipeline,
};

use crate::Scope;

pub(crate) const STREAM: &str = "conformance";
pub(crate) const SHARD_ID: &str = "shardId-000000000007";

/// The position of record `i`.
pub(crate) fn position(i: u64) -> Position {
    let sequence = format!("4959033827149025660855969253836157109592157598913658{:04}", 1000 + i);
    Position::new(SequenceNumber::parse(&sequence).expect("digits"), 0)
}

/// Record `i` of a check, with `payload`.
pub(crate) fn record(i: u64, payload: Bytes) -> Record {
    let meta = RecordMeta {
        stream: Arc::from(STREAM),
        shard_id: Arc::from(SHARD_ID),
        sequence_number: position(i).sequence,
        sub_sequence_number: 0,
        partition_key: format!("pk-{}", i % 3),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    };
    Record::new(payload, Arc::new(meta))
}

/// A JSON payload unique to the scope and `i`.
pub(crate) fn payload(scope: &Scope, i: u64) -> Bytes {
    Bytes::from(format!("{{\"conformance\":{i},\"scope\":\"{}\"}}", scope.name))
}

/// Dead-letter entries in memory.
#[derive(Default)]
pub(crate) struct MemoryDeadLetter {
    pub(crate) entries: Mutex<Vec<DeadLetterEntry>>,
}

#[async_trait]
impl DeadLetter for MemoryDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        self.entries.lock().map_err(|_| SinkError::permanent("poisoned"))?.extend_from_slice(entries);
        Ok(())
    }
}

/// What [`RepairAfterRetriable`] saw.
#[derive(Default)]
pub(crate) struct Observations {
    pub(crate) retriable_answers: AtomicU32,
    pub(crate) permanent_answer: Mutex<Option<String>>,
    pub(crate) repaired: AtomicBool,
}

/// Passes calls to the sink under test; after its first retriable answer
/// (whole call or per record) asks the check to make the destination
/// available again (through `repair`, answered once it is) before
/// returning. Remembers whether the sink ever answered a permanent failure.
pub(crate) struct RepairAfterRetriable {
    pub(crate) inner: Arc<dyn Sink>,
    pub(crate) repair: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    pub(crate) seen: Arc<Observations>,
}

impl RepairAfterRetriable {
    async fn observe(&self, retriable: bool, permanent: Option<String>) {
        if let Some(message) = permanent {
            if let Ok(mut slot) = self.seen.permanent_answer.lock() {
                slot.get_or_insert(message);
            }
        }
        if retriable {
            self.seen.retriable_answers.fetch_add(1, Ordering::SeqCst);
            if !self.seen.repaired.swap(true, Ordering::SeqCst) {
                let (done, repaired) = tokio::sync::oneshot::channel();
                if self.repair.send(done).await.is_ok() {
                    let _ = repaired.await;
                }
            }
        }
    }
}

#[async_trait]
impl Sink for RepairAfterRetriable {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.inner.healthcheck().await
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let result = self.inner.send(batch).await;
        match &result {
            Ok(statuses) => {
                let retriable = statuses.iter().any(|s| matches!(s, RecordStatus::Retriable { .. }));
                let rejected = statuses.iter().find_map(|s| match s {
                    RecordStatus::Rejected { reason } => Some(format!("record rejected: {reason}")),
                    _ => None,
                });
                self.observe(retriable, rejected).await;
            }
            Err(e) if e.kind.is_retriable() => self.observe(true, None).await,
            Err(e) => self.observe(false, Some(e.to_string())).await,
        }
        result
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.inner.flush().await
    }

    async fn close(&self) -> Result<(), SinkError> {
        self.inner.close().await
    }
}

/// Runs `f` on a fresh current-thread runtime with a Prometheus recorder
/// local to this thread; returns its output and the metrics text.
pub(crate) fn with_metrics<T>(f: impl std::future::Future<Output = T>) -> (T, String) {
    let recorder: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let out = metrics::with_local_recorder(&recorder, || runtime.block_on(f));
    drop(runtime);
    (out, handle.render())
}

/// The value of the first sample of `name` whose labels contain every
/// `label="value"` in `labels`.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        if !(rest.is_empty() || rest.starts_with('{')) {
            return None;
        }
        if !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

/// What one pass through the engine gave.
pub(crate) struct EngineRun {
    pub(crate) checkpoint: Option<Position>,
    pub(crate) stats: PipelineStats,
    pub(crate) dead_letters: Vec<DeadLetterEntry>,
}

/// Pushes `records` through a [`ShardPipeline`] (batches of at most
/// `max_records`, fast retries) into `sink`, and drains it.
pub(crate) async fn through_engine(pipeline: &str, sink: Arc<dyn Sink>, records: Vec<Record>, max_records: usize) -> EngineRun {
    let dead_letter = Arc::new(MemoryDeadLetter::default());
    let ctx = ShardContext { pipeline: Arc::from(pipeline), stream: Arc::from(STREAM), shard_id: Arc::from(SHARD_ID) };
    let buffer = BufferConfig { max_records, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(3600) };
    let delivery = DeliveryConfig {
        concurrency: 1,
        retry_attempts: 20,
        retry_initial_backoff: HumanDuration::from_millis(1),
        retry_max_backoff: HumanDuration::from_millis(20),
        ..DeliveryConfig::default()
    };
    let mut engine = ShardPipeline::new(ctx, Vec::new(), buffer, delivery, sink, dead_letter.clone());
    engine.push(records);
    let checkpoint = engine.drain().await;
    let dead_letters = dead_letter.entries.lock().map(|e| e.clone()).unwrap_or_default();
    EngineRun { checkpoint, stats: engine.stats(), dead_letters }
}

//! Metrics (through the `metrics` facade) and the per-shard counters behind
//! [`PipelineStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::counter;

use crate::ShardContext;

/// Why a batch was flushed (the `reason` label of
/// `shardline_batches_flushed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushReason {
    Records,
    Bytes,
    Age,
    Drain,
}

impl FlushReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FlushReason::Records => "records",
            FlushReason::Bytes => "bytes",
            FlushReason::Age => "age",
            FlushReason::Drain => "drain",
        }
    }
}

/// Counters of one [`ShardPipeline`](crate::ShardPipeline) since it was
/// made (the same events as the exported metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Records (transform outputs) the sink acknowledged as delivered.
    pub records_delivered: u64,
    /// Records durably written to the dead-letter destination.
    pub records_dead_lettered: u64,
    /// Input records for which the transform chain produced nothing.
    pub records_filtered: u64,
    /// Records sent to the sink again after a retriable answer.
    pub sink_retries: u64,
    /// Batches handed to the emitter.
    pub batches_flushed: u64,
    /// Failed dead-letter writes (each one retried).
    pub dead_letter_write_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    filtered: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    dead_letter_failures: AtomicU64,
}

/// Cheap to clone; shared by a shard's pipeline and its spawned tasks.
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    pipeline: Arc<str>,
    shard_id: Arc<str>,
    counters: Arc<Counters>,
}

impl Telemetry {
    pub(crate) fn new(ctx: &ShardContext) -> Self {
        Telemetry { pipeline: ctx.pipeline.clone(), shard_id: ctx.shard_id.clone(), counters: Arc::default() }
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [("pipeline", self.pipeline.to_string()), ("shard_id", self.shard_id.to_string())]
    }

    pub(crate) fn delivered(&self, records: u64, bytes: u64) {
        self.counters.delivered.fetch_add(records, Ordering::Relaxed);
        counter!("shardline_records_delivered_total", &self.labels()).increment(records);
        counter!("shardline_bytes_delivered_total", &self.labels()).increment(bytes);
    }

    pub(crate) fn dead_lettered(&self, stage: &str, records: u64) {
        self.counters.dead_lettered.fetch_add(records, Ordering::Relaxed);
        let [p, s] = self.labels();
        counter!("shardline_records_dead_lettered_total", &[p, s, ("stage", stage.to_owned())]).increment(records);
    }

    pub(crate) fn filtered(&self, records: u64) {
        self.counters.filtered.fetch_add(records, Ordering::Relaxed);
        counter!("shardline_records_filtered_total", &self.labels()).increment(records);
    }

    pub(crate) fn retries(&self, records: u64) {
        self.counters.retries.fetch_add(records, Ordering::Relaxed);
        counter!("shardline_sink_retries_total", &self.labels()).increment(records);
    }

    pub(crate) fn batch_flushed(&self, reason: FlushReason) {
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        let [p, s] = self.labels();
        counter!("shardline_batches_flushed_total", &[p, s, ("reason", reason.as_str().to_owned())]).increment(1);
    }

    pub(crate) fn dead_letter_write_failed(&self) {
        self.counters.dead_letter_failures.fetch_add(1, Ordering::Relaxed);
        counter!("shardline_dead_letter_write_failures_total", &self.labels()).increment(1);
    }

    pub(crate) fn snapshot(&self) -> PipelineStats {
        let c = &self.counters;
        PipelineStats {
            records_delivered: c.delivered.load(Ordering::Relaxed),
            records_dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            records_filtered: c.filtered.load(Ordering::Relaxed),
            sink_retries: c.retries.load(Ordering::Relaxed),
            batches_flushed: c.batches.load(Ordering::Relaxed),
            dead_letter_write_failures: c.dead_letter_failures.load(Ordering::Relaxed),
        }
    }
}

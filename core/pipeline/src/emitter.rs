//! Delivery of one batch: send to the sink, retry what the sink answers as
//! retriable (exponential back-off with jitter, up to the retry policy),
//! and write rejected or exhausted records to the dead-letter destination.
//! Dead-letter writes are retried forever: a shard stalls rather than lose
//! a record.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use shardline_api::{BatchFence, Record, RecordStatus, Sink};

use crate::config::DeliveryConfig;
use crate::dead_letter::{DeadLetter, DeadLetterEntry};
use crate::telemetry::Telemetry;

/// How often and how patiently a record is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts per record, the first included; 0 = forever.
    pub(crate) attempts: u32,
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl RetryPolicy {
    pub(crate) fn new(config: &DeliveryConfig) -> Self {
        let initial = config.retry_initial_backoff.get().max(Duration::from_millis(1));
        RetryPolicy { attempts: config.retry_attempts, initial, max: config.retry_max_backoff.get().max(initial) }
    }

    /// The back-off before retry number `retry` (1 for the first): the
    /// initial back-off doubled per retry, capped, then jittered into
    /// `[d/2, d]`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        let full = self.initial.saturating_mul(factor).min(self.max);
        let half = full / 2;
        let jitter_nanos = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=jitter_nanos))
    }

    /// True when `made` attempts used up the policy.
    pub(crate) fn exhausted(&self, made: u32) -> bool {
        self.attempts != 0 && made >= self.attempts
    }
}

/// Reads the lease counter the shard's worker holds now (it changes with
/// every renewal), for the [`BatchFence`] of each send.
pub type LeaseCounterSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Everything one shard needs to deliver batches; cheap to clone into a
/// spawned task.
#[derive(Clone)]
pub(crate) struct Emitter {
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) dead_letter: Arc<dyn DeadLetter>,
    pub(crate) policy: RetryPolicy,
    pub(crate) telemetry: Telemetry,
    pub(crate) pipeline: Arc<str>,
    pub(crate) shard_id: Arc<str>,
    /// `None` without a lease: the fence then carries counter 0.
    pub(crate) lease_counter: Option<LeaseCounterSource>,
}

impl Emitter {
    fn entry(&self, record: Record, stage: &str, reason: String) -> DeadLetterEntry {
        DeadLetterEntry { record, reason, stage: stage.to_owned(), pipeline: self.pipeline.clone() }
    }

    /// The fence of a send made now.
    fn fence(&self) -> BatchFence {
        BatchFence { shard_id: self.shard_id.clone(), lease_counter: self.lease_counter.as_ref().map_or(0, |read| read()) }
    }

    /// Delivers `records`; returns once every one of them was delivered or
    /// durably dead-lettered.
    pub(crate) async fn emit(&self, records: Vec<Record>) {
        let mut pending = records;
        let mut dead: Vec<DeadLetterEntry> = Vec::new();
        let mut attempt: u32 = 0;
        while !pending.is_empty() {
            attempt = attempt.saturating_add(1);
            let mut retry: Vec<Record> = Vec::new();
            let mut retry_reason = String::new();
            let mut hint: Option<Duration> = None;
            let fence = self.fence();
            match self.sink.send_fenced(&fence, &pending).await {
                Ok(statuses) if statuses.len() == pending.len() => {
                    let (mut delivered, mut bytes) = (0u64, 0u64);
                    for (record, status) in pending.drain(..).zip(statuses) {
                        match status {
                            RecordStatus::Delivered => {
                                delivered += 1;
                                bytes += record.payload.approximate_len() as u64;
                            }
                            RecordStatus::Rejected { reason } => dead.push(self.entry(record, "sink", reason)),
                            RecordStatus::Retriable { reason, backoff } => {
                                hint = hint.max(backoff);
                                if retry_reason.is_empty() {
                                    retry_reason = reason;
                                }
                                retry.push(record);
                            }
                        }
                    }
                    self.telemetry.delivered(delivered, bytes);
                }
                Ok(statuses) => {
                    retry_reason =
                        format!("sink answered {} statuses for a batch of {} records", statuses.len(), pending.len());
                    retry = std::mem::take(&mut pending);
                }
                Err(e) if e.kind.is_retriable() => {
                    retry_reason = e.message;
                    retry = std::mem::take(&mut pending);
                }
                Err(e) => {
                    let reason = e.to_string();
                    dead.extend(pending.drain(..).map(|r| self.entry(r, "sink", reason.clone())));
                }
            }
            if retry.is_empty() {
                break;
            }
            if self.policy.exhausted(attempt) {
                let reason = format!("gave up after {attempt} attempts: {retry_reason}");
                tracing::warn!(pipeline = %self.pipeline, shard_id = %self.shard_id, records = retry.len(),
                    attempts = attempt, reason = %retry_reason, "sink retries exhausted");
                dead.extend(retry.into_iter().map(|r| self.entry(r, "sink", reason.clone())));
                break;
            }
            let delay = self.policy.backoff(attempt).max(hint.map_or(Duration::ZERO, |h| h.min(self.policy.max)));
            tracing::debug!(pipeline = %self.pipeline, shard_id = %self.shard_id, records = retry.len(),
                attempt, backoff_ms = delay.as_millis() as u64, reason = %retry_reason, "retrying records");
            self.telemetry.retries(retry.len() as u64);
            tokio::time::sleep(delay).await;
            pending = retry;
        }
        if !dead.is_empty() {
            self.write_dead_letters(&dead).await;
        }
    }

    /// Writes `entries` to the dead-letter destination, retrying forever.
    pub(crate) async fn write_dead_letters(&self, entries: &[DeadLetterEntry]) {
        let mut failures: u32 = 0;
        loop {
            match self.dead_letter.write(entries).await {
                Ok(()) => break,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.telemetry.dead_letter_write_failed();
                    let delay = self.policy.backoff(failures);
                    tracing::error!(pipeline = %self.pipeline, shard_id = %self.shard_id, records = entries.len(),
                        failures, backoff_ms = delay.as_millis() as u64, error = %e,
                        "dead-letter write failed; the shard waits until it succeeds");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        let mut by_stage: Vec<(&str, u64)> = Vec::new();
        for entry in entries {
            match by_stage.iter_mut().find(|(stage, _)| *stage == entry.stage) {
                Some((_, n)) => *n += 1,
                None => by_stage.push((&entry.stage, 1)),
            }
        }
        for (stage, n) in by_stage {
            self.telemetry.dead_lettered(stage, n);
        }
        if let Some(first) = entries.first() {
            tracing::warn!(pipeline = %self.pipeline, shard_id = %self.shard_id, records = entries.len(),
                stage = %first.stage, reason = %first.reason, "records dead-lettered");
        }
    }
}

#[cfg(test)]
mod tests {
    use shardline_api::HumanDuration;

    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let policy = RetryPolicy::new(&DeliveryConfig {
            concurrency: 1,
            retry_attempts: 3,
            retry_initial_backoff: HumanDuration::from_millis(100),
            retry_max_backoff: HumanDuration::from_millis(1000),
            ..DeliveryConfig::default()
        });
        for _ in 0..100 {
            for (retry, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (60, 1000)] {
                let d = policy.backoff(retry);
                let full = Duration::from_millis(full);
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
            }
        }
        assert!(!policy.exhausted(2));
        assert!(policy.exhausted(3));
        assert!(!RetryPolicy { attempts: 0, ..policy }.exhausted(u32::MAX));
    }
}

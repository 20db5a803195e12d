//! One shard, held under a lease: wait for the parents to finish, read,
//! push through the pipeline, checkpoint the acknowledgement watermark,
//! and stop at once when the lease is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline_api::{Checkpoint, Position, ShardInfo, Sink};
use shardline_kinesis::{KinesisSource, ReadBatch, ReadMode, ReaderOptions, ShardReader, SourceError, StartPosition};
use shardline_lease::{LeaseError, LeaseHandle, LeaseStore};
use shardline_pipeline::{PipelineEvent, ShardPipeline};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Telemetry;

/// How a shard worker ended.
#[derive(Debug)]
pub enum ShardExit {
    /// Read to its end; every record acknowledged; `SHARD_END`
    /// checkpointed. Carries the child shard ids.
    ShardEnd(Vec<String>),
    /// The lease was lost (taken, stolen, or not renewable): the worker
    /// stopped reading and checkpointing at once.
    Lost,
    /// Graceful shutdown: drained, checkpointed and released.
    Shutdown,
}

/// A failure that stops the whole pipeline.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The source failed permanently (stream deleted, access denied...).
    #[error("shard {shard_id}: {source}")]
    Source {
        /// The shard.
        shard_id: String,
        /// The source error.
        source: SourceError,
    },
    /// A permanent lease store error.
    #[error("shard {shard_id}: {source}")]
    Lease {
        /// The shard.
        shard_id: String,
        /// The lease error.
        source: LeaseError,
    },
}

/// Everything a shard worker needs.
pub struct ShardWorker {
    pub(crate) pipeline_name: Arc<str>,
    pub(crate) handle: LeaseHandle,
    pub(crate) shard: ShardInfo,
    pub(crate) source: KinesisSource,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) read_mode: ReadMode,
    pub(crate) reader_options: ReaderOptions,
    pub(crate) at_timestamp: Option<SystemTime>,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) parent_poll_interval: Duration,
    pub(crate) pipeline: ShardPipeline,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) telemetry: Arc<Telemetry>,
}

enum Step {
    Continue,
    Exit(ShardExit),
}

/// What became of one attempt to write a checkpoint. Only `Written`
/// counts: the others leave the watermark pending, so it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckpointWrite {
    /// The lease store holds the checkpoint.
    Written,
    /// Not written: the sink flush or the lease store failed retriably.
    Postponed,
    /// Not written: the lease is lost.
    Lost,
}

/// Attempts of the final sink flush and checkpoint at shutdown before the
/// lease is released without them (the whole drain is also bounded by the
/// process's shutdown timeout).
const SHUTDOWN_CHECKPOINT_ATTEMPTS: u32 = 5;
/// First pause between two shutdown attempts; doubles each time.
const SHUTDOWN_RETRY_DELAY: Duration = Duration::from_millis(200);

type Reader = Box<dyn ShardReader>;
/// A `next_batch` call that owns its reader while it runs, so it survives
/// the other branches of the worker's `select!` and hands the reader back
/// when it completes.
type Fetch = Pin<Box<dyn Future<Output = (Reader, Result<ReadBatch, SourceError>)> + Send>>;

fn fetch(mut reader: Reader) -> Fetch {
    Box::pin(async move {
        let result = reader.next_batch().await;
        (reader, result)
    })
}

impl ShardWorker {
    /// Runs the shard until it ends, the lease is lost, or shutdown.
    ///
    /// # Errors
    /// [`WorkerError`] for permanent source or lease store failures.
    pub async fn run(mut self) -> Result<ShardExit, WorkerError> {
        let shard_id = self.shard.shard_id.clone();
        let lost = self.handle.lost();
        let lease = self.handle.snapshot();
        if lease.checkpoint.is_shard_end() {
            tracing::info!(shard_id = %shard_id, "shard already finished, releasing lease");
            self.release().await;
            return Ok(ShardExit::ShardEnd(lease.child_shard_ids));
        }
        // Parents first: a child is not read until every parent was read to
        // its end and checkpointed SHARD_END (by any worker).
        loop {
            match shardline_lease::parents_finished(self.store.as_ref(), &lease).await {
                Ok(true) => break,
                Ok(false) => tracing::debug!(shard_id = %shard_id, parents = ?lease.parent_shard_ids, "waiting for parent shards to finish"),
                Err(e) if e.kind().is_retriable() => tracing::warn!(shard_id = %shard_id, error = %e, "cannot check parent shards, will retry"),
                Err(e) => return Err(WorkerError::Lease { shard_id, source: e }),
            }
            tokio::select! {
                _ = lost.cancelled() => return Ok(ShardExit::Lost),
                _ = self.shutdown.cancelled() => {
                    self.release().await;
                    return Ok(ShardExit::Shutdown);
                }
                _ = tokio::time::sleep(self.parent_poll_interval) => {}
            }
        }
        let start = match &lease.checkpoint {
            Checkpoint::TrimHorizon => StartPosition::TrimHorizon,
            Checkpoint::Latest => StartPosition::Latest,
            Checkpoint::AtTimestamp => match self.at_timestamp {
                Some(t) => StartPosition::AtTimestamp(t),
                None => StartPosition::TrimHorizon,
            },
            Checkpoint::At(p) => StartPosition::After(p.clone()),
            Checkpoint::ShardEnd => unreachable_shard_end(),
        };
        let mut checkpointed: Option<Position> = match &lease.checkpoint {
            Checkpoint::At(p) => Some(p.clone()),
            _ => None,
        };
        // Stateful transforms (window_count) resume from the state stored
        // with the checkpoint, so windows already emitted are not counted
        // again when the records after the checkpoint are replayed.
        if let Some(state) = &lease.transform_state {
            if let Err(e) = self.pipeline.restore_state(state) {
                tracing::warn!(shard_id = %shard_id, error = %e, "stored transform state not usable, starting with empty state");
            }
        }
        tracing::info!(shard_id = %shard_id, checkpoint = %lease.checkpoint, "shard worker started");
        // The reader is either idle (`Some`) or inside the one in-flight
        // `next_batch` call, which is kept across iterations: a branch that
        // wins the `select!` must not abandon a GetRecords mid-flight (it
        // costs one of the shard's five calls a second) or cut a back-off
        // short.
        let mut reader = Some(self.source.reader(&self.shard, start, &self.read_mode, self.reader_options.clone()));
        let mut in_flight: Option<Fetch> = None;
        let mut last_checkpoint_at = Instant::now();
        loop {
            if in_flight.is_none() && self.pipeline.has_capacity() {
                in_flight = reader.take().map(fetch);
            }
            let due = pending(&self.pipeline.checkpoint(), &checkpointed)
                .then(|| last_checkpoint_at + self.checkpoint_interval);
            let step = tokio::select! {
                biased;
                _ = lost.cancelled() => {
                    self.pipeline.abort();
                    tracing::warn!(shard_id = %shard_id, "lease lost, stopped reading and checkpointing");
                    Step::Exit(ShardExit::Lost)
                }
                _ = self.shutdown.cancelled() => {
                    let exit = self.drain_and_release(&mut checkpointed).await;
                    Step::Exit(exit)
                }
                _ = sleep_until_opt(due), if due.is_some() => {
                    self.checkpoint_progress(&mut checkpointed).await?;
                    last_checkpoint_at = Instant::now();
                    Step::Continue
                }
                event = self.pipeline.next_event(), if self.pipeline.wants_events() => {
                    if let PipelineEvent::Progress { .. } = event {
                        if last_checkpoint_at.elapsed() >= self.checkpoint_interval {
                            self.checkpoint_progress(&mut checkpointed).await?;
                            last_checkpoint_at = Instant::now();
                        }
                    }
                    Step::Continue
                }
                (idle, batch) = next_of(&mut in_flight), if in_flight.is_some() => {
                    in_flight = None;
                    reader = Some(idle);
                    let batch = batch.map_err(|source| WorkerError::Source { shard_id: shard_id.clone(), source })?;
                    self.pipeline.push_with_rejected(batch.records, batch.rejected);
                    match batch.shard_end {
                        None => Step::Continue,
                        Some(children) => self.finish_shard(children, &mut checkpointed).await?,
                    }
                }
            };
            if let Step::Exit(exit) = step {
                return Ok(exit);
            }
        }
    }

    /// Writes the watermark if it moved. Only a checkpoint that was
    /// written moves `checkpointed`: a postponed one stays pending and is
    /// tried again at the next tick, even when the shard is idle. Lost
    /// leases are handled by the caller through the `lost` token.
    async fn checkpoint_progress(&mut self, checkpointed: &mut Option<Position>) -> Result<(), WorkerError> {
        let Some(position) = self.pipeline.checkpoint() else { return Ok(()) };
        if checkpointed.as_ref() == Some(&position) {
            return Ok(());
        }
        // Taken together, with no await between: the state matches the
        // position.
        let state = self.pipeline.checkpoint_state();
        if self.write_checkpoint(Checkpoint::At(position.clone()), state).await? == CheckpointWrite::Written {
            *checkpointed = Some(position);
        }
        Ok(())
    }

    /// Flushes the sink, then writes `checkpoint`, and says whether it was
    /// written.
    ///
    /// # Errors
    /// [`WorkerError::Lease`] for a permanent lease store error.
    async fn write_checkpoint(&self, checkpoint: Checkpoint, transform_state: Option<String>) -> Result<CheckpointWrite, WorkerError> {
        let shard_id = &self.shard.shard_id;
        // Make what the sink acknowledged durable before the checkpoint
        // says so.
        if let Err(e) = self.sink.flush().await {
            tracing::warn!(shard_id = %shard_id, error = %e, "sink flush failed, checkpoint postponed");
            return Ok(CheckpointWrite::Postponed);
        }
        match self.handle.checkpoint_with_state(checkpoint.clone(), transform_state).await {
            Ok(()) => {
                tracing::debug!(shard_id = %shard_id, checkpoint = %checkpoint, "checkpointed");
                self.telemetry.set_checkpoint(&self.pipeline_name, shard_id, &checkpoint.sequence_string(), checkpoint.sub_sequence());
                Ok(CheckpointWrite::Written)
            }
            Err(e) if e.is_lost() => Ok(CheckpointWrite::Lost),
            Err(e) if e.kind().is_retriable() => {
                tracing::warn!(shard_id = %shard_id, error = %e, "checkpoint failed, will retry");
                Ok(CheckpointWrite::Postponed)
            }
            Err(e) => Err(WorkerError::Lease { shard_id: shard_id.clone(), source: e }),
        }
    }

    /// At shutdown: writes the watermark if it moved, retrying a postponed
    /// write (sink flush or lease store) a bounded number of times.
    /// `Written` also when there was nothing to write.
    async fn checkpoint_at_shutdown(&mut self, checkpointed: &mut Option<Position>) -> CheckpointWrite {
        let shard_id = self.shard.shard_id.clone();
        let Some(position) = self.pipeline.checkpoint().filter(|p| checkpointed.as_ref() != Some(p)) else {
            return CheckpointWrite::Written;
        };
        let state = self.pipeline.checkpoint_state();
        let lost = self.handle.lost();
        let mut delay = SHUTDOWN_RETRY_DELAY;
        for attempt in 1..=SHUTDOWN_CHECKPOINT_ATTEMPTS {
            let outcome = match self.write_checkpoint(Checkpoint::At(position.clone()), state.clone()).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(shard_id = %shard_id, error = %e, "final checkpoint failed permanently");
                    return CheckpointWrite::Postponed;
                }
            };
            match outcome {
                CheckpointWrite::Written => {
                    *checkpointed = Some(position);
                    return outcome;
                }
                CheckpointWrite::Lost => return outcome,
                CheckpointWrite::Postponed if attempt == SHUTDOWN_CHECKPOINT_ATTEMPTS => {}
                CheckpointWrite::Postponed => {
                    tracing::info!(shard_id = %shard_id, attempt, retry_in = ?delay, "final checkpoint postponed, retrying before releasing the lease");
                    tokio::select! {
                        _ = lost.cancelled() => return CheckpointWrite::Lost,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay *= 2;
                }
            }
        }
        tracing::warn!(shard_id = %shard_id, attempts = SHUTDOWN_CHECKPOINT_ATTEMPTS, "final checkpoint not written; the next owner re-reads from the last checkpoint");
        CheckpointWrite::Postponed
    }

    /// The shard is closed and fully read: drain, checkpoint SHARD_END once
    /// everything is acknowledged, record the children, release.
    async fn finish_shard(&mut self, children: Vec<String>, checkpointed: &mut Option<Position>) -> Result<Step, WorkerError> {
        let shard_id = self.shard.shard_id.clone();
        let lost = self.handle.lost();
        tokio::select! {
            _ = lost.cancelled() => {
                self.pipeline.abort();
                return Ok(Step::Exit(ShardExit::Lost));
            }
            // `finish` also emits the windows stateful transforms still hold.
            _ = self.pipeline.finish() => {}
        }
        if self.pipeline.outstanding() > 0 {
            // drain returns only when everything is acknowledged; this is a
            // safety net: never write SHARD_END past an unacknowledged record.
            self.checkpoint_progress(checkpointed).await?;
            return Ok(Step::Continue);
        }
        loop {
            match self.write_checkpoint(Checkpoint::ShardEnd, None).await? {
                CheckpointWrite::Written => break,
                CheckpointWrite::Lost => return Ok(Step::Exit(ShardExit::Lost)),
                CheckpointWrite::Postponed => {}
            }
            // Retriable failure (sink flush or lease store): every record is
            // acknowledged, so on shutdown the last position is checkpointed
            // and the next owner only finds the shard's end.
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    if self.checkpoint_at_shutdown(checkpointed).await == CheckpointWrite::Lost {
                        return Ok(Step::Exit(ShardExit::Lost));
                    }
                    self.release().await;
                    return Ok(Step::Exit(ShardExit::Shutdown));
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if !children.is_empty() {
            if let Err(e) = self.handle.set_child_shard_ids(&children).await {
                tracing::warn!(shard_id = %shard_id, error = %e, "could not record child shard ids");
            }
        }
        tracing::info!(shard_id = %shard_id, children = ?children, "shard finished, checkpointed SHARD_END");
        self.release().await;
        Ok(Step::Exit(ShardExit::ShardEnd(children)))
    }

    /// Graceful shutdown: flush the buffer, wait for every in-flight batch,
    /// checkpoint the watermark (retrying a postponed write a few times),
    /// hand the lease back.
    async fn drain_and_release(&mut self, checkpointed: &mut Option<Position>) -> ShardExit {
        let shard_id = self.shard.shard_id.clone();
        let lost = self.handle.lost();
        tokio::select! {
            _ = lost.cancelled() => {
                self.pipeline.abort();
                return ShardExit::Lost;
            }
            _ = self.pipeline.drain() => {}
        }
        // `drain` leaves open windows open: their records are after the
        // checkpoint and are replayed by the next owner.
        if self.checkpoint_at_shutdown(checkpointed).await == CheckpointWrite::Lost {
            return ShardExit::Lost;
        }
        self.release().await;
        tracing::info!(shard_id = %shard_id, "shard drained and released");
        ShardExit::Shutdown
    }

    /// Hands the lease back (checkpoints were written before).
    async fn release(&self) {
        let shard_id = &self.shard.shard_id;
        if let Err(e) = self.handle.release(None).await {
            tracing::warn!(shard_id = %shard_id, error = %e, "lease release failed; it will expire after the failover time");
        }
        self.telemetry.clear_checkpoint(&self.pipeline_name, shard_id);
    }
}

fn pending(watermark: &Option<Position>, checkpointed: &Option<Position>) -> bool {
    match (watermark, checkpointed) {
        (Some(w), Some(c)) => w > c,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The result of the in-flight fetch; never resolves when there is none.
async fn next_of(in_flight: &mut Option<Fetch>) -> (Reader, Result<ReadBatch, SourceError>) {
    match in_flight {
        Some(fetch) => fetch.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn unreachable_shard_end() -> StartPosition {
    // Handled before reading starts (the lease is released at once); kept
    // total so a future change cannot read a finished shard from the start
    // by accident: LATEST reads nothing old.
    StartPosition::Latest
}

//! One shard, held under a lease: wait for the parents to finish, read,
//! push through the pipeline, checkpoint the acknowledgement watermark,
//! and stop at once when the lease is lost.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline_api::{Checkpoint, Position, ShardInfo, Sink};
use shardline_kinesis::{KinesisSource, ReadMode, ReaderOptions, SourceError, StartPosition};
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
            self.release(None).await;
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
                    self.release(None).await;
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
        let mut reader = self.source.reader(&self.shard, start, &self.read_mode, self.reader_options.clone());
        let mut last_checkpoint_at = Instant::now();
        loop {
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
                batch = reader.next_batch(), if self.pipeline.has_capacity() => {
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

    /// Writes the watermark if it moved. Lost leases are handled by the
    /// caller through the `lost` token; retriable failures wait for the next
    /// try.
    async fn checkpoint_progress(&mut self, checkpointed: &mut Option<Position>) -> Result<(), WorkerError> {
        let Some(position) = self.pipeline.checkpoint() else { return Ok(()) };
        if checkpointed.as_ref() == Some(&position) {
            return Ok(());
        }
        // Taken together, with no await between: the state matches the
        // position.
        let state = self.pipeline.checkpoint_state();
        self.write_checkpoint(Checkpoint::At(position.clone()), state).await?;
        if !self.handle.is_lost() {
            *checkpointed = Some(position);
        }
        Ok(())
    }

    async fn write_checkpoint(&self, checkpoint: Checkpoint, transform_state: Option<String>) -> Result<(), WorkerError> {
        let shard_id = &self.shard.shard_id;
        // Make what the sink acknowledged durable before the checkpoint
        // says so.
        if let Err(e) = self.sink.flush().await {
            tracing::warn!(shard_id = %shard_id, error = %e, "sink flush failed, checkpoint postponed");
            return Ok(());
        }
        match self.handle.checkpoint_with_state(checkpoint.clone(), transform_state).await {
            Ok(()) => {
                tracing::debug!(shard_id = %shard_id, checkpoint = %checkpoint, "checkpointed");
                self.telemetry.set_checkpoint(&self.pipeline_name, shard_id, &checkpoint.sequence_string(), checkpoint.sub_sequence());
                Ok(())
            }
            Err(e) if e.is_lost() => Ok(()),
            Err(e) if e.kind().is_retriable() => {
                tracing::warn!(shard_id = %shard_id, error = %e, "checkpoint failed, will retry");
                Ok(())
            }
            Err(e) => Err(WorkerError::Lease { shard_id: shard_id.clone(), source: e }),
        }
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
            self.write_checkpoint(Checkpoint::ShardEnd, None).await?;
            if self.handle.is_lost() {
                return Ok(Step::Exit(ShardExit::Lost));
            }
            if self.handle.snapshot().checkpoint.is_shard_end() {
                break;
            }
            // Retriable failure (sink flush or lease store): every record is
            // acknowledged, so on shutdown the last position is checkpointed
            // and the next owner only finds the shard's end.
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    let last = self.pipeline.checkpoint().filter(|p| checkpointed.as_ref() != Some(p)).map(Checkpoint::At);
                    self.release(last).await;
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
        self.release(None).await;
        Ok(Step::Exit(ShardExit::ShardEnd(children)))
    }

    /// Graceful shutdown: flush the buffer, wait for every in-flight batch,
    /// checkpoint the watermark, hand the lease back.
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
        let final_checkpoint = match self.pipeline.checkpoint() {
            Some(p) if checkpointed.as_ref() != Some(&p) => Some(Checkpoint::At(p)),
            _ => None,
        };
        let final_state = final_checkpoint.as_ref().and_then(|_| self.pipeline.checkpoint_state());
        if final_checkpoint.is_some() {
            if let Err(e) = self.sink.flush().await {
                tracing::warn!(shard_id = %shard_id, error = %e, "sink flush failed at shutdown; not checkpointing past it");
                self.release(None).await;
                return ShardExit::Shutdown;
            }
        }
        if let Some(Checkpoint::At(p)) = &final_checkpoint {
            *checkpointed = Some(p.clone());
            self.telemetry.set_checkpoint(&self.pipeline_name, &shard_id, p.sequence.as_str(), p.sub_sequence);
        }
        self.release_with_state(final_checkpoint, final_state).await;
        tracing::info!(shard_id = %shard_id, "shard drained and released");
        ShardExit::Shutdown
    }

    async fn release(&self, final_checkpoint: Option<Checkpoint>) {
        self.release_with_state(final_checkpoint, None).await;
    }

    /// Hands the lease back, with an optional final checkpoint and the
    /// transform state that goes with it.
    async fn release_with_state(&self, final_checkpoint: Option<Checkpoint>, transform_state: Option<String>) {
        let shard_id = &self.shard.shard_id;
        if let Err(e) = self.handle.release_with_state(final_checkpoint, transform_state).await {
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

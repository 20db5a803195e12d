//! [`ShardPipeline`]: the engine for one shard, driven by the shard worker.
//!
//! The worker pushes records while [`ShardPipeline::has_capacity`] holds
//! and otherwise waits on [`ShardPipeline::next_event`], checkpointing the
//! position each event carries:
//!
//! ```text
//! loop {
//!     tokio::select! {
//!         batch = reader.next(), if pipeline.has_capacity() => pipeline.push(batch?),
//!         event = pipeline.next_event() => match event {
//!             PipelineEvent::Progress { checkpoint: Some(p) } => lease.checkpoint(p).await?,
//!             _ => {}
//!         },
//!     }
//! }
//! ```
//!
//! # Stateful transforms
//!
//! A chain with a stateful transform (`window_count`) holds input records
//! until their windows are emitted. Then:
//! - [`checkpoint`](ShardPipeline::checkpoint) never passes a held record,
//!   and [`checkpoint_state`](ShardPipeline::checkpoint_state) is the small
//!   state the worker must store with that checkpoint (before or
//!   atomically with it) and give back through
//!   [`restore_state`](ShardPipeline::restore_state) before the first push
//!   after a restart or lease move, so windows already emitted are not
//!   counted again;
//! - [`next_event`](ShardPipeline::next_event) also ticks the transforms
//!   every `max_age` while they hold records, so windows are emitted while
//!   the shard is idle: call it while [`wants_events`](ShardPipeline::wants_events);
//! - at shard end call [`finish`](ShardPipeline::finish) (emits every held
//!   window, then drains) instead of [`drain`](ShardPipeline::drain), which
//!   keeps held records unemitted so that they are replayed after a
//!   restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline_api::{CheckpointLimit, Position, Record, RejectedRecord, Sink, Transform};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use crate::buffer::{Batch, Buffer};
use crate::chain::{Chain, ChainFailure, TransformState};
use crate::config::{BufferConfig, DeliveryConfig};
use crate::dead_letter::{DeadLetter, DeadLetterEntry};
use crate::emitter::{Emitter, RetryPolicy};
use crate::telemetry::{FlushReason, PipelineStats, Telemetry};
use crate::watermark::{Ticket, Watermark};
use crate::ShardContext;

/// What [`ShardPipeline::next_event`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineEvent {
    /// Work finished or a flush started; acknowledgements advanced (or
    /// not). Carries the current checkpointable position.
    Progress {
        /// The watermark position, `None` before the first record was
        /// fully acknowledged.
        checkpoint: Option<Position>,
    },
    /// Nothing is buffered or in flight.
    Idle,
}

/// A buffered transform output and the ticket of its input record.
struct Item {
    record: Record,
    ticket: Ticket,
}

/// What a spawned task was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Batch,
    DeadLetters,
}

/// The tickets to acknowledge once a task finished (one per record).
struct TaskDone {
    kind: TaskKind,
    tickets: Vec<Ticket>,
}

/// The pipeline engine of one shard. See the [crate docs](crate).
pub struct ShardPipeline {
    ctx: ShardContext,
    chain: Chain,
    buffer: Buffer<Item>,
    concurrency: usize,
    emitter: Emitter,
    watermark: Watermark,
    tasks: JoinSet<TaskDone>,
    task_kinds: HashMap<Id, TaskKind>,
    batches_in_flight: usize,
    /// Transform failures waiting for the dead-letter writer.
    dead_letter_queue: Vec<(DeadLetterEntry, Ticket)>,
    dead_letter_in_flight: bool,
    /// Above this many queued transform failures, `has_capacity` is false.
    dead_letter_queue_limit: usize,
    telemetry: Telemetry,
    aborted: bool,
    /// How often stateful transforms are ticked (`buffer.max_age`).
    tick_every: Duration,
    /// When stateful transforms were last ticked.
    last_tick: Instant,
    /// Wall-clock time at `clock_base.0`: ticks tell transforms the time as
    /// `clock_base.1 + (now - clock_base.0)` on tokio's clock, which is the
    /// wall clock in production and virtual time in tests.
    clock_base: (Instant, SystemTime),
    /// The stateful transforms' limit for the current `done` key.
    limit: CheckpointLimit,
    /// Their states that go with a checkpoint within `limit`.
    states: Vec<TransformState>,
}

/// A saved transform state that [`ShardPipeline::restore_state`] could not
/// use (the transforms start fresh).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot restore transform state: {}", problems.join("; "))]
pub struct RestoreStateError {
    /// What did not fit, one entry per problem.
    pub problems: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    version: u32,
    transforms: Vec<SavedTransform>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedTransform {
    index: usize,
    #[serde(rename = "type")]
    name: String,
    state: serde_json::Value,
}

impl ShardPipeline {
    /// A pipeline for one shard. `buffer` and `delivery` should have passed
    /// `validate()`; out-of-range values are clamped (at least 1 record per
    /// batch, 1 batch in flight).
    ///
    /// `delivery.call_timeout` is not applied here: give a sink wrapped
    /// once in [`CallTimeout`](crate::CallTimeout) (the runtime does, so the
    /// shard worker's own flushes are bounded too).
    pub fn new(
        ctx: ShardContext,
        transforms: Vec<Box<dyn Transform>>,
        buffer: BufferConfig,
        delivery: DeliveryConfig,
        sink: Arc<dyn Sink>,
        dead_letter: Arc<dyn DeadLetter>,
    ) -> Self {
        let telemetry = Telemetry::new(&ctx);
        let emitter = Emitter {
            sink,
            dead_letter,
            policy: RetryPolicy::new(&delivery),
            telemetry: telemetry.clone(),
            pipeline: ctx.pipeline.clone(),
            shard_id: ctx.shard_id.clone(),
            lease_counter: None,
        };
        let tick_every = buffer.max_age.get().max(Duration::from_millis(10));
        ShardPipeline {
            chain: Chain::new(transforms),
            tick_every,
            last_tick: Instant::now(),
            clock_base: (Instant::now(), SystemTime::now()),
            limit: CheckpointLimit::Any,
            states: Vec::new(),
            buffer: Buffer::new(&buffer),
            concurrency: delivery.concurrency.max(1),
            emitter,
            watermark: Watermark::new(),
            tasks: JoinSet::new(),
            task_kinds: HashMap::new(),
            batches_in_flight: 0,
            dead_letter_queue: Vec::new(),
            dead_letter_in_flight: false,
            dead_letter_queue_limit: buffer.max_records.max(1),
            telemetry,
            aborted: false,
            ctx,
        }
    }

    /// Gives every batch sent from now on the lease counter `read` returns
    /// at send time (in its [`BatchFence`](shardline_api::BatchFence));
    /// without it the fence carries 0.
    pub fn set_lease_counter(&mut self, read: crate::LeaseCounterSource) {
        self.emitter.lease_counter = Some(read);
    }

    /// Runs the transform chain on each record (in shard order), registers
    /// it in the watermark, buffers its outputs and starts flushes that a
    /// limit made due while concurrency allows. Transform failures are
    /// queued for the dead-letter destination (written by a spawned task).
    ///
    /// Records must come in increasing position order. Ignored after
    /// [`abort`](Self::abort).
    ///
    /// # Panics
    /// When called outside a tokio runtime (work is spawned onto it).
    pub fn push(&mut self, records: Vec<Record>) {
        self.push_with_rejected(records, Vec::new());
    }

    /// [`push`](Self::push) for a batch from which the source set some
    /// records aside (`rejected`, e.g. KPL aggregates the Java KCL skips):
    /// those take their place in the shard's order and go to the
    /// dead-letter destination with their stage and reason, exactly as
    /// transform failures do, so the checkpoint passes them only once they
    /// are written there.
    ///
    /// Both lists must be in increasing position order.
    ///
    /// # Panics
    /// When called outside a tokio runtime (work is spawned onto it).
    pub fn push_with_rejected(&mut self, records: Vec<Record>, rejected: Vec<RejectedRecord>) {
        if self.aborted {
            tracing::warn!(shard_id = %self.ctx.shard_id, records = records.len() + rejected.len(), "push after abort ignored");
            return;
        }
        let now = Instant::now();
        let mut filtered = 0;
        let mut rejected = rejected.into_iter().peekable();
        for record in records {
            let position = record.meta.position();
            while let Some(r) = rejected.next_if(|r| r.record.meta.position() < position) {
                self.queue_rejected(r);
            }
            match self.chain.run(record) {
                Ok(outputs) => {
                    // The chain makes at most u32::MAX outputs.
                    let count = u32::try_from(outputs.len()).unwrap_or(u32::MAX);
                    let ticket = self.watermark.register(position, count);
                    if count == 0 {
                        filtered += 1;
                    }
                    for record in outputs {
                        let bytes = record.payload.approximate_len() as u64;
                        self.buffer.push(Item { record, ticket }, bytes, now);
                    }
                }
                Err(failure) => {
                    let ticket = self.watermark.register(position, 1);
                    self.queue_failure(failure, ticket);
                }
            }
        }
        for r in rejected {
            self.queue_rejected(r);
        }
        if filtered > 0 {
            self.telemetry.filtered(filtered);
        }
        self.refresh_limit();
        self.start_work();
    }

    fn queue_rejected(&mut self, rejected: RejectedRecord) {
        let ticket = self.watermark.register(rejected.record.meta.position(), 1);
        let RejectedRecord { record, stage, reason } = rejected;
        self.queue_failure(ChainFailure { record, stage, reason }, ticket);
    }

    fn queue_failure(&mut self, failure: ChainFailure, ticket: Ticket) {
        tracing::debug!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id,
            position = %failure.record.meta.position(), stage = %failure.stage, reason = %failure.reason,
            "record goes to the dead-letter destination");
        let entry = DeadLetterEntry {
            record: failure.record,
            reason: failure.reason,
            stage: failure.stage,
            pipeline: self.ctx.pipeline.clone(),
        };
        self.dead_letter_queue.push((entry, ticket));
    }

    /// Runs a tick (or, with `end`, the shard-end flush) of the stateful
    /// transforms and buffers what they emit as one watermark entry after
    /// the last record. Does nothing before the first record.
    fn emit_held(&mut self, end: bool) {
        self.last_tick = Instant::now();
        if !self.chain.is_stateful() || self.aborted {
            return;
        }
        let Some(key) = self.watermark.next_tick_key() else { return };
        let wall_now = self.clock_base.1 + Instant::now().saturating_duration_since(self.clock_base.0);
        let emitted = self.chain.emit(&key, wall_now, end);
        let count = u32::try_from(emitted.outputs.len() + emitted.failures.len()).unwrap_or(u32::MAX);
        let Some((ticket, _)) = self.watermark.register_tick(count) else { return };
        let now = Instant::now();
        for record in emitted.outputs {
            let bytes = record.payload.approximate_len() as u64;
            self.buffer.push(Item { record, ticket }, bytes, now);
        }
        for failure in emitted.failures {
            self.queue_failure(failure, ticket);
        }
        self.refresh_limit();
    }

    /// Asks the stateful transforms how far the current `done` key lets the
    /// shard be checkpointed.
    fn refresh_limit(&mut self) {
        if !self.chain.is_stateful() {
            return;
        }
        match self.watermark.done_key().cloned() {
            Some(done) => (self.limit, self.states) = self.chain.checkpoint_limit(&done),
            None => self.limit = CheckpointLimit::Nothing,
        }
    }

    /// When stateful transforms must be ticked next; `None` when none holds
    /// records.
    fn tick_deadline(&self) -> Option<Instant> {
        (self.chain.is_stateful() && !self.aborted && self.chain.holds_records())
            .then(|| self.last_tick + self.tick_every)
    }

    /// True while the caller should wait on [`next_event`](Self::next_event):
    /// records are outstanding, or a stateful transform holds records that
    /// a tick may emit.
    pub fn wants_events(&self) -> bool {
        !self.aborted && (self.watermark.outstanding() > 0 || self.tick_deadline().is_some())
    }

    /// False while the caller must stop reading: every in-flight slot is
    /// taken and a batch already reached a limit, or too many transform
    /// failures wait for the dead-letter destination. Also false after
    /// [`abort`](Self::abort).
    pub fn has_capacity(&self) -> bool {
        let slots_full_and_batch_waiting = self.batches_in_flight >= self.concurrency && self.buffer.has_sealed();
        !self.aborted && !slots_full_and_batch_waiting && self.dead_letter_queue.len() < self.dead_letter_queue_limit
    }

    /// Waits for the next completion (a batch delivered or dead-lettered, a
    /// dead-letter write done) or for the buffer's `max_age` deadline, then
    /// starts whatever flush became possible and returns the checkpointable
    /// position. Returns [`PipelineEvent::Idle`] at once when nothing is
    /// buffered or in flight.
    ///
    /// # Panics
    /// Re-raises a panic of the sink or the dead-letter destination.
    ///
    /// # Cancel safety
    /// Cancel-safe: meant for `tokio::select!` alongside reading. A
    /// completion is only taken off the task set in the same poll that
    /// handles it, and the age deadline is kept in the buffer.
    pub async fn next_event(&mut self) -> PipelineEvent {
        let tick = self.tick_deadline();
        if self.aborted
            || (self.tasks.is_empty() && self.buffer.is_empty() && self.dead_letter_queue.is_empty() && tick.is_none())
        {
            return PipelineEvent::Idle;
        }
        let age = self.buffer.deadline();
        let deadline = match (age, tick) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (a, t) => a.or(t),
        };
        let tasks = &mut self.tasks;
        tokio::select! {
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                self.on_task_done(joined);
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let now = Instant::now();
                let aged = age.is_some_and(|a| a <= now);
                if aged || tick.is_some_and(|t| t <= now) {
                    // Stateful transforms tick on every age flush too.
                    self.emit_held(false);
                }
                if aged {
                    self.buffer.seal(FlushReason::Age);
                }
            }
            else => return PipelineEvent::Idle,
        }
        self.start_work();
        PipelineEvent::Progress { checkpoint: self.checkpoint() }
    }

    /// The watermark position: every record up to and including it was
    /// delivered or dead-lettered, and no record at or before it is held by
    /// a stateful transform in a window not yet emitted. `None` before
    /// that, and after [`abort`](Self::abort).
    pub fn checkpoint(&self) -> Option<Position> {
        if self.aborted {
            return None;
        }
        let acked = self.watermark.checkpoint()?;
        match &self.limit {
            CheckpointLimit::Any => Some(acked),
            CheckpointLimit::AtMost(p) if *p < acked => Some(p.clone()),
            CheckpointLimit::AtMost(_) => Some(acked),
            CheckpointLimit::Nothing => None,
        }
    }

    /// The state of the stateful transforms that goes with
    /// [`checkpoint`](Self::checkpoint), as a JSON text; `None` when the
    /// chain has no stateful transform. The worker must store it with the
    /// checkpoint — atomically, or before writing the checkpoint (a newer
    /// state with an older checkpoint is safe; the reverse is not).
    pub fn checkpoint_state(&self) -> Option<String> {
        if !self.chain.is_stateful() || self.aborted {
            return None;
        }
        let saved = SavedState {
            version: 1,
            transforms: self
                .states
                .iter()
                .map(|s| SavedTransform { index: s.index, name: s.name.clone(), state: s.state.clone() })
                .collect(),
        };
        serde_json::to_string(&saved).ok()
    }

    /// Gives the stateful transforms back the state stored with the
    /// checkpoint the shard resumes from. Call before the first
    /// [`push`](Self::push).
    ///
    /// # Errors
    /// [`RestoreStateError`] when the text is not a saved state or a state
    /// does not fit the configured transforms (the configuration changed);
    /// the states that fit were restored, the others start fresh.
    pub fn restore_state(&mut self, text: &str) -> Result<(), RestoreStateError> {
        let saved: SavedState = serde_json::from_str(text)
            .map_err(|e| RestoreStateError { problems: vec![format!("not a saved transform state: {e}")] })?;
        if saved.version != 1 {
            return Err(RestoreStateError { problems: vec![format!("unknown state version {}", saved.version)] });
        }
        let states: Vec<TransformState> = saved
            .transforms
            .into_iter()
            .map(|s| TransformState { index: s.index, name: s.name, state: s.state })
            .collect();
        let problems = self.chain.restore(&states);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RestoreStateError { problems })
        }
    }

    /// At shard end: stateful transforms emit everything they hold (every
    /// open window), then as [`drain`](Self::drain). Use this instead of
    /// `drain` when the shard was read to its end.
    ///
    /// # Panics
    /// As [`drain`](Self::drain).
    ///
    /// # Cancel safety
    /// As [`drain`](Self::drain); held records are emitted once, on the
    /// first call.
    pub async fn finish(&mut self) -> Option<Position> {
        if self.aborted {
            return None;
        }
        if self.chain.is_stateful() && self.chain.holds_records() {
            self.emit_held(true);
        }
        self.drain().await
    }

    /// Flushes the buffer, waits for everything in flight and makes the
    /// sink durable ([`Sink::flush`]); returns the final checkpointable
    /// position. Used at shard end and on graceful shutdown.
    ///
    /// Returns `None` after [`abort`](Self::abort), and when the sink could
    /// not flush within the retry policy (the data is then not known to be
    /// durable, so nothing new should be checkpointed).
    ///
    /// # Panics
    /// Re-raises a panic of the sink or the dead-letter destination.
    ///
    /// # Cancel safety
    /// Cancel-safe; calling it again continues the drain. It waits as long
    /// as delivery does (forever if `retry_attempts = 0` and the sink keeps
    /// failing, or the dead-letter destination does): wrap it in a timeout
    /// for a bounded shutdown.
    pub async fn drain(&mut self) -> Option<Position> {
        if self.aborted {
            return None;
        }
        self.buffer.seal(FlushReason::Drain);
        self.start_work();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.on_task_done(joined);
            self.start_work();
        }
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            match self.emitter.sink.flush().await {
                Ok(()) => break,
                Err(e) if e.kind.is_retriable() && !self.emitter.policy.exhausted(attempt) => {
                    let delay = self.emitter.policy.backoff(attempt);
                    tracing::warn!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id, attempt,
                        error = %e, "sink flush failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    tracing::error!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id, attempt,
                        error = %e, "sink flush failed; not reporting a final checkpoint");
                    return None;
                }
            }
        }
        self.checkpoint()
    }

    /// Drops everything buffered and aborts in-flight work (the lease was
    /// lost). Nothing is checkpointed afterwards.
    pub fn abort(&mut self) {
        tracing::debug!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id,
            outstanding = self.watermark.outstanding(), "aborting shard pipeline");
        self.aborted = true;
        self.tasks.abort_all();
        self.tasks = JoinSet::new();
        self.task_kinds.clear();
        self.batches_in_flight = 0;
        self.buffer.clear();
        self.dead_letter_queue.clear();
        self.dead_letter_in_flight = false;
        self.watermark = Watermark::new();
    }

    /// Input records registered but not yet fully acknowledged.
    pub fn outstanding(&self) -> usize {
        self.watermark.outstanding()
    }

    /// Counters since this pipeline was made.
    pub fn stats(&self) -> PipelineStats {
        self.telemetry.snapshot()
    }

    /// Starts sealed batches while slots are free, and the dead-letter
    /// writer when transform failures wait.
    fn start_work(&mut self) {
        while self.batches_in_flight < self.concurrency {
            let Some(batch) = self.buffer.pop_sealed() else { break };
            self.spawn_batch(batch);
        }
        if !self.dead_letter_in_flight && !self.dead_letter_queue.is_empty() {
            let (entries, tickets): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dead_letter_queue).into_iter().unzip();
            let emitter = self.emitter.clone();
            let handle = self.tasks.spawn(async move {
                emitter.write_dead_letters(&entries).await;
                TaskDone { kind: TaskKind::DeadLetters, tickets }
            });
            self.task_kinds.insert(handle.id(), TaskKind::DeadLetters);
            self.dead_letter_in_flight = true;
        }
    }

    fn spawn_batch(&mut self, batch: Batch<Item>) {
        self.telemetry.batch_flushed(batch.reason);
        tracing::debug!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id, records = batch.items.len(),
            bytes = batch.bytes, reason = batch.reason.as_str(), "flushing batch");
        let (records, tickets): (Vec<_>, Vec<_>) = batch.items.into_iter().map(|i| (i.record, i.ticket)).unzip();
        let emitter = self.emitter.clone();
        let handle = self.tasks.spawn(async move {
            emitter.emit(records).await;
            TaskDone { kind: TaskKind::Batch, tickets }
        });
        self.task_kinds.insert(handle.id(), TaskKind::Batch);
        self.batches_in_flight += 1;
    }

    fn on_task_done(&mut self, joined: Result<(Id, TaskDone), JoinError>) {
        let kind = match joined {
            Ok((id, done)) => {
                self.task_kinds.remove(&id);
                for ticket in done.tickets {
                    self.watermark.ack(ticket);
                }
                self.refresh_limit();
                done.kind
            }
            Err(e) => {
                let kind = self.task_kinds.remove(&e.id());
                if e.is_panic() {
                    // The task's records were neither delivered nor
                    // dead-lettered; re-raise so the worker fails loudly and
                    // restarts from its last checkpoint instead of stalling.
                    tracing::error!(pipeline = %self.ctx.pipeline, shard_id = %self.ctx.shard_id,
                        "delivery task panicked");
                    std::panic::resume_unwind(e.into_panic());
                }
                // Cancelled: only `abort` cancels tasks, and it drops the set.
                match kind {
                    Some(kind) => kind,
                    None => return,
                }
            }
        };
        match kind {
            TaskKind::Batch => self.batches_in_flight = self.batches_in_flight.saturating_sub(1),
            TaskKind::DeadLetters => self.dead_letter_in_flight = false,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    /// The shard worker holds `&ShardPipeline` across awaits in a spawned task.
    #[test]
    fn shard_pipeline_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::ShardPipeline>();
    }
}

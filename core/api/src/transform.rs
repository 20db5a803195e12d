//! The transform contract.
//!
//! A pipeline builds one instance of each configured transform per shard
//! worker, so a transform may keep per-shard state behind `&mut self`.
//!
//! Stateless transforms implement [`Transform::name`] and
//! [`Transform::apply`] only. A *stateful* transform (one that holds input
//! records back, like `window_count`) also overrides the default methods
//! below so that checkpoints stay correct:
//!
//! - the engine numbers every operation of a shard with an [`OpKey`] and
//!   announces it through [`Transform::begin_op`] before calling `apply`,
//!   [`Transform::on_tick`] or [`Transform::on_shard_end`];
//! - once every output of every operation up to some key was delivered, the
//!   engine asks [`Transform::checkpoint_limit`] how far the shard may be
//!   checkpointed, and [`Transform::checkpoint_state`] for the small state
//!   that must be stored with that checkpoint;
//! - after a restart or a lease move, [`Transform::restore_state`] receives
//!   that state again before the first record is replayed.

use std::time::SystemTime;

use crate::record::Record;
use crate::sequence::Position;

/// Why a transform could not handle a record. The record goes to the
/// dead-letter destination with this reason and the transform's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TransformError {
    /// What is wrong with the record, naming the place in it, e.g.
    /// `invalid JSON at byte 17 (line 2, column 5): expected value`.
    pub reason: String,
}

impl TransformError {
    /// A transform error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        TransformError { reason: reason.into() }
    }
}

/// One operation of a shard's pipeline, in processing order: the input
/// record at `position` (`tick == 0`), or the `tick`-th timer tick or
/// shard-end flush that happened after it (`tick >= 1`). Ordered by
/// `(position, tick)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpKey {
    /// Position of the input record, or of the last input record before a
    /// tick.
    pub position: Position,
    /// 0 for a record; 1, 2, … for ticks following that record.
    pub tick: u32,
}

impl OpKey {
    /// The key of the input record at `position`.
    pub fn record(position: Position) -> Self {
        OpKey { position, tick: 0 }
    }
}

/// How far a stateful transform lets the shard be checkpointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointLimit {
    /// No limit from this transform.
    Any,
    /// The checkpoint must not pass this position (it may equal it).
    AtMost(Position),
    /// Nothing may be checkpointed yet: the transform holds records it has
    /// not emitted and knows no earlier position that is safe.
    Nothing,
}

/// One step of a pipeline's transform chain.
pub trait Transform: Send {
    /// The transform's type name as written in configuration (`parse_json`).
    fn name(&self) -> &str;

    /// Handles one record, pushing zero (filtered), one or many (split)
    /// outputs onto `out`.
    ///
    /// # Errors
    /// [`TransformError`] when the record cannot be handled; nothing pushed
    /// onto `out` by this call is kept in that case. A stateful transform
    /// must not change its state when it returns an error.
    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError>;

    /// True for transforms that hold records back and need the hooks below.
    /// The engine skips the bookkeeping for chains without one. Default
    /// `false`.
    fn is_stateful(&self) -> bool {
        false
    }

    /// Announces the operation the next calls belong to (stateful
    /// transforms only). Every `apply` made for one input record — also for
    /// each output of a 1:N transform before this one — shares that
    /// record's key; outputs of a tick share the tick's key.
    fn begin_op(&mut self, _op: &OpKey) {}

    /// Timer hook (stateful transforms only): called about every
    /// `buffer.max_age`, also while the shard receives nothing, with the
    /// wall-clock time. May emit records (e.g. windows whose time passed).
    fn on_tick(&mut self, _now: SystemTime, _out: &mut Vec<Record>) {}

    /// The shard ended (it was split or merged and read to its end): emit
    /// everything still held, nothing more will come. Not called on
    /// shutdown or lease loss, where held records are replayed instead.
    fn on_shard_end(&mut self, _out: &mut Vec<Record>) {}

    /// True while the transform holds records it has not emitted yet (the
    /// engine then keeps ticking while the shard is idle). Default `false`.
    fn holds_records(&self) -> bool {
        false
    }

    /// Every output of every operation up to and including `done` was
    /// delivered or dead-lettered. Returns how far the shard may be
    /// checkpointed; [`checkpoint_state`](Self::checkpoint_state) must then
    /// describe the state that goes with such a checkpoint. `done` never
    /// decreases between calls, so history before it may be dropped.
    /// Default [`CheckpointLimit::Any`].
    fn checkpoint_limit(&mut self, _done: &OpKey) -> CheckpointLimit {
        CheckpointLimit::Any
    }

    /// The state to persist with the checkpoint allowed by the last
    /// [`checkpoint_limit`](Self::checkpoint_limit) call (small: a few
    /// numbers, not the held records). `None` for stateless transforms.
    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores what [`checkpoint_state`](Self::checkpoint_state) returned,
    /// before the records after the checkpoint are replayed.
    ///
    /// # Errors
    /// [`TransformError`] when the state does not fit this transform (e.g.
    /// the configuration changed); the caller logs it and starts fresh.
    fn restore_state(&mut self, _state: &serde_json::Value) -> Result<(), TransformError> {
        Ok(())
    }
}

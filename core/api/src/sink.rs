//! The in-process sink contract.
//!
//! Built-in sinks (`stdout`, `file`) implement [`Sink`] directly; plugin
//! sinks are adapted to it by the plugin host, so the pipeline engine sees
//! one interface.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ErrorKind;
use crate::record::Record;

/// What became of one record of a batch handed to [`Sink::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// Stored by the destination; the record may be checkpointed.
    Delivered,
    /// Not stored this time; send it again after `backoff` (or the
    /// emitter's own back-off when `None`).
    Retriable {
        /// Why, as the destination said it.
        reason: String,
        /// The destination's back-off hint.
        backoff: Option<Duration>,
    },
    /// The destination will never take this record; it goes to the
    /// dead-letter destination with `reason`.
    Rejected {
        /// Why, as the destination said it.
        reason: String,
    },
}

/// The fencing facts of one batch: which shard it comes from and the
/// lease counter the worker held when it handed the batch to the sink.
///
/// A sink can use them to refuse writes from a worker that lost the lease
/// (a *zombie*): the lease counter grows with every renewal and take, so a
/// destination that stores the highest counter it saw per shard can refuse
/// a batch carrying a lower one. Positions of the records themselves are in
/// each record's [`RecordMeta`](crate::RecordMeta).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchFence {
    /// The shard (lease key) every record of the batch comes from.
    pub shard_id: Arc<str>,
    /// The lease's `leaseCounter` at send time; 0 when the batch is sent
    /// without a lease (a pipeline driven by `shardline test`, a test).
    pub lease_counter: u64,
}

/// A failure of a whole call (no per-record answer was obtained).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} sink error: {message}")]
pub struct SinkError {
    /// Whether retrying can help.
    pub kind: ErrorKind,
    /// What went wrong, naming the endpoint, bucket, path… involved.
    pub message: String,
}

impl SinkError {
    /// A retriable error.
    pub fn retriable(message: impl Into<String>) -> Self {
        SinkError { kind: ErrorKind::Retriable, message: message.into() }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError { kind: ErrorKind::Permanent, message: message.into() }
    }
}

/// A destination for records.
///
/// A batch always holds records of one shard, in shard order. The engine
/// never calls `send` concurrently for the same shard, but may for
/// different shards, so implementations must be `Sync`.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Checks that the destination is reachable and usable (bucket exists,
    /// directory writable…).
    ///
    /// # Errors
    /// A [`SinkError`] describing what is unreachable or unusable.
    async fn healthcheck(&self) -> Result<(), SinkError>;

    /// Sends a batch and answers with one [`RecordStatus`] per record, in
    /// the order of `batch`.
    ///
    /// # Errors
    /// A [`SinkError`] when the call as a whole failed; the engine then
    /// treats every record of the batch according to the error's kind.
    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError>;

    /// [`send`](Self::send) with the batch's [`BatchFence`]. The engine
    /// always calls this one; the default ignores the fence and calls
    /// `send`. Sinks that fence (and wrappers, which must pass the fence
    /// on) override it.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    async fn send_fenced(&self, fence: &BatchFence, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let _ = fence;
        self.send(batch).await
    }

    /// Makes everything already acknowledged durable (e.g. fsync). Called
    /// before a final checkpoint.
    ///
    /// # Errors
    /// A [`SinkError`] when the data could not be made durable.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Releases resources; no call follows.
    ///
    /// # Errors
    /// A [`SinkError`] when closing failed.
    async fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

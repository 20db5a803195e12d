//! The pipeline engine of one Shardline pipeline.
//!
//! Per shard, [`ShardPipeline`] takes records (de-aggregated, in shard
//! order) through the transform chain into a buffer that is flushed by
//! record count, size or age; the emitter hands each batch to the
//! [`Sink`](shardline_api::Sink), retrying retriable statuses with
//! exponential back-off and jitter and sending rejected or exhausted records
//! to the [`DeadLetter`] destination; acknowledgements feed the
//! [`Watermark`], whose position is what the shard worker checkpoints.
//!
//! Nothing is skipped: a record is acknowledged only once every output it
//! produced was delivered or durably dead-lettered, and a dead-letter write
//! that fails is retried until it succeeds (stalling the shard).
#![warn(missing_docs)]

mod buffer;
mod call_timeout;
pub mod chain;
mod config;
pub mod dead_letter;
mod emitter;
pub mod envelope;
mod error;
mod rolling_file;
mod shard;
pub mod sinks;
mod telemetry;
mod watermark;

use std::sync::Arc;

pub use call_timeout::CallTimeout;
pub use chain::{Chain, ChainFailure, Emitted};
pub use config::{BufferConfig, DeliveryConfig};
pub use emitter::LeaseCounterSource;
pub use dead_letter::{DeadLetter, DeadLetterConfig, DeadLetterEntry};
pub use error::BuildError;
pub use shard::{PipelineEvent, RestoreStateError, ShardPipeline};
pub use telemetry::PipelineStats;
pub use watermark::{Ticket, Watermark};

/// Which pipeline, stream and shard a [`ShardPipeline`] works for (used in
/// logs, metric labels and dead-letter entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardContext {
    /// The pipeline's name from configuration.
    pub pipeline: Arc<str>,
    /// The Kinesis stream name.
    pub stream: Arc<str>,
    /// The shard id, e.g. `shardId-000000000001`.
    pub shard_id: Arc<str>,
}

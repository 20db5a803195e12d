//! The Kinesis source: shard listing, polling and enhanced fan-out shard
//! readers, and KPL de-aggregation.
//!
//! [`KinesisSource::connect`] checks the stream, [`KinesisSource::list_shards`]
//! lists shards with their lineage, and [`KinesisSource::reader`] makes a
//! [`ShardReader`] that yields [`ReadBatch`]es of user records in shard
//! order, de-aggregated with the Java KCL's rules (see [`user_records`]).
//! Readers retry retriable errors themselves (jittered exponential back-off,
//! counted in `shardline_source_retries_total{reason}`) and return only
//! permanent ones.
//!
//! Metrics (labels `pipeline`, `stream`, `shard_id`):
//! `shardline_records_received_total`, `shardline_bytes_received_total`,
//! `shardline_source_retries_total{reason}`, `shardline_millis_behind_latest`,
//! `shardline_kpl_records_skipped_total`, `shardline_get_records_total`
//! (calls sent) and `shardline_get_records_abandoned_total` (calls dropped
//! before their response: the caller cancelled `next_batch` mid-call).
//!
//! A shard that vanished (`ResourceNotFoundException` on
//! `GetShardIterator`, `GetRecords` or `SubscribeToShard`: past retention
//! or deleted) is reported as the end of the shard with no children, as
//! the Java KCL does, not as an error.
#![warn(missing_docs)]
// SourceError carries its context inline; it is built on the cold error path only.
#![allow(clippy::result_large_err)]

mod backoff;
mod error;
mod fanout;
pub mod kpl;
mod polling;
mod record;
mod source;
pub mod telemetry;

use std::time::{Duration, SystemTime};

pub use error::SourceError;
pub use record::{user_records, RecordContext, UserRecords, KPL_STAGE};
pub use source::KinesisSource;

/// How a shard is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// `GetShardIterator` + `GetRecords` (shared 2 MB/s per shard).
    Polling,
    /// Enhanced fan-out: `SubscribeToShard` through a registered consumer
    /// (dedicated 2 MB/s per shard and consumer, pushed).
    FanOut {
        /// Consumer name; registered on first use when missing.
        consumer_name: String,
    },
}

/// Where a reader starts in its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Only records written after the reader starts.
    Latest,
    /// The first record that arrived at or after this time.
    AtTimestamp(SystemTime),
    /// Resume after a checkpoint: starts `AT_SEQUENCE_NUMBER(pos.sequence)`
    /// and drops user records whose `(sequence, sub_sequence) <= pos`.
    After(shardline_api::Position),
}

/// Tuning of a shard reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Pipeline name, the `pipeline` label of the metrics. Default: empty.
    pub pipeline: String,
    /// `Limit` of each `GetRecords` call (1 to 10 000). Default: 10 000.
    pub max_records: i32,
    /// Wait after a `GetRecords` that returned nothing while the reader is
    /// at the tip of a shard that has been quiet for `idle_after`.
    /// Default: 1 s.
    pub idle_interval: Duration,
    /// How long a shard must return no records before empty reads wait
    /// `idle_interval`; until then they are followed by the next call after
    /// `poll_interval`. Default: 2 s.
    pub idle_after: Duration,
    /// Minimum time between two `GetRecords` calls on one shard (Kinesis
    /// allows 5 calls per second per shard). Default: 200 ms.
    pub poll_interval: Duration,
    /// Longest back-off between retries. Default: 30 s.
    pub max_backoff: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            pipeline: String::new(),
            max_records: 10_000,
            idle_interval: Duration::from_secs(1),
            idle_after: Duration::from_secs(2),
            poll_interval: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What one [`ShardReader::next_batch`] call read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadBatch {
    /// User records, de-aggregated, in shard order, as
    /// [`shardline_api::Payload::Bytes`] with their metadata filled in.
    pub records: Vec<shardline_api::Record>,
    /// Records read but not for the pipeline (KPL aggregates the Java KCL
    /// would skip), for the dead-letter destination; their positions
    /// interleave with `records`.
    pub rejected: Vec<shardline_api::RejectedRecord>,
    /// How far the reader is behind the tip of the shard, when known.
    pub millis_behind_latest: Option<i64>,
    /// `Some(child shard ids)` when this batch reached the end of a closed
    /// shard. No call to `next_batch` follows (one would return the same
    /// end again, with no records).
    pub shard_end: Option<Vec<String>>,
    /// Raw bytes of the Kinesis records read (for metrics).
    pub bytes: usize,
}

/// Reads one shard.
#[async_trait::async_trait]
pub trait ShardReader: Send {
    /// The next batch. An empty batch after an idle wait is normal (it lets
    /// the caller flush by age).
    ///
    /// Retriable errors are retried inside with jittered exponential
    /// back-off. An expired iterator is replaced by one
    /// `AFTER_SEQUENCE_NUMBER` of the last Kinesis record read (or at the
    /// start position when nothing was read yet), so nothing is skipped and
    /// nothing already returned comes again.
    ///
    /// # Errors
    /// Only permanent errors ([`SourceError::kind`] is `Permanent`).
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future loses no records, but it abandons
    /// a `GetRecords` call in flight (counted in
    /// `shardline_get_records_abandoned_total`) and cuts a back-off sleep
    /// short: keep one call alive until it completes rather than
    /// re-creating it in a `select!` loop. State changes
    /// only once a response was fully received, and a batch that was built
    /// but not yet returned is returned by the next call.
    async fn next_batch(&mut self) -> Result<ReadBatch, SourceError>;
}

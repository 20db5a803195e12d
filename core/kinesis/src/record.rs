//! From Kinesis records (as `GetRecords` and `SubscribeToShard` return them)
//! to Shardline [`Record`]s: KPL de-aggregation, the KCL's hash-range
//! filtering, and dropping what a checkpoint already covers.
//!
//! # Which KCL behaviour this matches
//!
//! [`user_records`] reproduces `AggregatorUtil.deaggregate(records,
//! startingHashKey, endingHashKey)` of the Java KCL 2.x/3.x
//! (`software.amazon.kinesis.retrieval.AggregatorUtil` in
//! awslabs/amazon-kinesis-client, read at commit `18fe49e`; KCL 1.x's
//! `UserRecord.deaggregate` has the same logic):
//!
//! * A record that is not an aggregate — shorter than the magic, wrong
//!   magic, no more than 16 bytes after the magic, MD5 mismatch, or a
//!   protobuf that does not parse — is passed through unchanged
//!   (`aggregated = false`, sub-sequence 0, no hash-range check).
//! * If any user record of an aggregate has an effective hash key (explicit
//!   hash key, else MD5 of the partition key) outside the shard's range, the
//!   KCL **drops the whole aggregate**: the user records before it are
//!   removed again and the ones after it are not looked at. This happens to
//!   aggregates written around a split or merge, which the KPL packed for
//!   the old shard map. The pipeline gets none of it either, but where the
//!   KCL loses it silently we return the raw aggregate in
//!   [`UserRecords::rejected`] for the dead-letter destination, count its
//!   user records in `shardline_kpl_records_skipped_total` and log at
//!   `warn`.
//! * If building a user record fails inside a valid aggregate (a key-table
//!   index out of range, an explicit hash key that is not a number), the KCL
//!   logs an error and **keeps the user records already built, drops that
//!   one and the rest, and does not pass the raw record through**. We keep
//!   the same records, log at `error`, and dead-letter the raw aggregate at
//!   the position of the first user record not delivered.
//!
//! Sub-sequence numbers count the user records of an aggregate from 0.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use shardline_api::{Position, Record, RecordMeta, RejectedRecord, SequenceNumber, ShardInfo};

use crate::error::SourceError;
use crate::kpl::{self, HashKey};
use crate::telemetry::ShardLabels;

/// What [`user_records`] needs to know about the shard being read.
#[derive(Debug, Clone)]
pub struct RecordContext {
    stream: Arc<str>,
    shard_id: Arc<str>,
    starting_hash_key: u128,
    ending_hash_key: u128,
    labels: ShardLabels,
}

impl RecordContext {
    /// The context for `shard` of `stream`; `pipeline` labels metrics.
    ///
    /// A hash key that does not parse as a 128-bit number (never the case
    /// for a real `ListShards` answer) widens the range to its limit.
    pub fn new(pipeline: &str, stream: &str, shard: &ShardInfo) -> Self {
        let parse = |text: &str, default: u128| match kpl::parse_hash_key(text) {
            Ok(HashKey::Value(v)) => v,
            _ => {
                tracing::warn!(shard_id = %shard.shard_id, hash_key = %text, "shard hash key is not a 128-bit number, ignoring it");
                default
            }
        };
        RecordContext {
            stream: Arc::from(stream),
            shard_id: Arc::from(shard.shard_id.as_str()),
            starting_hash_key: parse(&shard.starting_hash_key, 0),
            ending_hash_key: parse(&shard.ending_hash_key, u128::MAX),
            labels: ShardLabels { pipeline: pipeline.to_owned(), stream: stream.to_owned(), shard_id: shard.shard_id.clone() },
        }
    }

    pub(crate) fn labels(&self) -> &ShardLabels {
        &self.labels
    }

    fn in_range(&self, key: HashKey) -> bool {
        match key {
            HashKey::Value(v) => self.starting_hash_key <= v && v <= self.ending_hash_key,
            HashKey::Negative | HashKey::TooLarge => false,
        }
    }

    fn meta(&self, sequence_number: &SequenceNumber, sub: u64, partition_key: String, explicit_hash_key: Option<String>, arrival_time: SystemTime, aggregated: bool) -> Arc<RecordMeta> {
        Arc::new(RecordMeta {
            stream: self.stream.clone(),
            shard_id: self.shard_id.clone(),
            sequence_number: sequence_number.clone(),
            sub_sequence_number: sub,
            partition_key,
            explicit_hash_key,
            arrival_time,
            aggregated,
        })
    }
}

/// What [`user_records`] makes of a page of Kinesis records.
#[derive(Debug, Default)]
pub struct UserRecords {
    /// User records for the pipeline, in shard order.
    pub records: Vec<Record>,
    /// Aggregates the Java KCL would skip (or cut short), as raw records at
    /// the position of the first user record not delivered, in shard order:
    /// they go to the dead-letter destination instead of being lost.
    pub rejected: Vec<RejectedRecord>,
}

/// The dead-letter stage of records rejected while de-aggregating.
pub const KPL_STAGE: &str = "source:kpl";

/// Turns Kinesis records into user records, in shard order: de-aggregates
/// KPL aggregates with the Java KCL's rules (see the [module docs](self)),
/// then drops every user record at or before `after` (already checkpointed).
/// What the KCL would skip is returned in [`UserRecords::rejected`].
///
/// Pure apart from logging and the skipped-records metric, so it can be
/// tested and benchmarked without a network.
///
/// # Errors
/// [`SourceError::Malformed`] when a sequence number is not a number.
pub fn user_records(
    kinesis_records: Vec<aws_sdk_kinesis::types::Record>,
    context: &RecordContext,
    after: Option<&Position>,
) -> Result<UserRecords, SourceError> {
    let mut out = Vec::with_capacity(kinesis_records.len());
    let mut rejected = Vec::new();
    for record in kinesis_records {
        let sequence = SequenceNumber::parse(&record.sequence_number).map_err(|e| SourceError::Malformed {
            stream: context.stream.to_string(),
            shard_id: Some(context.shard_id.to_string()),
            message: e.to_string(),
        })?;
        let arrival_time = record
            .approximate_arrival_timestamp
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let data = Bytes::from(record.data.into_inner());
        let keep = |sub: u64| !matches!(after, Some(p) if (&sequence, sub) <= (&p.sequence, p.sub_sequence));

        let partition_key = record.partition_key.unwrap_or_default();
        let Ok(aggregate) = kpl::parse(&data) else {
            if keep(0) {
                let meta = context.meta(&sequence, 0, partition_key, None, arrival_time, false);
                out.push(Record::new(data, meta));
            }
            continue;
        };
        // The raw aggregate, dead-lettered from sub-record `sub` on.
        let mut reject = |sub: u64, reason: String| {
            if keep(sub) {
                let meta = context.meta(&sequence, sub, partition_key.clone(), None, arrival_time, false);
                rejected.push(RejectedRecord { record: Record::new(data.clone(), meta), stage: KPL_STAGE.to_owned(), reason });
            }
        };
        let start = out.len();
        for index in 0..aggregate.records.len() {
            let user = match kpl::user_record(&aggregate, index) {
                Ok(user) => user,
                Err(e) => {
                    tracing::error!(stream = %context.stream, shard_id = %context.shard_id, sequence_number = %sequence,
                        sub_sequence_number = index, error = %e, "unexpected error de-aggregating a kpl record, dead-lettering the rest of it");
                    reject(index as u64, format!("KPL aggregate: user record {index} cannot be read ({e}); the Java KCL drops it and the rest of the aggregate, which is dead-lettered here as received"));
                    break;
                }
            };
            let Ok(hash_key) = kpl::checked_effective_hash_key(&user.partition_key, user.explicit_hash_key.as_deref()) else {
                tracing::error!(stream = %context.stream, shard_id = %context.shard_id, sequence_number = %sequence,
                    sub_sequence_number = index, explicit_hash_key = ?user.explicit_hash_key,
                    "explicit hash key of a kpl user record is not a number, dead-lettering the rest of the aggregate");
                reject(index as u64, format!("KPL aggregate: user record {index} has an explicit hash key that is not a 128-bit number ({:?}); the Java KCL drops it and the rest of the aggregate, which is dead-lettered here as received", user.explicit_hash_key));
                break;
            };
            if !context.in_range(hash_key) {
                let dropped = aggregate.records.len();
                tracing::warn!(stream = %context.stream, shard_id = %context.shard_id, sequence_number = %sequence,
                    sub_sequence_number = index, user_records = dropped,
                    "kpl aggregate holds a user record outside the shard's hash key range, dead-lettering the whole aggregate");
                context.labels.kpl_records_skipped(dropped);
                out.truncate(start);
                reject(0, format!("KPL aggregate: user record {index} (partition key {:?}) hashes outside this shard's range {}..={}; the Java KCL skips the whole aggregate ({dropped} user records), which is dead-lettered here as received", user.partition_key, context.starting_hash_key, context.ending_hash_key));
                break;
            }
            let sub = index as u64;
            if keep(sub) {
                let meta = context.meta(&sequence, sub, user.partition_key, user.explicit_hash_key, arrival_time, true);
                out.push(Record::new(user.data, meta));
            }
        }
    }
    Ok(UserRecords { records: out, rejected })
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

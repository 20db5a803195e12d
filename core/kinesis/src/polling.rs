//! The polling shard reader: `GetShardIterator` once, then a `GetRecords`
//! loop that honours the per-shard call rate, idles at the tip, replaces
//! expired iterators and reports the end of a closed shard.

use std::time::Duration;

use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;
use shardline_api::{Position, ShardInfo};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::error::{from_sdk, SourceError};
use crate::record::{user_records, RecordContext, UserRecords};
use crate::source::KinesisSource;
use crate::{ReadBatch, ReaderOptions, ShardReader, StartPosition};

/// First retry delay; doubles up to `ReaderOptions::max_backoff`.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// A batch that was read (state already advanced past it) but not yet
/// returned, because the child shards of a closed shard are still being
/// looked up or the call was cancelled during the idle wait.
struct Pending {
    batch: ReadBatch,
    /// The shard ended and the response named no child shards.
    needs_children: bool,
}

pub(crate) struct PollingReader {
    source: KinesisSource,
    shard_id: String,
    context: RecordContext,
    start: StartPosition,
    options: ReaderOptions,
    iterator: Option<String>,
    /// Sequence number of the last Kinesis record read.
    last_sequence: Option<String>,
    not_before: Option<Instant>,
    /// When a read last returned records (or the reader started).
    last_records_at: Instant,
    pending: Option<Pending>,
    finished: Option<Vec<String>>,
    backoff: Backoff,
}

impl PollingReader {
    pub(crate) fn new(source: KinesisSource, shard: &ShardInfo, start: StartPosition, options: ReaderOptions) -> Self {
        let context = RecordContext::new(&options.pipeline, source.stream(), shard);
        let backoff = Backoff::new(BASE_BACKOFF, options.max_backoff);
        PollingReader {
            source,
            shard_id: shard.shard_id.clone(),
            context,
            start,
            options,
            iterator: None,
            last_sequence: None,
            not_before: None,
            last_records_at: Instant::now(),
            pending: None,
            finished: None,
            backoff,
        }
    }

    fn after(&self) -> Option<&Position> {
        match &self.start {
            StartPosition::After(position) => Some(position),
            _ => None,
        }
    }

    async fn shard_iterator(&self) -> Result<String, SourceError> {
        let request = self.source.client().get_shard_iterator().stream_name(self.source.stream()).shard_id(&self.shard_id);
        let request = match (&self.last_sequence, &self.start) {
            (Some(last), _) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(last),
            (None, StartPosition::TrimHorizon) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            (None, StartPosition::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartPosition::AtTimestamp(time)) => {
                request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(DateTime::from(*time))
            }
            (None, StartPosition::After(position)) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(position.sequence.as_str()),
        };
        let ctx = self.source.ctx("GetShardIterator", Some(&self.shard_id));
        let out = request.send().await.map_err(|e| from_sdk(e, ctx))?;
        out.shard_iterator.ok_or_else(|| ctx.malformed("GetShardIterator answered no iterator"))
    }

    async fn get_records(&self, iterator: String) -> Result<GetRecordsOutput, SourceError> {
        let ctx = self.source.ctx("GetRecords", Some(&self.shard_id));
        let labels = self.context.labels();
        labels.get_records_call();
        let mut call = AbandonedCall { labels, answered: false };
        let sent = self.source.client().get_records().shard_iterator(iterator).limit(self.options.max_records).send().await;
        call.answered = true;
        sent.map_err(|e| from_sdk(e, ctx))
    }

    /// The shard no longer exists (past retention, or deleted): as the Java
    /// KCL's `KinesisDataFetcher` does, the reader ends the shard with no
    /// children instead of failing, so its lease is finished and the other
    /// shards go on.
    fn vanished(&mut self, err: &SourceError) -> ReadBatch {
        tracing::warn!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, "shard no longer exists, treating it as ended");
        self.iterator = None;
        self.finished = Some(Vec::new());
        ReadBatch { shard_end: Some(Vec::new()), ..ReadBatch::default() }
    }

    /// Advances the reader past `out` and keeps its batch as pending.
    /// Returns whether the reader is at the tip (nothing read, not behind).
    fn accept(&mut self, out: GetRecordsOutput) -> Result<bool, SourceError> {
        let bytes = out.records.iter().map(|r| r.data.as_ref().len()).sum();
        let last_sequence = out.records.last().map(|r| r.sequence_number.clone());
        let read_nothing = out.records.is_empty();
        let UserRecords { records, rejected } = user_records(out.records, &self.context, self.after())?;
        let labels = self.context.labels();
        labels.records_received(records.len());
        labels.bytes_received(bytes);
        if let Some(millis) = out.millis_behind_latest {
            labels.millis_behind_latest(millis);
        }
        if last_sequence.is_some() {
            self.last_sequence = last_sequence;
        }
        if !read_nothing {
            self.last_records_at = Instant::now();
        }
        let at_tip = read_nothing && out.millis_behind_latest.unwrap_or(0) == 0;
        let (shard_end, needs_children) = match out.next_shard_iterator {
            Some(next) => {
                self.iterator = Some(next);
                (None, false)
            }
            None => {
                self.iterator = None;
                let children: Vec<String> = out.child_shards.unwrap_or_default().into_iter().map(|c| c.shard_id).collect();
                tracing::info!(stream = %self.source.stream(), shard_id = %self.shard_id, child_shards = ?children, "reached the end of the shard");
                let needs_children = children.is_empty();
                (Some(children), needs_children)
            }
        };
        let batch = ReadBatch { records, rejected, millis_behind_latest: out.millis_behind_latest, shard_end, bytes };
        self.pending = Some(Pending { batch, needs_children });
        Ok(at_tip && !needs_children && self.iterator.is_some())
    }

    /// Sleeps before retrying a retriable error, or returns a permanent one.
    async fn back_off(&mut self, err: SourceError) -> Result<(), SourceError> {
        if !err.kind().is_retriable() {
            tracing::error!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, "permanent error reading shard");
            return Err(err);
        }
        self.context.labels().retry(err.retry_reason());
        let delay = self.backoff.next_delay();
        tracing::warn!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, delay_ms = delay.as_millis() as u64, "retrying after error");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ShardReader for PollingReader {
    async fn next_batch(&mut self) -> Result<ReadBatch, SourceError> {
        if let Some(children) = &self.finished {
            return Ok(ReadBatch { shard_end: Some(children.clone()), ..ReadBatch::default() });
        }
        loop {
            if let Some(pending) = &mut self.pending {
                if pending.needs_children {
                    let children = self.source.child_shard_ids(&self.shard_id).await?;
                    pending.batch.shard_end = Some(children);
                    pending.needs_children = false;
                }
                let Some(Pending { batch, .. }) = self.pending.take() else { continue };
                if let Some(children) = &batch.shard_end {
                    self.finished = Some(children.clone());
                }
                return Ok(batch);
            }
            if let Some(at) = self.not_before {
                tokio::time::sleep_until(at).await;
            }
            let iterator = match &self.iterator {
                Some(iterator) => iterator.clone(),
                None => match self.shard_iterator().await {
                    Ok(iterator) => {
                        self.iterator = Some(iterator.clone());
                        iterator
                    }
                    Err(err @ SourceError::ResourceNotFound { .. }) => return Ok(self.vanished(&err)),
                    Err(err) => {
                        self.back_off(err).await?;
                        continue;
                    }
                },
            };
            self.not_before = Some(Instant::now() + self.options.poll_interval);
            match self.get_records(iterator).await {
                Ok(out) => {
                    self.backoff.reset();
                    if self.accept(out)? {
                        if let Some(wait) = idle_wait(&self.options, self.last_records_at.elapsed()) {
                            // the empty batch is pending: a cancelled sleep loses nothing
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                Err(SourceError::ExpiredIterator { .. }) => {
                    tracing::info!(stream = %self.source.stream(), shard_id = %self.shard_id, after = ?self.last_sequence, "shard iterator expired, getting a new one");
                    self.context.labels().retry("expired_iterator");
                    self.iterator = None;
                }
                Err(err @ SourceError::ResourceNotFound { .. }) => return Ok(self.vanished(&err)),
                Err(err) => self.back_off(err).await?,
            }
        }
    }
}

/// The wait after an empty read at the tip of a shard that last returned
/// records `quiet_for` ago: none while it is recently active (the next call
/// follows after `poll_interval`, as after a full read, so a record put a
/// moment after an empty read waits at most one `poll_interval`), and
/// `idle_interval` once it has been quiet for `idle_after`, to spend few
/// calls on a shard nobody writes to.
fn idle_wait(options: &ReaderOptions, quiet_for: Duration) -> Option<Duration> {
    (quiet_for >= options.idle_after).then_some(options.idle_interval)
}

/// Counts a `GetRecords` call dropped before its response arrived.
struct AbandonedCall<'a> {
    labels: &'a crate::telemetry::ShardLabels,
    answered: bool,
}

impl Drop for AbandonedCall<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.labels.get_records_abandoned();
        }
    }
}

#[cfg(test)]
mod pacing_tests {
    use std::time::Duration;

    use super::idle_wait;
    use crate::ReaderOptions;

    #[test]
    fn an_active_shard_is_polled_at_the_poll_interval_and_a_quiet_one_slows() {
        let options = ReaderOptions::default();
        assert_eq!((options.poll_interval, options.idle_after, options.idle_interval), (Duration::from_millis(200), Duration::from_secs(2), Duration::from_secs(1)));
        assert_eq!(idle_wait(&options, Duration::from_millis(300)), None, "records 300 ms ago: no extra wait");
        assert_eq!(idle_wait(&options, Duration::from_millis(1999)), None);
        assert_eq!(idle_wait(&options, Duration::from_secs(2)), Some(Duration::from_secs(1)), "quiet for idle_after: idle_interval");
        let always = ReaderOptions { idle_after: Duration::ZERO, ..ReaderOptions::default() };
        assert_eq!(idle_wait(&always, Duration::ZERO), Some(Duration::from_secs(1)), "idle_after 0: every empty read waits");
    }
}

//! The enhanced fan-out shard reader: `SubscribeToShard` through a
//! registered consumer, one [`ReadBatch`] per `SubscribeToShardEvent`.
//!
//! A subscription lasts at most five minutes; the reader resubscribes
//! `AFTER_SEQUENCE_NUMBER` of the last event's `ContinuationSequenceNumber`
//! whenever the event stream ends or fails (with back-off after errors,
//! e.g. `ResourceInUse` while another subscription to the shard is open).
//!
//! The event stream is pumped by a task into a one-slot channel, so
//! `next_batch` only awaits a channel receive (cancel-safe) and the
//! reader's position only moves when it takes an event out of the channel.
//! The task is aborted when the reader is dropped or resubscribes.

use std::time::Duration;

use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEvent, SubscribeToShardEventStream, ShardIteratorType};
use aws_smithy_types::DateTime;
use shardline_api::{Position, ShardInfo};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::error::{from_sdk, SourceError};
use crate::record::{user_records, RecordContext, UserRecords};
use crate::source::KinesisSource;
use crate::{ReadBatch, ReaderOptions, ShardReader, StartPosition};

const BASE_BACKOFF: Duration = Duration::from_millis(200);

enum Item {
    Event(SubscribeToShardEvent),
    Failed(SourceError),
}

/// One open subscription: the pump task and its channel.
struct Subscription {
    events: mpsc::Receiver<Item>,
    task: JoinHandle<()>,
    delivered: usize,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct FanOutReader {
    source: KinesisSource,
    shard_id: String,
    context: RecordContext,
    start: StartPosition,
    consumer_name: String,
    consumer_arn: Option<String>,
    /// `ContinuationSequenceNumber` of the last event taken.
    continuation: Option<String>,
    subscription: Option<Subscription>,
    /// A shard-end batch whose child shards are still being looked up.
    pending: Option<ReadBatch>,
    finished: Option<Vec<String>>,
    backoff: Backoff,
}

impl FanOutReader {
    pub(crate) fn new(source: KinesisSource, shard: &ShardInfo, start: StartPosition, consumer_name: String, options: ReaderOptions) -> Self {
        let context = RecordContext::new(&options.pipeline, source.stream(), shard);
        FanOutReader {
            source,
            shard_id: shard.shard_id.clone(),
            context,
            start,
            consumer_name,
            consumer_arn: None,
            continuation: None,
            subscription: None,
            pending: None,
            finished: None,
            backoff: Backoff::new(BASE_BACKOFF, options.max_backoff),
        }
    }

    fn after(&self) -> Option<&Position> {
        match &self.start {
            StartPosition::After(position) => Some(position),
            _ => None,
        }
    }

    fn starting_position(&self) -> Result<StartingPosition, SourceError> {
        let builder = StartingPosition::builder();
        let builder = match (&self.continuation, &self.start) {
            (Some(seq), _) => builder.r#type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
            (None, StartPosition::TrimHorizon) => builder.r#type(ShardIteratorType::TrimHorizon),
            (None, StartPosition::Latest) => builder.r#type(ShardIteratorType::Latest),
            (None, StartPosition::AtTimestamp(time)) => builder.r#type(ShardIteratorType::AtTimestamp).timestamp(DateTime::from(*time)),
            (None, StartPosition::After(position)) => {
                builder.r#type(ShardIteratorType::AtSequenceNumber).sequence_number(position.sequence.as_str())
            }
        };
        builder.build().map_err(|e| self.source.ctx("SubscribeToShard", Some(&self.shard_id)).malformed(e.to_string()))
    }

    fn subscribe(&mut self, consumer_arn: String) -> Result<(), SourceError> {
        let position = self.starting_position()?;
        tracing::debug!(stream = %self.source.stream(), shard_id = %self.shard_id, starting_position = ?position, "subscribing to shard");
        let (tx, rx) = mpsc::channel(1);
        let source = self.source.clone();
        let shard_id = self.shard_id.clone();
        let task = tokio::spawn(async move {
            let ctx = source.ctx("SubscribeToShard", Some(&shard_id));
            let sent = source
                .client()
                .subscribe_to_shard()
                .consumer_arn(consumer_arn)
                .shard_id(&shard_id)
                .starting_position(position)
                .send()
                .await;
            let mut stream = match sent {
                Ok(out) => out.event_stream,
                Err(e) => {
                    let _ = tx.send(Item::Failed(from_sdk(e, ctx))).await;
                    return;
                }
            };
            loop {
                match stream.recv().await {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                        if tx.send(Item::Event(event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {} // event types this SDK version does not know
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Item::Failed(from_sdk(e, ctx))).await;
                        return;
                    }
                }
            }
        });
        self.subscription = Some(Subscription { events: rx, task, delivered: 0 });
        Ok(())
    }

    /// Advances past `event` and returns its batch; `Ok(None)` never.
    fn accept(&mut self, event: SubscribeToShardEvent) -> Result<ReadBatch, SourceError> {
        let bytes = event.records.iter().map(|r| r.data.as_ref().len()).sum();
        let UserRecords { records, rejected } = user_records(event.records, &self.context, self.after())?;
        let labels = self.context.labels();
        labels.records_received(records.len());
        labels.bytes_received(bytes);
        labels.millis_behind_latest(event.millis_behind_latest);
        let mut batch = ReadBatch { records, rejected, millis_behind_latest: Some(event.millis_behind_latest), shard_end: None, bytes };
        if event.continuation_sequence_number.is_empty() {
            let children: Vec<String> = event.child_shards.unwrap_or_default().into_iter().map(|c| c.shard_id).collect();
            tracing::info!(stream = %self.source.stream(), shard_id = %self.shard_id, child_shards = ?children, "reached the end of the shard");
            self.subscription = None;
            batch.shard_end = Some(children);
        } else {
            self.continuation = Some(event.continuation_sequence_number);
        }
        Ok(batch)
    }

    async fn back_off(&mut self, err: SourceError) -> Result<(), SourceError> {
        if !err.kind().is_retriable() {
            tracing::error!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, "permanent error reading shard");
            return Err(err);
        }
        self.context.labels().retry(err.retry_reason());
        let delay = self.backoff.next_delay();
        tracing::warn!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, delay_ms = delay.as_millis() as u64, "resubscribing after error");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn finish(&mut self, batch: ReadBatch) -> ReadBatch {
        if let Some(children) = &batch.shard_end {
            self.finished = Some(children.clone());
        }
        batch
    }
}

#[async_trait::async_trait]
impl ShardReader for FanOutReader {
    async fn next_batch(&mut self) -> Result<ReadBatch, SourceError> {
        if let Some(children) = &self.finished {
            return Ok(ReadBatch { shard_end: Some(children.clone()), ..ReadBatch::default() });
        }
        loop {
            if let Some(pending) = &mut self.pending {
                if pending.shard_end.as_ref().is_some_and(Vec::is_empty) {
                    pending.shard_end = Some(self.source.child_shard_ids(&self.shard_id).await?);
                }
                let Some(batch) = self.pending.take() else { continue };
                return Ok(self.finish(batch));
            }
            let consumer_arn = match &self.consumer_arn {
                Some(arn) => arn.clone(),
                None => match self.source.ensure_consumer(&self.consumer_name).await {
                    Ok(arn) => {
                        self.consumer_arn = Some(arn.clone());
                        arn
                    }
                    Err(err) => {
                        self.back_off(err).await?;
                        continue;
                    }
                },
            };
            let Some(subscription) = &mut self.subscription else {
                self.subscribe(consumer_arn)?;
                continue;
            };
            match subscription.events.recv().await {
                Some(Item::Event(event)) => {
                    subscription.delivered += 1;
                    self.backoff.reset();
                    let batch = self.accept(event)?;
                    if batch.shard_end.as_ref().is_some_and(Vec::is_empty) {
                        self.pending = Some(batch);
                        continue;
                    }
                    return Ok(self.finish(batch));
                }
                Some(Item::Failed(err @ SourceError::ResourceNotFound { .. })) => {
                    self.subscription = None;
                    // SubscribeToShard says ResourceNotFound both for a shard
                    // that no longer exists and for a consumer that was
                    // deregistered. Only the first is the end of the shard
                    // (as the Java KCL treats it); ending a live shard would
                    // skip its records, so ask the listing first.
                    match self.source.list_shards().await {
                        Ok(shards) if !shards.iter().any(|s| s.shard_id == self.shard_id) => {
                            tracing::warn!(stream = %self.source.stream(), shard_id = %self.shard_id, error = %err, "shard no longer exists, treating it as ended");
                            return Ok(self.finish(ReadBatch { shard_end: Some(Vec::new()), ..ReadBatch::default() }));
                        }
                        Ok(_) => {
                            tracing::warn!(stream = %self.source.stream(), shard_id = %self.shard_id, consumer = %self.consumer_name, error = %err, "shard still listed, so the consumer is gone; registering it again");
                            if let Some(arn) = self.consumer_arn.take() {
                                self.source.forget_consumer(&self.consumer_name, &arn).await;
                            }
                            self.context.labels().retry("consumer_not_found");
                            tokio::time::sleep(self.backoff.next_delay()).await;
                        }
                        Err(list_err) => self.back_off(list_err).await?,
                    }
                }
                Some(Item::Failed(err)) => {
                    self.subscription = None;
                    self.back_off(err).await?;
                }
                None => {
                    let delivered = subscription.delivered;
                    self.subscription = None;
                    tracing::debug!(stream = %self.source.stream(), shard_id = %self.shard_id, events = delivered, "subscription ended, resubscribing");
                    if delivered == 0 {
                        self.context.labels().retry("subscription_ended");
                        tokio::time::sleep(self.backoff.next_delay()).await;
                    }
                }
            }
        }
    }
}

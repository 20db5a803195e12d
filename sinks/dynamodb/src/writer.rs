//! Writing prepared requests: `BatchWriteItem` with retries of
//! `UnprocessedItems` and of throttled or failed requests, and per-item
//! `PutItem` to isolate the item(s) behind a refused request.
//!
//! **Retries.** A request's `UnprocessedItems` (and a whole request that
//! was throttled, answered 5xx, timed out or could not connect) are sent
//! again after an exponential back-off with jitter (from
//! `unprocessed_retry_initial_backoff`, doubled per attempt up to
//! `unprocessed_retry_max_backoff`, each wait drawn between half and all of
//! it) until `unprocessed_retry_timeout` has passed since the request was
//! first sent. Items still unwritten then are answered **retriable** to the
//! engine, with the last reason: the engine retries them with its own
//! back-off and dead-letters them once `delivery.retry_attempts` are used
//! up. Nothing is dropped: every record gets an answer, and an item is
//! answered delivered only when DynamoDB did not list it as unprocessed.
//!
//! **Refused requests.** When DynamoDB refuses a whole `BatchWriteItem`
//! (`ValidationException` or another 4xx that is not about the table, e.g.
//! an index key of the wrong type), its items are written one by one with
//! `PutItem`: each answer is then the item's own, and an item DynamoDB
//! refuses is rejected with the service's code and message while the
//! others land.
//!
//! A missing table or denied access fails the whole `send` permanently.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::StreamExt as _;
use rand::Rng as _;
use shardline_plugin_sdk::RecordStatus;

use crate::batch::Entry;
use crate::error::{classify, DynamoError};
use crate::keys::KeySchema;

/// How long and how fast unwritten items are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Give up after this long since a request was first sent.
    pub timeout: Duration,
    /// First back-off.
    pub initial_backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
}

impl RetrySettings {
    /// The wait before retry number `attempt` (1 for the first retry):
    /// `initial × 2^(attempt-1)` capped at the maximum, then drawn
    /// uniformly between half and all of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let ceiling = doubled.min(self.max_backoff);
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(rand::thread_rng().gen::<f64>())
    }
}

/// Answers for records, by index in the batch.
pub type Answers = Vec<(usize, RecordStatus)>;

/// Writes items into one table.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The client.
    pub client: Client,
    /// The table.
    pub table: String,
    /// Its key.
    pub keys: KeySchema,
    /// Retries of unwritten items.
    pub retry: RetrySettings,
    /// Requests in flight.
    pub concurrency: usize,
}

fn put_request(table: &str, entry: &Entry) -> Result<WriteRequest, DynamoError> {
    let put = PutRequest::builder().set_item(Some(entry.item.clone())).build().map_err(|e| DynamoError::Refused {
        table: table.to_owned(),
        operation: "BatchWriteItem",
        code: "construction".to_owned(),
        message: e.to_string(),
    })?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl Writer {
    /// Writes every chunk (up to `concurrency` at once) and answers every
    /// entry.
    ///
    /// # Errors
    /// A table-level [`DynamoError`] (missing table, access denied).
    pub async fn write(&self, chunks: Vec<Vec<Entry>>) -> Result<Answers, DynamoError> {
        let mut results = futures::stream::iter(chunks).map(|chunk| self.write_chunk(chunk)).buffer_unordered(self.concurrency.max(1));
        let mut answers = Vec::new();
        while let Some(result) = results.next().await {
            answers.extend(result?);
        }
        Ok(answers)
    }

    /// One `BatchWriteItem` request and its retries.
    async fn write_chunk(&self, chunk: Vec<Entry>) -> Result<Answers, DynamoError> {
        let started = Instant::now();
        let deadline = started + self.retry.timeout;
        let total = chunk.len();
        let mut pending = chunk;
        let mut answers = Vec::with_capacity(total);
        let mut attempt = 0u32;
        loop {
            let requests = pending.iter().map(|e| put_request(&self.table, e)).collect::<Result<Vec<_>, _>>()?;
            let sent = requests.len();
            let outcome = self.client.batch_write_item().request_items(&self.table, requests).send().await;
            let why = match outcome {
                Ok(output) => {
                    let unprocessed = output.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                    if unprocessed.is_empty() {
                        answers.extend(pending.drain(..).map(|e| (e.record, RecordStatus::Delivered)));
                        return Ok(answers);
                    }
                    let left: HashSet<String> = unprocessed
                        .iter()
                        .filter_map(|w| w.put_request().and_then(|p| self.keys.identity(p.item())))
                        .collect();
                    if left.len() == unprocessed.len() {
                        let (still, done): (Vec<Entry>, Vec<Entry>) = pending.into_iter().partition(|e| left.contains(&e.identity));
                        answers.extend(done.into_iter().map(|e| (e.record, RecordStatus::Delivered)));
                        pending = still;
                    } else {
                        // An unprocessed item we cannot match: keep every
                        // item pending rather than guess (puts are idempotent).
                        tracing::warn!(table = %self.table, "unprocessed items do not match the request, sending the whole request again");
                    }
                    format!("DynamoDB left {} of {sent} items unprocessed (UnprocessedItems)", unprocessed.len())
                }
                Err(e) => match classify(e, &self.table, "BatchWriteItem") {
                    e @ (DynamoError::Unavailable { .. } | DynamoError::NotActive { .. }) => e.to_string(),
                    e if e.is_table_level() => return Err(e),
                    e => {
                        tracing::warn!(table = %self.table, items = pending.len(), error = %e, "batch write refused, writing the items one by one to isolate the refused ones");
                        answers.extend(self.put_individually(pending).await?);
                        return Ok(answers);
                    }
                },
            };
            if pending.is_empty() {
                return Ok(answers);
            }
            attempt += 1;
            let wait = self.retry.backoff(attempt);
            if Instant::now() + wait > deadline {
                tracing::warn!(
                    table = %self.table,
                    items = pending.len(),
                    attempts = attempt,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    reason = %why,
                    "items still unwritten after unprocessed_retry_timeout, answering them retriable"
                );
                let reason = format!("not written after retrying for {:?}: {why}", self.retry.timeout);
                answers.extend(pending.into_iter().map(|e| (e.record, RecordStatus::Retriable { reason: reason.clone(), backoff: None })));
                return Ok(answers);
            }
            tracing::debug!(table = %self.table, items = pending.len(), attempt, wait_ms = wait.as_millis() as u64, reason = %why, "retrying unwritten items");
            tokio::time::sleep(wait).await;
        }
    }

    /// `PutItem` for each entry: every item gets its own answer.
    async fn put_individually(&self, entries: Vec<Entry>) -> Result<Answers, DynamoError> {
        let mut results = futures::stream::iter(entries).map(|entry| self.put_one(entry)).buffer_unordered(self.concurrency.max(1));
        let mut answers = Vec::new();
        while let Some(result) = results.next().await {
            answers.push(result?);
        }
        Ok(answers)
    }

    async fn put_one(&self, entry: Entry) -> Result<(usize, RecordStatus), DynamoError> {
        let key = self.keys.describe(&entry.item);
        let outcome = self.client.put_item().table_name(&self.table).set_item(Some(entry.item)).send().await;
        let status = match outcome {
            Ok(_) => RecordStatus::Delivered,
            Err(e) => match classify(e, &self.table, "PutItem") {
                DynamoError::Refused { code, message, .. } => {
                    tracing::debug!(table = %self.table, key = %key, code = %code, message = %message, "item refused");
                    RecordStatus::Rejected { reason: format!("DynamoDB refused the item ({key}): {code}: {message}") }
                }
                e if e.is_table_level() => return Err(e),
                e => RecordStatus::Retriable { reason: e.to_string(), backoff: None },
            },
        };
        Ok((entry.record, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let retry = RetrySettings { timeout: Duration::from_secs(30), initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(1) };
        for _ in 0..50 {
            let first = retry.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = retry.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = retry.backoff(40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1), "{late:?}");
        }
    }
}

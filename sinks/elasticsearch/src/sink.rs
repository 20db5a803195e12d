//! The batching loop: one engine batch becomes one or more `_bulk`
//! requests, sent in order, and every record gets its own answer.

use std::collections::VecDeque;

use bytes::Bytes;
use shardline_plugin_sdk::{ErrorKind, Record, RecordStatus, SinkError};

use crate::config::{Compression, OpType};
use crate::error::EsError;
use crate::request_builder::{self, Action, ActionSettings};
use crate::retry::item_statuses;
use crate::service::{body_start, Service};

/// Bodies larger than this are gzipped on a blocking thread.
const INLINE_GZIP_LIMIT: usize = 64 * 1024;

/// How batches are cut and sent.
pub struct Bulk {
    /// The HTTP client.
    pub service: Service,
    /// Record → action.
    pub settings: ActionSettings,
    /// Most actions per request.
    pub max_actions: usize,
    /// Most uncompressed bytes per request.
    pub max_bytes: u64,
    /// Body compression.
    pub compression: Compression,
}

impl Bulk {
    /// Sends `batch` and answers one status per record.
    ///
    /// # Errors
    /// A retriable [`SinkError`] when the first request fails as a whole
    /// (cluster down, 5xx, 429): the engine retries the batch with back-off.
    /// Once a request was answered, later failures become per-record
    /// `Retriable` statuses so delivered records are not sent again.
    pub async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let mut statuses: Vec<Option<RecordStatus>> = vec![None; batch.len()];
        let mut actions: Vec<(usize, Action)> = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            match request_builder::action(record, &self.settings) {
                Ok(action) => actions.push((i, action)),
                Err(reason) => statuses[i] = Some(RecordStatus::Rejected { reason }),
            }
        }
        let sizes: Vec<usize> = actions.iter().map(|(_, a)| a.lines.len()).collect();
        let mut queue: VecDeque<Vec<usize>> =
            request_builder::split(&sizes, self.max_actions, self.max_bytes).into_iter().map(|r| r.collect()).collect();
        let mut answered_any = false;
        while let Some(request) = queue.pop_front() {
            let chunk: Vec<&Action> = request.iter().map(|&a| &actions[a].1).collect();
            match self.bulk(&chunk).await {
                Ok(answers) => {
                    answered_any = true;
                    for (&a, status) in request.iter().zip(answers) {
                        statuses[actions[a].0] = Some(status);
                    }
                }
                // Too large for the cluster's `http.max_content_length`:
                // send the documents one by one; a single one is rejected.
                Err(EsError::Status { status: 413, .. }) if request.len() > 1 => {
                    tracing::debug!(actions = request.len(), "the cluster refused a _bulk request as too large; sending its documents alone");
                    for a in request.into_iter().rev() {
                        queue.push_front(vec![a]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Retriable => {
                    if !answered_any {
                        return Err(e.into());
                    }
                    let reason = e.to_string();
                    for a in request.into_iter().chain(queue.drain(..).flatten()) {
                        statuses[actions[a].0] = Some(RecordStatus::Retriable { reason: reason.clone(), backoff: None });
                    }
                }
                Err(e) => {
                    answered_any = true;
                    let reason = e.to_string();
                    for a in request {
                        statuses[actions[a].0] = Some(RecordStatus::Rejected { reason: reason.clone() });
                    }
                }
            }
        }
        Ok(statuses
            .into_iter()
            .map(|s| s.unwrap_or_else(|| RecordStatus::Retriable { reason: "not sent".to_owned(), backoff: None }))
            .collect())
    }

    /// One `_bulk` request: a status per action, or the request's failure.
    async fn bulk(&self, chunk: &[&Action]) -> Result<Vec<RecordStatus>, EsError> {
        let body = request_builder::body(chunk.iter().copied());
        let gzipped = self.compression == Compression::Gzip;
        let body = if !gzipped {
            Bytes::from(body)
        } else if body.len() <= INLINE_GZIP_LIMIT {
            Bytes::from(request_builder::gzip(&body).map_err(|e| self.bad(format!("gzip: {e}")))?)
        } else {
            let compressed = tokio::task::spawn_blocking(move || request_builder::gzip(&body))
                .await
                .map_err(|e| self.bad(format!("gzip task: {e}")))?;
            Bytes::from(compressed.map_err(|e| self.bad(format!("gzip: {e}")))?)
        };
        let answer = self.service.request(http::Method::POST, "/_bulk", body, gzipped).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(EsError::Status {
                endpoint: self.service.endpoint(),
                what: format!("POST /_bulk ({} documents)", chunk.len()),
                status: answer.status,
                body: body_start(&answer.body),
            });
        }
        let op_type: OpType = self.settings.op_type;
        let statuses = item_statuses(&answer.body, chunk.len(), op_type).map_err(|message| self.bad(message))?;
        let failed = statuses.iter().filter(|s| **s != RecordStatus::Delivered).count();
        tracing::debug!(documents = chunk.len(), failed, "_bulk request answered");
        Ok(statuses)
    }

    fn bad(&self, message: String) -> EsError {
        EsError::BadAnswer { endpoint: self.service.endpoint(), what: "POST /_bulk".to_owned(), message }
    }
}

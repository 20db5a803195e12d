//! What to do with each answer: the HTTP status of a whole request, and
//! every item of a `_bulk` response (delivered, retried alone, or
//! rejected to the dead-letter destination with the cluster's error).

use std::time::Duration;

use serde::Deserialize;
use shardline_plugin_sdk::{ErrorKind, RecordStatus};

use crate::config::OpType;

/// The back-off hint for an item the cluster throttled (429): its write
/// queue was full, so give it a moment beyond the engine's own back-off.
pub const THROTTLED_ITEM_BACKOFF: Duration = Duration::from_secs(1);

/// How a whole request's HTTP status is handled (the status of a `_bulk`
/// answer is 200 even when items failed).
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        // Throttled, unavailable, timeouts and proxies in between: the
        // cluster may come back.
        408 | 429 | 500..=599 => ErrorKind::Retriable,
        // Credentials that expired or a role being fixed: stall and retry
        // (healthcheck refuses them at start), rather than dead-letter every
        // record while the cluster is fine. This differs from the shared
        // AWS classifier (`shardline_aws::classify`: expired credentials
        // retriable, invalid ones permanent) because a cluster's 401/403
        // carries no AWS error code saying which of the two it is.
        401 | 403 => ErrorKind::Retriable,
        _ => ErrorKind::Permanent,
    }
}

/// The body of a `_bulk` answer.
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    /// True when at least one item failed.
    #[serde(default)]
    pub errors: bool,
    /// One entry per action, in request order: `{"<op>": {...}}`.
    pub items: Vec<std::collections::HashMap<String, BulkItem>>,
}

/// One item of a `_bulk` answer.
#[derive(Debug, Deserialize)]
pub struct BulkItem {
    /// HTTP status of this item.
    pub status: u16,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// The index it went to.
    #[serde(default, rename = "_index")]
    pub index: Option<String>,
    /// The document id.
    #[serde(default, rename = "_id")]
    pub id: Option<String>,
}

/// `type: reason (caused by type: reason)` of an item's error.
pub fn describe_error(error: &serde_json::Value) -> String {
    let one = |e: &serde_json::Value| -> String {
        match (e.get("type").and_then(|t| t.as_str()), e.get("reason").and_then(|r| r.as_str())) {
            (Some(t), Some(r)) => format!("{t}: {r}"),
            (Some(t), None) => t.to_owned(),
            (None, Some(r)) => r.to_owned(),
            (None, None) => e.to_string(),
        }
    };
    let mut text = one(error);
    let mut cause = error.get("caused_by");
    let mut depth = 0;
    while let (Some(c), true) = (cause, depth < 3) {
        text.push_str(&format!(" (caused by {})", one(c)));
        cause = c.get("caused_by");
        depth += 1;
    }
    text
}

/// The status of one item.
pub fn item_status(item: &BulkItem, op_type: OpType) -> RecordStatus {
    let described = || {
        let error = item.error.as_ref().map(describe_error).unwrap_or_else(|| "no error given".to_owned());
        format!(
            "the cluster answered {} for index {}, id {}: {error}",
            item.status,
            item.index.as_deref().unwrap_or("?"),
            item.id.as_deref().unwrap_or("?")
        )
    };
    match item.status {
        200..=299 => RecordStatus::Delivered,
        // `create` of a document that is there: a batch sent again after a
        // crash or a lost answer. Its first attempt stored it.
        409 if op_type == OpType::Create => RecordStatus::Delivered,
        429 => RecordStatus::Retriable { reason: described(), backoff: Some(THROTTLED_ITEM_BACKOFF) },
        408 | 500..=599 => RecordStatus::Retriable { reason: described(), backoff: None },
        _ => RecordStatus::Rejected { reason: described() },
    }
}

/// One status per action of a request of `expected` actions.
///
/// # Errors
/// When the body is not a `_bulk` answer for that many actions (the whole
/// request is then retried: it is idempotent with deterministic ids).
pub fn item_statuses(body: &[u8], expected: usize, op_type: OpType) -> Result<Vec<RecordStatus>, String> {
    let response: BulkResponse = serde_json::from_slice(body).map_err(|e| format!("the _bulk answer is not JSON of the expected shape: {e}"))?;
    if response.items.len() != expected {
        return Err(format!("the _bulk answer has {} items for {expected} actions", response.items.len()));
    }
    let statuses: Vec<RecordStatus> = response
        .items
        .iter()
        .map(|item| match item.values().next() {
            Some(item) => item_status(item, op_type),
            None => RecordStatus::Retriable { reason: "an empty item in the _bulk answer".to_owned(), backoff: None },
        })
        .collect();
    if !response.errors && statuses.iter().any(|s| *s != RecordStatus::Delivered) {
        tracing::debug!("the _bulk answer says errors=false but has failed items");
    }
    Ok(statuses)
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;

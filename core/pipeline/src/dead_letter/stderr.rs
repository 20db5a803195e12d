//! Dead letters as NDJSON lines on standard error.

use std::io::Write;

use async_trait::async_trait;
use shardline_api::SinkError;

use super::{encode, DeadLetter, DeadLetterEntry};

/// Writes each dead letter as one [`envelope`](crate::envelope) line to
/// standard error.
#[derive(Debug, Clone, Default)]
pub struct StderrDeadLetter;

impl StderrDeadLetter {
    /// The stderr destination.
    pub fn new() -> Self {
        StderrDeadLetter
    }
}

#[async_trait]
impl DeadLetter for StderrDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        let lines = encode(entries);
        tokio::task::spawn_blocking(move || {
            let mut err = std::io::stderr().lock();
            err.write_all(&lines).and_then(|()| err.flush())
        })
        .await
        .map_err(|e| SinkError::retriable(format!("dead letters to stderr: {e}")))?
        .map_err(|e| SinkError::retriable(format!("dead letters to stderr: {e}")))
    }
}

//! The `stdout` sink: one line per record on standard output.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use shardline_api::{Record, RecordStatus, Sink, SinkError};

use super::{Format, StdoutSinkConfig};

/// Writes each batch to standard output in one locked write.
#[derive(Debug, Clone)]
pub struct StdoutSink {
    format: Format,
    pipeline: Arc<str>,
}

impl StdoutSink {
    /// A stdout sink for `pipeline`.
    pub fn new(cfg: &StdoutSinkConfig, pipeline: &str) -> Self {
        StdoutSink { format: cfg.format, pipeline: Arc::from(pipeline) }
    }
}

async fn write_stdout(data: Vec<u8>) -> Result<(), SinkError> {
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::stdout().lock();
        out.write_all(&data).and_then(|()| out.flush())
    })
    .await
    .map_err(|e| SinkError::retriable(format!("stdout: {e}")))?
    .map_err(|e| SinkError::retriable(format!("stdout: {e}")))
}

#[async_trait]
impl Sink for StdoutSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        write_stdout(self.format.encode(&self.pipeline, batch)).await?;
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }

    async fn flush(&self) -> Result<(), SinkError> {
        write_stdout(Vec::new()).await
    }
}

//! [`CallTimeout`]: a deadline on every call into a sink
//! (`[delivery] call_timeout`).
//!
//! A sink call that never completes (a hung connection, a plugin that never
//! answers) would otherwise pin a shard forever: a hung `send` holds the
//! watermark while the lease is still renewed, a hung `flush` blocks every
//! checkpoint. Past the deadline the call's future is dropped and the call
//! fails with a retriable [`SinkError`], so the engine's retry, back-off and
//! dead-letter path (bounded by `retry_attempts`) takes over for a `send`,
//! and the shard worker postpones the checkpoint for a `flush` and tries
//! again at its next checkpoint.
//!
//! The wrapped sink must be cancel safe (dropping a call's future must not
//! corrupt it); the built-in sinks and the plugin host are. A plugin may
//! still complete an abandoned call later; the host ignores that answer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shardline_api::{BatchFence, Record, RecordStatus, Sink, SinkError};

/// A sink whose every call is bounded by a deadline. See the
/// [module docs](self).
pub struct CallTimeout {
    inner: Arc<dyn Sink>,
    timeout: Duration,
    pipeline: Arc<str>,
}

impl std::fmt::Debug for CallTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTimeout").field("timeout", &self.timeout).field("pipeline", &self.pipeline).finish_non_exhaustive()
    }
}

impl CallTimeout {
    /// `sink` with every call bounded by `timeout` (at least 1ms). Wrap a
    /// sink once, where it is built: [`ShardPipeline`](crate::ShardPipeline)
    /// does not wrap the sink it is given.
    pub fn wrap(sink: Arc<dyn Sink>, timeout: Duration, pipeline: &str) -> Arc<dyn Sink> {
        Arc::new(CallTimeout { inner: sink, timeout: timeout.max(Duration::from_millis(1)), pipeline: Arc::from(pipeline) })
    }

    async fn bounded<T>(&self, call: &'static str, future: impl std::future::Future<Output = Result<T, SinkError>>) -> Result<T, SinkError> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(result) => result,
            Err(_) => {
                metrics::counter!("shardline_sink_call_timeouts_total", "pipeline" => self.pipeline.to_string(), "call" => call)
                    .increment(1);
                tracing::warn!(pipeline = %self.pipeline, call, timeout_ms = self.timeout.as_millis() as u64,
                    "sink call abandoned after call_timeout");
                Err(SinkError::retriable(format!(
                    "sink {call} did not complete within call_timeout ({}); abandoned, to be retried",
                    humantime::format_duration(self.timeout)
                )))
            }
        }
    }
}

#[async_trait]
impl Sink for CallTimeout {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.bounded("healthcheck", self.inner.healthcheck()).await
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.bounded("send", self.inner.send(batch)).await
    }

    async fn send_fenced(&self, fence: &BatchFence, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.bounded("send", self.inner.send_fenced(fence, batch)).await
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.bounded("flush", self.inner.flush()).await
    }

    async fn close(&self) -> Result<(), SinkError> {
        self.bounded("close", self.inner.close()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Hangs in `flush` and `send` until `calls` reaches `hang_for`, then
    /// answers at once.
    struct HangsFirst {
        calls: AtomicU32,
        hang_for: u32,
    }

    impl HangsFirst {
        async fn maybe_hang(&self) {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.hang_for {
                std::future::pending::<()>().await;
            }
        }
    }

    #[async_trait]
    impl Sink for HangsFirst {
        async fn healthcheck(&self) -> Result<(), SinkError> {
            self.maybe_hang().await;
            Ok(())
        }
        async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
            self.maybe_hang().await;
            Ok(vec![RecordStatus::Delivered; batch.len()])
        }
        async fn flush(&self) -> Result<(), SinkError> {
            self.maybe_hang().await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_flush_is_a_retriable_error_at_the_deadline_and_the_next_one_runs() {
        let sink = CallTimeout::wrap(Arc::new(HangsFirst { calls: AtomicU32::new(0), hang_for: 1 }), Duration::from_secs(120), "p");
        let started = tokio::time::Instant::now();
        let err = sink.flush().await.expect_err("the hung flush is abandoned");
        assert_eq!(started.elapsed(), Duration::from_secs(120));
        assert!(err.kind.is_retriable(), "{err}");
        assert!(err.message.contains("flush") && err.message.contains("call_timeout (2m)"), "{err}");
        sink.flush().await.expect("the next flush completes");
        sink.healthcheck().await.expect("healthcheck");
        sink.close().await.expect("close");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_within_the_deadline_is_untouched() {
        let sink = CallTimeout::wrap(Arc::new(HangsFirst { calls: AtomicU32::new(0), hang_for: 0 }), Duration::from_millis(5), "p");
        sink.flush().await.expect("flush");
        assert!(sink.send(&[]).await.expect("send").is_empty());
    }
}

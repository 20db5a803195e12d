//! The `[buffer]` and `[delivery]` sections of a pipeline.

use serde::Deserialize;
use shardline_api::{ByteSize, HumanDuration};

/// Problems found by a `validate()`: `(key, message)` pairs.
pub type Problems = Vec<(String, String)>;

/// `[buffer]`: when a shard's buffered records are flushed to the sink.
/// A batch is flushed when any limit is reached, whichever comes first,
/// also while the shard is idle.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Most records in one batch (counted after transforms). Default 1000,
    /// must be at least 1.
    pub max_records: usize,
    /// Most bytes in one batch (payload sizes; a single larger record is
    /// sent alone). Default `"5MiB"`.
    pub max_bytes: ByteSize,
    /// Longest time a record waits in the buffer before its batch is
    /// flushed. Default `"60s"`.
    pub max_age: HumanDuration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig { max_records: 1000, max_bytes: ByteSize(5 << 20), max_age: HumanDuration::from_secs(60) }
    }
}

impl BufferConfig {
    /// Checks the values without I/O.
    ///
    /// # Errors
    /// Every `(key, message)` problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        if self.max_records == 0 {
            problems.push(("max_records".to_owned(), "must be at least 1".to_owned()));
        }
        if self.max_bytes.bytes() == 0 {
            problems.push(("max_bytes".to_owned(), "must be at least 1B".to_owned()));
        }
        if self.max_age.get().is_zero() {
            problems.push(("max_age".to_owned(), "must be longer than 0s".to_owned()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// `[delivery]`: how batches are handed to the sink and retried.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Batches in flight per shard. Default 1, which keeps records in shard
    /// order at the sink; more batches raise throughput but may reorder
    /// them.
    pub concurrency: usize,
    /// Attempts per record (the first send included) before it is
    /// dead-lettered. Default 10; 0 retries forever.
    pub retry_attempts: u32,
    /// Back-off before the first retry; doubled on each further retry, with
    /// jitter. Default `"200ms"`.
    pub retry_initial_backoff: HumanDuration,
    /// Longest back-off between retries (also caps a sink's own back-off
    /// hint). Default `"30s"`.
    pub retry_max_backoff: HumanDuration,
    /// Longest wait for one sink call (`send`, `flush`, `healthcheck`,
    /// `close`) before the engine abandons it: a `send` past it counts as a
    /// retriable failure of the whole batch (sent again after back-off,
    /// within `retry_attempts`), a `flush` past it postpones the
    /// checkpoint. Default `"20m"`, above the longest call a shipped sink
    /// makes on its own (a Redshift `COPY`, bounded by that sink's
    /// `statement_timeout`, default 15 minutes); sinks whose calls take
    /// seconds (S3, Elasticsearch, DynamoDB) can use far less, e.g. `"2m"`.
    pub call_timeout: HumanDuration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 1,
            retry_attempts: 10,
            retry_initial_backoff: HumanDuration::from_millis(200),
            retry_max_backoff: HumanDuration::from_secs(30),
            call_timeout: HumanDuration::from_secs(20 * 60),
        }
    }
}

impl DeliveryConfig {
    /// Checks the values without I/O.
    ///
    /// # Errors
    /// Every `(key, message)` problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        if self.concurrency == 0 {
            problems.push(("concurrency".to_owned(), "must be at least 1".to_owned()));
        }
        if self.retry_initial_backoff.get().is_zero() {
            problems.push(("retry_initial_backoff".to_owned(), "must be longer than 0s".to_owned()));
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            problems.push((
                "retry_max_backoff".to_owned(),
                format!(
                    "must not be shorter than retry_initial_backoff ({} < {})",
                    self.retry_max_backoff, self.retry_initial_backoff
                ),
            ));
        }
        if self.call_timeout.get().is_zero() {
            problems.push(("call_timeout".to_owned(), "must be longer than 0s".to_owned()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_from_empty_sections() {
        let b: BufferConfig = toml::from_str("").expect("empty buffer section");
        assert_eq!(b, BufferConfig::default());
        assert_eq!(b.max_records, 1000);
        assert_eq!(b.max_bytes.bytes(), 5 << 20);
        assert_eq!(b.max_age.get(), Duration::from_secs(60));
        let d: DeliveryConfig = toml::from_str("").expect("empty delivery section");
        assert_eq!(d, DeliveryConfig::default());
        assert_eq!(d.retry_initial_backoff.get(), Duration::from_millis(200));
        assert_eq!(d.call_timeout.get(), Duration::from_secs(20 * 60));
        assert!(b.validate().is_ok() && d.validate().is_ok());
    }

    #[test]
    fn human_units_and_unknown_keys() {
        let b: BufferConfig = toml::from_str("max_records = 5\nmax_bytes = \"1KiB\"\nmax_age = \"2s\"").expect("parses");
        assert_eq!((b.max_records, b.max_bytes.bytes(), b.max_age.get()), (5, 1024, Duration::from_secs(2)));
        let err = toml::from_str::<BufferConfig>("max_recods = 5").expect_err("unknown key");
        assert!(err.to_string().contains("max_recods"), "{err}");
    }

    #[test]
    fn validate_names_keys() {
        let b = BufferConfig { max_records: 0, max_bytes: ByteSize(0), max_age: HumanDuration::from_secs(0) };
        let keys: Vec<String> = b.validate().expect_err("invalid").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["max_records", "max_bytes", "max_age"]);
        let d = DeliveryConfig {
            concurrency: 0,
            retry_attempts: 0,
            retry_initial_backoff: HumanDuration::from_secs(2),
            retry_max_backoff: HumanDuration::from_secs(1),
            call_timeout: HumanDuration::from_secs(0),
        };
        let keys: Vec<String> = d.validate().expect_err("invalid").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["concurrency", "retry_max_backoff", "call_timeout"]);
        let d: DeliveryConfig = toml::from_str("call_timeout = \"90s\"").expect("parses");
        assert_eq!(d.call_timeout.get(), Duration::from_secs(90));
    }
}

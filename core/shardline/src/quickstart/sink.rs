//! The `dashboard` sink: takes `window_count` records and keeps the latest
//! count per (window, shard, key) in the quickstart's in-memory state, which
//! the quickstart's web page reads.
//!
//! The rule: `dashboard` is a built-in sink type that `shardline validate`
//! and `shardline test` always accept (so `pipelines/quickstart.toml` is an
//! ordinary pipeline file), but only `shardline quickstart` can *run* it,
//! because only that command serves the page. Elsewhere building it fails
//! with a message that says so.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::Deserialize;
use shardline_api::{Payload, Record, RecordStatus, Sink, SinkError};

use super::state::{epoch_millis, DashboardState};

/// `[sink] type = "dashboard"` keys.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DashboardSinkConfig {
    /// Fields of the `window_count` record that form the key shown on the
    /// chart, joined with `" "`. Default: `["referrer"]`.
    #[serde(default = "default_key")]
    pub key: Vec<String>,
}

fn default_key() -> Vec<String> {
    vec!["referrer".to_owned()]
}

impl DashboardSinkConfig {
    /// Checks the keys without I/O. On error: the key and a message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.key.is_empty() || self.key.iter().any(|k| k.is_empty()) {
            return Err(("key".to_owned(), "must name at least one field of the window_count record".to_owned()));
        }
        Ok(())
    }
}

static INSTALLED: OnceLock<Arc<DashboardState>> = OnceLock::new();

/// Makes `state` the one the `dashboard` sink writes to (first call wins;
/// returns the state in use).
pub fn install(state: Arc<DashboardState>) -> Arc<DashboardState> {
    INSTALLED.get_or_init(|| state).clone()
}

/// Builds the sink when `shardline quickstart` installed its state.
///
/// # Errors
/// A message for `[sink]` when the state is not installed.
pub fn build(config: &DashboardSinkConfig) -> Result<Arc<dyn Sink>, String> {
    let state = INSTALLED.get().cloned().ok_or_else(|| {
        "the `dashboard` sink only runs inside `shardline quickstart`, which serves its page; \
         with `shardline run` use `file` or `stdout`"
            .to_owned()
    })?;
    Ok(Arc::new(DashboardSink { state, key: config.key.clone() }))
}

/// Writes window counts into [`DashboardState`].
struct DashboardSink {
    state: Arc<DashboardState>,
    key: Vec<String>,
}

impl DashboardSink {
    fn take(&self, record: &Record) -> RecordStatus {
        let parsed;
        let value = match &record.payload {
            Payload::Json(v) => v,
            Payload::Bytes(b) => match serde_json::from_slice(b) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(e) => return RecordStatus::Rejected { reason: format!("dashboard: not JSON: {e}") },
            },
        };
        let time = |field: &str| {
            value
                .get(field)
                .and_then(|v| v.as_str())
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .map(epoch_millis)
        };
        let (Some(start), Some(end), Some(count)) = (time("window_start"), time("window_end"), value.get("count").and_then(|c| c.as_u64()))
        else {
            return RecordStatus::Rejected {
                reason: "dashboard: expected a window_count record with window_start, window_end and count".to_owned(),
            };
        };
        let key = self
            .key
            .iter()
            .map(|field| match value.get(field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => "(none)".to_owned(),
                Some(other) => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        self.state.record_count(start, end, &record.meta.shard_id, key, count);
        RecordStatus::Delivered
    }
}

#[async_trait]
impl Sink for DashboardSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        Ok(batch.iter().map(|r| self.take(r)).collect())
    }
}

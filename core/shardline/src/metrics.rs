//! Process-wide metrics: the Prometheus recorder behind the `metrics`
//! facade every crate writes to, plus the state that does not fit a counter
//! (checkpoint positions per shard, readiness of each pipeline).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Shared telemetry state, rendered by the `/metrics`, `/health` and
/// `/ready` endpoints.
pub struct Telemetry {
    prometheus: Option<PrometheusHandle>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (pipeline, shard) → (sequence number, sub-sequence number) of the
    /// last checkpoint written by this process.
    checkpoints: BTreeMap<(String, String), (String, u64)>,
    /// pipeline → ready (source connected, lease store usable).
    ready: BTreeMap<String, bool>,
}

static TELEMETRY: OnceLock<Arc<Telemetry>> = OnceLock::new();

impl Telemetry {
    /// The process's telemetry, installing the Prometheus recorder on first
    /// use. If another recorder was installed first, counters are not
    /// rendered, and a warning says so.
    pub fn global() -> Arc<Telemetry> {
        TELEMETRY
            .get_or_init(|| {
                let prometheus = match PrometheusBuilder::new().install_recorder() {
                    Ok(handle) => Some(handle),
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics recorder not installed; /metrics shows only checkpoints");
                        None
                    }
                };
                Arc::new(Telemetry { prometheus, state: Mutex::new(State::default()) })
            })
            .clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half
        // updated (each update is one insert), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a checkpoint written for `shard_id`.
    pub fn set_checkpoint(&self, pipeline: &str, shard_id: &str, sequence: &str, sub_sequence: u64) {
        self.state()
            .checkpoints
            .insert((pipeline.to_owned(), shard_id.to_owned()), (sequence.to_owned(), sub_sequence));
    }

    /// Forgets a shard this process no longer holds.
    pub fn clear_checkpoint(&self, pipeline: &str, shard_id: &str) {
        self.state().checkpoints.remove(&(pipeline.to_owned(), shard_id.to_owned()));
    }

    /// Marks a pipeline as starting (`false`) or running (`true`).
    pub fn set_ready(&self, pipeline: &str, ready: bool) {
        self.state().ready.insert(pipeline.to_owned(), ready);
    }

    /// True when every registered pipeline is running.
    pub fn is_ready(&self) -> bool {
        let state = self.state();
        !state.ready.is_empty() && state.ready.values().all(|r| *r)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = self.prometheus.as_ref().map(|h| h.render()).unwrap_or_default();
        let state = self.state();
        out.push_str("# HELP shardline_checkpoint_info Last checkpoint written by this worker per shard (value is always 1).\n");
        out.push_str("# TYPE shardline_checkpoint_info gauge\n");
        for ((pipeline, shard), (sequence, sub)) in &state.checkpoints {
            out.push_str(&format!(
                "shardline_checkpoint_info{{pipeline=\"{}\",shard_id=\"{}\",sequence_number=\"{}\",sub_sequence_number=\"{}\"}} 1\n",
                escape(pipeline),
                escape(shard),
                escape(sequence),
                sub
            ));
        }
        out.push_str("# HELP shardline_pipeline_ready 1 when the pipeline runs (source and lease store reached).\n");
        out.push_str("# TYPE shardline_pipeline_ready gauge\n");
        for (pipeline, ready) in &state.ready {
            out.push_str(&format!("shardline_pipeline_ready{{pipeline=\"{}\"}} {}\n", escape(pipeline), u8::from(*ready)));
        }
        out
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

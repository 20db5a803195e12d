//! `ndjson_dir`: an example Shardline sink plugin.
//!
//! Writes each batch to its own file, `{pipeline}-{shard_id}-{sequence}-{sub_sequence}.ndjson`
//! (named after the batch's first record), one JSON envelope per line with
//! every field the host passes: `stream`, `shard_id`, `sequence_number`,
//! `sub_sequence_number`, `partition_key`, `explicit_hash_key`,
//! `arrival_time_millis`, `event_time_millis`, `aggregated` and `data` (or
//! `data_base64` for bodies that are not UTF-8). The name is deterministic,
//! so a batch sent again after a crash replaces its file instead of adding a
//! duplicate; files are written to a temporary name, fsynced and renamed,
//! so a reader never sees half a batch.
//!
//! Each line also carries the batch's `fence` (`{"shard_id", "lease_counter"}`:
//! the shard and the lease counter the worker held when it sent the batch,
//! ABI version 2) when the host sent one. The plugin's own metrics,
//! `ndjson_dir_records_written_total{pipeline,shard_id}` and
//! `ndjson_dir_files_written_total{pipeline}`, appear on Shardline's
//! `/metrics` through the SDK's metrics bridge.
//!
//! Records larger than `max_record_size` are rejected (dead-lettered by
//! Shardline); I/O errors (a full disk, the directory missing or blocked)
//! are retriable.
//!
//! `stall_first_calls` is a testing aid for `[delivery] call_timeout`: the
//! first N `send` calls and the first N `flush` calls of an instance never
//! answer (as over a hung connection), so the host abandons them at its
//! deadline and retries; they answer when the instance is destroyed.
//!
//! ```toml
//! [sink]
//! type = "ndjson_dir"
//! path = "./out"              # required: directory, created if missing
//! max_record_size = "1MiB"    # optional: larger records are rejected; default 1MiB
//! stall_first_calls = 0       # optional testing aid: first N sends and flushes never answer; default 0
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use serde::Deserialize;
use shardline_plugin_sdk::{
    async_trait, BatchFence, ByteSize, ConfigKey, ConfigProblem, InitContext, PluginInfo, Record, RecordStatus, SinkError,
    SinkPlugin,
};

/// `[sink]` with `type = "ndjson_dir"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the batch files, created if missing. Required.
    pub path: PathBuf,
    /// Records with a larger body are rejected. Default `"1MiB"`.
    #[serde(default = "default_max_record_size")]
    pub max_record_size: ByteSize,
    /// The first N `send` and the first N `flush` calls never answer (a
    /// testing aid for `[delivery] call_timeout`). Default 0.
    #[serde(default)]
    pub stall_first_calls: u32,
}

fn default_max_record_size() -> ByteSize {
    ByteSize(1 << 20)
}

/// The sink: a directory and a size limit.
pub struct NdjsonDir {
    dir: PathBuf,
    pipeline: String,
    max_record_size: u64,
    stall_first_calls: u32,
    sends: AtomicU32,
    flushes: AtomicU32,
}

/// Never returns while fewer than `limit` calls were counted in `calls`.
async fn stall_if_early(calls: &AtomicU32, limit: u32, what: &str) {
    if calls.fetch_add(1, Ordering::SeqCst) < limit {
        tracing::warn!(call = what, "stalling this call (stall_first_calls)");
        std::future::pending::<()>().await;
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> SinkError {
    SinkError::retriable(format!("{what} {}: {e}", path.display()))
}

/// One envelope line per record.
fn encode(records: &[&Record], fence: Option<&BatchFence>) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let meta = &record.meta;
        let millis = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_else(|e| -(e.duration().as_millis() as i64))
        };
        let data = record.payload.to_bytes();
        let mut line = serde_json::json!({
            "stream": &*meta.stream,
            "shard_id": &*meta.shard_id,
            "sequence_number": meta.sequence_number.as_str(),
            "sub_sequence_number": meta.sub_sequence_number,
            "partition_key": meta.partition_key,
            "explicit_hash_key": meta.explicit_hash_key,
            "arrival_time_millis": millis(meta.arrival_time),
            "event_time_millis": record.event_time.map(millis),
            "aggregated": meta.aggregated,
        });
        if let Some(fence) = fence {
            line["fence"] = serde_json::json!({ "shard_id": &*fence.shard_id, "lease_counter": fence.lease_counter });
        }
        match std::str::from_utf8(&data) {
            Ok(text) => line["data"] = serde_json::Value::from(text),
            Err(_) => line["data_base64"] = base64::engine::general_purpose::STANDARD.encode(&data).into(),
        }
        // A `serde_json::Value` always serialises.
        if let Ok(bytes) = serde_json::to_vec(&line) {
            out.extend_from_slice(&bytes);
            out.push(b'\n');
        }
    }
    out
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SinkError> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary).map_err(|e| io_error("cannot create", &temporary, e))?;
    file.write_all(bytes).map_err(|e| io_error("cannot write", &temporary, e))?;
    file.sync_all().map_err(|e| io_error("cannot fsync", &temporary, e))?;
    let path = dir.join(name);
    std::fs::rename(&temporary, &path).map_err(|e| io_error("cannot rename to", &path, e))
}

#[async_trait]
impl SinkPlugin for NdjsonDir {
    type Config = Config;

    fn describe() -> PluginInfo {
        PluginInfo::new("ndjson_dir", env!("CARGO_PKG_VERSION"))
            .description("one NDJSON file of record envelopes per batch, in a directory (example plugin)")
            .key(ConfigKey::required("path", "directory of the batch files, created if missing"))
            .key(ConfigKey::optional("max_record_size", "larger records are rejected (dead-lettered); default \"1MiB\""))
            .key(ConfigKey::optional("stall_first_calls", "testing aid: the first N sends and flushes never answer; default 0"))
    }

    fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if config.path.as_os_str().is_empty() {
            problems.push(ConfigProblem::key("path", "must not be empty"));
        }
        if config.max_record_size.bytes() == 0 {
            problems.push(ConfigProblem::key("max_record_size", "must be at least 1B"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn init(config: Config, ctx: InitContext) -> Result<Self, SinkError> {
        tracing::info!(path = %config.path.display(), pipeline = %ctx.pipeline, "ndjson_dir sink ready");
        Ok(NdjsonDir {
            dir: config.path,
            pipeline: ctx.pipeline,
            max_record_size: config.max_record_size.bytes(),
            stall_first_calls: config.stall_first_calls,
            sends: AtomicU32::new(0),
            flushes: AtomicU32::new(0),
        })
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, ".healthcheck", b"")
            .and_then(|()| std::fs::remove_file(dir.join(".healthcheck")).map_err(|e| io_error("cannot remove", &dir, e))))
            .await
            .map_err(|e| SinkError::permanent(format!("healthcheck task failed: {e}")))?
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.send_fenced(None, batch).await
    }

    async fn send_fenced(&self, fence: Option<&BatchFence>, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        stall_if_early(&self.sends, self.stall_first_calls, "send").await;
        let mut statuses = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        for record in batch {
            let len = record.payload.approximate_len() as u64;
            if len > self.max_record_size {
                statuses.push(RecordStatus::Rejected {
                    reason: format!("record of {len} bytes is larger than max_record_size ({} bytes)", self.max_record_size),
                });
            } else {
                statuses.push(RecordStatus::Delivered);
                accepted.push(record);
            }
        }
        let Some(first) = accepted.first() else { return Ok(statuses) };
        let name = format!(
            "{}-{}-{}-{}.ndjson",
            self.pipeline,
            first.meta.shard_id,
            first.meta.sequence_number.as_str(),
            first.meta.sub_sequence_number
        );
        let bytes = encode(&accepted, fence);
        let dir = self.dir.clone();
        let written = accepted.len() as u64;
        let shard_id = first.meta.shard_id.to_string();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(|e| SinkError::permanent(format!("write task failed: {e}")))??;
        // The plugin's own metrics: forwarded to the host's /metrics.
        metrics::counter!("ndjson_dir_records_written_total", "pipeline" => self.pipeline.clone(), "shard_id" => shard_id).increment(written);
        metrics::counter!("ndjson_dir_files_written_total", "pipeline" => self.pipeline.clone()).increment(1);
        Ok(statuses)
    }

    async fn flush(&self) -> Result<(), SinkError> {
        stall_if_early(&self.flushes, self.stall_first_calls, "flush").await;
        // Files are fsynced before their rename; make the renames durable.
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || match std::fs::File::open(&dir) {
            Ok(handle) => handle.sync_all().map_err(|e| io_error("cannot fsync", &dir, e)),
            // Nothing written yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot open", &dir, e)),
        })
        .await
        .map_err(|e| SinkError::permanent(format!("flush task failed: {e}")))?
    }
}

shardline_plugin_sdk::export_sink_plugin!(NdjsonDir);

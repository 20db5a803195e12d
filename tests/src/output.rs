//! Reading what the file sink and the dead-letter sink wrote.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use serde_json::Value;

/// Every JSON line of every `*.ndjson` file in `dir` (files in name order,
/// lines in file order). Empty when `dir` does not exist yet.
///
/// A file's last line may be cut short (a worker killed with SIGKILL mid
/// write, or a write still in progress) and is skipped when it does not
/// parse; a bad line anywhere else is a sink bug.
///
/// # Panics
/// On an unreadable file or a malformed line that is not the last.
pub fn read_ndjson_dir(dir: &Path) -> Vec<Value> {
    read_ndjson_files(dir, |_| true)
}

/// As [`read_ndjson_dir`], for the files whose name contains `-<pid>-`
/// (the file sink puts the writer's PID in its file names): what one
/// worker process wrote.
pub fn read_ndjson_dir_of_pid(dir: &Path, pid: u32) -> Vec<Value> {
    let marker = format!("-{pid}-");
    read_ndjson_files(dir, |name| name.contains(&marker))
}

fn read_ndjson_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut values = Vec::new();
    for file in ndjson_files(dir) {
        if !file.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
            continue;
        }
        let text = match std::fs::read(&file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("read {}: {e}", file.display()),
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) => values.push(v),
                Err(_) if i == last => {} // cut short; the newline is written last
                Err(e) => panic!("{}:{}: not JSON ({e}): {line}", file.display(), i + 1),
            }
        }
    }
    values
}

fn ndjson_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "ndjson") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One envelope line of the file sink (or dead-letter sink), with the
/// payload decoded.
#[derive(Debug, Clone)]
pub struct OutputRecord {
    /// `shard_id`.
    pub shard_id: String,
    /// `sequence_number` (a decimal string).
    pub sequence_number: String,
    /// `sub_sequence_number` (0 when absent).
    pub sub_sequence_number: u64,
    /// `partition_key`.
    pub partition_key: String,
    /// `explicit_hash_key`.
    pub explicit_hash_key: Option<String>,
    /// The payload bytes (`data` as UTF-8 or compact JSON, or `data_base64`).
    pub payload: Vec<u8>,
    /// The payload as JSON, when it is JSON.
    pub json: Option<Value>,
    /// `stage` (dead letters only).
    pub stage: Option<String>,
    /// `reason` (dead letters only).
    pub reason: Option<String>,
    /// The line as written.
    pub line: Value,
}

impl OutputRecord {
    /// Decodes an envelope line. `data` may be a string (the payload as
    /// UTF-8, possibly JSON text) or a JSON value (a parsed payload);
    /// `data_base64` carries payloads that are not UTF-8.
    ///
    /// # Errors
    /// When a required field is missing or has the wrong type.
    pub fn parse(line: &Value) -> anyhow::Result<OutputRecord> {
        let string = |name: &str| -> anyhow::Result<String> {
            line.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("field {name:?} missing or not a string in {line}"))
        };
        let optional_string =
            |name: &str| line.get(name).and_then(Value::as_str).map(str::to_owned);
        let (payload, json) = match (line.get("data"), line.get("data_base64")) {
            (Some(Value::String(s)), _) => (s.clone().into_bytes(), serde_json::from_str(s).ok()),
            (Some(v), _) if !v.is_null() => (serde_json::to_vec(v)?, Some(v.clone())),
            (_, Some(Value::String(b64))) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .with_context(|| format!("data_base64 is not base64 in {line}"))?;
                let json = serde_json::from_slice(&bytes).ok();
                (bytes, json)
            }
            _ => anyhow::bail!("neither data nor data_base64 in {line}"),
        };
        let sub_sequence_number = match line.get("sub_sequence_number") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .with_context(|| format!("sub_sequence_number not a number in {line}"))?,
        };
        Ok(OutputRecord {
            shard_id: string("shard_id")?,
            sequence_number: string("sequence_number")?,
            sub_sequence_number,
            partition_key: string("partition_key")?,
            explicit_hash_key: optional_string("explicit_hash_key"),
            payload,
            json,
            stage: optional_string("stage"),
            reason: optional_string("reason"),
            line: line.clone(),
        })
    }

    /// Decodes every line of `dir` (see [`read_ndjson_dir`]).
    ///
    /// # Panics
    /// On a line that is not a valid envelope.
    pub fn read_dir(dir: &Path) -> Vec<OutputRecord> {
        read_ndjson_dir(dir)
            .iter()
            .map(|line| {
                OutputRecord::parse(line)
                    .unwrap_or_else(|e| panic!("bad envelope in {}: {e:#}", dir.display()))
            })
            .collect()
    }

    /// `json[field]` as a string, e.g. the test record id.
    pub fn json_str(&self, field: &str) -> Option<&str> {
        self.json.as_ref()?.get(field)?.as_str()
    }

    /// `json[field]` as a u64, e.g. a per-key counter.
    pub fn json_u64(&self, field: &str) -> Option<u64> {
        self.json.as_ref()?.get(field)?.as_u64()
    }
}

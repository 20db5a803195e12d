//! `decode_cloudwatch_logs`: a CloudWatch Logs subscription record → one
//! record per log event (1:N).
//!
//! ```toml
//! [[transforms]]
//! type = "decode_cloudwatch_logs"   # put it first: it reads the raw record
//! parse_message = false             # default; true: a message that is a JSON object or array becomes that value
//! max_decompressed_bytes = "10MiB"  # default; a record that inflates to more is dead-lettered
//! ```
//!
//! A CloudWatch Logs subscription filter writes each batch of log events to
//! Kinesis as one gzip-compressed JSON document:
//! `{"messageType": "DATA_MESSAGE", "owner": "111111111111", "logGroup": …,
//! "logStream": …, "subscriptionFilters": […], "logEvents": [{"id": …,
//! "timestamp": 1432826855000, "message": …}, …]}`.
//!
//! - A `DATA_MESSAGE` yields one JSON object per log event, in order: the
//!   event's keys (`id`, `timestamp`, `message`, and any other key the event
//!   carries) plus `owner`, `logGroup`, `logStream` and
//!   `subscriptionFilters` of the batch. The event time of each output is
//!   the event's `timestamp` (milliseconds since the epoch).
//! - A `CONTROL_MESSAGE` (CloudWatch Logs checking that the stream is
//!   writable) yields nothing: it is acknowledged and counted in
//!   `shardline_records_filtered_total`, like a `DATA_MESSAGE` without
//!   events.
//! - Every output shares the input's metadata (stream, shard, sequence and
//!   sub-sequence number), so the checkpoint passes the Kinesis record only
//!   once all its events were delivered, and a replay yields the same
//!   events in the same order. Sinks that derive ids from the position
//!   (Elasticsearch's default `_id`) give every event of one record the same
//!   id: use the event's `id` there (`id_field = "id"`), which CloudWatch
//!   Logs makes unique per event.
//! - With `parse_message = true`, a `message` that is a JSON object or array
//!   (surrounding whitespace allowed, as in Lambda's lines ending in `\n`)
//!   is replaced by the parsed value; any other message, including `42` or
//!   `null`, stays the string it was, so one field does not change type from
//!   event to event.
//! - Anything else is dead-lettered with the reason: a payload that is not
//!   gzip, corrupt or truncated gzip, more than `max_decompressed_bytes`
//!   once inflated (a gzip bomb costs at most that much memory), JSON that
//!   does not parse (with its byte offset), or a document not of the shape
//!   above (naming the field, e.g. `logEvents[2].timestamp`).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::{Map, Value};
use shardline_api::{ByteSize, Payload, Record, RecordMeta, Transform, TransformError};

use crate::path::kind;
use crate::{config, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "decode_cloudwatch_logs";

/// `messageType` of a batch of log events.
pub const DATA_MESSAGE: &str = "DATA_MESSAGE";
/// `messageType` of CloudWatch Logs' reachability checks.
pub const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Options of `decode_cloudwatch_logs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeCloudwatchLogsConfig {
    /// Replace a `message` that is a JSON object or array with the parsed
    /// value; other messages stay strings. Default `false`.
    #[serde(default)]
    pub parse_message: bool,
    /// Most bytes one record may inflate to (a size: `"10MiB"`, `"512KiB"`
    /// or a number of bytes); a record that inflates to more is
    /// dead-lettered. At least 1 byte. Default `"10MiB"`.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: ByteSize,
}

fn default_max_decompressed_bytes() -> ByteSize {
    ByteSize(10 << 20)
}

impl Default for DecodeCloudwatchLogsConfig {
    fn default() -> Self {
        DecodeCloudwatchLogsConfig { parse_message: false, max_decompressed_bytes: default_max_decompressed_bytes() }
    }
}

/// The `decode_cloudwatch_logs` transform.
#[derive(Debug, Clone)]
pub struct DecodeCloudwatchLogs {
    parse_message: bool,
    max_decompressed_bytes: u64,
}

impl DecodeCloudwatchLogs {
    /// A `decode_cloudwatch_logs` transform.
    ///
    /// # Errors
    /// `max_decompressed_bytes` of 0, naming that key.
    pub fn new(config: DecodeCloudwatchLogsConfig) -> Result<Self, TransformBuildError> {
        if config.max_decompressed_bytes.bytes() == 0 {
            return Err(config::invalid(NAME, "max_decompressed_bytes", "must be at least 1 byte"));
        }
        Ok(DecodeCloudwatchLogs {
            parse_message: config.parse_message,
            max_decompressed_bytes: config.max_decompressed_bytes.bytes(),
        })
    }

    /// The inflated bytes of `compressed`, at most `max_decompressed_bytes`.
    fn gunzip(&self, compressed: &[u8]) -> Result<Vec<u8>, TransformError> {
        if !compressed.starts_with(&GZIP_MAGIC) {
            let start: Vec<String> = compressed.iter().take(2).map(|b| format!("{b:02x}")).collect();
            return Err(TransformError::new(format!(
                "{NAME}: not gzip: the record starts with bytes [{}], not 1f 8b \
                 (CloudWatch Logs writes gzip-compressed JSON)",
                start.join(" ")
            )));
        }
        // One byte more than allowed tells "exactly the limit" from "over".
        let mut inflated = Vec::with_capacity(compressed.len().saturating_mul(4).min(1 << 20));
        MultiGzDecoder::new(compressed)
            .take(self.max_decompressed_bytes.saturating_add(1))
            .read_to_end(&mut inflated)
            .map_err(|e| {
                TransformError::new(format!("{NAME}: invalid gzip after {} decompressed bytes: {e}", inflated.len()))
            })?;
        if inflated.len() as u64 > self.max_decompressed_bytes {
            return Err(TransformError::new(format!(
                "{NAME}: the record decompresses to more than max_decompressed_bytes ({}) from {} compressed bytes",
                ByteSize(self.max_decompressed_bytes),
                compressed.len()
            )));
        }
        Ok(inflated)
    }

    /// `message` as a JSON value when `parse_message` is on and it is a
    /// JSON object or array; the string otherwise.
    fn message_value(&self, message: String) -> Value {
        if self.parse_message {
            let trimmed = message.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                if let Ok(value) = serde_json::from_str::<Value>(&message) {
                    return value;
                }
            }
        }
        Value::String(message)
    }
}

fn shape_error(what: impl std::fmt::Display) -> TransformError {
    TransformError::new(format!("{NAME}: not a CloudWatch Logs subscription record: {what}"))
}

/// Removes the string at `key` of `map` (`path` names it in errors).
fn take_string(map: &mut Map<String, Value>, key: &str, path: &str) -> Result<String, TransformError> {
    match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(shape_error(format_args!("`{path}` must be a string, got {}", kind(&other)))),
        None => Err(shape_error(format_args!("`{path}` is missing"))),
    }
}

/// The envelope fields copied onto every event, checked.
fn envelope(map: &mut Map<String, Value>) -> Result<[(&'static str, Value); 4], TransformError> {
    let owner = take_string(map, "owner", "owner")?;
    let log_group = take_string(map, "logGroup", "logGroup")?;
    let log_stream = take_string(map, "logStream", "logStream")?;
    let filters = match map.remove("subscriptionFilters") {
        Some(Value::Array(items)) => {
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, v)| !v.is_string()) {
                return Err(shape_error(format_args!("`subscriptionFilters[{i}]` must be a string, got {}", kind(bad))));
            }
            Value::Array(items)
        }
        Some(other) => {
            return Err(shape_error(format_args!("`subscriptionFilters` must be an array, got {}", kind(&other))))
        }
        None => return Err(shape_error("`subscriptionFilters` is missing")),
    };
    Ok([
        ("owner", Value::String(owner)),
        ("logGroup", Value::String(log_group)),
        ("logStream", Value::String(log_stream)),
        ("subscriptionFilters", filters),
    ])
}

/// Milliseconds since the epoch as a time (before the epoch when negative).
fn epoch_millis(millis: i64) -> Option<SystemTime> {
    let offset = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
}

impl DecodeCloudwatchLogs {
    /// One output record per entry of `logEvents`, all at the position of
    /// the Kinesis record (`meta`).
    fn events(
        &self,
        events: Vec<Value>,
        envelope: &[(&'static str, Value); 4],
        meta: &Arc<RecordMeta>,
    ) -> Result<Vec<Record>, TransformError> {
        let mut outputs = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let at = |key: &str| format!("logEvents[{i}].{key}");
            let Value::Object(mut event) = event else {
                return Err(shape_error(format_args!("`logEvents[{i}]` must be an object, got {}", kind(&event))));
            };
            let id = take_string(&mut event, "id", &at("id"))?;
            let timestamp = match event.get("timestamp") {
                Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                    shape_error(format_args!("`{}` must be whole milliseconds since the epoch, got {n}", at("timestamp")))
                })?,
                Some(other) => {
                    return Err(shape_error(format_args!("`{}` must be a number, got {}", at("timestamp"), kind(other))))
                }
                None => return Err(shape_error(format_args!("`{}` is missing", at("timestamp")))),
            };
            let time = epoch_millis(timestamp).ok_or_else(|| {
                shape_error(format_args!("`{}` = {timestamp} is out of the range of times", at("timestamp")))
            })?;
            let message = take_string(&mut event, "message", &at("message"))?;
            event.insert("id".to_owned(), Value::String(id));
            event.insert("message".to_owned(), self.message_value(message));
            for (key, value) in envelope {
                event.insert((*key).to_owned(), value.clone());
            }
            outputs.push(Record {
                payload: Payload::Json(Value::Object(event)),
                meta: meta.clone(),
                event_time: Some(time),
            });
        }
        Ok(outputs)
    }
}

impl Transform for DecodeCloudwatchLogs {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let Payload::Bytes(compressed) = &record.payload else {
            return Err(TransformError::new(format!(
                "{NAME} needs the raw Kinesis record (gzip bytes), got a parsed JSON payload (put {NAME} first)"
            )));
        };
        let inflated = self.gunzip(compressed)?;
        let document: Value = serde_json::from_slice(&inflated).map_err(|e| {
            TransformError::new(format!("{NAME}: decompressed record: {}", crate::parse_json::describe_error(&inflated, &e)))
        })?;
        drop(inflated);
        let Value::Object(mut document) = document else {
            return Err(shape_error(format_args!("expected a JSON object, got {}", kind(&document))));
        };
        match take_string(&mut document, "messageType", "messageType")?.as_str() {
            CONTROL_MESSAGE => return Ok(()),
            DATA_MESSAGE => {}
            other => {
                return Err(shape_error(format_args!(
                    "unknown `messageType` {other:?} (expected {DATA_MESSAGE:?} or {CONTROL_MESSAGE:?})"
                )))
            }
        }
        let envelope = envelope(&mut document)?;
        let events = match document.remove("logEvents") {
            Some(Value::Array(events)) => events,
            Some(other) => return Err(shape_error(format_args!("`logEvents` must be an array, got {}", kind(&other)))),
            None => return Err(shape_error("`logEvents` is missing")),
        };
        // Built completely before anything is pushed: a bad event fails the
        // whole record and leaves `out` as it was.
        out.extend(self.events(events, &envelope, &record.meta)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

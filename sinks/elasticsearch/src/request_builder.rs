//! Turns records into `_bulk` actions and actions into request bodies:
//! the document (a JSON object on one line), its index name, its `_id`,
//! requests split by `bulk_max_actions` and `bulk_max_bytes`, and gzip.

use std::io::Write as _;
use std::ops::Range;

use shardline_plugin_sdk::{Payload, Record, RecordMeta};

use crate::config::OpType;
use crate::index::{time_from_json, IndexTemplate};

/// How records become actions.
#[derive(Debug, Clone)]
pub struct ActionSettings {
    /// The index name template.
    pub index: IndexTemplate,
    /// Dotted path of the time field, if any.
    pub time_field: Option<Vec<String>>,
    /// Dotted path of the id field, if any.
    pub id_field: Option<Vec<String>>,
    /// `index` or `create`.
    pub op_type: OpType,
}

/// One document's two NDJSON lines, ready to be concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The index it goes to.
    pub index: String,
    /// Its `_id`.
    pub id: String,
    /// Action line and document line, each ending with `\n`.
    pub lines: Vec<u8>,
}

/// Splits `"a.b"` into `["a", "b"]`.
pub fn field_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

/// The default `_id`: `{stream}-{shard_id}-{sequence_number}-{sub_sequence_number}`.
/// The same record always gets the same id, so a batch sent again replaces
/// its documents instead of adding copies.
pub fn default_id(meta: &RecordMeta) -> String {
    format!("{}-{}-{}-{}", meta.stream, meta.shard_id, meta.sequence_number.as_str(), meta.sub_sequence_number)
}

fn lookup<'v>(value: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, key| v.as_object()?.get(key))
}

/// Makes the action for `record`.
///
/// # Errors
/// Why the record cannot be a document (the record is rejected with it):
/// not a JSON object, or the id or time field missing or of the wrong type.
pub fn action(record: &Record, settings: &ActionSettings) -> Result<Action, String> {
    let needs_fields = settings.time_field.is_some() || settings.id_field.is_some();
    let parsed;
    let (value, document): (Option<&serde_json::Value>, Vec<u8>) = match &record.payload {
        Payload::Json(v) => {
            let bytes = serde_json::to_vec(v).map_err(|e| format!("cannot encode the JSON payload: {e}"))?;
            (Some(v), bytes)
        }
        Payload::Bytes(bytes) => {
            let starts_with_brace = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if !starts_with_brace {
                return Err(not_an_object(bytes));
            }
            if needs_fields || bytes.contains(&b'\n') || bytes.contains(&b'\r') {
                // Parsed: fields are read, and pretty-printed JSON is put on one line.
                parsed = serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
                let compact = serde_json::to_vec(&parsed).map_err(|e| format!("cannot encode the payload: {e}"))?;
                (Some(&parsed), compact)
            } else {
                serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
                (None, bytes.to_vec())
            }
        }
    };
    if let Some(v) = value {
        if !v.is_object() {
            return Err(format!("the payload is JSON but not an object (documents are objects): {}", preview(&document)));
        }
    }
    let field = |path: &[String]| -> Result<&serde_json::Value, String> {
        value.and_then(|v| lookup(v, path)).ok_or_else(|| format!("field `{}` is missing", path.join(".")))
    };
    let id = match &settings.id_field {
        None => default_id(&record.meta),
        Some(path) => match field(path)? {
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= 512 => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => return Err(format!("field `{}` must be a string of 1 to 512 bytes or a number for _id, not {other}", path.join("."))),
        },
    };
    let index = if !settings.index.is_timed() {
        settings.index.render(record.meta.arrival_time)
    } else if let Some(path) = &settings.time_field {
        let time = time_from_json(field(path)?).map_err(|e| format!("field `{}` {e}", path.join(".")))?;
        settings.index.render(time)
    } else {
        settings.index.render(record.meta.arrival_time)
    };
    let header = serde_json::json!({ settings.op_type.as_str(): { "_index": index, "_id": id } });
    let mut lines = serde_json::to_vec(&header).map_err(|e| format!("cannot encode the action: {e}"))?;
    lines.push(b'\n');
    lines.extend_from_slice(&document);
    lines.push(b'\n');
    Ok(Action { index, id, lines })
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    if bytes.len() > 80 {
        format!("{text}...")
    } else {
        text
    }
}

fn not_an_object(bytes: &[u8]) -> String {
    format!("the payload is not a JSON object (documents are objects): {:?}", preview(bytes))
}

/// Splits actions (by their sizes) into consecutive requests of at most
/// `max_actions` actions and `max_bytes` bytes; an action larger than
/// `max_bytes` goes alone.
pub fn split(sizes: &[usize], max_actions: usize, max_bytes: u64) -> Vec<Range<usize>> {
    let mut requests = Vec::new();
    let mut start = 0;
    let mut bytes: u64 = 0;
    for (i, size) in sizes.iter().enumerate() {
        let size = *size as u64;
        let count = i - start;
        if count > 0 && (count >= max_actions || bytes + size > max_bytes) {
            requests.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        requests.push(start..sizes.len());
    }
    requests
}

/// Concatenates the lines of `actions` into one `_bulk` body.
pub fn body<'a>(actions: impl IntoIterator<Item = &'a Action>) -> Vec<u8> {
    let mut out = Vec::new();
    for action in actions {
        out.extend_from_slice(&action.lines);
    }
    out
}

/// Gzips `body` (level 1: most of the size gain for little CPU).
///
/// # Errors
/// Only an I/O error of the in-memory encoder.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use bytes::Bytes;
    use shardline_plugin_sdk::SequenceNumber;

    use super::*;

    fn record(payload: &str, sub: u64) -> Record {
        let meta = RecordMeta {
            stream: Arc::from("clicks"),
            shard_id: Arc::from("shardId-000000000002"),
            sequence_number: SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898").expect("digits"),
            sub_sequence_number: sub,
            partition_key: "pk".into(),
            explicit_hash_key: None,
            arrival_time: UNIX_EPOCH + Duration::from_secs(1_769_903_999), // 2026-01-31T23:59:59Z
            aggregated: sub > 0,
        };
        Record::new(Bytes::from(payload.to_owned()), Arc::new(meta))
    }

    fn settings(index: &str, time_field: Option<&str>, id_field: Option<&str>, op_type: OpType) -> ActionSettings {
        ActionSettings {
            index: IndexTemplate::parse(index).expect("template"),
            time_field: time_field.map(field_path),
            id_field: id_field.map(field_path),
            op_type,
        }
    }

    fn lines(action: &Action) -> (serde_json::Value, String) {
        let text = String::from_utf8(action.lines.clone()).expect("utf-8");
        let parts: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(parts.len(), 2, "two lines: {text:?}");
        (serde_json::from_str(parts[0]).expect("action line"), parts[1].to_owned())
    }

    #[test]
    fn default_ids_are_deterministic_per_record_and_sub_sequence() {
        let s = settings("clicks-{yyyy.MM.dd}", None, None, OpType::Index);
        let a = action(&record("{\"a\":1}", 0), &s).expect("action");
        assert_eq!(a.id, "clicks-shardId-000000000002-49590338271490256608559692538361571095921575989136588898-0");
        assert_eq!(action(&record("{\"a\":2}", 0), &s).expect("again").id, a.id, "same record, same id");
        assert_ne!(action(&record("{\"a\":1}", 3), &s).expect("aggregated").id, a.id);
        assert_eq!(a.index, "clicks-2026.01.31", "arrival time picks the index");
        let (header, document) = lines(&a);
        assert_eq!(header, serde_json::json!({"index": {"_index": "clicks-2026.01.31", "_id": a.id}}));
        assert_eq!(document, "{\"a\":1}", "a compact payload goes as it is");
    }

    #[test]
    fn fields_choose_the_id_and_the_index_time() {
        let s = settings("ev-{xxxx.ww}", Some("meta.ts"), Some("id"), OpType::Create);
        let a = action(&record("{\"id\":\"u-7\",\"meta\":{\"ts\":\"2027-01-01T08:00:00Z\"}}", 0), &s).expect("action");
        assert_eq!((a.index.as_str(), a.id.as_str()), ("ev-2026.53", "u-7"));
        assert_eq!(lines(&a).0, serde_json::json!({"create": {"_index": "ev-2026.53", "_id": "u-7"}}));
        let numeric = action(&record("{\"id\":42,\"meta\":{\"ts\":1769903999000}}", 0), &s).expect("numeric id, epoch ms");
        assert_eq!((numeric.index.as_str(), numeric.id.as_str()), ("ev-2026.05", "42"));
        for (payload, needle) in [
            ("{\"meta\":{\"ts\":\"2027-01-01T08:00:00Z\"}}", "field `id` is missing"),
            ("{\"id\":\"x\"}", "field `meta.ts` is missing"),
            ("{\"id\":\"x\",\"meta\":{\"ts\":\"soon\"}}", "not an RFC 3339"),
            ("{\"id\":[1],\"meta\":{\"ts\":1}}", "must be a string"),
            ("{\"id\":\"\",\"meta\":{\"ts\":1}}", "must be a string"),
        ] {
            let e = action(&record(payload, 0), &s).expect_err(payload);
            assert!(e.contains(needle), "{payload}: {e}");
        }
    }

    #[test]
    fn documents_are_json_objects_on_one_line() {
        let s = settings("plain", None, None, OpType::Index);
        let pretty = action(&record("{\n  \"a\": \"x\\ny\",\n  \"b\": [1, 2]\n}\n", 0), &s).expect("pretty JSON");
        assert_eq!(lines(&pretty).1, "{\"a\":\"x\\ny\",\"b\":[1,2]}");
        let mut parsed = record("{}", 0);
        parsed.payload = Payload::Json(serde_json::json!({"z": 1, "a": {"b": null}}));
        assert_eq!(lines(&action(&parsed, &s).expect("a parsed payload")).1, "{\"a\":{\"b\":null},\"z\":1}");
        for payload in ["not json", "[1,2]", "42", "{\"a\":", "\"text\""] {
            let e = action(&record(payload, 0), &s).expect_err(payload);
            assert!(e.contains("not a JSON object") || e.contains("not JSON"), "{payload}: {e}");
        }
        parsed.payload = Payload::Json(serde_json::json!([1]));
        assert!(action(&parsed, &s).expect_err("array").contains("not an object"));
    }

    #[test]
    fn batches_split_by_count_and_bytes() {
        assert_eq!(split(&[10; 5], 2, 1000), [0..2, 2..4, 4..5]);
        assert_eq!(split(&[10; 5], 100, 25), [0..2, 2..4, 4..5]);
        assert_eq!(split(&[10, 100, 10], 100, 50), [0..1, 1..2, 2..3], "an oversized action goes alone");
        assert_eq!(split(&[10, 10, 10], 100, 30), vec![0..3], "exactly the limit fits");
        assert_eq!(split(&[], 10, 10), Vec::<Range<usize>>::new());
    }

    #[test]
    fn bodies_concatenate_and_gzip_round_trips() {
        let s = settings("plain", None, None, OpType::Index);
        let actions: Vec<Action> = (0..3).map(|i| action(&record(&format!("{{\"i\":{i}}}"), i), &s).expect("action")).collect();
        let body = body(&actions);
        let text = String::from_utf8(body.clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 6);
        assert!(text.ends_with("{\"i\":2}\n"), "the body ends with a newline: {text}");
        let compressed = gzip(&body).expect("gzip");
        assert_eq!(&compressed[..2], &[0x1f, 0x8b]);
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut decoded).expect("gunzip");
        assert_eq!(decoded, body);
    }
}

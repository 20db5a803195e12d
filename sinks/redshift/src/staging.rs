//! What a batch becomes in the staging bucket: one file of records (one
//! per line, gzip by default) and a COPY manifest listing it, under keys
//! derived from the shard and the batch's first and last positions, so a
//! batch sent again overwrites its own files and is recognised as loaded.

use std::io::Write;

use shardline_plugin_sdk::Record;

use crate::config::{Compression, CopyFormat};

/// A record's position as text: `sequence-subsequence`.
pub fn position(record: &Record) -> String {
    format!("{}-{}", record.meta.sequence_number.as_str(), record.meta.sub_sequence_number)
}

/// A record's position as a string that sorts like the position: each
/// number prefixed by its length (`056<sequence>.01<sub>`), for range
/// checks in SQL.
pub fn sortable_position(record: &Record) -> String {
    let sequence = record.meta.sequence_number.as_str();
    let sub = record.meta.sub_sequence_number.to_string();
    format!("{:03}{sequence}.{:02}{sub}", sequence.len(), sub.len())
}

/// Keys of one staged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedKeys {
    /// The data file's key.
    pub data: String,
    /// The manifest's key.
    pub manifest: String,
    /// Where the manifest goes when the batch is given up.
    pub errors_manifest: String,
}

fn clean(part: &str) -> String {
    part.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// Deterministic keys for a run of consecutive records of a shard's
/// batch: named after its first and last positions.
pub fn keys(prefix: &str, pipeline: &str, shard_id: &str, run: &[&Record], format: CopyFormat, compression: Compression) -> StagedKeys {
    let first = run.first().map(|r| position(r)).unwrap_or_default();
    let last = run.last().map(|r| position(r)).unwrap_or_default();
    let name = format!("{first}_{last}");
    let extension = match format {
        CopyFormat::Json => "json",
        CopyFormat::Csv => "csv",
        CopyFormat::Delimited => "txt",
    };
    let compressed = if compression == Compression::Gzip { ".gz" } else { "" };
    let dir = format!("{prefix}{}/{}", clean(pipeline), clean(shard_id));
    StagedKeys {
        data: format!("{dir}/{name}.{extension}{compressed}"),
        manifest: format!("{dir}/{name}.manifest"),
        errors_manifest: format!("{prefix}errors/{}/{}/{name}.manifest", clean(pipeline), clean(shard_id)),
    }
}

/// `s3://bucket/key`.
pub fn url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// A COPY manifest listing `urls` (each mandatory) with their sizes.
pub fn manifest(entries: &[(String, u64)]) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|(url, length)| serde_json::json!({ "url": url, "mandatory": true, "meta": { "content_length": length } }))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({ "entries": entries })).unwrap_or_default()
}

/// One record as a line of the staged file, or why it cannot be one.
///
/// # Errors
/// A reason to reject the record: not a JSON object (json), not UTF-8.
pub fn line(record: &Record, format: CopyFormat) -> Result<Vec<u8>, String> {
    let bytes = record.payload.to_bytes();
    let mut out = match format {
        CopyFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
            if !value.is_object() {
                return Err("not a JSON object (COPY FORMAT AS JSON loads one object per record)".to_owned());
            }
            if bytes.contains(&b'\n') {
                serde_json::to_vec(&value).map_err(|e| format!("cannot re-encode: {e}"))?
            } else {
                bytes.to_vec()
            }
        }
        CopyFormat::Csv | CopyFormat::Delimited => {
            let text = std::str::from_utf8(&bytes).map_err(|e| format!("not UTF-8: {e}"))?;
            text.trim_end_matches(['\n', '\r']).as_bytes().to_vec()
        }
    };
    out.push(b'\n');
    Ok(out)
}

/// A staged file's body with the line where each record starts.
#[derive(Debug, Clone, Default)]
pub struct StagedFile {
    /// The bytes uploaded (compressed when asked).
    pub body: Vec<u8>,
    /// 1-based first line of each record, in order.
    pub first_lines: Vec<u64>,
}

impl StagedFile {
    /// Index of the record holding `line`.
    pub fn record_at_line(&self, line: u64) -> Option<usize> {
        if line == 0 {
            return None;
        }
        match self.first_lines.binary_search(&line) {
            Ok(i) => Some(i),
            Err(0) => None,
            Err(i) => Some(i - 1),
        }
    }
}

/// Joins the lines and compresses them.
///
/// # Errors
/// When compression fails (out of memory).
pub fn encode(lines: &[Vec<u8>], compression: Compression) -> std::io::Result<StagedFile> {
    let mut plain = Vec::with_capacity(lines.iter().map(Vec::len).sum());
    let mut first_lines = Vec::with_capacity(lines.len());
    let mut line = 1u64;
    for text in lines {
        first_lines.push(line);
        line += text.iter().filter(|&&b| b == b'\n').count() as u64;
        plain.extend_from_slice(text);
    }
    let body = match compression {
        Compression::None => plain,
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&plain)?;
            encoder.finish()?
        }
    };
    Ok(StagedFile { body, first_lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use shardline_plugin_sdk::{RecordMeta, SequenceNumber};

    fn record(seq: &str, sub: u64, data: &str) -> Record {
        let meta = RecordMeta {
            stream: Arc::from("s"),
            shard_id: Arc::from("shardId-000000000001"),
            sequence_number: SequenceNumber::parse(seq).unwrap_or_else(|e| panic!("{e}")),
            sub_sequence_number: sub,
            partition_key: "pk".into(),
            explicit_hash_key: None,
            arrival_time: std::time::SystemTime::UNIX_EPOCH,
            aggregated: false,
        };
        Record::new(bytes::Bytes::from(data.to_owned()), Arc::new(meta))
    }

    #[test]
    fn keys_are_deterministic() {
        let (a, b) = (record("100", 0, "{}"), record("205", 3, "{}"));
        let k = keys("p/", "my pipe", "shardId-000000000001", &[&a, &b], CopyFormat::Json, Compression::Gzip);
        assert_eq!(k.data, "p/my_pipe/shardId-000000000001/100-0_205-3.json.gz");
        assert_eq!(k.manifest, "p/my_pipe/shardId-000000000001/100-0_205-3.manifest");
        assert_eq!(k.errors_manifest, "p/errors/my_pipe/shardId-000000000001/100-0_205-3.manifest");
        assert_eq!(k, keys("p/", "my pipe", "shardId-000000000001", &[&a, &b], CopyFormat::Json, Compression::Gzip));
        let csv = keys("p/", "x", "s", &[&a], CopyFormat::Csv, Compression::None);
        assert_eq!(csv.data, "p/x/s/100-0_100-0.csv");
    }

    #[test]
    fn sortable_positions_sort_like_positions() {
        let p = |seq: &str, sub: u64| sortable_position(&record(seq, sub, "{}"));
        assert_eq!(p("205", 3), "003205.013");
        assert!(p("99", 0) < p("100", 0));
        assert!(p("100", 9) < p("100", 10));
        assert!(p("100", 10) < p("101", 0));
    }

    #[test]
    fn manifests_list_mandatory_entries() {
        let m: serde_json::Value = serde_json::from_slice(&manifest(&[("s3://b/k.gz".into(), 12)])).unwrap_or_default();
        assert_eq!(m, serde_json::json!({"entries": [{"url": "s3://b/k.gz", "mandatory": true, "meta": {"content_length": 12}}]}));
    }

    #[test]
    fn lines_are_checked_and_mapped_back_to_records() {
        assert!(line(&record("1", 0, "[1]"), CopyFormat::Json).is_err());
        assert!(line(&record("1", 0, "nope"), CopyFormat::Json).is_err());
        assert_eq!(line(&record("1", 0, "{\"a\":\n1}"), CopyFormat::Json).unwrap_or_default(), b"{\"a\":1}\n");
        assert_eq!(line(&record("1", 0, "a,b\n"), CopyFormat::Csv).unwrap_or_default(), b"a,b\n");
        let lines = vec![b"a\n".to_vec(), b"\"x\ny\"\n".to_vec(), b"c\n".to_vec()];
        let file = encode(&lines, Compression::Gzip).unwrap_or_default();
        assert_eq!(file.first_lines, [1, 2, 4]);
        assert_eq!((file.record_at_line(1), file.record_at_line(3), file.record_at_line(4), file.record_at_line(9)), (Some(0), Some(1), Some(2), Some(2)));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&file.body[..]), &mut plain).unwrap_or_default();
        assert_eq!(plain, b"a\n\"x\ny\"\nc\n");
    }
}

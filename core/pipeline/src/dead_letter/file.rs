//! Dead letters as NDJSON files, one [`envelope`](crate::envelope) per
//! line, rotated by size and fsynced on every write.

use std::path::PathBuf;

use async_trait::async_trait;
use shardline_api::{ByteSize, SinkError};

use super::{encode, DeadLetter, DeadLetterEntry};
use crate::rolling_file::SharedRollingFile;

/// Writes dead letters to `{path}/{pipeline}-{unix_millis}-{pid}-{n}.ndjson`.
#[derive(Debug, Clone)]
pub struct FileDeadLetter {
    file: SharedRollingFile,
}

impl FileDeadLetter {
    /// A destination writing into `dir` (created on first write), starting
    /// a new file once `max_file_size` would be exceeded. Does no I/O.
    pub fn new(dir: PathBuf, pipeline: &str, max_file_size: ByteSize) -> Self {
        FileDeadLetter { file: SharedRollingFile::new(dir, pipeline, max_file_size.bytes().max(1)) }
    }
}

#[async_trait]
impl DeadLetter for FileDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        if entries.is_empty() {
            return Ok(());
        }
        let lines = encode(entries);
        let to_sink_error = |e: crate::rolling_file::FileError| {
            SinkError::retriable(format!("dead letters in {}: {e}", self.file.dir().display()))
        };
        self.file.append(lines).await.map_err(to_sink_error)?;
        self.file.sync().await.map_err(to_sink_error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::envelope::tests::record;

    #[tokio::test]
    async fn writes_one_line_per_entry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("dl");
        let dl = FileDeadLetter::new(dir.clone(), "orders", ByteSize(100 << 20));
        let entry = |data, reason: &str, stage: &str| DeadLetterEntry {
            record: record(data),
            reason: reason.to_owned(),
            stage: stage.to_owned(),
            pipeline: Arc::from("orders"),
        };
        dl.write(&[entry(b"{oops", "invalid JSON: eof", "transform:parse_json"), entry(b"\xfe", "rejected", "sink")])
            .await
            .expect("write");
        let files: Vec<_> = std::fs::read_dir(&dir).expect("dir").map(|e| e.expect("entry").path()).collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().expect("name").to_string_lossy().into_owned();
        assert!(name.starts_with("orders-") && name.ends_with(".ndjson"), "{name}");
        let text = std::fs::read_to_string(&files[0]).expect("read");
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["stage"], "transform:parse_json");
        assert_eq!(lines[0]["reason"], "invalid JSON: eof");
        assert_eq!(lines[0]["data"], "{oops");
        assert_eq!(lines[0]["pipeline"], "orders");
        assert_eq!(lines[0]["shard_id"], "shardId-000000000007");
        assert_eq!(lines[1]["stage"], "sink");
        assert_eq!(lines[1]["data_base64"], "/g==");
    }
}

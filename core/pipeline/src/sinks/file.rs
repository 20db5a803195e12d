//! The `file` sink: NDJSON files rotated by size, fsynced on `flush()`.
//!
//! `send()` appends the whole batch in one write (to the operating system,
//! not a user-space buffer) and answers `Delivered` for every record; an
//! I/O error (a full disk…) fails the call as retriable, naming the path.

use std::sync::Arc;

use async_trait::async_trait;
use shardline_api::{Record, RecordStatus, Sink, SinkError};

use super::{FileSinkConfig, Format};
use crate::rolling_file::{FileError, SharedRollingFile};

/// Writes records to `{path}/{pipeline}-{unix_millis}-{pid}-{n}.ndjson`.
#[derive(Debug, Clone)]
pub struct FileSink {
    file: SharedRollingFile,
    format: Format,
    pipeline: Arc<str>,
}

impl FileSink {
    /// A file sink for `pipeline`. Does no I/O.
    pub fn new(cfg: &FileSinkConfig, pipeline: &str) -> Self {
        FileSink {
            file: SharedRollingFile::new(cfg.path.clone(), pipeline, cfg.max_file_size.bytes().max(1)),
            format: cfg.format,
            pipeline: Arc::from(pipeline),
        }
    }
}

fn to_sink_error(e: FileError) -> SinkError {
    SinkError::retriable(format!("file sink: {e}"))
}

#[async_trait]
impl Sink for FileSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.file.check_writable().await.map_err(to_sink_error)
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.file.append(self.format.encode(&self.pipeline, batch)).await.map_err(to_sink_error)?;
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.file.sync().await.map_err(to_sink_error)
    }

    async fn close(&self) -> Result<(), SinkError> {
        self.file.sync().await.map_err(to_sink_error)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use shardline_api::ByteSize;

    use super::*;
    use crate::envelope::tests::record;

    fn read_all(dir: &Path) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()).collect();
        files.sort_by_key(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.trim_end_matches(".ndjson").rsplit('-').next().and_then(|n| n.parse::<u64>().ok())
        });
        files.iter().map(|p| std::fs::read_to_string(p).expect("read")).collect()
    }

    #[tokio::test]
    async fn payload_format_rotates_by_size() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("out");
        let cfg = FileSinkConfig { path: dir.clone(), format: Format::Payload, max_file_size: ByteSize(12) };
        let sink = super::super::build_file_sink(&cfg, "p").expect("builds");
        sink.healthcheck().await.expect("writable");
        for batch in [vec![record(b"one"), record(b"two")], vec![record(b"three")], vec![record(b"four")]] {
            let statuses = sink.send(&batch).await.expect("send");
            assert_eq!(statuses, vec![RecordStatus::Delivered; batch.len()]);
        }
        sink.flush().await.expect("fsync");
        assert_eq!(read_all(&dir), ["one\ntwo\n", "three\nfour\n"]);
    }

    #[tokio::test]
    async fn envelope_format_has_metadata_and_no_stage() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = FileSinkConfig { path: tmp.path().to_owned(), format: Format::Envelope, max_file_size: ByteSize(1 << 20) };
        let sink = FileSink::new(&cfg, "orders");
        sink.send(&[record(b"{\"a\":1}")]).await.expect("send");
        let files = read_all(tmp.path());
        assert_eq!(files.len(), 1);
        let v: serde_json::Value = serde_json::from_str(files[0].trim_end()).expect("json");
        assert_eq!(v["pipeline"], "orders");
        assert_eq!(v["data"], "{\"a\":1}");
        assert_eq!(v["sub_sequence_number"], 3);
        assert_eq!(v["arrival_time"], "2023-11-14T22:13:20.123Z");
        assert!(v.get("stage").is_none() && v.get("reason").is_none());
    }

    #[tokio::test]
    async fn io_errors_are_retriable_and_name_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blocker = tmp.path().join("occupied");
        std::fs::write(&blocker, b"").expect("write");
        let cfg = FileSinkConfig { path: blocker.clone(), format: Format::Payload, max_file_size: ByteSize(100) };
        let sink = FileSink::new(&cfg, "p");
        let err = sink.send(&[record(b"x")]).await.expect_err("path is a file");
        assert!(err.kind.is_retriable());
        assert!(err.message.contains("occupied"), "{}", err.message);
        assert!(sink.healthcheck().await.is_err());
    }
}

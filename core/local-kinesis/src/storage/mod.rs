//! The data directory: a small metadata file describing streams and shards,
//! and one append-only log per shard ([`log::ShardLog`]).
//!
//! ```text
//! <data-dir>/metadata.json                         streams, shards, lineage (replaced atomically)
//! <data-dir>/streams/<name>-<created ms>/<shard id>/<first counter>.log
//! ```
//!
//! The metadata file is written to a temporary file, synced and renamed
//! over the old one, so a crash leaves either the old or the new version.
//! A stream directory that the metadata does not name (a stream deleted
//! while the server crashed) is removed at start.

pub(crate) mod log;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shardline_dir_lock::{DirLock, DirLockError};

use crate::error::LocalKinesisError;

const METADATA_FILE: &str = "metadata.json";
const METADATA_VERSION: u32 = 1;

/// Everything the server knows besides records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metadata {
    pub version: u32,
    pub streams: Vec<StreamMeta>,
}

/// A stream as persisted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamMeta {
    pub name: String,
    pub created_ms: u64,
    pub retention_ms: u64,
    /// `PROVISIONED` or `ON_DEMAND`.
    pub mode: String,
    pub shards: Vec<ShardMeta>,
}

/// A shard as persisted. Hash keys are decimal strings (JSON numbers
/// cannot hold 128 bits).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShardMeta {
    pub index: u32,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub created_ms: u64,
    pub closed_ms: Option<u64>,
}

/// Paths inside the data directory, which this value holds locked.
#[derive(Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    /// `<data-dir>/lock`, held with an exclusive `flock` for the life of
    /// the server: two servers on one directory would corrupt the logs.
    _lock: DirLock,
}

impl DataDir {
    /// Creates the directory if needed and locks it.
    ///
    /// # Errors
    /// [`LocalKinesisError::Locked`] when another server (in this or
    /// another process) uses the directory.
    pub(crate) fn open(root: &Path) -> Result<DataDir, LocalKinesisError> {
        std::fs::create_dir_all(root.join("streams")).map_err(LocalKinesisError::io("create directory", root))?;
        let lock = DirLock::acquire(root, "lock").map_err(|e| match e {
            DirLockError::Held { source, .. } => LocalKinesisError::Locked { path: root.to_owned(), source },
            DirLockError::Open { path, source } => LocalKinesisError::io("open", path)(source),
        })?;
        Ok(DataDir { root: root.to_owned(), _lock: lock })
    }

    pub(crate) fn stream_dir(&self, name: &str, created_ms: u64) -> PathBuf {
        self.root.join("streams").join(format!("{name}-{created_ms}"))
    }

    pub(crate) fn shard_dir(&self, name: &str, created_ms: u64, shard_id: &str) -> PathBuf {
        self.stream_dir(name, created_ms).join(shard_id)
    }

    /// Reads the metadata; empty when the file does not exist yet.
    pub(crate) fn load(&self) -> Result<Metadata, LocalKinesisError> {
        let path = self.root.join(METADATA_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Metadata { version: METADATA_VERSION, streams: Vec::new() })
            }
            Err(e) => return Err(LocalKinesisError::io("read", &path)(e)),
        };
        let metadata: Metadata =
            serde_json::from_slice(&text).map_err(|e| LocalKinesisError::Metadata { path: path.clone(), message: e.to_string() })?;
        if metadata.version != METADATA_VERSION {
            return Err(LocalKinesisError::Metadata { path, message: format!("unsupported version {}", metadata.version) });
        }
        Ok(metadata)
    }

    /// Replaces the metadata file atomically and durably.
    pub(crate) fn save(&self, metadata: &Metadata) -> Result<(), LocalKinesisError> {
        let path = self.root.join(METADATA_FILE);
        let temp = self.root.join(format!("{METADATA_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(metadata)
            .map_err(|e| LocalKinesisError::Metadata { path: path.clone(), message: e.to_string() })?;
        let mut file = std::fs::File::create(&temp).map_err(LocalKinesisError::io("create", &temp))?;
        file.write_all(&text).map_err(LocalKinesisError::io("write", &temp))?;
        file.sync_all().map_err(LocalKinesisError::io("sync", &temp))?;
        std::fs::rename(&temp, &path).map_err(LocalKinesisError::io("rename", &temp))?;
        if let Ok(dir) = std::fs::File::open(&self.root) {
            dir.sync_all().map_err(LocalKinesisError::io("sync", &self.root))?;
        }
        Ok(())
    }

    /// Removes stream directories that `metadata` does not name.
    pub(crate) fn remove_orphans(&self, metadata: &Metadata) {
        let known: Vec<PathBuf> = metadata.streams.iter().map(|s| self.stream_dir(&s.name, s.created_ms)).collect();
        let Ok(listing) = std::fs::read_dir(self.root.join("streams")) else { return };
        for item in listing.flatten() {
            let path = item.path();
            if !known.contains(&path) {
                tracing::info!(path = %path.display(), "removing the data of a deleted stream");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the data of a deleted stream");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(data.load().unwrap().streams.is_empty());
        let metadata = Metadata {
            version: METADATA_VERSION,
            streams: vec![StreamMeta {
                name: "s".into(),
                created_ms: 5,
                retention_ms: 1000,
                mode: "PROVISIONED".into(),
                shards: vec![ShardMeta {
                    index: 0,
                    parent: None,
                    adjacent_parent: None,
                    starting_hash_key: "0".into(),
                    ending_hash_key: u128::MAX.to_string(),
                    created_ms: 5,
                    closed_ms: None,
                }],
            }],
        };
        data.save(&metadata).unwrap();
        assert_eq!(data.load().unwrap(), metadata);
        std::fs::create_dir_all(data.stream_dir("gone", 1)).unwrap();
        std::fs::create_dir_all(data.stream_dir("s", 5)).unwrap();
        data.remove_orphans(&metadata);
        assert!(!data.stream_dir("gone", 1).exists());
        assert!(data.stream_dir("s", 5).exists());
        assert!(matches!(DataDir::open(dir.path()), Err(LocalKinesisError::Locked { .. })));
        drop(data);
        assert!(DataDir::open(dir.path()).is_ok());
    }
}

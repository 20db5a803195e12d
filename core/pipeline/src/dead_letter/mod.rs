//! The dead-letter destination: where records go that a transform failed
//! on, that the sink rejected, or whose retries ran out, each with the
//! reason and the stage that gave up on it.
//!
//! `[dead_letter]` in a pipeline's configuration picks a [`file`](mod@file)
//! destination (NDJSON files, the default) or `stderr`.

pub mod file;
pub mod stderr;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use shardline_api::{ByteSize, Record, SinkError};

use crate::config::Problems;
use crate::error::BuildError;

pub use file::FileDeadLetter;
pub use stderr::StderrDeadLetter;

/// One record that could not be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterEntry {
    /// The record (the input record when a transform failed, the transform
    /// output when the sink gave up on it).
    pub record: Record,
    /// Why, as the transform or the sink said it.
    pub reason: String,
    /// Which stage gave up: `transform:<name>` or `sink`.
    pub stage: String,
    /// The pipeline's name.
    pub pipeline: Arc<str>,
}

/// A durable store for records that cannot be delivered.
#[async_trait]
pub trait DeadLetter: Send + Sync + 'static {
    /// Durably stores these records with their reasons.
    ///
    /// # Errors
    /// A [`SinkError`] when they could not be stored; the engine tries
    /// again later (forever, stalling the shard rather than losing data).
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError>;
}

/// `[dead_letter]`: where undeliverable records go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// NDJSON files (see [`crate::envelope`]) named
    /// `{pipeline}-{unix_millis}-{pid}-{n}.ndjson`, fsynced on every write.
    File {
        /// Directory of the files, created if missing. Default
        /// `"./dead-letters"`.
        #[serde(default = "default_path")]
        path: PathBuf,
        /// Size after which a new file is started. Default `"100MiB"`.
        #[serde(default = "default_max_file_size")]
        max_file_size: ByteSize,
    },
    /// NDJSON lines on standard error.
    Stderr,
}

fn default_path() -> PathBuf {
    PathBuf::from("./dead-letters")
}

fn default_max_file_size() -> ByteSize {
    ByteSize(100 << 20)
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig::File { path: default_path(), max_file_size: default_max_file_size() }
    }
}

impl DeadLetterConfig {
    /// Checks the values without I/O.
    ///
    /// # Errors
    /// Every `(key, message)` problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        if let DeadLetterConfig::File { path, max_file_size } = self {
            if path.as_os_str().is_empty() {
                problems.push(("path".to_owned(), "must not be empty".to_owned()));
            }
            if max_file_size.bytes() == 0 {
                problems.push(("max_file_size".to_owned(), "must be at least 1B".to_owned()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Builds the destination for `pipeline`. Does no I/O (the file
    /// destination creates its directory on first write).
    ///
    /// # Errors
    /// [`BuildError::InvalidConfig`] when [`validate`](Self::validate) fails.
    pub fn build(&self, pipeline: &str) -> Result<Arc<dyn DeadLetter>, BuildError> {
        self.validate().map_err(|p| BuildError::from_problems("dead_letter", p))?;
        Ok(match self {
            DeadLetterConfig::File { path, max_file_size } => {
                Arc::new(FileDeadLetter::new(path.clone(), pipeline, *max_file_size))
            }
            DeadLetterConfig::Stderr => Arc::new(StderrDeadLetter::new()),
        })
    }
}

/// The NDJSON lines of `entries`.
pub(crate) fn encode(entries: &[DeadLetterEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let failure = crate::envelope::Failure { stage: &entry.stage, reason: &entry.reason };
        crate::envelope::write_line(&mut out, &entry.pipeline, &entry.record, Some(failure));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let c: DeadLetterConfig = toml::from_str("type = \"file\"").expect("defaults");
        assert_eq!(c, DeadLetterConfig::default());
        let c: DeadLetterConfig =
            toml::from_str("type = \"file\"\npath = \"/tmp/dl\"\nmax_file_size = \"1MiB\"").expect("file");
        assert_eq!(c, DeadLetterConfig::File { path: "/tmp/dl".into(), max_file_size: ByteSize(1 << 20) });
        let c: DeadLetterConfig = toml::from_str("type = \"stderr\"").expect("stderr");
        assert_eq!(c, DeadLetterConfig::Stderr);
        let err = toml::from_str::<DeadLetterConfig>("type = \"file\"\npaht = \"x\"").expect_err("unknown key");
        assert!(err.to_string().contains("paht"), "{err}");
        assert!(toml::from_str::<DeadLetterConfig>("type = \"s3\"").is_err());
    }

    #[test]
    fn build_rejects_invalid_values() {
        let c = DeadLetterConfig::File { path: PathBuf::new(), max_file_size: ByteSize(0) };
        assert_eq!(c.validate().expect_err("invalid").len(), 2);
        let err = c.build("p").err().expect("invalid");
        assert!(err.to_string().contains("path"), "{err}");
        assert!(DeadLetterConfig::Stderr.build("p").is_ok());
    }
}

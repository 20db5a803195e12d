//! The built-in `file` sink as a [`SinkUnderTest`], and helpers for sinks
//! that write into a directory.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize as _;
use shardline_api::Sink;
use shardline_pipeline::sinks::{build_file_sink, FileSinkConfig};

use crate::{InvalidConfig, Scope, SinkUnderTest};

/// Makes `scope.dir` unusable as a directory: a regular file takes its
/// place, so creating or writing into it fails (with an I/O error, which
/// directory sinks answer as retriable).
///
/// # Panics
/// When the file cannot be created.
pub fn block_dir(scope: &Scope) {
    if let Some(parent) = scope.dir.parent() {
        std::fs::create_dir_all(parent).expect("create the scope's parent");
    }
    std::fs::write(&scope.dir, b"blocked by the conformance suite").expect("block the scope's directory");
}

/// Removes the file [`block_dir`] put in place.
///
/// # Panics
/// When it cannot be removed.
pub fn unblock_dir(scope: &Scope) {
    if scope.dir.is_file() {
        std::fs::remove_file(&scope.dir).expect("unblock the scope's directory");
    }
}

/// Every line of every file in `dir` whose name ends with `suffix` (hidden
/// files skipped), without the newline.
pub fn read_lines(dir: &Path, suffix: &str) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return lines };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.ends_with(suffix) && !name.starts_with('.')
        })
        .collect();
    files.sort();
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        lines.extend(bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    lines
}

/// The built-in `file` sink (`format = "payload"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSinkUnderTest;

fn table(text: &str) -> toml::Table {
    text.parse().expect("a valid TOML table")
}

fn path_value(scope: &Scope) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(&scope.dir.to_string_lossy()).expect("strings serialise")
}

#[async_trait]
impl SinkUnderTest for FileSinkUnderTest {
    fn sink_type(&self) -> String {
        "file".to_owned()
    }

    fn config(&self, scope: &Scope) -> toml::Table {
        table(&format!("path = {}\nmax_file_size = \"4KiB\"", path_value(scope)))
    }

    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig> {
        let path = path_value(scope);
        vec![
            InvalidConfig { config: table("format = \"payload\""), key: Some("path".into()) },
            InvalidConfig { config: table(&format!("path = {path}\npth = 1")), key: Some("pth".into()) },
            InvalidConfig { config: table(&format!("path = {path}\nmax_file_size = 0")), key: Some("max_file_size".into()) },
            InvalidConfig { config: table(&format!("path = {path}\nformat = \"xml\"")), key: None },
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        let cfg = FileSinkConfig::deserialize(toml::Value::Table(config.clone())).map_err(|e| {
            let message = e.to_string();
            let key = ["unknown field `", "missing field `"].iter().find_map(|marker| {
                let start = message.find(marker)? + marker.len();
                let end = message[start..].find('`')?;
                Some(message[start..start + end].to_owned())
            });
            (key, message)
        })?;
        cfg.validate().map_err(|problems| {
            let (key, message) = problems.into_iter().next().unwrap_or_default();
            (Some(key), message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        let cfg = FileSinkConfig::deserialize(toml::Value::Table(config.clone())).map_err(|e| e.to_string())?;
        build_file_sink(&cfg, pipeline).map_err(|e| e.to_string())
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        read_lines(&scope.dir, ".ndjson").into_iter().map(Bytes::from).collect()
    }

    async fn make_unavailable(&self, scope: &Scope) -> bool {
        block_dir(scope);
        true
    }

    async fn make_available(&self, scope: &Scope) {
        unblock_dir(scope);
    }
}

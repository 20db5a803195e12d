//! S3 helpers for the `s3` sink's tests: the moto endpoint
//! (`SHARDLINE_TEST_S3_ENDPOINT`, started by
//! `scripts/emulators/extra/10-moto-s3.sh`), fresh buckets, listing and
//! reading objects back (decompressed by their Content-Encoding or
//! extension), object versions, open multipart uploads, the plugin
//! directory, and a pipeline file whose sink is the plugin.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_s3::Client;

use crate::emulators::running_in_ci;

/// moto's endpoint, or `None` after printing why the test is skipped.
///
/// # Panics
/// When it is unset and `CI=true`.
pub fn endpoint_from_env() -> Option<String> {
    match std::env::var("SHARDLINE_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            let message = "SHARDLINE_TEST_S3_ENDPOINT not set (run scripts/test, which starts moto's S3)";
            if running_in_ci() {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// The directory holding `libshardline_sink_s3.so`: `SHARDLINE_TEST_PLUGIN_DIR`
/// (scripts/test sets it to `target/debug` after `cargo build --workspace`),
/// else `<target>/debug`. `None` (after printing why) when the library is
/// not there.
///
/// # Panics
/// When the library is missing and `CI=true`.
pub fn plugin_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SHARDLINE_TEST_PLUGIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
        }
        .join("debug"),
    };
    let file = format!("{}shardline_sink_s3{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    if dir.join(&file).is_file() {
        return Some(dir);
    }
    let message = format!("{file} not found in {} (run scripts/test, or cargo build -p shardline-sink-s3)", dir.display());
    if running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// One stored object, read back.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// The body as stored.
    pub raw: Vec<u8>,
    /// The body decompressed.
    pub body: Vec<u8>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

impl StoredObject {
    /// The body's lines (without the line ends, empty lines skipped).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        self.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
    }
}

/// Decompresses `raw` by `content_encoding`, else by the key's extension.
///
/// # Errors
/// When the body is not valid gzip or zstd.
pub fn decompress(key: &str, content_encoding: Option<&str>, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let gzip = content_encoding == Some("gzip") || (content_encoding.is_none() && key.ends_with(".gz"));
    let zstd = content_encoding == Some("zstd") || (content_encoding.is_none() && key.ends_with(".zst"));
    let mut out = Vec::new();
    if gzip {
        flate2::read::GzDecoder::new(raw).read_to_end(&mut out).with_context(|| format!("{key}: not gzip"))?;
    } else if zstd {
        out = zstd::decode_all(raw).with_context(|| format!("{key}: not zstd"))?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(out)
}

/// An S3 client for moto (static test credentials, path style).
#[derive(Debug, Clone)]
pub struct S3 {
    /// The client.
    pub client: Client,
    /// The endpoint.
    pub endpoint: String,
}

impl S3 {
    /// A client for `endpoint`.
    pub fn new(endpoint: &str) -> S3 {
        let config = aws_sdk_s3::config::Builder::from(&shardline_aws::emulator_sdk_config(endpoint)).force_path_style(true).build();
        S3 { client: Client::from_conf(config), endpoint: endpoint.to_owned() }
    }

    /// Creates a fresh bucket named `<prefix>-<pid>-<n>-<random>`.
    ///
    /// # Errors
    /// When CreateBucket fails.
    pub async fn create_bucket(&self, prefix: &str) -> anyhow::Result<String> {
        let bucket = crate::unique_name(prefix).to_lowercase();
        self.client.create_bucket().bucket(&bucket).send().await.with_context(|| format!("CreateBucket {bucket}"))?;
        Ok(bucket)
    }

    /// Turns versioning on, so that overwrites leave a trace.
    ///
    /// # Errors
    /// When PutBucketVersioning fails.
    pub async fn enable_versioning(&self, bucket: &str) -> anyhow::Result<()> {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        self.client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
            .send()
            .await
            .with_context(|| format!("PutBucketVersioning {bucket}"))?;
        Ok(())
    }

    /// Every key under `prefix`, sorted (ListObjectsV2, all pages).
    ///
    /// # Errors
    /// When a list call fails.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("ListObjectsV2 {bucket}/{prefix}"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        keys.sort();
        Ok(keys)
    }

    /// Reads one object.
    ///
    /// # Errors
    /// When GetObject fails or the body cannot be decompressed.
    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<StoredObject> {
        let answer = self.client.get_object().bucket(bucket).key(key).send().await.with_context(|| format!("GetObject {bucket}/{key}"))?;
        let content_encoding = answer.content_encoding().map(str::to_owned);
        let content_type = answer.content_type().map(str::to_owned);
        let raw = answer.body.collect().await.with_context(|| format!("read {bucket}/{key}"))?.into_bytes().to_vec();
        let body = decompress(key, content_encoding.as_deref(), &raw)?;
        Ok(StoredObject { key: key.to_owned(), raw, body, content_encoding, content_type })
    }

    /// Every object under `prefix`, in key order.
    ///
    /// # Errors
    /// As [`S3::keys`] and [`S3::get`].
    pub async fn objects(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<StoredObject>> {
        let mut objects = Vec::new();
        for key in self.keys(bucket, prefix).await? {
            objects.push(self.get(bucket, &key).await?);
        }
        Ok(objects)
    }

    /// `(key, number of versions)` of every key under `prefix`.
    ///
    /// # Errors
    /// When ListObjectVersions fails.
    pub async fn version_counts(&self, bucket: &str, prefix: &str) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
        let mut counts = std::collections::BTreeMap::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .with_context(|| format!("ListObjectVersions {bucket}/{prefix}"))?;
            for version in page.versions() {
                if let Some(key) = version.key() {
                    *counts.entry(key.to_owned()).or_insert(0) += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(counts);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }

    /// Multipart uploads started and neither completed nor aborted.
    ///
    /// # Errors
    /// When ListMultipartUploads fails.
    pub async fn open_multipart_uploads(&self, bucket: &str) -> anyhow::Result<usize> {
        let answer = self.client.list_multipart_uploads().bucket(bucket).send().await.with_context(|| format!("ListMultipartUploads {bucket}"))?;
        Ok(answer.uploads().len())
    }
}

/// `spec`'s pipeline file with its file sink replaced by `sink` (the
/// `[sink]` table's keys, `type` included, one per line).
///
/// # Panics
/// When the harness's sink section is not where it is expected.
pub fn pipeline_with_sink(spec: &crate::PipelineSpec, sink: &str) -> String {
    let toml = spec.to_toml();
    let file_sink = format!(
        "[sink]\ntype = \"file\"\npath = {}\nformat = \"envelope\"\n",
        serde_json::to_string(&spec.sink_dir.to_string_lossy()).unwrap_or_default()
    );
    assert!(toml.contains(&file_sink), "the harness's sink section changed:\n{toml}");
    toml.replace(&file_sink, &format!("[sink]\n{sink}\n"))
}

/// Polls the objects under `prefix` until `done` says they are complete,
/// while every worker keeps running; returns them.
///
/// # Panics
/// On timeout or when a worker exits (with what was found).
pub async fn wait_for_objects(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    workers: &[&crate::Worker],
    timeout: std::time::Duration,
    done: impl Fn(&[StoredObject]) -> bool,
) -> Vec<StoredObject> {
    let found = std::sync::Mutex::new(Vec::new());
    let result = crate::wait_until(timeout, "the expected S3 objects", || async {
        for worker in workers {
            worker.ensure_running()?;
        }
        let objects = s3.objects(bucket, prefix).await?;
        let complete = done(&objects);
        *found.lock().unwrap_or_else(|e| e.into_inner()) = objects;
        Ok(complete)
    })
    .await;
    let objects = found.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = result {
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        panic!("{e:#}\nobjects in s3://{bucket}/{prefix}: {keys:?}");
    }
    objects
}

/// The `id` of every NDJSON line of `objects`, in object and line order.
///
/// # Panics
/// On a line that is not JSON.
pub fn ndjson_ids(objects: &[StoredObject]) -> Vec<String> {
    objects
        .iter()
        .flat_map(|o| o.lines().into_iter().map(move |l| (o.key.clone(), l)))
        .map(|(key, line)| {
            let value: serde_json::Value =
                serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{key}: not JSON ({e}): {}", String::from_utf8_lossy(&line)));
            value.get("id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned()
        })
        .collect()
}

/// A Python with pyarrow and DuckDB, for reading Parquet objects back:
/// `SHARDLINE_TEST_PARQUET_PYTHON` (set by
/// `scripts/emulators/extra/15-python-parquet.sh`), else the test venv's
/// `target/venv/bin/python3` when it imports both. `None` (after printing
/// why) otherwise.
///
/// # Panics
/// When none is found and `CI=true`.
pub fn parquet_python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("venv").join("bin").join("python3");
    let candidate = match std::env::var_os("SHARDLINE_TEST_PARQUET_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => venv,
    };
    let imports = std::process::Command::new(&candidate)
        .args(["-c", "import pyarrow, duckdb"])
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if imports {
        return Some(candidate);
    }
    let message = format!(
        "{} cannot import pyarrow and duckdb (run scripts/test, which installs them: scripts/emulators/extra/15-python-parquet.sh)",
        candidate.display()
    );
    if running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// The number of rows of a Parquet file, from its footer.
///
/// # Errors
/// When `body` is not a Parquet file.
pub fn parquet_rows(body: &[u8]) -> anyhow::Result<i64> {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::copy_from_slice(body)).context("not a Parquet file")?;
    Ok(reader.metadata().file_metadata().num_rows())
}

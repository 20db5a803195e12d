//! OpenSearch helpers for the elasticsearch sink's end-to-end tests: the
//! shared osmem-server that `scripts/test` starts
//! (`SHARDLINE_TEST_OPENSEARCH_ENDPOINT`), a server of the test's own that
//! can be stopped and restarted on the same port
//! (`SHARDLINE_TEST_OSMEM_BIN`), a small blocking HTTP client for reading
//! documents back, and the plugin directory (`SHARDLINE_TEST_PLUGIN_DIR`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::emulators::running_in_ci;

fn skip(message: &str) {
    if running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
}

/// An OpenSearch-compatible server at `host:port`.
#[derive(Debug, Clone)]
pub struct OpenSearch {
    /// `127.0.0.1:port`.
    pub address: String,
}

/// One stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    /// `_index`.
    pub index: String,
    /// `_source`.
    pub source: Value,
}

impl OpenSearch {
    /// The shared server from `SHARDLINE_TEST_OPENSEARCH_ENDPOINT`, or
    /// `None` after printing `skipped: ...`.
    ///
    /// # Panics
    /// When it is unset and `CI=true`.
    pub fn from_env() -> Option<OpenSearch> {
        match std::env::var("SHARDLINE_TEST_OPENSEARCH_ENDPOINT") {
            Ok(e) if !e.is_empty() => Some(OpenSearch::at(&e)),
            _ => {
                skip("SHARDLINE_TEST_OPENSEARCH_ENDPOINT not set (run scripts/test)");
                None
            }
        }
    }

    /// The server at `endpoint` (`http://host:port` or `host:port`).
    pub fn at(endpoint: &str) -> OpenSearch {
        OpenSearch { address: endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned() }
    }

    /// `http://host:port`, for a sink's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `METHOD path` with a JSON body: `(status, body)`.
    ///
    /// # Errors
    /// When the server cannot be reached or answers nonsense.
    pub fn http(&self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(&self.address).with_context(|| format!("connect {}", self.address))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let response = String::from_utf8_lossy(&response);
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let json = serde_json::from_str(body).with_context(|| format!("{method} {path}: not JSON: {body}"))?;
        Ok((status, json))
    }

    /// Every document of the indices matching `pattern` (e.g. `clicks-*`),
    /// by `_id`, after a refresh. Empty when no index matches yet.
    ///
    /// # Errors
    /// When the search fails.
    pub fn documents(&self, pattern: &str) -> anyhow::Result<BTreeMap<String, StoredDoc>> {
        let (status, body) = self.http("POST", &format!("/{pattern}/_refresh"), "")?;
        if status == 404 {
            return Ok(BTreeMap::new());
        }
        let query = r#"{"size":10000,"query":{"match_all":{}}}"#;
        let (status, body) = match status {
            200 => self.http("POST", &format!("/{pattern}/_search"), query)?,
            _ => bail!("refresh {pattern} answered {status}: {body}"),
        };
        if status == 404 {
            return Ok(BTreeMap::new());
        }
        if status != 200 {
            bail!("search {pattern} answered {status}: {body}");
        }
        let hits = body.pointer("/hits/hits").and_then(Value::as_array).context("no hits in the search answer")?;
        let mut docs = BTreeMap::new();
        for hit in hits {
            let id = hit["_id"].as_str().context("hit without _id")?.to_owned();
            let index = hit["_index"].as_str().context("hit without _index")?.to_owned();
            docs.insert(id, StoredDoc { index, source: hit["_source"].clone() });
        }
        Ok(docs)
    }

    /// `GET /{index}/_doc/{id}`: the source, or `None` when not found.
    ///
    /// # Errors
    /// When the request fails.
    pub fn get(&self, index: &str, id: &str) -> anyhow::Result<Option<Value>> {
        let (status, body) = self.http("GET", &format!("/{index}/_doc/{id}"), "")?;
        match status {
            200 if body["found"] == Value::Bool(true) => Ok(Some(body["_source"].clone())),
            200 | 404 => Ok(None),
            _ => bail!("GET {index}/_doc/{id} answered {status}: {body}"),
        }
    }
}

/// An osmem-server process of the test's own, on a fixed port, that can be
/// stopped (SIGKILL by PID) and started again on the same port. In-memory:
/// a restarted server is empty. Killed when dropped, and by osmem itself
/// when the test process dies (`-parent-pid`).
pub struct OsmemServer {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OsmemServer {
    /// Starts one from `SHARDLINE_TEST_OSMEM_BIN`; `None` after printing
    /// `skipped: ...` when it is unset.
    ///
    /// # Panics
    /// When it is unset and `CI=true`, or the server does not start.
    pub fn start() -> Option<OsmemServer> {
        let bin = match std::env::var_os("SHARDLINE_TEST_OSMEM_BIN") {
            Some(b) if !b.is_empty() => PathBuf::from(b),
            _ => {
                skip("SHARDLINE_TEST_OSMEM_BIN not set (run scripts/test)");
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = OsmemServer { bin, port, child: None };
        server.restart();
        Some(server)
    }

    /// Its address.
    pub fn opensearch(&self) -> OpenSearch {
        OpenSearch { address: format!("127.0.0.1:{}", self.port) }
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL, by its PID) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on its port and waits until it answers `GET /`.
    ///
    /// # Panics
    /// When it is running, or does not answer within 30 s.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "osmem-server is already running");
        let started = Instant::now();
        loop {
            let child = Command::new(&self.bin)
                .args(["-addr", &format!("127.0.0.1:{}", self.port), "-no-stdin-watch", "-parent-pid", &std::process::id().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
            self.child = Some(child);
            while started.elapsed() < Duration::from_secs(30) {
                if self.opensearch().http("GET", "/", "").is_ok_and(|(status, _)| status == 200) {
                    return;
                }
                // The port may still be held by the previous process for a moment.
                if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                    self.child = None;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(started.elapsed() < Duration::from_secs(30), "osmem-server did not answer on port {} within 30s", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OsmemServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory with the built sink plugins: `SHARDLINE_TEST_PLUGIN_DIR`,
/// else `<target>/debug`; `None` (after printing why) when `file` (e.g.
/// `libshardline_sink_elasticsearch.so`) is not in it.
///
/// # Panics
/// When the plugin is missing and `CI=true`.
pub fn plugin_dir(file: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SHARDLINE_TEST_PLUGIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t).join("debug"),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        },
    };
    if dir.join(file).is_file() {
        return Some(dir);
    }
    skip(&format!("{} not built (run scripts/test, or cargo build --workspace)", dir.join(file).display()));
    None
}

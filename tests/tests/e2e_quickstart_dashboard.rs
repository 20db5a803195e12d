//! `shardline quickstart` in a real browser: the page on 127.0.0.1 charts
//! non-zero counts per referrer, keeps updating, and a screenshot is kept
//! at `target/e2e/quickstart-dashboard/quickstart.png` for humans. Ctrl-C
//! (SIGINT) drains and the process exits 0.
//!
//! Needs headless Chromium (`SHARDLINE_TEST_CHROMIUM`, set by
//! `scripts/emulators/extra/40-chromium.sh`); skipped without it, failing
//! under `CI=true`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardline_e2e::{shardline_bin, wait_until, Chromium, TestDir};

/// A `shardline quickstart` child, stopped with SIGINT (killed on drop).
struct Quickstart {
    child: Child,
    log: PathBuf,
    address: SocketAddr,
}

impl Quickstart {
    fn start(bin: &Path, dir: &Path) -> Quickstart {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = dir.join("quickstart.log");
        let child = Command::new(bin)
            .args(["quickstart", "--port", &port.to_string(), "--rate", "300", "--state-dir"])
            .arg(dir.join("state"))
            .env("SHARDLINE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("quickstart.stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn shardline quickstart");
        Quickstart { child, log, address: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    fn api(&mut self) -> anyhow::Result<Option<serde_json::Value>> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("shardline quickstart exited with {status}:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        let Ok(mut stream) = TcpStream::connect_timeout(&self.address, Duration::from_secs(2)) else { return Ok(None) };
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET /api/dashboard HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.address)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        Ok(serde_json::from_str(body).ok())
    }

    fn interrupt_and_wait(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                anyhow::bail!("shardline quickstart did not stop within {timeout:?} after SIGINT");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("--- quickstart log ---\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
        }
    }
}

/// Windows in the API document and the end of the latest one.
fn windows(doc: &serde_json::Value) -> (usize, i64) {
    let list = doc["windows"].as_array().cloned().unwrap_or_default();
    (list.len(), list.last().and_then(|w| w["end"].as_i64()).unwrap_or(0))
}

/// `(key, count)` of every legend item in a DOM dump.
fn legend(dom: &str) -> Vec<(String, u64)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].replace("&amp;", "&"))
    };
    dom.match_indices("<li class=\"legend-item\"")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            Some((attr(tag, "data-key")?, attr(tag, "data-count")?.parse().ok()?))
        })
        .collect()
}

fn number_attr(dom: &str, marker: &str) -> u64 {
    dom.find(marker)
        .map(|i| &dom[i + marker.len()..])
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn screenshot_path() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => PathBuf::from(t),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
    };
    target.join("e2e").join("quickstart-dashboard").join("quickstart.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_charts_live_counts_per_referrer() {
    let Some(chromium) = Chromium::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("quickstart-dashboard");
    let mut quickstart = Quickstart::start(&bin, dir.path());
    let url = quickstart.url();

    // The JSON endpoint first: three windows with counts, read from both shards.
    let mut first_end = 0;
    wait_until(Duration::from_secs(120), "three windows with counts in /api/dashboard", || {
        let doc = quickstart.api();
        let found = doc.map(|doc| {
            doc.map(|doc| {
                let (n, end) = windows(&doc);
                first_end = end;
                n >= 3 && doc["shards"].as_array().map_or(0, |s| s.len()) == 2
            })
            .unwrap_or(false)
        });
        async move { found }
    })
    .await
    .unwrap();

    // The page, rendered by Chromium: a legend item with a non-zero count
    // per referrer, one line per referrer, the shard table, and the
    // polling loop ran more than once.
    let page = chromium.dump_dom(&url, Duration::from_secs(4)).unwrap();
    let items = legend(&page);
    assert!(items.len() >= 5, "expected a legend item per referrer, got {items:?}");
    assert!(items.iter().all(|(_, n)| *n > 0), "a referrer with a zero count: {items:?}");
    assert!(items.iter().any(|(k, _)| k == "https://www.google.com"), "{items:?}");
    assert!(number_attr(&page, "data-windows=\"") >= 3, "chart without windows");
    assert!(page.matches("<polyline class=\"series\"").count() >= items.len(), "a line per referrer");
    assert_eq!(page.matches("<tr class=\"shard\">").count(), 2, "a row per shard");
    assert!(number_attr(&page, "data-updates=\"") >= 2, "the page did not poll again");

    // It updates: once a newer window is emitted, a new rendering differs.
    wait_until(Duration::from_secs(60), "a newer window", || {
        let newer = quickstart.api().map(|doc| doc.is_some_and(|d| windows(&d).1 > first_end));
        async move { newer }
    })
    .await
    .unwrap();
    let later = chromium.dump_dom(&url, Duration::from_secs(3)).unwrap();
    let later_items = legend(&later);
    assert!(later_items.iter().all(|(_, n)| *n > 0), "{later_items:?}");
    assert!(number_attr(&later, "data-windows=\"") > number_attr(&page, "data-windows=\""), "no new window on the chart");
    assert_ne!(items, later_items, "the counts did not change between renderings");

    // A screenshot for humans, kept under target/.
    let shot = screenshot_path();
    chromium.screenshot(&url, Duration::from_secs(3), &shot).unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} is only {size} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());

    // Ctrl-C drains and exits 0.
    let status = quickstart.interrupt_and_wait(Duration::from_secs(60)).unwrap();
    let log = std::fs::read_to_string(dir.join("quickstart.log")).unwrap_or_default();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(log.contains("pipeline stopped"), "{log}");
}

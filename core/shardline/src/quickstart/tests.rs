//! The quickstart in-process: the page's JSON endpoint reports non-zero
//! counts per referrer and per-shard throughput, and a shutdown drains.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::*;

fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

#[test]
fn the_compiled_in_pipeline_is_valid_and_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_pipeline(None, dir.path()).unwrap();
    assert_eq!(config.sink_type(), Some("dashboard"));
    assert_eq!(config.leases.state_dir, dir.path());
}

#[test]
fn the_dashboard_sink_is_refused_outside_the_quickstart_before_install() {
    // `install` may have run in another test of this process; only check the
    // message when it did not.
    if let Err(message) = sink::build(&sink::DashboardSinkConfig::default()) {
        assert!(message.contains("shardline quickstart"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_endpoint_reports_counts_per_referrer() {
    let dir = tempfile::tempdir().unwrap();
    let options = QuickstartOptions {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        state_dir: dir.path().to_owned(),
        rate: 300.0,
        generator: true,
        pipeline_file: None,
        run: RunOptions { worker_id: "quickstart-test".to_owned(), shutdown_timeout: Duration::from_secs(20) },
    };
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(options, shutdown.clone(), move |address| {
        let _ = tx.send(address);
    }));
    let address = tokio::time::timeout(Duration::from_secs(30), rx).await.unwrap().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let (status, body) = tokio::task::spawn_blocking(move || get(address, "/api/dashboard")).await.unwrap().unwrap();
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let counted = value["windows"]
            .as_array()
            .and_then(|w| w.last())
            .map(|w| w["counts"].as_object().map(|c| c.values().filter(|v| v.as_u64() > Some(0)).count()).unwrap_or(0))
            .unwrap_or(0);
        let reading = value["shards"].as_array().map(|s| s.iter().filter(|s| s["records_received"].as_u64() > Some(0)).count());
        if counted >= 3 && reading == Some(SHARDS as usize) {
            break value;
        }
        assert!(Instant::now() < deadline, "no counts per referrer after 60s: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The generator's referrers are skewed: the rarest may not be seen yet.
    let keys = snapshot["keys"].as_array().unwrap();
    assert!(keys.len() >= 3 && keys.iter().all(|k| k.as_str().is_some_and(|k| k == "direct" || k.starts_with("https://"))), "{snapshot}");
    assert!(snapshot["generator_records_written"].as_u64() > Some(0), "{snapshot}");

    let (status, page) = tokio::task::spawn_blocking(move || get(address, "/")).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<svg id=\"chart\""));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap().unwrap();
    // Drained: both shards checkpointed in the embedded lease store.
    assert!(dir.path().join("kinesis").exists());
}

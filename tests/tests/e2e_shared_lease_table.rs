//! Two pipelines of one process naming one lease table are refused at
//! start (they would share a worker id and take and evict each other's
//! leases): `shardline run a.toml b.toml` exits 1 with a message naming
//! the table and both pipelines, before it touches the network.

use std::process::{Command, Stdio};
use std::time::Duration;

use shardline_e2e::*;

fn write_pipeline(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = format!(
        "name = \"{name}\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\n\
         [leases]\ntable = \"shared-leases\"\nstate_dir = {:?}\n[sink]\ntype = \"stdout\"\n",
        dir.join("state").display().to_string()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write pipeline");
    path
}

#[tokio::test]
async fn two_pipelines_sharing_a_lease_table_are_refused() {
    let Some(bin) = shardline_bin() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (orders, clicks) = (write_pipeline(dir.path(), "orders"), write_pipeline(dir.path(), "clicks"));
    let mut child = Command::new(&bin)
        .args(["run", "--metrics-address", "127.0.0.1:0", "--worker-id", "w1"])
        .arg(&orders)
        .arg(&clicks)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shardline");
    let exited = wait_until(Duration::from_secs(20), "shardline to exit", || {
        let done = child.try_wait().map(|status| status.is_some());
        async move { Ok(done?) }
    })
    .await;
    if exited.is_err() {
        let _ = child.kill();
        panic!("shardline kept running with two pipelines on one lease table");
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for part in ["\"shared-leases\"", "orders", "clicks", "share the lease table"] {
        assert!(stderr.contains(part), "{part} missing from:\n{stderr}");
    }
}

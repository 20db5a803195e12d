//! The container image's root filesystem, checked without Docker (which
//! cannot run here): `scripts/rootfs` lays out the debug build exactly as the
//! Dockerfile lays out the release build (`/usr/bin/shardline`, every sink
//! plugin in `/usr/lib/shardline/plugins`, the default pipeline in
//! `/etc/shardline/pipelines`), and the binary is run from that tree with an
//! empty environment plus the documented variables. A missing runtime
//! library, a plugin the binary cannot find from its installed location, or
//! a default pipeline that needs more than the documented variables fails
//! here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shardline_e2e::*;

/// Shared libraries that `debian:bookworm-slim` provides (packages libc6 and
/// libgcc-s1): the only ones the binary and the plugins may need.
const BASE_IMAGE_LIBRARIES: &[&str] = &[
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn assemble(profile_dir: &Path, rootfs: &Path) {
    let output = Command::new(repo_root().join("scripts/rootfs"))
        .arg(profile_dir)
        .arg(rootfs)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/rootfs");
    assert!(
        output.status.success(),
        "scripts/rootfs failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every library `file` needs resolves, and all are in the base image.
fn check_libraries(file: &Path) {
    let output = Command::new("ldd").arg(file).output().expect("run ldd");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("not found"), "{} needs a library that is missing:\n{text}", file.display());
    for line in text.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let base = Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or(name);
        if base.is_empty() || base == "statically" {
            continue;
        }
        assert!(
            BASE_IMAGE_LIBRARIES.contains(&base),
            "{} needs {base}, which debian:bookworm-slim does not ship; ldd says:\n{text}",
            file.display()
        );
    }
}

/// The installed binary with an empty environment plus `vars`.
fn installed(rootfs: &Path, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(rootfs.join("usr/bin/shardline"));
    command.env_clear().env("PATH", "/usr/bin:/bin").stdin(Stdio::null());
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn rootfs_runs_from_an_empty_environment() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("rootfs");
    let rootfs = dir.join("rootfs");
    let profile_dir = bin.parent().expect("binary has a directory").to_path_buf();
    assemble(&profile_dir, &rootfs);

    // Layout and runtime libraries.
    let plugin_dir = rootfs.join("usr/lib/shardline/plugins");
    let mut plugins: Vec<PathBuf> = std::fs::read_dir(&plugin_dir)
        .expect("plugin directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    plugins.sort();
    assert!(!plugins.is_empty(), "no plugin in {}", plugin_dir.display());
    assert!(rootfs.join("etc/shardline/pipelines/pipeline.toml").is_file());
    check_libraries(&rootfs.join("usr/bin/shardline"));
    for plugin in &plugins {
        check_libraries(plugin);
    }

    // The binary finds the plugins from its installed location, with no
    // variable pointing at them.
    let listing = installed(&rootfs, &[]).arg("plugins").output().expect("shardline plugins");
    let listing_text = String::from_utf8_lossy(&listing.stdout).into_owned() + &String::from_utf8_lossy(&listing.stderr);
    assert!(listing.status.success(), "shardline plugins failed:\n{listing_text}");
    for plugin in &plugins {
        let stem = plugin.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let sink = stem.trim_start_matches("libshardline_sink_");
        assert!(listing_text.contains(sink), "`shardline plugins` does not list {sink}:\n{listing_text}");
    }

    // The default pipeline, configured only by the documented variables.
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("rootfs", 2).await.expect("create stream");
    let records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord::json(format!("pk-{i}"), &serde_json::json!({ "id": format!("rootfs-{i}") })))
        .collect();
    kinesis.put_records(&stream, &records).await.expect("put records");
    let port = free_port();
    let data_dir = dir.join("data");
    let vars = vec![
        ("SHARDLINE_STREAM", stream.clone()),
        ("SHARDLINE_PIPELINE_NAME", unique_name("rootfs")),
        ("SHARDLINE_INITIAL_POSITION", "trim_horizon".to_owned()),
        ("SHARDLINE_KINESIS_ENDPOINT", emulators.kinesis_endpoint.clone()),
        ("SHARDLINE_DYNAMODB_ENDPOINT", emulators.dynamodb_endpoint.clone()),
        ("SHARDLINE_DATA_DIR", data_dir.display().to_string()),
        ("SHARDLINE_METRICS_ADDRESS", format!("127.0.0.1:{port}")),
        ("SHARDLINE_LOG_FORMAT", "json".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ];
    let validate = installed(&rootfs, &vars).args(["validate", "/dev/null"]).output().expect("validate");
    assert!(!validate.status.success(), "an empty file is not a pipeline");
    let validate = installed(&rootfs, &vars)
        .arg("validate")
        .arg(rootfs.join("etc/shardline/pipelines"))
        .output()
        .expect("validate");
    assert!(validate.status.success(), "default pipeline invalid: {}", String::from_utf8_lossy(&validate.stderr));

    let stdout_path = dir.join("stdout.ndjson");
    let stderr_path = dir.join("stderr.log");
    let mut child = installed(&rootfs, &vars)
        .arg("run")
        .arg(rootfs.join("etc/shardline/pipelines"))
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start the installed shardline");

    let delivered = wait_until(Duration::from_secs(90), "every record on stdout", || {
        let path = stdout_path.clone();
        async move {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            Ok((0..40).all(|i| text.contains(&format!("rootfs-{i}\\\""))))
        }
    })
    .await;
    let health = installed(&rootfs, &vars).arg("healthcheck").output().expect("healthcheck");
    // SIGTERM drains and exits 0, as the image's STOPSIGNAL expects.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait for shardline");
    let logs = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    delivered.unwrap_or_else(|e| panic!("{e}\nlogs:\n{logs}"));
    assert!(health.status.success(), "healthcheck failed: {}", String::from_utf8_lossy(&health.stderr));
    assert!(status.success(), "shardline exited with {status}\nlogs:\n{logs}");
}

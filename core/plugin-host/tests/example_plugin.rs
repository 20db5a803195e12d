//! The example plugin (`examples/sink-plugin`, the `ndjson_dir` sink) built
//! as its own crate with cargo, loaded from a plugin directory, run through
//! the sink conformance suite, and loaded into the real `shardline` binary
//! (`plugins`, `validate`, and a pipeline from a Kinesis stream on
//! kinesis-mock when the emulators are running).
//!
//! The build shares the workspace's target directory, so dependencies the
//! workspace already built are reused.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::{Record, RecordMeta, RecordStatus, SequenceNumber, Sink};
use shardline_plugin_host::{LoadError, LoadedPlugin, PluginHost};
use shardline_sink_conformance::{block_dir, read_lines, unblock_dir, InvalidConfig, Scope, SinkUnderTest};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace().join("target"),
    }
}

/// Builds the example plugin once and copies it into a plugin directory of
/// its own; returns that directory.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = workspace().join("examples/sink-plugin/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .expect("run cargo build for the example plugin");
        assert!(
            output.status.success(),
            "building {} failed:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let file = format!("{}shardline_sink_ndjson_dir{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
        let built = target_dir().join("debug").join(&file);
        assert!(built.is_file(), "cargo built no {}", built.display());
        let parent = target_dir().join("plugin-tests");
        remove_stale_dirs(&parent);
        let dir = parent.join(format!("plugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the plugin directory");
        std::fs::copy(&built, dir.join(&file)).expect("copy the plugin");
        dir
    })
}

/// Removes the plugin directories of earlier test processes that are gone
/// (Linux: judged by /proc; elsewhere nothing is removed).
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("plugins-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if cfg!(target_os = "linux") && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn ndjson_dir() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            // SAFETY: the directory holds only the example plugin built above.
            let host = unsafe { PluginHost::discover(&[plugin_dir().to_owned()]) };
            assert!(host.errors().is_empty(), "{:?}", host.errors());
            host.find("ndjson_dir").cloned().unwrap_or_else(|| panic!("no ndjson_dir plugin: {}", host.summary()))
        })
        .clone()
}

#[test]
fn the_example_plugin_loads_and_describes_itself() {
    let plugin = ndjson_dir();
    let info = plugin.info();
    assert_eq!(info.name, "ndjson_dir");
    assert_eq!(info.version, "0.1.0");
    let keys: Vec<(&str, bool)> = info.config_keys.iter().map(|k| (k.name.as_str(), k.required)).collect();
    assert_eq!(keys, [("path", true), ("max_record_size", false), ("stall_first_calls", false)]);
    assert!(plugin.path().starts_with(plugin_dir()));
}

#[test]
fn a_library_that_is_no_plugin_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join(format!("libfake{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&fake, b"not an ELF file").expect("write");
    // SAFETY: the file is not a loadable library, so no code runs.
    let host = unsafe { PluginHost::discover(&[dir.path().to_owned(), dir.path().join("missing")]) };
    assert!(host.plugins().is_empty());
    assert!(matches!(host.errors(), [LoadError::Open { path, .. }] if *path == fake), "{:?}", host.errors());
    assert!(host.errors()[0].to_string().contains("libfake"), "{}", host.errors()[0]);
    assert_eq!(host.searched().iter().map(|d| d.exists).collect::<Vec<_>>(), [true, false]);
}

/// The example plugin as the conformance suite drives it.
struct NdjsonDirUnderTest(Arc<LoadedPlugin>);

fn table(text: &str) -> toml::Table {
    text.parse().expect("TOML")
}

fn path_value(scope: &Scope) -> String {
    serde_json::to_string(&scope.dir.to_string_lossy()).expect("strings serialise")
}

fn json(config: &toml::Table) -> serde_json::Value {
    serde_json::to_value(config).expect("TOML converts to JSON")
}

#[async_trait]
impl SinkUnderTest for NdjsonDirUnderTest {
    fn sink_type(&self) -> String {
        "ndjson_dir".to_owned()
    }

    fn config(&self, scope: &Scope) -> toml::Table {
        table(&format!("path = {}\nmax_record_size = \"1KiB\"", path_value(scope)))
    }

    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig> {
        let path = path_value(scope);
        vec![
            InvalidConfig { config: table("max_record_size = \"1KiB\""), key: Some("path".into()) },
            InvalidConfig { config: table(&format!("path = {path}\npth = 1")), key: Some("pth".into()) },
            InvalidConfig { config: table(&format!("path = {path}\nmax_record_size = 0")), key: Some("max_record_size".into()) },
            InvalidConfig { config: table("path = \"\""), key: Some("path".into()) },
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        self.0.validate(&json(config)).map_err(|problems| {
            let first = problems.into_iter().next().expect("at least one problem");
            (first.key, first.message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        Ok(Arc::new(self.0.build_sink(json(config), pipeline)))
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        read_lines(&scope.dir, ".ndjson")
            .into_iter()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_slice(&line).expect("an envelope line");
                Bytes::from(v["data"].as_str().expect("data").to_owned())
            })
            .collect()
    }

    fn rejected_payload(&self) -> Option<Bytes> {
        Some(Bytes::from(vec![b'x'; 2048]))
    }

    async fn make_unavailable(&self, scope: &Scope) -> bool {
        block_dir(scope);
        true
    }

    async fn make_available(&self, scope: &Scope) {
        unblock_dir(scope);
    }

    fn expected_metrics(&self) -> Vec<String> {
        vec![
            r#"shardline_plugin_calls_total{plugin="ndjson_dir",call="send",outcome="ok"}"#.to_owned(),
            "shardline_plugin_call_duration_seconds".to_owned(),
        ]
    }
}

#[test]
fn the_example_plugin_passes_the_sink_conformance_suite() {
    let report = shardline_sink_conformance::run(&NdjsonDirUnderTest(ndjson_dir()));
    println!("{report}");
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_field_reaches_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sink = ndjson_dir().build_sink(serde_json::json!({ "path": out }), "fields");
    let meta = |sequence: &str, sub: u64, ehk: Option<&str>, aggregated: bool| {
        Arc::new(RecordMeta {
            stream: Arc::from("orders"),
            shard_id: Arc::from("shardId-000000000003"),
            sequence_number: SequenceNumber::parse(sequence).expect("digits"),
            sub_sequence_number: sub,
            partition_key: "pk-ü".to_owned(),
            explicit_hash_key: ehk.map(str::to_owned),
            arrival_time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            aggregated,
        })
    };
    let mut first = Record::new(Bytes::from_static(b"{\"id\":1}"), meta("49590338271490256608559692538361571095921575989136588898", 4, Some("12345"), true));
    first.event_time = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_600_000_000_001));
    let binary = Record::new(Bytes::from_static(&[0xff, 0x00, 0x0a]), meta("49590338271490256608559692538361571095921575989136588899", 0, None, false));
    let statuses = sink.send(&[first, binary]).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 2]);
    sink.flush().await.expect("flush");
    let lines = read_lines(&out, ".ndjson");
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&lines[0]).expect("json");
    assert_eq!(
        first,
        serde_json::json!({
            "stream": "orders",
            "shard_id": "shardId-000000000003",
            "sequence_number": "49590338271490256608559692538361571095921575989136588898",
            "sub_sequence_number": 4,
            "partition_key": "pk-ü",
            "explicit_hash_key": "12345",
            "arrival_time_millis": 1_700_000_000_123_i64,
            "event_time_millis": 1_600_000_000_001_i64,
            "aggregated": true,
            "data": "{\"id\":1}",
        })
    );
    let second: serde_json::Value = serde_json::from_slice(&lines[1]).expect("json");
    assert_eq!(second["data_base64"], "/wAK");
    assert_eq!(second["explicit_hash_key"], serde_json::Value::Null);
    assert_eq!(second["event_time_millis"], serde_json::Value::Null);
    let names: Vec<String> = std::fs::read_dir(&out).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["fields-shardId-000000000003-49590338271490256608559692538361571095921575989136588898-4.ndjson"]);
}

/// The process's recorder: a plugin library's metrics arrive through the
/// host's callbacks on the plugin's runtime threads, so only a global
/// recorder sees them.
fn global_metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("the only global recorder here"))
}

/// The example library's own counters, recorded with its `metrics` copy,
/// reach the host's recorder with their labels (the ABI version 2 metrics
/// bridge), and the batch's fence reaches the library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_s_own_metrics_reach_the_host_and_its_batches_carry_the_fence() {
    let handle = global_metrics();
    let plugin = ndjson_dir();
    assert_eq!(plugin.abi_version(), shardline_plugin_sdk::abi::ABI_VERSION);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = plugin.build_sink(serde_json::json!({ "path": dir.path() }), "bridge");
    let meta = |sequence: u64| {
        Arc::new(RecordMeta {
            stream: Arc::from("orders"),
            shard_id: Arc::from("shardId-000000000009"),
            sequence_number: SequenceNumber::parse(&sequence.to_string()).expect("digits"),
            sub_sequence_number: 0,
            partition_key: "pk".to_owned(),
            explicit_hash_key: None,
            arrival_time: SystemTime::now(),
            aggregated: false,
        })
    };
    let fence = shardline_api::BatchFence { shard_id: Arc::from("shardId-000000000009"), lease_counter: 17 };
    for first in [1, 3] {
        let batch = [Record::new(Bytes::from_static(b"{}"), meta(first)), Record::new(Bytes::from_static(b"{}"), meta(first + 1))];
        assert_eq!(sink.send_fenced(&fence, &batch).await.expect("send"), vec![RecordStatus::Delivered; 2]);
    }
    let text = handle.render();
    for series in [
        r#"ndjson_dir_records_written_total{pipeline="bridge",shard_id="shardId-000000000009"} 4"#,
        r#"ndjson_dir_files_written_total{pipeline="bridge"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == series), "{series} missing from\n{text}");
    }
    let lines = read_lines(dir.path(), ".ndjson");
    assert_eq!(lines.len(), 4);
    for line in lines {
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["fence"], serde_json::json!({ "shard_id": "shardId-000000000009", "lease_counter": 17 }));
    }
}

// ---- the real binary ----

fn shardline(args: &[&str], dir: &Path) -> Option<std::process::Output> {
    let bin = shardline_e2e::shardline_bin()?;
    Some(
        Command::new(bin)
            .args(args)
            .current_dir(dir)
            .env_remove("SHARDLINE_PLUGIN_DIR")
            .output()
            .expect("run shardline"),
    )
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

const PIPELINE: &str = r#"name = "plugin-validate"

[source]
type = "kinesis"
stream = "clicks"

[sink]
type = "ndjson_dir"
path = "./out"
"#;

#[test]
fn shardline_lists_and_validates_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir().to_string_lossy().into_owned();
    let Some(output) = shardline(&["plugins", "--plugin-dir", &plugins], dir.path()) else { return };
    assert!(output.status.success(), "{}", text(&output));
    let listing = text(&output);
    assert!(listing.contains("ndjson_dir 0.1.0") && listing.contains("path (required)"), "{listing}");
    assert!(listing.contains(&plugins) && listing.contains("/usr/lib/shardline/plugins"), "{listing}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, PIPELINE).expect("write");
    let Some(output) = shardline(&["validate", "--plugin-dir", &plugins, "good.toml"], dir.path()) else { return };
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("ndjson_dir"), "{}", text(&output));

    // A misspelt key: refused by the plugin's own config type, pointing at
    // its line in the pipeline file.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, PIPELINE.replace("path = \"./out\"", "path = \"./out\"\nmax_recrd_size = \"1KiB\"")).expect("write");
    let Some(output) = shardline(&["validate", "--plugin-dir", &plugins, "bad.toml"], dir.path()) else { return };
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("bad.toml:10:1") && text(&output).contains("max_recrd_size"), "{}", text(&output));

    // A value the plugin's validate refuses.
    std::fs::write(&bad, PIPELINE.replace("path = \"./out\"", "path = \"./out\"\nmax_record_size = 0")).expect("write");
    let Some(output) = shardline(&["validate", "--plugin-dir", &plugins, "bad.toml"], dir.path()) else { return };
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("bad.toml:10:1") && text(&output).contains("at least 1B"), "{}", text(&output));

    // The environment variable works too; without any plugin directory the
    // type is unknown and the message lists what was searched.
    let bin = shardline_e2e::shardline_bin().expect("checked above");
    let output = Command::new(&bin).args(["validate", "good.toml"]).current_dir(dir.path()).env("SHARDLINE_PLUGIN_DIR", format!("/nonexistent:{plugins}")).output().expect("run");
    assert!(output.status.success(), "{}", text(&output));
    let Some(output) = shardline(&["validate", "good.toml"], dir.path()) else { return };
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("unknown sink type `ndjson_dir`") && message.contains("stdout, file") && message.contains("/usr/lib/shardline/plugins"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_delivers_from_kinesis_through_the_plugin() {
    use shardline_e2e::{wait_for_ids, Emulators, Kinesis, PipelineSpec, TestDir, TestRecord, Worker, DELIVERY_TIMEOUT};
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_e2e::shardline_bin() else { return };
    let dir = TestDir::new("sink-plugin");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-sink-plugin", 2).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let file_sink = format!("type = \"file\"\npath = {}\nformat = \"envelope\"\n", serde_json::to_string(&spec.sink_dir.to_string_lossy()).expect("json"));
    let plugin_sink = format!("type = \"ndjson_dir\"\npath = {}\n", serde_json::to_string(&spec.sink_dir.to_string_lossy()).expect("json"));
    let toml = spec.to_toml();
    assert!(toml.contains(&file_sink), "the harness's sink section changed:\n{toml}");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, toml.replace(&file_sink, &plugin_sink)).expect("write the pipeline");

    // Workers inherit the environment: the plugin directory reaches
    // `shardline run` through SHARDLINE_PLUGIN_DIR.
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugin_dir());
    let worker = Worker::start(&bin, &pipeline, "plugin-worker", dir.path());
    let records: Vec<TestRecord> =
        (0..60).map(|i| TestRecord::json(format!("pk-{i}"), &serde_json::json!({ "id": format!("plugin-{i:02}"), "i": i }))).collect();
    kinesis.put_records(&stream, &records).await.expect("put records");
    let ids: HashSet<String> = (0..60).map(|i| format!("plugin-{i:02}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;

    // The plugin's own counter, per shard, on the worker's /metrics (the
    // metrics bridge), summing to every record written.
    let prefix = format!("ndjson_dir_records_written_total{{pipeline=\"{}\",shard_id=\"shardId-", spec.name);
    let written = || -> anyhow::Result<(f64, String)> {
        let (_, body) = worker.http_get("/metrics")?;
        let sum = body.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
        Ok((sum, body))
    };
    let counted = shardline_e2e::wait_until(DELIVERY_TIMEOUT, "the plugin's counter on /metrics", || async { Ok(written()?.0 == 60.0) }).await;
    assert!(counted.is_ok(), "the plugin's counter with its labels on /metrics: {:?}", written().map(|(_, body)| body));
    // Every batch carried its shard and a held lease's counter.
    for line in read_lines(&spec.sink_dir, ".ndjson") {
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["fence"]["shard_id"], v["shard_id"], "{v}");
        assert!(v["fence"]["lease_counter"].as_u64().is_some_and(|c| c >= 1), "{v}");
    }

    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");
    let log = worker.log_text();
    assert!(log.contains("ndjson_dir sink ready"), "the plugin's own log line reaches shardline's log:\n{log}");
}

/// `stall_first_calls = 1`: the plugin never answers the first `send` nor
/// the first `flush` (the shard worker's, before a checkpoint). With
/// `[delivery] call_timeout` the batch is sent again and delivered, the
/// hung flush postpones the checkpoint instead of blocking the worker, and
/// a later checkpoint is written while the worker runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_goes_on_past_a_plugin_call_that_never_answers() {
    use shardline_e2e::{last_sequence_per_shard, wait_for_ids, wait_until, Emulators, Kinesis, LeaseTable, PipelineSpec, TestDir, TestRecord, Worker, DELIVERY_TIMEOUT};
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_e2e::shardline_bin() else { return };
    let dir = TestDir::new("sink-plugin-stall");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-sink-plugin-stall", 1).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let file_sink = format!("type = \"file\"\npath = {}\nformat = \"envelope\"\n", serde_json::to_string(&spec.sink_dir.to_string_lossy()).expect("json"));
    let plugin_sink = format!(
        "type = \"ndjson_dir\"\npath = {}\nstall_first_calls = 1\n\n[delivery]\ncall_timeout = \"2s\"\nretry_initial_backoff = \"50ms\"\n",
        serde_json::to_string(&spec.sink_dir.to_string_lossy()).expect("json")
    );
    let toml = spec.to_toml();
    assert!(toml.contains(&file_sink) && !toml.contains("[delivery]"), "the harness's pipeline changed:\n{toml}");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, toml.replace(&file_sink, &plugin_sink)).expect("write the pipeline");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugin_dir());
    let worker = Worker::start(&bin, &pipeline, "stall-worker", dir.path());
    let record = |i: usize| TestRecord::json("pk", &serde_json::json!({ "id": format!("stall-{i:02}"), "i": i }));
    let timeouts = |call: &str| {
        let series = format!("shardline_sink_call_timeouts_total{{pipeline=\"{}\",call=\"{call}\"}}", spec.name);
        match worker.http_get("/metrics") {
            Ok((200, body)) => Ok(body.lines().any(|line| line.starts_with(&series))),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        }
    };

    // The first batch's first send hangs: abandoned at the deadline and
    // sent again.
    let first: Vec<TestRecord> = (0..20).map(record).collect();
    kinesis.put_records(&stream, &first).await.expect("put records");
    wait_for_ids(&spec.sink_dir, &(0..20).map(|i| format!("stall-{i:02}")).collect(), &[&worker], DELIVERY_TIMEOUT).await;
    assert!(timeouts("send").expect("metrics"), "the first send was abandoned");
    // The first checkpoint's flush hangs: abandoned at the deadline, the
    // worker goes on.
    wait_until(DELIVERY_TIMEOUT, "the hung flush abandoned", || async { timeouts("flush") }).await.expect("flush timeout");

    // More records: delivered and checkpointed while the worker runs (a
    // worker still stuck in the first flush would never checkpoint).
    let second: Vec<TestRecord> = (20..40).map(record).collect();
    let puts = kinesis.put_records(&stream, &second).await.expect("put records");
    wait_for_ids(&spec.sink_dir, &(20..40).map(|i| format!("stall-{i:02}")).collect(), &[&worker], DELIVERY_TIMEOUT).await;
    let last = last_sequence_per_shard(&puts);
    wait_until(DELIVERY_TIMEOUT, "the checkpoint at the last record", || async {
        worker.ensure_running()?;
        let table = leases.scan().await?;
        Ok(table.len() == 1 && table[0].checkpoint.as_deref() == last.get(&table[0].lease_key).map(String::as_str))
    })
    .await
    .expect("checkpointed while running");
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");
}

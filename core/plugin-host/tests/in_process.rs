//! The host and the SDK together through the real C ABI, with plugins
//! linked into this test (their tables from
//! `shardline_plugin_sdk::testing::table`) instead of loaded from a shared
//! library: every record field round-trips, statuses and errors keep their
//! kinds, panics become permanent errors, tables for another ABI are
//! refused, calls are counted in metrics, and a cancelled call is safe.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Deserialize;
use shardline_api::{ErrorKind, Payload, Record, RecordMeta, RecordStatus, SequenceNumber, Sink, SinkError};
use shardline_plugin_host::{LoadError, LoadedPlugin, PluginHost};
use shardline_plugin_sdk::abi::{SinkPluginTable, ABI_VERSION};
use shardline_plugin_sdk::{async_trait, testing, ConfigKey, ConfigProblem, InitContext, PluginInfo, SinkPlugin};

/// Everything the recording plugin received, by pipeline.
fn received() -> &'static Mutex<Vec<(String, Record)>> {
    static RECEIVED: OnceLock<Mutex<Vec<(String, Record)>>> = OnceLock::new();
    RECEIVED.get_or_init(Mutex::default)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingConfig {
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    panic_in_init: bool,
    #[serde(default)]
    panic_in_validate: bool,
}

/// Answers by payload: `reject*` rejected, `retry*` retriable with a 250ms
/// hint, `fail-retriable` / `fail-permanent` fail the call, `panic` panics,
/// `slow` waits 200ms; anything else is delivered and recorded.
struct Recording {
    pipeline: String,
}

#[async_trait]
impl SinkPlugin for Recording {
    type Config = RecordingConfig;

    fn describe() -> PluginInfo {
        PluginInfo::new("recording", "1.2.3")
            .description("records what it receives")
            .key(ConfigKey::optional("limit", "must be below 100"))
    }

    fn validate(config: &RecordingConfig) -> Result<(), Vec<ConfigProblem>> {
        assert!(!config.panic_in_validate, "validate exploded");
        if config.limit >= 100 {
            return Err(vec![ConfigProblem::key("limit", "must be below 100")]);
        }
        Ok(())
    }

    async fn init(config: RecordingConfig, ctx: InitContext) -> Result<Self, SinkError> {
        assert!(!config.panic_in_init, "init exploded");
        if config.limit == 99 {
            return Err(SinkError::retriable("not yet"));
        }
        Ok(Recording { pipeline: ctx.pipeline })
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let mut statuses = Vec::new();
        for record in batch {
            let data = record.payload.to_bytes();
            let status = match &data[..] {
                b"fail-retriable" => return Err(SinkError::retriable("throttled by the test")),
                b"fail-permanent" => return Err(SinkError::permanent("access denied by the test")),
                b"panic" => panic!("send exploded on purpose"),
                b"slow" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    RecordStatus::Delivered
                }
                d if d.starts_with(b"reject") => RecordStatus::Rejected { reason: "not welcome".into() },
                d if d.starts_with(b"retry") => {
                    RecordStatus::Retriable { reason: "busy".into(), backoff: Some(Duration::from_millis(250)) }
                }
                _ => {
                    received().lock().expect("lock").push((self.pipeline.clone(), record.clone()));
                    RecordStatus::Delivered
                }
            };
            statuses.push(status);
        }
        Ok(statuses)
    }

    async fn flush(&self) -> Result<(), SinkError> {
        Err(SinkError::retriable("flush is not ready"))
    }
}

fn recording() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            // SAFETY: the table is made by the SDK for a plugin linked in.
            Arc::new(unsafe { LoadedPlugin::from_table(testing::table::<Recording>(), Path::new("<recording>")) }.expect("loads"))
        })
        .clone()
}

fn sink(pipeline: &str, config: serde_json::Value) -> Arc<dyn Sink> {
    Arc::new(recording().build_sink(config, pipeline))
}

fn meta(sequence: &str, sub: u64, ehk: Option<&str>, arrival: SystemTime, aggregated: bool) -> Arc<RecordMeta> {
    Arc::new(RecordMeta {
        stream: Arc::from("orders-stream"),
        shard_id: Arc::from("shardId-000000000042"),
        sequence_number: SequenceNumber::parse(sequence).expect("digits"),
        sub_sequence_number: sub,
        partition_key: "pk-ünïcode".to_owned(),
        explicit_hash_key: ehk.map(str::to_owned),
        arrival_time: arrival,
        aggregated,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_field_round_trips() {
    let arrival = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let mut with_event_time = Record::new(
        Bytes::from_static(&[0xff, 0x00, 0xfe, b'\n']),
        meta("49590338271490256608559692538361571095921575989136588898", 7, Some("170141183460469231731687303715884105728"), arrival, true),
    );
    with_event_time.event_time = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_600_000_000_001));
    let json = Record {
        payload: Payload::Json(serde_json::json!({"a": [1, 2, {"b": null}]})),
        meta: meta("1", 0, None, SystemTime::UNIX_EPOCH - Duration::from_millis(5), false),
        event_time: None,
    };
    let empty = Record::new(Bytes::new(), meta("2", 0, Some(""), arrival, false));
    let batch = vec![with_event_time.clone(), json.clone(), empty.clone()];

    let sink = sink("round-trip", serde_json::json!({}));
    sink.healthcheck().await.expect("healthcheck");
    let statuses = sink.send(&batch).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 3]);

    let got: Vec<Record> =
        received().lock().expect("lock").iter().filter(|(p, _)| p == "round-trip").map(|(_, r)| r.clone()).collect();
    assert_eq!(got.len(), 3);
    // JSON payloads cross as their compact bytes.
    let expected = [
        with_event_time,
        Record { payload: Payload::Bytes(Bytes::from_static(br#"{"a":[1,2,{"b":null}]}"#)), ..json },
        empty,
    ];
    for (got, want) in got.iter().zip(&expected) {
        assert_eq!(got.payload.to_bytes(), want.payload.to_bytes());
        assert_eq!(*got.meta, *want.meta, "metadata");
        assert_eq!(got.event_time, want.event_time, "event time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_errors_keep_their_kinds() {
    let sink = sink("statuses", serde_json::json!({"limit": 3}));
    let arrival = SystemTime::now();
    let records: Vec<Record> = ["ok-1", "reject-2", "retry-3", "ok-4"]
        .iter()
        .enumerate()
        .map(|(i, p)| Record::new(Bytes::from(p.to_string()), meta(&(i + 10).to_string(), 0, None, arrival, false)))
        .collect();
    let statuses = sink.send(&records).await.expect("send");
    assert_eq!(
        statuses,
        vec![
            RecordStatus::Delivered,
            RecordStatus::Rejected { reason: "not welcome".into() },
            RecordStatus::Retriable { reason: "busy".into(), backoff: Some(Duration::from_millis(250)) },
            RecordStatus::Delivered,
        ]
    );
    for (payload, kind, text) in [
        ("fail-retriable", ErrorKind::Retriable, "throttled by the test"),
        ("fail-permanent", ErrorKind::Permanent, "access denied by the test"),
    ] {
        let err = sink.send(&[Record::new(Bytes::from(payload), meta("5", 0, None, arrival, false))]).await.expect_err(payload);
        assert_eq!(err.kind, kind, "{err}");
        assert!(err.message.contains(text) && err.message.contains("recording"), "{err}");
    }
    let err = sink.flush().await.expect_err("flush fails");
    assert_eq!(err.kind, ErrorKind::Retriable);
    sink.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_become_permanent_errors() {
    let arrival = SystemTime::now();
    let sink = sink("panics", serde_json::json!({}));
    let err = sink.send(&[Record::new(Bytes::from("panic"), meta("5", 0, None, arrival, false))]).await.expect_err("panics");
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains("send exploded on purpose"), "{err}");
    // The instance goes on working.
    let ok = sink.send(&[Record::new(Bytes::from("ok"), meta("6", 0, None, arrival, false))]).await.expect("send after a panic");
    assert_eq!(ok, vec![RecordStatus::Delivered]);

    let sink = self::sink("panics", serde_json::json!({"panic_in_init": true}));
    let err = sink.healthcheck().await.expect_err("init panics");
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains("init exploded"), "{err}");

    let problems = recording().validate(&serde_json::json!({"panic_in_validate": true})).expect_err("validate panics");
    assert!(problems[0].message.contains("validate exploded"), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_keep_their_kind_and_are_retried() {
    let sink = sink("init", serde_json::json!({"limit": 99}));
    let err = sink.healthcheck().await.expect_err("init fails");
    assert_eq!(err.kind, ErrorKind::Retriable, "{err}");
    assert!(err.message.contains("not yet"), "{err}");
    let sink = self::sink("init", serde_json::json!({"limit": 100}));
    let err = sink.healthcheck().await.expect_err("invalid config");
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("limit"), "{err}");
}

#[test]
fn validate_names_the_key_without_init() {
    let plugin = recording();
    plugin.validate(&serde_json::json!({"limit": 5})).expect("valid");
    let problems = plugin.validate(&serde_json::json!({"limit": 500})).expect_err("out of range");
    assert_eq!(problems, vec![ConfigProblem::key("limit", "must be below 100")]);
    let problems = plugin.validate(&serde_json::json!({"limt": 5})).expect_err("unknown key");
    assert_eq!(problems[0].key.as_deref(), Some("limt"), "{problems:?}");
    assert!(!problems[0].message.contains("line"), "no JSON positions: {problems:?}");
    assert_eq!(plugin.info().version, "1.2.3");
    assert_eq!(plugin.info().config_keys[0].name, "limit");
}

fn table_with(change: impl FnOnce(&mut SinkPluginTable)) -> &'static SinkPluginTable {
    let mut table = *testing::table::<Recording>();
    change(&mut table);
    Box::leak(Box::new(table))
}

#[test]
fn tables_for_another_abi_are_refused() {
    let path = Path::new("/plugins/libold.so");
    // SAFETY: a table made by the SDK, with one field changed.
    let err = unsafe { LoadedPlugin::from_table(table_with(|t| t.abi_version = ABI_VERSION + 1), path) }.expect_err("refused");
    assert!(matches!(err, LoadError::AbiMismatch { found, expected, .. } if found == ABI_VERSION + 1 && expected == ABI_VERSION));
    let message = err.to_string();
    assert!(
        message.contains("/plugins/libold.so")
            && message.contains(&format!("version {}", ABI_VERSION + 1))
            && message.contains(&format!("version {ABI_VERSION}")),
        "{message}"
    );

    // SAFETY: as above.
    let err = unsafe { LoadedPlugin::from_table(table_with(|t| t.table_size = 16), path) }.expect_err("refused");
    assert!(matches!(err, LoadError::TableTooSmall { found: 16, .. }), "{err}");

    // SAFETY: as above.
    let err = unsafe { LoadedPlugin::from_table(table_with(|t| t.send = None), path) }.expect_err("refused");
    assert!(err.to_string().contains("`send` is null"), "{err}");
}

#[test]
fn a_panicking_describe_yields_no_table() {
    struct Broken;
    #[async_trait]
    impl SinkPlugin for Broken {
        type Config = serde_json::Value;
        fn describe() -> PluginInfo {
            panic!("describe exploded")
        }
        async fn init(_: serde_json::Value, _: InitContext) -> Result<Self, SinkError> {
            Ok(Broken)
        }
        async fn send(&self, _: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
            Ok(Vec::new())
        }
    }
    static CELL: shardline_plugin_sdk::__private::TableCell = shardline_plugin_sdk::__private::TableCell::new();
    assert!(CELL.get::<Broken>().is_null());
}

#[test]
fn plugin_calls_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let sink = sink("metrics", serde_json::json!({}));
            sink.healthcheck().await.expect("healthcheck");
            let records = [Record::new(Bytes::from("ok"), meta("1", 0, None, SystemTime::now(), false))];
            sink.send(&records).await.expect("send");
            let _ = sink.send(&[Record::new(Bytes::from("fail-retriable"), meta("2", 0, None, SystemTime::now(), false))]).await;
        })
    });
    let text = handle.render();
    for series in [
        r#"shardline_plugin_calls_total{plugin="recording",call="init",outcome="ok"} 1"#,
        r#"shardline_plugin_calls_total{plugin="recording",call="healthcheck",outcome="ok"} 1"#,
        r#"shardline_plugin_calls_total{plugin="recording",call="send",outcome="ok"} 1"#,
        r#"shardline_plugin_calls_total{plugin="recording",call="send",outcome="retriable"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    assert!(text.contains("shardline_plugin_call_duration_seconds"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_finishes_safely_in_the_plugin() {
    let sink = sink("cancel", serde_json::json!({}));
    sink.healthcheck().await.expect("healthcheck");
    let records = vec![Record::new(Bytes::from("slow"), meta("1", 0, None, SystemTime::now(), false))];
    // Dropped while the plugin sleeps: the batch stays alive in the call's
    // state until the plugin answers.
    let cancelled = tokio::time::timeout(Duration::from_millis(20), sink.send(&records)).await;
    assert!(cancelled.is_err(), "the send should still be running");
    drop(records);
    // Many concurrent calls afterwards all answer.
    let calls = (0..32).map(|i| {
        let sink = sink.clone();
        async move {
            let records = vec![Record::new(Bytes::from(format!("c{i}")), meta(&(100 + i).to_string(), 0, None, SystemTime::now(), false))];
            sink.send(&records).await
        }
    });
    for result in futures_join_all(calls).await {
        assert_eq!(result.expect("send"), vec![RecordStatus::Delivered]);
    }
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[test]
fn the_first_plugin_for_a_type_wins() {
    let mut host = PluginHost::empty();
    host.add(recording());
    // SAFETY: a table made by the SDK.
    let second = unsafe { LoadedPlugin::from_table(testing::table::<Recording>(), Path::new("<second>")) }.expect("loads");
    host.add(Arc::new(second));
    assert_eq!(host.plugins().len(), 1);
    assert_eq!(host.find("recording").map(|p| p.path().to_owned()), Some("<recording>".into()));
    assert_eq!(host.shadowed().len(), 1);
    assert!(host.summary().contains("recording"), "{}", host.summary());
}

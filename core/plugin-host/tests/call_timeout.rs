//! Plugin calls that hang, through the real C ABI (plugins linked into this
//! test through `shardline_plugin_sdk::testing::table`) and the engine's
//! `CallTimeout` (`[delivery] call_timeout`): a hung `send` is abandoned at
//! the deadline and sent again, a `send` that never answers is
//! dead-lettered after `retry_attempts`, a hung `flush` is a retriable
//! error at the deadline, and the plugin's late answers are ignored (no
//! crash, nothing acknowledged twice), also when the instance is destroyed
//! with calls still running; an instance whose `init` was abandoned is
//! destroyed once the init finishes.
//!
//! The plugins run on their own runtimes (real time), so deadlines here are
//! real and short; what the test waits for is polled with a deadline.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use shardline_api::{ByteSize, HumanDuration, Position, Record, RecordMeta, RecordStatus, SequenceNumber, Sink, SinkError};
use shardline_pipeline::{BufferConfig, CallTimeout, DeadLetter, DeadLetterEntry, DeliveryConfig, PipelineEvent, ShardContext, ShardPipeline};
use shardline_plugin_host::LoadedPlugin;
use shardline_plugin_sdk::{async_trait, testing, InitContext, PluginInfo, SinkPlugin};
use tokio::sync::Notify;

const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// A gate calls wait at until it is opened (for good).
struct Gate {
    open: AtomicBool,
    notify: Notify,
}

impl Gate {
    const fn new() -> Self {
        Gate { open: AtomicBool::new(false), notify: Notify::const_new() }
    }
    async fn pass(&self) {
        loop {
            let notified = self.notify.notified();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// What plugin `ID` does, shared with the test.
struct Script {
    /// The first send of a batch whose first payload starts with `hang`
    /// waits here; later sends of it answer at once.
    send_gate: Gate,
    /// Every flush waits here.
    flush_gate: Gate,
    /// Every init waits here (plugin 3 only).
    init_gate: Gate,
    /// Instances dropped (destroyed by the host).
    dropped: AtomicUsize,
    /// Payloads written, late answers included.
    written: Mutex<Vec<String>>,
    /// First payloads of batches already sent once.
    seen: Mutex<Vec<String>>,
}

static SCRIPTS: [Script; 4] = [Script::new(), Script::new(), Script::new(), Script::new()];

impl Script {
    const fn new() -> Self {
        Script {
            send_gate: Gate::new(),
            flush_gate: Gate::new(),
            init_gate: Gate::new(),
            dropped: AtomicUsize::new(0),
            written: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        }
    }
    fn written(&self) -> Vec<String> {
        self.written.lock().expect("lock").clone()
    }
}

/// Plugin `hanging{ID}`: one per test, so their metrics do not mix.
/// A payload `never…` is never answered.
struct Hanging<const ID: usize>;

#[async_trait]
impl<const ID: usize> SinkPlugin for Hanging<ID> {
    type Config = serde_json::Value;

    fn describe() -> PluginInfo {
        PluginInfo::new(format!("hanging{ID}"), "0.0.1")
    }

    async fn init(_: serde_json::Value, _: InitContext) -> Result<Self, SinkError> {
        if ID == 3 {
            SCRIPTS[ID].init_gate.pass().await;
        }
        Ok(Hanging)
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let script = &SCRIPTS[ID];
        let payloads: Vec<String> = batch.iter().map(|r| String::from_utf8_lossy(&r.payload.to_bytes()).into_owned()).collect();
        let first = payloads.first().cloned().unwrap_or_default();
        if first.starts_with("never") {
            std::future::pending::<()>().await;
        }
        let first_time = {
            let mut seen = script.seen.lock().expect("lock");
            let first_time = !seen.contains(&first);
            seen.push(first.clone());
            first_time
        };
        if first_time && first.starts_with("hang") {
            script.send_gate.pass().await;
        }
        script.written.lock().expect("lock").extend(payloads);
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }

    async fn flush(&self) -> Result<(), SinkError> {
        SCRIPTS[ID].flush_gate.pass().await;
        Ok(())
    }
}

impl<const ID: usize> Drop for Hanging<ID> {
    fn drop(&mut self) {
        SCRIPTS[ID].dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn plugin<const ID: usize>() -> Arc<LoadedPlugin> {
    // SAFETY: the table is made by the SDK for a plugin linked in.
    Arc::new(unsafe { LoadedPlugin::from_table(testing::table::<Hanging<ID>>(), Path::new("<hanging>")) }.expect("loads"))
}

fn bounded<const ID: usize>() -> Arc<dyn Sink> {
    CallTimeout::wrap(Arc::new(plugin::<ID>().build_sink(serde_json::json!({}), "p")), CALL_TIMEOUT, "p")
}

/// The process's metrics, rendered (one recorder for the whole test binary).
fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only recorder");
        handle
    })
}

async fn wait_for_series(series: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics().render();
        if text.lines().any(|line| line == series) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} not found in\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pos(i: u64) -> Position {
    Position::new(SequenceNumber::parse(&(1000 + i).to_string()).expect("digits"), 0)
}

fn records(prefix: &str, n: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let meta = RecordMeta {
                stream: Arc::from("stream"),
                shard_id: Arc::from("shardId-000000000000"),
                sequence_number: pos(i).sequence,
                sub_sequence_number: 0,
                partition_key: format!("pk{i}"),
                explicit_hash_key: None,
                arrival_time: SystemTime::UNIX_EPOCH,
                aggregated: false,
            };
            Record::new(Bytes::from(format!("{prefix}{i}")), Arc::new(meta))
        })
        .collect()
}

#[derive(Default)]
struct MemoryDeadLetter {
    entries: Mutex<Vec<DeadLetterEntry>>,
}

#[async_trait]
impl DeadLetter for MemoryDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        self.entries.lock().expect("lock").extend_from_slice(entries);
        Ok(())
    }
}

fn engine(sink: Arc<dyn Sink>, retry_attempts: u32, dead: Arc<MemoryDeadLetter>) -> ShardPipeline {
    let ctx = ShardContext { pipeline: Arc::from("p"), stream: Arc::from("stream"), shard_id: Arc::from("shardId-000000000000") };
    let buffer = BufferConfig { max_records: 100, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(3600) };
    let delivery = DeliveryConfig {
        retry_attempts,
        retry_initial_backoff: HumanDuration::from_millis(1),
        retry_max_backoff: HumanDuration::from_millis(5),
        call_timeout: HumanDuration::from_millis(CALL_TIMEOUT.as_millis() as u64),
        ..DeliveryConfig::default()
    };
    ShardPipeline::new(ctx, Vec::new(), buffer, delivery, sink, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_send_is_sent_again_and_its_late_answer_is_ignored() {
    metrics();
    let script = &SCRIPTS[0];
    script.flush_gate.open();
    let dead = Arc::new(MemoryDeadLetter::default());
    let mut engine = engine(bounded::<0>(), 5, dead.clone());
    engine.push(records("hang", 3));
    let checkpoint = tokio::time::timeout(Duration::from_secs(30), engine.drain()).await.expect("drained past the hung send");
    assert_eq!(checkpoint, Some(pos(2)));
    assert_eq!(script.written(), ["hang0", "hang1", "hang2"], "the second send delivered the batch");
    wait_for_series(r#"shardline_plugin_calls_total{plugin="hanging0",call="send",outcome="abandoned"} 1"#).await;

    // The plugin recovers and answers the abandoned call: the host drops
    // that answer; nothing is acknowledged again.
    script.send_gate.open();
    wait_for_series(r#"shardline_plugin_late_completions_total{plugin="hanging0",call="send"} 1"#).await;
    assert_eq!(script.written().len(), 6, "the late call did run in the plugin (at-least-once at the destination)");
    let stats = engine.stats();
    assert_eq!((stats.records_delivered, stats.records_dead_lettered), (3, 0), "{stats:?}");
    assert_eq!(engine.checkpoint(), Some(pos(2)));
    assert_eq!(engine.next_event().await, PipelineEvent::Idle);
    assert!(dead.entries.lock().expect("lock").is_empty());
    let text = metrics().render();
    assert!(text.contains(r#"shardline_sink_call_timeouts_total{pipeline="p",call="send"}"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_never_answers_is_dead_lettered_and_destroy_with_calls_in_flight_is_safe() {
    metrics();
    SCRIPTS[1].flush_gate.open();
    let sink = bounded::<1>();
    let dead = Arc::new(MemoryDeadLetter::default());
    let mut engine = engine(sink.clone(), 3, dead.clone());
    engine.push(records("never", 2));
    let checkpoint = tokio::time::timeout(Duration::from_secs(30), engine.drain()).await.expect("drained");
    assert_eq!(checkpoint, Some(pos(1)), "the checkpoint passes the dead-lettered records");
    let entries = dead.entries.lock().expect("lock").clone();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.reason.contains("gave up after 3 attempts") && e.reason.contains("call_timeout")), "{entries:?}");
    assert_eq!(engine.stats().records_dead_lettered, 2);
    wait_for_series(r#"shardline_plugin_calls_total{plugin="hanging1",call="send",outcome="abandoned"} 3"#).await;

    // Dropping the last owner destroys the instance; its runtime drops the
    // three calls still running, whose completions then come in late (with
    // an error) and free their batches.
    drop(engine);
    drop(sink);
    wait_for_series(r#"shardline_plugin_late_completions_total{plugin="hanging1",call="send"} 3"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_flush_is_a_retriable_error_at_the_deadline() {
    metrics();
    let script = &SCRIPTS[2];
    let sink = bounded::<2>();
    sink.healthcheck().await.expect("healthcheck");
    let started = Instant::now();
    let flushed = tokio::time::timeout(Duration::from_secs(30), sink.flush()).await.expect("the flush returns");
    let err = flushed.expect_err("the hung flush is abandoned");
    let took = started.elapsed();
    assert!(err.kind.is_retriable(), "{err}");
    assert!(err.message.contains("flush did not complete within call_timeout (200ms)"), "{err}");
    assert!(took >= CALL_TIMEOUT && took < Duration::from_secs(10), "{took:?}");

    script.flush_gate.open();
    wait_for_series(r#"shardline_plugin_late_completions_total{plugin="hanging2",call="flush"} 1"#).await;
    sink.flush().await.expect("a flush after the plugin recovered");
    let text = metrics().render();
    assert!(text.contains(r#"shardline_plugin_calls_total{plugin="hanging2",call="flush",outcome="ok"} 1"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_init_was_abandoned_is_destroyed() {
    let script = &SCRIPTS[3];
    let sink = bounded::<3>();
    let err = tokio::time::timeout(Duration::from_secs(30), sink.healthcheck()).await.expect("returns").expect_err("init hangs");
    assert!(err.kind.is_retriable() && err.message.contains("healthcheck did not complete"), "{err}");
    // The init finishes after nobody waits for it: its instance is
    // destroyed instead of leaking with its runtime.
    script.init_gate.open();
    let deadline = Instant::now() + Duration::from_secs(30);
    while script.dropped.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the abandoned instance was never destroyed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The next call makes a new instance and is answered.
    sink.healthcheck().await.expect("healthcheck");
    drop(sink);
    let deadline = Instant::now() + Duration::from_secs(30);
    while script.dropped.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the second instance was not destroyed with the sink");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

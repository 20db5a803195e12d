//! ABI version 2 and its rules, through the real C ABI with plugins linked
//! into this test: a version 2 plugin gets each batch's fence (the shard id
//! and the lease counter held when the engine sent it); a plugin built for
//! version 1 (a hand-built version 1 table whose `send` has the old
//! signature) still loads, flagged, and gets no fence; versions outside
//! the supported range are refused naming the file and the versions; and
//! both halves of the metrics bridge (the SDK's forwarding recorder, the
//! host's callbacks into its own recorder) carry names and labels. The
//! bridge through a real shared library is in `example_plugin.rs`.

use std::ffi::c_void;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use shardline_api::{
    BatchFence, ByteSize, HumanDuration, Record, RecordMeta, RecordStatus, SequenceNumber, Sink,
    SinkError,
};
use shardline_pipeline::dead_letter::{DeadLetter, DeadLetterEntry};
use shardline_pipeline::{BufferConfig, DeliveryConfig, ShardContext, ShardPipeline};
use shardline_plugin_host::{host_metrics, LoadError, LoadedPlugin};
use shardline_plugin_sdk::abi::metrics::{COUNTER_INCREMENT, GAUGE_SET};
use shardline_plugin_sdk::abi::{
    v1, ByteSlice, Completion, FfiLabel, FfiRecord, HostMetrics, SinkPluginTable, StaticTable,
    ABI_VERSION,
};
use shardline_plugin_sdk::{async_trait, testing, InitContext, PluginInfo, SinkPlugin};

/// (payload, fence) of one record the fence-recording plugin saw.
type Seen = (String, Option<BatchFence>);

/// What the fence-recording plugin saw.
fn seen() -> &'static Mutex<Vec<Seen>> {
    static SEEN: OnceLock<Mutex<Vec<Seen>>> = OnceLock::new();
    SEEN.get_or_init(Mutex::default)
}

fn seen_with(prefix: &str) -> Vec<Seen> {
    seen()
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .cloned()
        .collect()
}

/// Records the fence of every batch (and delivers everything).
struct Fences;

#[async_trait]
impl SinkPlugin for Fences {
    type Config = serde_json::Value;

    fn describe() -> PluginInfo {
        PluginInfo::new("fences", "2.0.0")
    }

    async fn init(_: serde_json::Value, _: InitContext) -> Result<Self, SinkError> {
        Ok(Fences)
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.send_fenced(None, batch).await
    }

    async fn send_fenced(
        &self,
        fence: Option<&BatchFence>,
        batch: &[Record],
    ) -> Result<Vec<RecordStatus>, SinkError> {
        let mut seen = seen().lock().expect("lock");
        for record in batch {
            seen.push((
                String::from_utf8_lossy(&record.payload.to_bytes()).into_owned(),
                fence.cloned(),
            ));
        }
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }
}

fn v2_table() -> &'static SinkPluginTable {
    static TABLE: OnceLock<StaticTable> = OnceLock::new();
    TABLE
        .get_or_init(|| StaticTable(testing::table::<Fences>()))
        .0
}

/// A version 1 table shared by the tests.
struct StaticV1(&'static v1::SinkPluginTable);
// SAFETY: the table is never written after it is built; its pointers
// reference static data and functions.
unsafe impl Send for StaticV1 {}
// SAFETY: as above.
unsafe impl Sync for StaticV1 {}

fn meta(sequence: u64) -> Arc<RecordMeta> {
    Arc::new(RecordMeta {
        stream: Arc::from("orders"),
        shard_id: Arc::from("shardId-000000000007"),
        sequence_number: SequenceNumber::parse(&sequence.to_string()).expect("digits"),
        sub_sequence_number: 0,
        partition_key: "pk".to_owned(),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    })
}

fn records(prefix: &str, from: u64, n: u64) -> Vec<Record> {
    (from..from + n)
        .map(|i| Record::new(Bytes::from(format!("{prefix}{i}")), meta(i)))
        .collect()
}

struct NoDeadLetters;

#[async_trait]
impl DeadLetter for NoDeadLetters {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        panic!("nothing should be dead-lettered: {entries:?}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_plugin_receives_the_shard_id_and_the_lease_counter_held_at_send_time() {
    // SAFETY: a table made by the SDK for a plugin linked in.
    let plugin = Arc::new(
        unsafe { LoadedPlugin::from_table(v2_table(), Path::new("<fences>")) }.expect("loads"),
    );
    assert_eq!(plugin.abi_version(), ABI_VERSION);
    let sink: Arc<dyn Sink> = Arc::new(plugin.build_sink(serde_json::json!({}), "fenced"));

    // Through the engine: the emitter reads the counter at each send.
    let ctx = ShardContext {
        pipeline: Arc::from("fenced"),
        stream: Arc::from("orders"),
        shard_id: Arc::from("shardId-000000000007"),
    };
    let buffer = BufferConfig {
        max_records: 3,
        max_bytes: ByteSize(1 << 20),
        max_age: HumanDuration::from_secs(3600),
    };
    let mut engine = ShardPipeline::new(
        ctx,
        Vec::new(),
        buffer,
        DeliveryConfig::default(),
        sink.clone(),
        Arc::new(NoDeadLetters),
    );
    let counter = Arc::new(AtomicU64::new(41));
    let read = counter.clone();
    engine.set_lease_counter(Arc::new(move || read.load(Ordering::SeqCst)));
    engine.push(records("engine-a", 1, 3));
    engine.drain().await;
    counter.store(42, Ordering::SeqCst); // a renewal
    engine.push(records("engine-b", 4, 3));
    engine.drain().await;
    let fence = |n| {
        Some(BatchFence {
            shard_id: Arc::from("shardId-000000000007"),
            lease_counter: n,
        })
    };
    let got = seen_with("engine-");
    assert_eq!(got.len(), 6, "{got:?}");
    for (payload, f) in &got {
        let expected = if payload.starts_with("engine-a") {
            fence(41)
        } else {
            fence(42)
        };
        assert_eq!(*f, expected, "{payload}");
    }

    // A direct `send` carries no fence.
    sink.send(&records("direct", 10, 1)).await.expect("send");
    assert_eq!(seen_with("direct"), [("direct10".to_owned(), None)]);
}

/// The SDK's version 2 `send`, the one a version 1 `send` is built on.
fn v2_send() -> shardline_plugin_sdk::abi::SendFn {
    v2_table().send.expect("the SDK sets send")
}

/// A version 1 `send`: the old signature, no fence (it hands the batch on
/// to the SDK's version 2 `send` with a null fence).
unsafe extern "C" fn v1_send(
    handle: *mut c_void,
    records: *const FfiRecord,
    len: usize,
    completion: Completion,
) {
    // SAFETY: forwarded; a null fence means "none" in version 2.
    unsafe { v2_send()(handle, std::ptr::null(), records, len, completion) }
}

/// A plugin as the version 1 SDK built it: version 1 header and size, a
/// version 1 `send`.
fn v1_table() -> &'static v1::SinkPluginTable {
    static TABLE: OnceLock<StaticV1> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let t = v2_table();
            StaticV1(Box::leak(Box::new(v1::SinkPluginTable {
                abi_version: v1::ABI_VERSION,
                table_size: v1::TABLE_SIZE,
                name: t.name,
                version: t.version,
                describe: t.describe,
                validate: t.validate,
                init: t.init,
                healthcheck: t.healthcheck,
                send: Some(v1_send),
                flush: t.flush,
                close: t.close,
                destroy: t.destroy,
                free_buffer: t.free_buffer,
            })))
        })
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_plugin_still_loads_and_gets_no_fence() {
    // SAFETY: a version 1 table over the SDK's functions.
    let plugin = Arc::new(
        unsafe { LoadedPlugin::from_v1_table(v1_table(), Path::new("/plugins/libold.so")) }
            .expect("loads"),
    );
    assert_eq!(plugin.abi_version(), 1);
    assert_eq!(plugin.info().version, "2.0.0");
    let sink = plugin.build_sink(serde_json::json!({}), "old");
    sink.healthcheck().await.expect("healthcheck");
    let fence = BatchFence {
        shard_id: Arc::from("shardId-000000000007"),
        lease_counter: 9,
    };
    let statuses = sink
        .send_fenced(&fence, &records("old-abi", 1, 2))
        .await
        .expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 2]);
    assert_eq!(
        seen_with("old-abi"),
        [("old-abi1".to_owned(), None), ("old-abi2".to_owned(), None)],
        "version 1 has no fence"
    );

    // A version 1 table too small for version 1 is still refused.
    let short = Box::leak(Box::new(v1::SinkPluginTable {
        table_size: 16,
        ..*v1_table()
    }));
    // SAFETY: as above.
    let err = unsafe { LoadedPlugin::from_v1_table(short, Path::new("/plugins/libold.so")) }
        .expect_err("refused");
    assert!(
        matches!(
            err,
            LoadError::TableTooSmall {
                abi_version: 1,
                found: 16,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn versions_outside_the_supported_range_are_refused_naming_file_and_versions() {
    for found in [0, ABI_VERSION + 1] {
        let table = Box::leak(Box::new(SinkPluginTable {
            abi_version: found,
            ..*v2_table()
        }));
        // SAFETY: an SDK table with its version changed; never called.
        let err = unsafe { LoadedPlugin::from_table(table, Path::new("/plugins/libfuture.so")) }
            .expect_err("refused");
        assert!(
            matches!(err, LoadError::AbiMismatch { found: f, expected: ABI_VERSION, oldest: 1, .. } if f == found),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("/plugins/libfuture.so")
                && message.contains(&format!("plugin ABI version {found} is not supported"))
                && message.contains(&format!("loads ABI versions 1 to {ABI_VERSION}")),
            "{message}"
        );
    }
}

/// Host callbacks of a fake host: what the forwarder hands over.
fn forwarded() -> &'static Mutex<Vec<String>> {
    static FORWARDED: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    FORWARDED.get_or_init(Mutex::default)
}

unsafe fn describe_call(name: ByteSlice, labels: *const FfiLabel, len: usize) -> String {
    // SAFETY: the forwarder passes valid slices for the call.
    let text = |s: ByteSlice| String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned();
    // SAFETY: as above.
    let labels = if len == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(labels, len) }
    };
    let labels: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={}", text(l.key), text(l.value)))
        .collect();
    format!("{}{{{}}}", text(name), labels.join(","))
}

unsafe extern "C" fn fake_counter(
    name: ByteSlice,
    labels: *const FfiLabel,
    len: usize,
    op: u32,
    value: u64,
) {
    // SAFETY: forwarded.
    let call = unsafe { describe_call(name, labels, len) };
    forwarded()
        .lock()
        .expect("lock")
        .push(format!("counter {call} op={op} {value}"));
}

unsafe extern "C" fn fake_gauge(
    name: ByteSlice,
    labels: *const FfiLabel,
    len: usize,
    op: u32,
    value: f64,
) {
    // SAFETY: forwarded.
    let call = unsafe { describe_call(name, labels, len) };
    forwarded()
        .lock()
        .expect("lock")
        .push(format!("gauge {call} op={op} {value}"));
}

unsafe extern "C" fn fake_histogram(
    name: ByteSlice,
    labels: *const FfiLabel,
    len: usize,
    value: f64,
) {
    // SAFETY: forwarded.
    let call = unsafe { describe_call(name, labels, len) };
    forwarded()
        .lock()
        .expect("lock")
        .push(format!("histogram {call} {value}"));
}

#[test]
fn the_sdk_forwarder_hands_names_labels_and_values_to_the_host() {
    let host = HostMetrics {
        struct_size: std::mem::size_of::<HostMetrics>() as u32,
        counter: Some(fake_counter),
        gauge: Some(fake_gauge),
        histogram: Some(fake_histogram),
        describe: None,
    };
    let forwarder = testing::metrics_forwarder(host);
    metrics::with_local_recorder(&forwarder, || {
        metrics::counter!("files_written_total", "shard_id" => "shardId-1", "pipeline" => "p")
            .increment(3);
        metrics::gauge!("queue_depth").set(2.5);
        metrics::histogram!("write_seconds", "op" => "put").record(0.25);
    });
    assert_eq!(
        *forwarded().lock().expect("lock"),
        [
            format!("counter files_written_total{{shard_id=shardId-1,pipeline=p}} op={COUNTER_INCREMENT} 3"),
            format!("gauge queue_depth{{}} op={GAUGE_SET} 2.5"),
            "histogram write_seconds{op=put} 0.25".to_owned(),
        ]
    );
}

#[test]
fn the_host_callbacks_record_in_the_host_recorder() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let host = host_metrics();
    let (name, key, value) = (b"plugin_files_total", b"shard_id", b"shardId-000000000003");
    let label = FfiLabel {
        key: ByteSlice::new(key),
        value: ByteSlice::new(value),
    };
    metrics::with_local_recorder(&recorder, || {
        let counter = host.counter.expect("counter callback");
        let gauge = host.gauge.expect("gauge callback");
        // SAFETY: valid slices for the calls.
        unsafe {
            counter(ByteSlice::new(name), &label, 1, COUNTER_INCREMENT, 2);
            counter(ByteSlice::new(name), &label, 1, COUNTER_INCREMENT, 5);
            gauge(
                ByteSlice::new(b"plugin_depth"),
                std::ptr::null(),
                0,
                GAUGE_SET,
                4.0,
            );
            // An empty name is dropped, not recorded under "".
            counter(
                ByteSlice::new(b""),
                std::ptr::null(),
                0,
                COUNTER_INCREMENT,
                1,
            );
        }
    });
    let text = handle.render();
    assert!(
        text.contains(r#"plugin_files_total{shard_id="shardId-000000000003"} 7"#),
        "{text}"
    );
    assert!(text.contains("plugin_depth 4"), "{text}");
}

//! Forwards the plugin's `metrics` to the host (ABI version 2).
//!
//! A plugin library has its own copy of the `metrics` crate, so its
//! `metrics::counter!` and friends would reach no exporter. On the first
//! `init` whose context carries the host's [`HostMetrics`], the SDK
//! installs [`Forwarder`] as the library's global recorder: every counter,
//! gauge and histogram update crosses to the host by name and labels, and
//! the host records it in its own recorder, so it appears on the host's
//! `/metrics` as the plugin wrote it. A plugin that installed a recorder of
//! its own keeps it.
//!
//! When the plugin is linked into the host's own image (an in-process
//! test), the host's and the plugin's `metrics` are the same crate and
//! nothing needs forwarding: the host says so with [`mark_host_image`]
//! before its first `init`, and the SDK then installs nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use shardline_plugin_abi::metrics::{
    COUNTER_ABSOLUTE, COUNTER_INCREMENT, GAUGE_DECREMENT, GAUGE_INCREMENT, GAUGE_SET, KIND_COUNTER,
    KIND_GAUGE, KIND_HISTOGRAM,
};
use shardline_plugin_abi::{ByteSlice, FfiLabel, HostMetrics, InitContext};

static HOST_IMAGE: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Called by the host (`shardline-plugin-host`) in its own image: plugins
/// linked into this image share the host's recorder and need no bridge.
pub fn mark_host_image() {
    HOST_IMAGE.store(true, Ordering::SeqCst);
}

/// The host's table from `context`, when it is long enough to have one.
fn host_table(context: &InitContext) -> Option<HostMetrics> {
    let needed =
        std::mem::offset_of!(InitContext, metrics) + std::mem::size_of::<*const HostMetrics>();
    if (context.struct_size as usize) < needed || context.metrics.is_null() {
        return None;
    }
    // SAFETY: the host keeps its table valid for the init call; only the
    // fixed head (struct_size) is read before the size is checked.
    let size = unsafe { std::ptr::addr_of!((*context.metrics).struct_size).read() } as usize;
    if size < std::mem::size_of::<HostMetrics>() {
        return None;
    }
    // SAFETY: as above, and the table is at least as long as ours.
    Some(unsafe { context.metrics.read() })
}

/// Installs the forwarder once per library, when the host gave a table.
/// Returns true when this library's metrics now go to the host.
pub(crate) fn install(context: &InitContext) -> bool {
    if HOST_IMAGE.load(Ordering::SeqCst) {
        return false;
    }
    let Some(host) = host_table(context) else {
        return false;
    };
    // Fails only when the plugin installed a recorder of its own.
    *INSTALLED.get_or_init(|| metrics::set_global_recorder(Forwarder { host }).is_ok())
}

thread_local! {
    /// Set while this thread is inside a host callback, so a host that
    /// (against the ABI's intent) records back into this library cannot
    /// recurse without end.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

fn forwarding(f: impl FnOnce()) {
    if FORWARDING.with(|busy| busy.replace(true)) {
        return;
    }
    f();
    FORWARDING.with(|busy| busy.set(false));
}

/// The library's recorder: forwards to the host.
struct Forwarder {
    host: HostMetrics,
}

/// One registered metric: its name and labels, kept with their C view.
struct Forwarded {
    host: HostMetrics,
    name: String,
    _labels: Vec<(String, String)>,
    ffi: Vec<FfiLabel>,
}

// SAFETY: `ffi` points into `_labels` (heap strings that never move nor
// change); the host functions are callable from any thread (ABI rule).
unsafe impl Send for Forwarded {}
// SAFETY: as above; nothing is mutated after construction.
unsafe impl Sync for Forwarded {}

impl Forwarded {
    fn new(host: HostMetrics, key: &Key) -> Arc<Self> {
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let ffi = labels
            .iter()
            .map(|(k, v)| FfiLabel {
                key: ByteSlice::new(k.as_bytes()),
                value: ByteSlice::new(v.as_bytes()),
            })
            .collect();
        Arc::new(Forwarded {
            host,
            name: key.name().to_owned(),
            _labels: labels,
            ffi,
        })
    }

    fn parts(&self) -> (ByteSlice, *const FfiLabel, usize) {
        (
            ByteSlice::new(self.name.as_bytes()),
            self.ffi.as_ptr(),
            self.ffi.len(),
        )
    }

    fn counter(&self, op: u32, value: u64) {
        let Some(f) = self.host.counter else { return };
        let (name, labels, len) = self.parts();
        // SAFETY: the slices borrow `self`, valid for the call.
        forwarding(|| unsafe { f(name, labels, len, op, value) });
    }

    fn gauge(&self, op: u32, value: f64) {
        let Some(f) = self.host.gauge else { return };
        let (name, labels, len) = self.parts();
        // SAFETY: as above.
        forwarding(|| unsafe { f(name, labels, len, op, value) });
    }
}

impl CounterFn for Forwarded {
    fn increment(&self, value: u64) {
        self.counter(COUNTER_INCREMENT, value);
    }
    fn absolute(&self, value: u64) {
        self.counter(COUNTER_ABSOLUTE, value);
    }
}

impl GaugeFn for Forwarded {
    fn increment(&self, value: f64) {
        self.gauge(GAUGE_INCREMENT, value);
    }
    fn decrement(&self, value: f64) {
        self.gauge(GAUGE_DECREMENT, value);
    }
    fn set(&self, value: f64) {
        self.gauge(GAUGE_SET, value);
    }
}

impl HistogramFn for Forwarded {
    fn record(&self, value: f64) {
        let Some(f) = self.host.histogram else { return };
        let (name, labels, len) = self.parts();
        // SAFETY: as above.
        forwarding(|| unsafe { f(name, labels, len, value) });
    }
}

impl Forwarder {
    fn describe(&self, kind: u32, key: KeyName, unit: Option<Unit>, description: SharedString) {
        let Some(f) = self.host.describe else { return };
        let unit = unit.map_or("", |u| u.as_str());
        // SAFETY: the slices borrow locals valid for the call.
        forwarding(|| unsafe {
            f(
                kind,
                ByteSlice::new(key.as_str().as_bytes()),
                ByteSlice::new(unit.as_bytes()),
                ByteSlice::new(description.as_bytes()),
            )
        });
    }
}

impl Recorder for Forwarder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(KIND_COUNTER, key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(KIND_GAUGE, key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(KIND_HISTOGRAM, key, unit, description);
    }
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(Forwarded::new(self.host, key))
    }
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Forwarded::new(self.host, key))
    }
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Forwarded::new(self.host, key))
    }
}

/// The forwarder over `host`, for tests of the bridge in one process (a
/// local recorder, so nothing global changes).
pub fn forwarder(host: HostMetrics) -> impl Recorder {
    Forwarder { host }
}

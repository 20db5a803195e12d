//! The host's side of the metrics bridge (ABI version 2): the callbacks
//! given to every plugin's `init`, which record a plugin's own metrics in
//! the host's recorder under the plugin's names and labels, so they appear
//! on `/metrics` next to Shardline's.

use std::panic::catch_unwind;

use metrics::{Key, Label, Level, Metadata, Unit};
use shardline_plugin_abi::metrics::{
    COUNTER_ABSOLUTE, COUNTER_INCREMENT, GAUGE_DECREMENT, GAUGE_INCREMENT, GAUGE_SET, KIND_COUNTER,
    KIND_GAUGE, KIND_HISTOGRAM,
};
use shardline_plugin_abi::{ByteSlice, FfiLabel, HostMetrics};

/// The callbacks every plugin gets.
pub(crate) static HOST_METRICS: HostMetrics = HostMetrics {
    struct_size: std::mem::size_of::<HostMetrics>() as u32,
    counter: Some(counter),
    gauge: Some(gauge),
    histogram: Some(histogram),
    describe: Some(describe),
};

static METADATA: Metadata<'static> =
    Metadata::new("shardline::plugin", Level::INFO, Some(module_path!()));

/// # Safety
/// `slice` is valid for the call.
unsafe fn text(slice: ByteSlice) -> String {
    // SAFETY: forwarded from the caller.
    String::from_utf8_lossy(unsafe { slice.as_bytes() }).into_owned()
}

/// The key a plugin named, or `None` for an empty name.
///
/// # Safety
/// `name` and the `len` labels at `labels` are valid for the call.
unsafe fn key(name: ByteSlice, labels: *const FfiLabel, len: usize) -> Option<Key> {
    // SAFETY: forwarded from the caller.
    let name = unsafe { text(name) };
    if name.is_empty() {
        return None;
    }
    let labels = if labels.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin passes `len` labels, valid for the call.
        unsafe { std::slice::from_raw_parts(labels, len) }
            .iter()
            // SAFETY: as above.
            .map(|l| unsafe { Label::new(text(l.key), text(l.value)) })
            .collect()
    };
    Some(Key::from_parts(name, labels))
}

unsafe extern "C" fn counter(
    name: ByteSlice,
    labels: *const FfiLabel,
    len: usize,
    op: u32,
    value: u64,
) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin keeps everything valid for the call.
        let Some(key) = (unsafe { key(name, labels, len) }) else {
            return;
        };
        metrics::with_recorder(|recorder| {
            let counter = recorder.register_counter(&key, &METADATA);
            match op {
                COUNTER_INCREMENT => counter.increment(value),
                COUNTER_ABSOLUTE => counter.absolute(value),
                _ => {}
            }
        });
    });
}

unsafe extern "C" fn gauge(
    name: ByteSlice,
    labels: *const FfiLabel,
    len: usize,
    op: u32,
    value: f64,
) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin keeps everything valid for the call.
        let Some(key) = (unsafe { key(name, labels, len) }) else {
            return;
        };
        metrics::with_recorder(|recorder| {
            let gauge = recorder.register_gauge(&key, &METADATA);
            match op {
                GAUGE_SET => gauge.set(value),
                GAUGE_INCREMENT => gauge.increment(value),
                GAUGE_DECREMENT => gauge.decrement(value),
                _ => {}
            }
        });
    });
}

unsafe extern "C" fn histogram(name: ByteSlice, labels: *const FfiLabel, len: usize, value: f64) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin keeps everything valid for the call.
        let Some(key) = (unsafe { key(name, labels, len) }) else {
            return;
        };
        metrics::with_recorder(|recorder| {
            recorder.register_histogram(&key, &METADATA).record(value)
        });
    });
}

unsafe extern "C" fn describe(kind: u32, name: ByteSlice, unit: ByteSlice, description: ByteSlice) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin keeps the slices valid for the call.
        let (name, unit, description) = unsafe { (text(name), text(unit), text(description)) };
        if name.is_empty() {
            return;
        }
        let unit = Unit::from_string(&unit);
        metrics::with_recorder(|recorder| match kind {
            KIND_COUNTER => recorder.describe_counter(name.into(), unit, description.into()),
            KIND_GAUGE => recorder.describe_gauge(name.into(), unit, description.into()),
            KIND_HISTOGRAM => recorder.describe_histogram(name.into(), unit, description.into()),
            _ => {}
        });
    });
}

/// The callbacks, for tests that drive the bridge without a library.
pub fn host_metrics() -> &'static HostMetrics {
    &HOST_METRICS
}

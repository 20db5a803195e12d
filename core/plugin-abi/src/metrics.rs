//! The metrics bridge (ABI version 2): host callbacks through which a
//! plugin's own counters, gauges and histograms reach the host's recorder
//! (and so its `/metrics`).
//!
//! A plugin library has its own copy of the `metrics` crate and of its
//! global recorder, which no exporter reads. The SDK installs a recorder in
//! the library that forwards every update, by name and labels, to these
//! functions; the host records it in its own recorder under the same name
//! and labels. Names and labels are UTF-8, borrowed for the call. Every
//! function is callable from any thread and does not block.

use crate::ByteSlice;

/// One label of a metric (borrowed for the call).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiLabel {
    /// Label name.
    pub key: ByteSlice,
    /// Label value.
    pub value: ByteSlice,
}

/// Counter operation: add `value`.
pub const COUNTER_INCREMENT: u32 = 0;
/// Counter operation: set to `value` if it is higher.
pub const COUNTER_ABSOLUTE: u32 = 1;
/// Gauge operation: set to `value`.
pub const GAUGE_SET: u32 = 0;
/// Gauge operation: add `value`.
pub const GAUGE_INCREMENT: u32 = 1;
/// Gauge operation: subtract `value`.
pub const GAUGE_DECREMENT: u32 = 2;

/// Metric kind (for [`DescribeFn`]): counter.
pub const KIND_COUNTER: u32 = 0;
/// Metric kind: gauge.
pub const KIND_GAUGE: u32 = 1;
/// Metric kind: histogram.
pub const KIND_HISTOGRAM: u32 = 2;

/// Updates a counter: `op` is [`COUNTER_INCREMENT`] or [`COUNTER_ABSOLUTE`].
pub type CounterFn = unsafe extern "C" fn(
    name: ByteSlice,
    labels: *const FfiLabel,
    labels_len: usize,
    op: u32,
    value: u64,
);
/// Updates a gauge: `op` is [`GAUGE_SET`], [`GAUGE_INCREMENT`] or
/// [`GAUGE_DECREMENT`].
pub type GaugeFn = unsafe extern "C" fn(
    name: ByteSlice,
    labels: *const FfiLabel,
    labels_len: usize,
    op: u32,
    value: f64,
);
/// Records one histogram sample.
pub type HistogramFn =
    unsafe extern "C" fn(name: ByteSlice, labels: *const FfiLabel, labels_len: usize, value: f64);
/// Describes a metric: `kind` is one of [`KIND_COUNTER`]..=[`KIND_HISTOGRAM`];
/// `unit` is empty or a `metrics` unit name (`seconds`, `bytes`, `count`…).
pub type DescribeFn =
    unsafe extern "C" fn(kind: u32, name: ByteSlice, unit: ByteSlice, description: ByteSlice);

/// The host's metrics callbacks, given to `init` in
/// [`InitContext::metrics`](crate::InitContext::metrics). A null function
/// means the host drops that kind of update.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostMetrics {
    /// `size_of::<HostMetrics>()` as the host built it; fields are only
    /// added at the end.
    pub struct_size: u32,
    /// Counters.
    pub counter: Option<CounterFn>,
    /// Gauges.
    pub gauge: Option<GaugeFn>,
    /// Histograms.
    pub histogram: Option<HistogramFn>,
    /// Descriptions (HELP text and unit).
    pub describe: Option<DescribeFn>,
}

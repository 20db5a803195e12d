//! The Shardline sink plugin SDK: write a sink as a shared library without
//! touching `unsafe`.
//!
//! A plugin implements one async trait and exports it with one macro:
//!
//! ```text
//! #[async_trait]
//! pub trait SinkPlugin: Send + Sync + Sized + 'static {
//!     type Config: DeserializeOwned + Send + 'static;   // use #[serde(deny_unknown_fields)]
//!     const WORKER_THREADS: usize = 2;                   // the plugin's own tokio runtime
//!     fn describe() -> PluginInfo;                       // name (the sink `type`), version, config keys
//!     fn validate(config: &Self::Config) -> Result<(), Vec<ConfigProblem>> { Ok(()) }  // no I/O
//!     async fn init(config: Self::Config, ctx: InitContext) -> Result<Self, SinkError>;
//!     async fn healthcheck(&self) -> Result<(), SinkError> { Ok(()) }
//!     async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError>;
//!     async fn send_fenced(&self, fence: Option<&BatchFence>, batch: &[Record]) -> ... { self.send(batch).await }
//!     async fn flush(&self) -> Result<(), SinkError> { Ok(()) }
//!     async fn close(&self) -> Result<(), SinkError> { Ok(()) }
//! }
//!
//! shardline_plugin_sdk::export_sink_plugin!(MySink);
//! ```
//!
//! The vocabulary is Shardline's own ([`Record`], [`RecordStatus`],
//! [`SinkError`], [`ErrorKind`], [`ByteSize`], [`HumanDuration`] from
//! `shardline-api`), so a sink written as a plugin reads like a built-in
//! one. A complete example is `examples/sink-plugin` in the Shardline
//! repository:
//!
//! ```no_run
//! use shardline_plugin_sdk::{
//!     async_trait, ConfigKey, ConfigProblem, InitContext, PluginInfo, Record, RecordStatus, SinkError, SinkPlugin,
//! };
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     /// Records whose payload is longer are rejected. Required.
//!     max_len: usize,
//! }
//!
//! pub struct Counting {
//!     max_len: usize,
//!     count: std::sync::atomic::AtomicU64,
//! }
//!
//! #[async_trait]
//! impl SinkPlugin for Counting {
//!     type Config = Config;
//!
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("counting", env!("CARGO_PKG_VERSION"))
//!             .description("counts records")
//!             .key(ConfigKey::required("max_len", "longest payload accepted, in bytes"))
//!     }
//!
//!     fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
//!         if config.max_len == 0 {
//!             return Err(vec![ConfigProblem::key("max_len", "must be at least 1")]);
//!         }
//!         Ok(())
//!     }
//!
//!     async fn init(config: Config, _ctx: InitContext) -> Result<Self, SinkError> {
//!         Ok(Counting { max_len: config.max_len, count: Default::default() })
//!     }
//!
//!     async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
//!         Ok(batch
//!             .iter()
//!             .map(|r| {
//!                 if r.payload.approximate_len() > self.max_len {
//!                     RecordStatus::Rejected { reason: "too long".into() }
//!                 } else {
//!                     self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!                     RecordStatus::Delivered
//!                 }
//!             })
//!             .collect())
//!     }
//! }
//!
//! shardline_plugin_sdk::export_sink_plugin!(Counting);
//! ```
//!
//! Build it as a `cdylib` (`[lib] crate-type = ["cdylib"]`) and put the
//! library in a plugin directory (see the README's "Plugins" section).
//!
//! # What the SDK does for the plugin
//! - Generates the exported entry function and the versioned C table
//!   ([`shardline_plugin_abi`]).
//! - Catches panics at every entry point and in every call: a panic becomes
//!   a permanent [`SinkError`] (or a config problem) carrying the panic
//!   message; it never unwinds into the host.
//! - Gives every instance its own multi-thread tokio runtime
//!   ([`SinkPlugin::WORKER_THREADS`] workers), created in `init`: all the
//!   plugin's async code runs there, never on the host's runtime.
//! - Parses the config (JSON from the host) into [`SinkPlugin::Config`];
//!   serde's messages name the offending key so `shardline validate` can
//!   point at its line in the pipeline file.
//! - Forwards the plugin's `tracing` events (at the host's level or less
//!   detailed) to the host's log.
//! - Installs a `metrics` recorder in the library that forwards the
//!   plugin's own counters, gauges and histograms (names and labels as
//!   written) to the host, so they appear on Shardline's `/metrics`.
//! - Copies each batch into owned [`Record`]s before calling
//!   [`SinkPlugin::send_fenced`] (whose default calls
//!   [`SinkPlugin::send`]), so a plugin may keep records as long as it
//!   likes; the batch's [`BatchFence`] (shard id, lease counter at send
//!   time) comes with it.
#![warn(missing_docs)]

mod convert;
mod entry;
mod info;
mod log;
mod metrics;

use serde::de::DeserializeOwned;

pub use async_trait::async_trait;
pub use info::{ConfigKey, ConfigProblem, InitContext, PluginInfo};
pub use shardline_api::{json_kind, BatchFence, ByteSize, ErrorKind, HumanDuration, Payload, Record, RecordMeta, RecordStatus, SequenceNumber, SinkError};
/// The C ABI this SDK implements (for hosts and tests; plugins do not need it).
pub use shardline_plugin_abi as abi;

/// A sink implemented as a plugin. See the [crate docs](crate) for an
/// example; export it with [`export_sink_plugin!`].
///
/// Calls may run concurrently for different shards (`&self` is shared), as
/// with [`shardline_api::Sink`]. Every call runs on the plugin's own tokio
/// runtime.
#[async_trait]
pub trait SinkPlugin: Send + Sync + Sized + 'static {
    /// The `[sink]` table of the pipeline file without `type`. Use
    /// `#[serde(deny_unknown_fields)]` so a misspelt key is an error.
    type Config: DeserializeOwned + Send + 'static;

    /// Worker threads of the instance's tokio runtime. Default 2.
    const WORKER_THREADS: usize = 2;

    /// Name (the sink `type` it provides), version and config keys.
    /// Must not fail and should be cheap: the host calls it at load.
    fn describe() -> PluginInfo;

    /// Checks a parsed config without I/O (ranges, combinations of keys).
    /// Called by `shardline validate` and before [`init`](Self::init).
    ///
    /// # Errors
    /// Every problem found, each naming its key when it has one.
    fn validate(config: &Self::Config) -> Result<(), Vec<ConfigProblem>> {
        let _ = config;
        Ok(())
    }

    /// Makes an instance (clients, buffers) from a valid config. May do
    /// I/O, but reachability is better checked in
    /// [`healthcheck`](Self::healthcheck).
    ///
    /// # Errors
    /// A [`SinkError`]; the pipeline does not start.
    async fn init(config: Self::Config, ctx: InitContext) -> Result<Self, SinkError>;

    /// Checks that the destination is reachable and usable.
    ///
    /// # Errors
    /// A [`SinkError`]: a permanent one stops the pipeline at start, a
    /// retriable one is logged and deliveries are retried.
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Sends a batch (records of one shard, in shard order) and answers one
    /// [`RecordStatus`] per record, in batch order: `Delivered`,
    /// `Retriable` (sent again after a back-off, dead-lettered once retries
    /// run out) or `Rejected` (dead-lettered with the reason).
    ///
    /// # Errors
    /// A [`SinkError`] when the call as a whole failed: every record is
    /// then retried (retriable) or dead-lettered (permanent).
    ///
    /// # Cancel safety
    /// The host never cancels a call it started: the future runs to
    /// completion on the plugin's runtime.
    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError>;

    /// [`send`](Self::send) with the batch's fencing facts: the shard id
    /// and the lease counter the worker held when it sent the batch
    /// (`None` when the host sent none: a host of ABI version 1 never
    /// does, a direct `Sink::send` neither). The SDK always calls this
    /// one; the default ignores the fence and calls `send`. Override it to
    /// fence writes, e.g. refuse a batch whose lease counter is lower than
    /// the highest one the destination saw for the shard (a zombie worker
    /// that lost its lease).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    async fn send_fenced(&self, fence: Option<&BatchFence>, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let _ = fence;
        self.send(batch).await
    }

    /// Makes everything already acknowledged durable. Called before a final
    /// checkpoint.
    ///
    /// # Errors
    /// A [`SinkError`] when the data could not be made durable.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Releases resources; no call follows.
    ///
    /// # Errors
    /// A [`SinkError`] when closing failed.
    async fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Exports a [`SinkPlugin`] as the library's plugin entry point (the
/// `shardline_sink_plugin` symbol). Use it once per `cdylib`:
///
/// ```ignore
/// shardline_plugin_sdk::export_sink_plugin!(MySink);
/// ```
#[macro_export]
macro_rules! export_sink_plugin {
    ($plugin:ty) => {
        /// The Shardline plugin entry point (generated by
        /// `shardline_plugin_sdk::export_sink_plugin!`).
        #[no_mangle]
        pub extern "C" fn shardline_sink_plugin() -> *const $crate::abi::SinkPluginTable {
            static TABLE: $crate::__private::TableCell = $crate::__private::TableCell::new();
            TABLE.get::<$plugin>()
        }
    };
}

/// Support for in-process tests of a plugin: the table
/// [`export_sink_plugin!`] would export, without a shared library.
pub mod testing {
    use crate::SinkPlugin;
    use shardline_plugin_abi::SinkPluginTable;

    /// The plugin's table, leaked so it lives as long as the process (as a
    /// loaded library's table does). Hand it to
    /// `shardline_plugin_host::LoadedPlugin::from_table` to drive the plugin
    /// through the real C ABI in a test.
    ///
    /// # Panics
    /// When `P::describe` panics.
    pub fn table<P: SinkPlugin>() -> &'static SinkPluginTable {
        Box::leak(Box::new(crate::entry::build_table::<P>()))
    }

    /// The recorder the SDK installs in a plugin library, forwarding to
    /// `host` (use it as a local recorder to test a host's callbacks).
    pub fn metrics_forwarder(host: shardline_plugin_abi::HostMetrics) -> impl metrics::Recorder {
        crate::metrics::forwarder(host)
    }
}

#[doc(hidden)]
pub mod __private {
    pub use crate::entry::TableCell;
    pub use crate::metrics::mark_host_image;
}

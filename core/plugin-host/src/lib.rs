//! The Shardline plugin host: finds sink plugins in directories, loads them
//! with `libloading` through the versioned C ABI
//! ([`shardline_plugin_abi`]), and adapts each to
//! [`shardline_api::Sink`] so the pipeline engine cannot tell a plugin from
//! a built-in sink.
//!
//! - [`PluginHost::discover`] loads every shared library in the plugin
//!   directories, in order; the first plugin providing a sink type wins.
//!   A library built for another ABI version, or that is no plugin, is
//!   refused with an error naming the file (and both versions); loading the
//!   others goes on. Libraries are never unloaded.
//! - [`LoadedPlugin::validate`] checks a `[sink]` config without I/O;
//!   [`LoadedPlugin::build_sink`] makes a [`PluginSink`].
//!
//! # Threads
//! The plugin runs its async code on its own tokio runtime. The host never
//! blocks one of its runtime threads on a plugin: `healthcheck`, `send`,
//! `flush` and `close` return at once and the plugin answers through a
//! completion callback that fulfils a oneshot channel the host awaits.
//! That costs no thread per call in flight (a blocking-pool design would
//! hold one host thread for every batch in flight, for the whole network
//! round trip). Only the one-time `init`, which may block while the plugin
//! builds its runtime and clients, runs on tokio's blocking pool
//! (`spawn_blocking`). `describe` and `validate` are pure and cheap and run
//! inline.
//!
//! # Metrics
//! `shardline_plugin_calls_total{plugin,call,outcome}` counts calls into
//! plugins (`outcome` = `ok`, `retriable` or `permanent`, or `abandoned`
//! when the host stopped waiting, e.g. after `[delivery] call_timeout`),
//! `shardline_plugin_call_duration_seconds{plugin,call}` times them, and
//! `shardline_plugin_late_completions_total{plugin,call}` counts answers to
//! abandoned calls, which are ignored.
//!
//! A plugin's own metrics (ABI version 2) are recorded in the host's
//! recorder under the plugin's names and labels (see [`host_metrics`]).
//!
//! # ABI versions
//! Plugins of ABI version 2 get each batch's fence (shard id, lease
//! counter) and the metrics bridge. Plugins of version 1 still load, with
//! a warning in the log and in [`LoadedPlugin::abi_version`]: their `send`
//! gets no fence and their metrics stay inside the library. Other versions
//! are refused with [`LoadError::AbiMismatch`] naming the file and the
//! versions.
#![warn(missing_docs)]

mod discover;
mod error;
mod library;
mod metrics;
mod sink;

pub use discover::{default_plugin_dirs, PluginHost, SearchedDir};
pub use error::LoadError;
pub use library::LoadedPlugin;
pub use metrics::host_metrics;
pub use shardline_plugin_abi::ABI_VERSION;
pub use shardline_plugin_sdk::{ConfigKey, ConfigProblem, PluginInfo};
pub use sink::PluginSink;

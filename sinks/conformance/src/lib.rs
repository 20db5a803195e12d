//! The sink conformance suite: the checks every Shardline sink passes,
//! built-in or plugin, run through the real pipeline engine
//! ([`shardline_pipeline::ShardPipeline`]).
//!
//! A sink's tests describe it with a [`SinkUnderTest`] and call [`run`]:
//!
//! ```no_run
//! # use shardline_sink_conformance::{run, FileSinkUnderTest};
//! let report = run(&FileSinkUnderTest);
//! println!("{report}");
//! ```
//!
//! The checks, each in a fresh [`Scope`] (its own directory and name) and a
//! fresh runtime:
//! - **validate rejects bad config without I/O**: the good config passes,
//!   every [`InvalidConfig`] fails naming its key, and neither validating
//!   nor building the sink creates anything.
//! - **delivered records are acknowledged**: healthcheck passes; a direct
//!   `send` answers one `Delivered` per record; batches through the engine
//!   are all delivered, the checkpoint reaches the last record, `flush` and
//!   `close` succeed, and the destination holds exactly the payloads sent.
//! - **retriable failures are retried**: with the destination made
//!   unavailable ([`SinkUnderTest::make_unavailable`]) the sink answers
//!   retriable (never permanent); once it is available again the engine's
//!   retries deliver everything, nothing is dead-lettered.
//! - **rejected records are dead-lettered**: a record the sink rejects
//!   ([`SinkUnderTest::rejected_payload`]) goes to the dead-letter
//!   destination with stage `sink` and a reason; its neighbours are
//!   delivered and the checkpoint passes it.
//! - **metrics are emitted**: after each of the above the Prometheus text
//!   shows `shardline_records_delivered_total`,
//!   `shardline_sink_retries_total` and
//!   `shardline_records_dead_lettered_total` with the expected counts, and
//!   whatever [`SinkUnderTest::expected_metrics`] names.
//!
//! A check the sink cannot be driven into (no rejected payload, no way to
//! make the destination unavailable) is reported as skipped with the reason,
//! never silently passed. A failing check panics naming the check and the
//! sink type.
#![warn(missing_docs)]

mod checks;
mod file;
mod support;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::Sink;

pub use file::{block_dir, read_lines, unblock_dir, FileSinkUnderTest};

/// Where one check's sink writes: a directory that does not exist yet
/// (inside a temporary directory removed afterwards) and a unique name (for
/// sinks that write elsewhere, e.g. as an object key prefix).
#[derive(Debug, Clone)]
pub struct Scope {
    /// A directory path, not created yet.
    pub dir: PathBuf,
    /// A unique name, `[a-z0-9-]`.
    pub name: String,
}

/// A config the sink's validation must refuse.
#[derive(Debug, Clone)]
pub struct InvalidConfig {
    /// The `[sink]` table without `type`.
    pub config: toml::Table,
    /// The key the problem must name (`None`: any or none).
    pub key: Option<String>,
}

/// How the suite drives one sink.
#[async_trait]
pub trait SinkUnderTest: Send + Sync {
    /// The sink `type`, for messages.
    fn sink_type(&self) -> String;

    /// A valid `[sink]` table (without `type`) writing into `scope`.
    fn config(&self, scope: &Scope) -> toml::Table;

    /// Configs `validate` must refuse.
    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig>;

    /// Validates a `[sink]` table without I/O, as `shardline validate`
    /// does: `(key, message)` of the first problem.
    ///
    /// # Errors
    /// The problem found.
    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)>;

    /// Builds the sink (no I/O).
    ///
    /// # Errors
    /// Why it could not be built.
    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String>;

    /// Every payload the destination in `scope` holds, in any order.
    async fn read_back(&self, scope: &Scope) -> Vec<Bytes>;

    /// A payload the sink rejects, when it has one.
    fn rejected_payload(&self) -> Option<Bytes> {
        None
    }

    /// Makes the destination of `scope` unavailable, so that sends fail
    /// retriably; false when the sink has no such state (the check is then
    /// skipped). For directory sinks: [`block_dir`].
    async fn make_unavailable(&self, scope: &Scope) -> bool {
        let _ = scope;
        false
    }

    /// Undoes [`make_unavailable`](Self::make_unavailable). For directory
    /// sinks: [`unblock_dir`].
    async fn make_available(&self, scope: &Scope) {
        let _ = scope;
    }

    /// Metric names (beyond the engine's) that must appear after records
    /// were delivered, e.g. `shardline_plugin_calls_total` for a plugin.
    fn expected_metrics(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The sink type.
    pub sink_type: String,
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with why.
    pub skipped: Vec<(&'static str, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sink conformance for `{}`:", self.sink_type)?;
        for check in &self.passed {
            writeln!(f, "  passed: {check}")?;
        }
        for (check, why) in &self.skipped {
            writeln!(f, "  skipped: {check}: {why}")?;
        }
        Ok(())
    }
}

/// Runs every check against `sut`. Call it from a plain `#[test]` (not
/// inside a tokio runtime: each check makes its own).
///
/// # Panics
/// When a check fails (the message names the check and the sink type), or
/// when called inside a tokio runtime.
pub fn run(sut: &dyn SinkUnderTest) -> Report {
    let mut report = Report { sink_type: sut.sink_type(), ..Report::default() };
    for check in checks::ALL {
        match (check.run)(sut) {
            checks::Outcome::Passed => report.passed.push(check.name),
            checks::Outcome::Skipped(why) => {
                eprintln!("skipped: sink `{}`: {}: {why}", report.sink_type, check.name);
                report.skipped.push((check.name, why));
            }
        }
    }
    report
}

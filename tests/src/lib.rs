//! Test harness for Shardline's end-to-end tests.
//!
//! The tests in `tests/tests/` run the real `shardline` binary as child
//! processes against kinesis-mock (Kinesis) and dynalite (DynamoDB), which
//! `scripts/test` starts on loopback ports and announces through
//! `SHARDLINE_TEST_KINESIS_ENDPOINT` and `SHARDLINE_TEST_DYNAMODB_ENDPOINT`.
//! Without them a test prints why it is skipped and passes, except under
//! `CI=true`, where it fails.
//!
//! Pieces, in the order a test uses them:
//! - [`Emulators`]: the endpoints, or a skip.
//! - [`TestDir`]: a scratch directory under `target/e2e/`, kept when the
//!   test fails.
//! - [`Kinesis`]: fresh streams, `PutRecords` with retries, KPL aggregates,
//!   `SplitShard`.
//! - [`PipelineSpec`]: writes the pipeline TOML file a worker runs.
//! - [`Worker`]: a `shardline run` child process (kill -9, SIGTERM, logs).
//! - [`read_ndjson_dir`] / [`OutputRecord`]: what the file sink and the
//!   dead-letter sink wrote.
//! - [`LeaseTable`]: raw scans and reads of the KCL lease table.
//! - [`KeyedProducer`], [`ReshardOrderSampler`] and the parent-before-child
//!   checks for resharding tests.
//! - [`fault_proxy`]: fault-injecting proxies in front of Kinesis and S3;
//!   [`fault_scenario`]: the checks of the fault test (`e2e_faults`).
//! - [`Chromium`]: headless Chromium for page tests (DOM dumps, screenshots).
//! - [`wait_until`]: poll a condition with a deadline; tests never sleep for
//!   a fixed "long enough".
//!
//! KPL aggregates are encoded by the harness's own [`kpl_aggregate`],
//! written independently of `shardline_kinesis::kpl` so that the
//! de-aggregation test does not share the code under test's reading of the
//! format; `tests/kpl_cross_check.rs` checks the two agree byte for byte.

mod binary;
mod checks;
mod chromium;
pub mod dynamodb_sink;
mod emulators;
pub mod fault_proxy;
pub mod fault_scenario;
mod kcl;
mod kinesis;
mod kpl;
mod leases;
pub mod opensearch;
mod output;
mod pipeline;
pub mod redshift;
mod reshard;
pub mod s3;
mod sequence;
mod wait;
mod worker;

pub use binary::{output_within, shardline_bin};
pub use chromium::Chromium;
pub use kcl::KclWorker;
pub use checks::{delivered_ids, delivery_counts, last_sequence_per_shard, wait_for_ids};
pub use emulators::{unique_name, Emulators, TestDir};
pub use kinesis::{Kinesis, PutResult, ShardInfo, TestRecord};
pub use kpl::{aggregate as kpl_aggregate, AGGREGATION_MAGIC};
pub use leases::{Lease, LeaseTable};
pub use output::{read_ndjson_dir, read_ndjson_dir_of_pid, OutputRecord};
pub use pipeline::{LeaseStore, PipelineSpec};
pub use reshard::{
    check_children_wait_for_parents, check_parent_counters_precede_children, keyed_id,
    KeyedProducer, ReshardOrderSampler,
};
pub use sequence::{cmp_checkpoint, cmp_sequence, is_sequence_number};
pub use wait::wait_until;
pub use worker::{json_log_events, Worker};

/// How long a test waits for a condition that depends on the binary doing
/// its work (delivery, lease balancing, failover), before failing.
pub const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

//! The `shardline` runtime: configuration, the pipeline runner that ties the
//! Kinesis source, the lease coordinator and the pipeline engine together,
//! and the operations endpoint.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library.
#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod metrics;
pub mod put;
pub mod quickstart;
pub mod runtime;
pub mod scrape;
pub mod sink;
pub mod status;
pub mod testing;
pub mod transforms;
pub mod web;

/// The log filter when neither `SHARDLINE_LOG` nor `RUST_LOG` is set:
/// `info`, with the AWS SDK's internal lines (credential chain attempts,
/// retries, of the host and of plugins) only at `error`; Shardline reports
/// their outcome itself. `RUST_LOG=info,aws_config=debug,shardline::plugin::aws=debug`
/// brings them back.
pub const DEFAULT_LOG_FILTER: &str = "info,aws_config=error,aws_smithy_runtime=error,shardline::plugin::aws=error";

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
pub mod sink;
pub mod testing;
pub mod transforms;

//! `encoding = "parquet"`: each object is one Parquet file of its
//! records, with the columns declared in `[sink.parquet] schema`.
//!
//! - [`schema`]: the `[sink.parquet]` table, checked into a [`Schema`]
//!   (and the Parquet message type of it).
//! - [`convert`]: one JSON record to one row of typed cells, or the
//!   [`Misfit`] that dead-letters it (field and reason).
//! - [`writer`]: rows to one Parquet file (`compression` is the column
//!   codec: snappy, zstd, gzip or none).

pub mod convert;
pub mod schema;
pub mod writer;

pub use convert::{convert, Cell, Misfit};
pub use schema::{ColumnType, ParquetConfig, Schema};
pub use writer::FileWriter;

/// The `Content-Type` of Parquet objects.
pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

#[cfg(test)]
mod convert_tests;
#[cfg(test)]
mod writer_tests;

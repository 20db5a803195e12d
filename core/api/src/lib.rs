//! Types shared by every Shardline crate.
//!
//! This crate is deliberately small and free of I/O: it defines what a
//! [`Record`] is, how positions in a shard are ordered ([`SequenceNumber`],
//! [`Position`], [`Checkpoint`]), the in-process [`Sink`] and [`Transform`]
//! contracts, the retriable/permanent [`ErrorKind`] classification, and the
//! human units used in configuration ([`ByteSize`], [`HumanDuration`]).
#![warn(missing_docs)]

mod error;
mod json;
mod record;
mod sequence;
mod shard;
mod sink;
mod transform;
mod units;

pub use error::ErrorKind;
pub use json::json_kind;
pub use record::{Payload, Record, RecordMeta, RejectedRecord};
pub use sequence::{Checkpoint, ParseSequenceError, Position, SequenceNumber};
pub use shard::ShardInfo;
pub use sink::{BatchFence, RecordStatus, Sink, SinkError};
pub use transform::{CheckpointLimit, OpKey, Transform, TransformError};
pub use units::{ByteSize, HumanDuration, ParseUnitError};

//! The transform contract.
//!
//! A pipeline builds one instance of each configured transform per shard
//! worker, so a transform may keep per-shard state behind `&mut self`.

use crate::record::Record;

/// Why a transform could not handle a record. The record goes to the
/// dead-letter destination with this reason and the transform's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TransformError {
    /// What is wrong with the record, e.g. `invalid JSON at byte 17: ...`.
    pub reason: String,
}

impl TransformError {
    /// A transform error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        TransformError { reason: reason.into() }
    }
}

/// One step of a pipeline's transform chain.
pub trait Transform: Send {
    /// The transform's type name as written in configuration (`parse_json`).
    fn name(&self) -> &str;

    /// Handles one record, pushing zero (filtered), one or many (split)
    /// outputs onto `out`.
    ///
    /// # Errors
    /// [`TransformError`] when the record cannot be handled; nothing pushed
    /// onto `out` by this call is kept in that case.
    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError>;
}

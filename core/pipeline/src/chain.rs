//! The transform chain: every configured transform in order, each output
//! of one transform fed to the next.
//!
//! A record is handled atomically: if any transform fails on it (or on
//! anything made from it), none of its outputs is kept and the *input*
//! record goes to the dead-letter destination, so it can be replayed as it
//! was read.

use std::sync::Mutex;

use shardline_api::{Record, Transform};

/// A transform failed on a record.
#[derive(Debug)]
pub(crate) struct ChainFailure {
    /// The input record as it entered the chain.
    pub(crate) record: Record,
    /// `transform:<name>`.
    pub(crate) stage: String,
    /// The transform's reason.
    pub(crate) reason: String,
}

/// A shard's transform instances.
pub(crate) struct Chain {
    /// Only reached through `&mut self` (`get_mut`, never locked): the
    /// mutex just makes the chain `Sync` although a transform is only
    /// `Send`, so a `&ShardPipeline` may be held across an await.
    transforms: Mutex<Vec<Box<dyn Transform>>>,
}

impl Chain {
    pub(crate) fn new(transforms: Vec<Box<dyn Transform>>) -> Self {
        Chain { transforms: Mutex::new(transforms) }
    }

    /// Runs `record` through every transform: zero (filtered), one or many
    /// (at most `u32::MAX`) outputs, or the failure.
    pub(crate) fn run(&mut self, record: Record) -> Result<Vec<Record>, ChainFailure> {
        // A transform that panicked mid-record left nothing half-done that
        // matters here: each call starts from a fresh record.
        let transforms = self.transforms.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if transforms.is_empty() {
            return Ok(vec![record]);
        }
        // Cheap: payloads arrive as `Bytes` and metadata is shared.
        let input = record.clone();
        let mut current = vec![record];
        for transform in transforms.iter_mut() {
            let mut next = Vec::with_capacity(current.len());
            for r in current {
                if let Err(e) = transform.apply(r, &mut next) {
                    return Err(ChainFailure {
                        record: input,
                        stage: format!("transform:{}", transform.name()),
                        reason: e.reason,
                    });
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        if u32::try_from(current.len()).is_err() {
            return Err(ChainFailure {
                record: input,
                stage: "transform".to_owned(),
                reason: format!("the transform chain made {} records from one, more than 2^32 - 1", current.len()),
            });
        }
        Ok(current)
    }
}

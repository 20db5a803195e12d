//! The lease row.

use shardline_api::Checkpoint;

/// One row of the lease table (KCL 2.x schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard id (`leaseKey`).
    pub lease_key: String,
    /// The worker holding the lease (`leaseOwner`); `None` when unowned.
    pub lease_owner: Option<String>,
    /// Incremented by every write (`leaseCounter`); a counter that stops
    /// moving means the owner stopped renewing.
    pub lease_counter: u64,
    /// How far the shard was processed (`checkpoint` +
    /// `checkpointSubSequenceNumber`).
    pub checkpoint: Checkpoint,
    /// Owner changes since the last checkpoint (`ownerSwitchesSinceCheckpoint`).
    pub owner_switches_since_checkpoint: u64,
    /// Parent shards (`parentShardId`, a string set).
    pub parent_shard_ids: Vec<String>,
    /// Child shards, known once the shard ended (`childShardIds`).
    pub child_shard_ids: Vec<String>,
    /// Lowest hash key of the shard (`startingHashKey`).
    pub starting_hash_key: Option<String>,
    /// Highest hash key of the shard (`endingHashKey`).
    pub ending_hash_key: Option<String>,
    /// State of stateful transforms (e.g. `window_count`) that goes with
    /// the checkpoint (`shardlineTransformState`, a Shardline attribute the
    /// Java KCL ignores). Written in the same conditional update as the
    /// checkpoint, so the two never disagree.
    pub transform_state: Option<String>,
}

impl Lease {
    /// An unowned lease with counter 0 and the given checkpoint.
    pub fn new(lease_key: impl Into<String>, checkpoint: Checkpoint) -> Self {
        Lease {
            lease_key: lease_key.into(),
            lease_owner: None,
            lease_counter: 0,
            checkpoint,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            starting_hash_key: None,
            ending_hash_key: None,
            transform_state: None,
        }
    }

    /// True when the shard was processed to its end (`SHARD_END`).
    pub fn is_finished(&self) -> bool {
        self.checkpoint.is_shard_end()
    }

    /// True when `worker_id` owns the lease.
    pub fn is_owned_by(&self, worker_id: &str) -> bool {
        self.lease_owner.as_deref() == Some(worker_id)
    }
}

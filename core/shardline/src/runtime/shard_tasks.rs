//! Which shards of a pipeline have a worker task, and the leases waiting
//! for one.
//!
//! A lease can come back to this worker while the task that held it before
//! is still winding down (it was lost during a slow sink flush or
//! checkpoint, and the taker took it again). The new handle is kept here
//! and handed out when the old task ends: dropping it would leave a lease
//! the coordinator renews but nobody reads (a zombie) until a restart.

use std::collections::HashMap;

use shardline_lease::LeaseHandle;

/// The shards with a running worker task, and re-acquired leases waiting
/// for their shard's task to end.
#[derive(Default)]
pub(crate) struct ShardTasks {
    running: HashMap<String, ()>,
    waiting: HashMap<String, LeaseHandle>,
}

impl ShardTasks {
    /// A lease was acquired: returns it when its shard has no running task
    /// (start a worker now, and call [`Self::started`]); otherwise keeps it
    /// until the running task ends.
    pub(crate) fn acquired(&mut self, handle: LeaseHandle) -> Option<LeaseHandle> {
        let shard_id = handle.lease_key().to_owned();
        if !self.running.contains_key(&shard_id) {
            return Some(handle);
        }
        tracing::info!(shard_id = %shard_id, "lease acquired again while its previous worker is still stopping; starting a worker when it ends");
        // A newer handle replaces an older waiting one (which is lost).
        self.waiting.insert(shard_id, handle);
        None
    }

    /// A worker task was started for `shard_id`.
    pub(crate) fn started(&mut self, shard_id: &str) {
        self.running.insert(shard_id.to_owned(), ());
    }

    /// The task of `shard_id` ended: returns the lease that waited for it,
    /// if it is still held (start a worker for it now).
    pub(crate) fn ended(&mut self, shard_id: &str) -> Option<LeaseHandle> {
        self.running.remove(shard_id);
        self.waiting.remove(shard_id).filter(|handle| !handle.is_lost())
    }

    /// How many worker tasks run.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Leases still waiting at shutdown, to hand back.
    pub(crate) fn take_waiting(&mut self) -> Vec<LeaseHandle> {
        self.waiting.drain().map(|(_, handle)| handle).collect()
    }
}

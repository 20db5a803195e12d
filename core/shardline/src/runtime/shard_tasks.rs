//! Which shards of a pipeline have a worker task, and the leases waiting
//! for one.
//!
//! A lease can come back to this worker while the task that held it before
//! is still winding down (it was lost during a slow sink flush or
//! checkpoint, and the taker took it again). The new handle is kept here
//! and handed out when the old task ends: dropping it would leave a lease
//! the coordinator renews but nobody reads (a zombie) until a restart.

use std::collections::{HashMap, HashSet};

use shardline_lease::LeaseHandle;

/// The shards with a running worker task, and re-acquired leases waiting
/// for their shard's task to end.
#[derive(Default)]
pub(crate) struct ShardTasks {
    running: HashSet<String>,
    waiting: HashMap<String, LeaseHandle>,
}

impl ShardTasks {
    /// A lease was acquired: returns it when its shard has no running task
    /// (start a worker now, and call [`Self::started`]); otherwise keeps it
    /// until the running task ends.
    pub(crate) fn acquired(&mut self, handle: LeaseHandle) -> Option<LeaseHandle> {
        let shard_id = handle.lease_key().to_owned();
        if !self.running.contains(&shard_id) {
            return Some(handle);
        }
        tracing::info!(shard_id = %shard_id, "lease acquired again while its previous worker is still stopping; starting a worker when it ends");
        // A newer handle replaces an older waiting one (which is lost).
        self.waiting.insert(shard_id, handle);
        None
    }

    /// A worker task was started for `shard_id`.
    pub(crate) fn started(&mut self, shard_id: &str) {
        self.running.insert(shard_id.to_owned());
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ShardTasks;
    use crate::runtime::test_support::{wait_until, Harness};

    #[tokio::test]
    async fn a_lease_acquired_again_while_its_worker_stops_is_kept_for_the_next_worker() {
        let harness = Harness::start(1).await;
        let (coordinator, mut acquired) = harness.coordinator_with("w1", Duration::from_millis(300));
        let mut tasks = ShardTasks::default();
        let first = acquired.recv().await.expect("a lease");
        let shard_id = first.lease_key().to_owned();
        let first = tasks.acquired(first).expect("no worker runs yet");
        tasks.started(&shard_id);
        // An operator (or another worker) evicts the lease: this worker
        // loses it, and its taker takes it again while the first worker is
        // still stopping (stuck in a slow flush, say).
        loop {
            let lease = harness.store.get_lease(&shard_id).await.expect("get").expect("a lease");
            match harness.store.evict(&lease).await {
                Ok(_) => break,
                Err(e) if e.is_lost() => continue, // renewed in between
                Err(e) => panic!("evict: {e}"),
            }
        }
        wait_until("the first handle lost", Duration::from_secs(10), || first.is_lost()).await;
        let again = tokio::time::timeout(Duration::from_secs(10), acquired.recv()).await.expect("taken again").expect("a lease");
        assert_eq!(again.lease_key(), shard_id);
        assert!(tasks.acquired(again).is_none(), "a second worker must not start while the first runs");
        // The first worker ends: the waiting lease gets a worker.
        let next = tasks.ended(&shard_id).expect("the re-acquired lease waits for the next worker");
        assert!(!next.is_lost());
        let stored = harness.store.get_lease(&shard_id).await.expect("get").expect("a lease");
        assert_eq!(stored.lease_owner.as_deref(), Some("w1"));
        assert!(tasks.take_waiting().is_empty());
        coordinator.shutdown().await;
    }
}

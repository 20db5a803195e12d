//! The lease coordinator: renews the leases this worker holds, takes
//! expired or unowned leases, steals to balance load between workers, and
//! hands every acquired lease to the pipeline as a [`LeaseHandle`].
//!
//! Expiry needs no clock synchronisation between workers: the taker
//! remembers when it last saw each lease's counter change, on its own
//! clock, and scans often enough that a stopped worker's leases move within
//! `1.5 * failover_time` (see [`taker`]).

mod handle;
mod renewer;
pub(crate) mod taker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::LeaseStore;

pub use handle::LeaseHandle;

/// The shortest failover time the coordinator accepts; shorter values are
/// raised to it (the renewer runs every third of it).
const MIN_FAILOVER_TIME: Duration = Duration::from_millis(30);

/// How many acquired leases may wait in the channel before the taker waits
/// for the pipeline.
const HANDLE_CHANNEL_CAPACITY: usize = 64;

/// How a worker takes part in lease coordination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Pipeline name, used as the `pipeline` metrics label. Default `""`.
    pub pipeline: String,
    /// This worker's id, written as `leaseOwner`; unique per process.
    /// Default: a random `shardline-<hex>` id.
    pub worker_id: String,
    /// A lease whose counter did not change for this long is expired and
    /// may be taken; a held lease not renewed for this long is given up.
    /// Default 10 s; at least 30 ms.
    pub failover_time: Duration,
    /// Most readable leases this worker holds at once; leases of child
    /// shards waiting for their parents are not counted, so they never keep
    /// the worker from taking the parents (they count once the parents
    /// ended). Default unlimited.
    pub max_leases_per_worker: usize,
    /// Most leases stolen from another worker in one taker run. Default 1.
    pub max_leases_to_steal_at_once: usize,
    /// A released lease (graceful shutdown) is handed back: its owner is
    /// removed so another worker takes it at once. `false` leaves it owned,
    /// to expire after the failover time, as the Java KCL 2.x does; needed
    /// on a table shared with KCL 2.x workers (see the README). Default true.
    pub release_on_shutdown: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            pipeline: String::new(),
            worker_id: format!("shardline-{:016x}", rand::random::<u64>()),
            failover_time: Duration::from_secs(10),
            max_leases_per_worker: usize::MAX,
            max_leases_to_steal_at_once: 1,
            release_on_shutdown: true,
        }
    }
}

/// State shared by the coordinator, its tasks and its handles.
pub(crate) struct Shared {
    store: Arc<dyn LeaseStore>,
    config: CoordinatorConfig,
    held: Mutex<BTreeMap<String, LeaseHandle>>,
    stop_taking: AtomicBool,
    shutdown: CancellationToken,
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, BTreeMap<String, LeaseHandle>> {
        // A poisoned map is still a consistent map: entries are inserted
        // and removed whole.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn held_handles(&self) -> Vec<LeaseHandle> {
        self.held().values().cloned().collect()
    }

    fn insert_held(&self, handle: LeaseHandle) {
        let mut held = self.held();
        held.insert(handle.lease_key().to_owned(), handle);
        self.report_held(held.len());
    }

    fn remove_held(&self, lease_key: &str, handle: &LeaseHandle) {
        let mut held = self.held();
        if held.get(lease_key).is_some_and(|h| h.same_as(handle)) {
            held.remove(lease_key);
        }
        self.report_held(held.len());
    }

    fn report_held(&self, count: usize) {
        metrics::gauge!(
            "shardline_leases_held",
            "pipeline" => self.config.pipeline.clone(),
            "worker_id" => self.config.worker_id.clone()
        )
        .set(count as f64);
    }

    fn mark_all_lost(&self, reason: &str) {
        for handle in self.held_handles() {
            handle.mark_lost(reason, true);
        }
    }
}

/// Runs the renewer and the taker for one worker. See the module docs.
pub struct LeaseCoordinator {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl LeaseCoordinator {
    /// Spawns the renewer (every `failover_time / 3`) and the taker (a scan
    /// every `failover_time / 4` or a little less, first run at once;
    /// stealing at most once per `2 * failover_time`) on the current tokio
    /// runtime. A stopped worker's leases are held again by the others
    /// within `1.5 * failover_time` (see [`taker`]).
    /// Every acquired lease arrives on the returned channel; dropping the
    /// receiver makes the taker hand acquired leases back.
    ///
    /// The table must exist ([`LeaseStore::ensure_table`]).
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start(
        store: Arc<dyn LeaseStore>,
        mut config: CoordinatorConfig,
    ) -> (LeaseCoordinator, mpsc::Receiver<LeaseHandle>) {
        config.failover_time = config.failover_time.max(MIN_FAILOVER_TIME);
        let (tx, rx) = mpsc::channel(HANDLE_CHANNEL_CAPACITY);
        tracing::info!(
            worker_id = %config.worker_id,
            table = %store.table_name(),
            failover_ms = config.failover_time.as_millis() as u64,
            "starting lease coordinator"
        );
        let shared = Arc::new(Shared {
            store,
            config,
            held: Mutex::new(BTreeMap::new()),
            stop_taking: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
        });
        shared.report_held(0);
        let tasks = vec![
            tokio::spawn(renewer::run(Arc::clone(&shared))),
            tokio::spawn(taker::run(Arc::clone(&shared), tx)),
        ];
        (LeaseCoordinator { shared, tasks }, rx)
    }

    /// The lease store.
    pub fn store(&self) -> Arc<dyn LeaseStore> {
        Arc::clone(&self.shared.store)
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.shared.config.worker_id
    }

    /// Keys of the leases currently held (sorted).
    pub fn held_lease_keys(&self) -> Vec<String> {
        self.shared.held().keys().cloned().collect()
    }

    /// Stops taking and stealing leases; renewal continues until the
    /// handles are released. Used at the start of a graceful shutdown.
    pub fn stop_taking(&self) {
        if !self.shared.stop_taking.swap(true, Ordering::SeqCst) {
            tracing::info!(worker_id = %self.shared.config.worker_id, "stopped taking leases");
        }
    }

    /// Stops the renewer and the taker; every handle not released yet is
    /// marked lost (its lease expires for the other workers after the
    /// failover time). Call after all handles were released.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes still stops both tasks.
    pub async fn shutdown(mut self) {
        self.shared.stop_taking.store(true, Ordering::SeqCst);
        self.shared.shutdown.cancel();
        for task in self.tasks.drain(..) {
            if let Err(e) = task.await {
                tracing::warn!(worker_id = %self.shared.config.worker_id, error = %e, "lease coordinator task failed");
            }
        }
        self.shared.mark_all_lost("coordinator shut down");
        tracing::info!(worker_id = %self.shared.config.worker_id, "lease coordinator stopped");
    }
}

impl Drop for LeaseCoordinator {
    fn drop(&mut self) {
        // The renewer marks every handle lost when it sees the token.
        self.shared.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests;

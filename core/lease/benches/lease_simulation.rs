//! The lease table at scale, simulated: N workers' real
//! `LeaseCoordinator`s (renewer and taker, default 10 s failover) against
//! one store, in virtual time (tokio's paused clock, so a simulated minute
//! takes milliseconds). For 200 shards × 5 workers and 2 000 × 50 it prints
//! the seconds and taker rounds until every worker holds its fair share,
//! the leases moved on the way (takes and steals), and at steady state the
//! table reads and writes per minute with the DynamoDB capacity they would
//! cost: a consistent `Scan` reads 1 RCU per 4 KB of items (a KCL lease
//! item is ~300 B), each conditional write is 1 WCU.
//!
//!   cargo bench -p shardline-lease --bench lease_simulation
//!
//! The store is the in-memory embedded store behind a counting wrapper: it
//! has the same conditions as DynamoDB, not its latency (no timed claims
//! here; figures are counts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shardline_lease::{Checkpoint, CoordinatorConfig, EmbeddedLeaseStore, Lease, LeaseCoordinator, LeaseError, LeaseStore};

/// Bytes of one lease item in DynamoDB, for the read-capacity estimate.
const ITEM_BYTES: u64 = 300;

#[derive(Default)]
struct Counts {
    scans: AtomicU64,
    items_scanned: AtomicU64,
    gets: AtomicU64,
    renews: AtomicU64,
    takes: AtomicU64,
    other_writes: AtomicU64,
    /// Takes whose condition held (the lease moved).
    moved: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> [u64; 7] {
        [&self.scans, &self.items_scanned, &self.gets, &self.renews, &self.takes, &self.other_writes, &self.moved].map(|c| c.load(Ordering::Relaxed))
    }
}

struct Counting {
    inner: EmbeddedLeaseStore,
    counts: Arc<Counts>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl LeaseStore for Counting {
    async fn ensure_table(&self) -> Result<(), LeaseError> {
        self.inner.ensure_table().await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>, LeaseError> {
        let leases = self.inner.list_leases().await?;
        bump(&self.counts.scans);
        self.counts.items_scanned.fetch_add(leases.len() as u64, Ordering::Relaxed);
        Ok(leases)
    }
    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>, LeaseError> {
        bump(&self.counts.gets);
        self.inner.get_lease(lease_key).await
    }
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.create_lease_if_absent(lease).await
    }
    async fn renew(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        bump(&self.counts.renews);
        self.inner.renew(expected).await
    }
    async fn take(&self, expected: &Lease, new_owner: &str) -> Result<Lease, LeaseError> {
        bump(&self.counts.takes);
        let taken = self.inner.take(expected, new_owner).await;
        if taken.is_ok() {
            bump(&self.counts.moved);
        }
        taken
    }
    async fn evict(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.evict(expected).await
    }
    async fn checkpoint(&self, expected: &Lease, checkpoint: &Checkpoint, transform_state: Option<&str>) -> Result<Lease, LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.checkpoint(expected, checkpoint, transform_state).await
    }
    async fn update_child_shard_ids(&self, expected: &Lease, children: &[String]) -> Result<Lease, LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.update_child_shard_ids(expected, children).await
    }
    async fn delete_finished_lease(&self, expected: &Lease) -> Result<(), LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.delete_finished_lease(expected).await
    }
    async fn delete_lease(&self, lease_key: &str) -> Result<(), LeaseError> {
        bump(&self.counts.other_writes);
        self.inner.delete_lease(lease_key).await
    }
}

async fn scenario(shards: usize, workers: usize) {
    let failover = Duration::from_secs(10);
    let counts = Arc::new(Counts::default());
    let store: Arc<dyn LeaseStore> = Arc::new(Counting { inner: EmbeddedLeaseStore::in_memory(), counts: counts.clone() });
    for i in 0..shards {
        let created = store.create_lease_if_absent(&Lease::new(format!("shardId-{i:012}"), Checkpoint::TrimHorizon)).await;
        if let Err(e) = created {
            eprintln!("seeding the store failed: {e}");
            return;
        }
    }
    let mut coordinators = Vec::new();
    let mut keepers = Vec::new();
    for w in 0..workers {
        let config = CoordinatorConfig { pipeline: "sim".into(), worker_id: format!("worker-{w:03}"), failover_time: failover, ..CoordinatorConfig::default() };
        let (coordinator, mut handles) = LeaseCoordinator::start(store.clone(), config);
        // Hold every handle the coordinator gives, as shard workers do.
        keepers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(handle) = handles.recv().await {
                held.push(handle);
            }
            held.len()
        }));
        coordinators.push(coordinator);
    }
    let (low, high) = (shards / workers, shards.div_ceil(workers));
    let taker_round = failover / 4;
    let start = tokio::time::Instant::now();
    let mut balanced_after = None;
    while start.elapsed() < Duration::from_secs(3_600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held: Vec<usize> = coordinators.iter().map(|c| c.held_lease_keys().len()).collect();
        if held.iter().sum::<usize>() == shards && held.iter().all(|n| (low..=high).contains(n)) {
            balanced_after = Some(start.elapsed());
            break;
        }
    }
    let [_, _, _, _, takes_to_balance, _, moved_to_balance] = counts.snapshot();
    let Some(balanced_after) = balanced_after else {
        println!("{shards:>5} shards x {workers:>3} workers: not balanced within an hour");
        return;
    };
    // Steady state: one simulated minute.
    let before = counts.snapshot();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = counts.snapshot();
    let per_minute = |i: usize| after[i] - before[i];
    let rcu = per_minute(1) * ITEM_BYTES / 4096 + per_minute(2);
    let wcu = per_minute(3) + per_minute(4) + per_minute(5);
    println!(
        "{shards:>5} shards x {workers:>3} workers: balanced after {:>6.1} s ({:>4} taker rounds), {takes_to_balance:>6} take attempts, {moved_to_balance:>5} leases moved ({} beyond one take per lease); steady state per minute: {:>5} scans of {:>8} items, {:>5} renewals, {:>3} takes -> ~{rcu} RCU/min read, ~{wcu} WCU/min written",
        balanced_after.as_secs_f64(),
        (balanced_after.as_millis() / taker_round.as_millis().max(1)),
        moved_to_balance.saturating_sub(shards as u64),
        per_minute(0),
        per_minute(1),
        per_minute(3),
        per_minute(4),
    );
    for coordinator in coordinators {
        coordinator.shutdown().await;
    }
    for keeper in keepers {
        let _ = keeper.await;
    }
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return;
        }
    };
    println!("lease table simulation: real LeaseCoordinators, failover 10 s, virtual time, in-memory store");
    runtime.block_on(async {
        scenario(200, 5).await;
        scenario(2_000, 50).await;
    });
}

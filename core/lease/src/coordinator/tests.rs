//! Coordinator tests: several coordinators sharing one in-memory store with
//! a short failover time. They poll for conditions with a deadline.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use shardline_api::Checkpoint;

use super::*;
use crate::{EmbeddedLeaseStore, Lease, LeaseError, LeaseStore};

mod paused;

const FAILOVER: Duration = Duration::from_millis(300);
const DEADLINE: Duration = Duration::from_secs(15);

struct Worker {
    coordinator: LeaseCoordinator,
    handles: mpsc::Receiver<LeaseHandle>,
    received: Vec<LeaseHandle>,
}

impl Worker {
    fn start(store: &Arc<dyn LeaseStore>, config: CoordinatorConfig) -> Self {
        let (coordinator, handles) = LeaseCoordinator::start(Arc::clone(store), config);
        Worker {
            coordinator,
            handles,
            received: Vec::new(),
        }
    }

    fn held(&self) -> usize {
        self.coordinator.held_lease_keys().len()
    }

    fn drain(&mut self) {
        while let Ok(handle) = self.handles.try_recv() {
            self.received.push(handle);
        }
    }
}

fn config(worker: &str) -> CoordinatorConfig {
    CoordinatorConfig {
        pipeline: "test".into(),
        worker_id: worker.into(),
        failover_time: FAILOVER,
        ..CoordinatorConfig::default()
    }
}

async fn seeded(n: usize) -> Arc<dyn LeaseStore> {
    let store = EmbeddedLeaseStore::in_memory();
    for i in 0..n {
        store
            .create_lease_if_absent(&Lease::new(format!("shard-{i}"), Checkpoint::TrimHorizon))
            .await
            .unwrap();
    }
    Arc::new(store)
}

/// Polls `condition` every 20 ms until it holds; panics after [`DEADLINE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn owners(store: &Arc<dyn LeaseStore>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in store.list_leases().await.unwrap() {
        *counts
            .entry(lease.lease_owner.unwrap_or_default())
            .or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_split_leases_evenly() {
    let store = seeded(6).await;
    let workers: Vec<Worker> = ["a", "b", "c"]
        .iter()
        .map(|w| Worker::start(&store, config(w)))
        .collect();
    wait_until("each worker holds 2 leases", || {
        workers.iter().all(|w| w.held() == 2)
    })
    .await;
    let table = owners(&store).await;
    assert_eq!(
        table,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
    for worker in workers {
        worker.coordinator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_workers_leases_are_taken_after_expiry() {
    let store = seeded(4).await;
    let mut a = Worker::start(&store, config("a"));
    let b = Worker::start(&store, config("b"));
    wait_until("leases split 2/2", || a.held() == 2 && b.held() == 2).await;
    a.drain();
    let stopped = std::time::Instant::now();
    a.coordinator.shutdown().await;
    assert!(
        a.received.iter().all(LeaseHandle::is_lost),
        "shutdown marks unreleased handles lost"
    );
    wait_until("b holds all 4 leases", || b.held() == 4).await;
    assert!(
        stopped.elapsed() >= FAILOVER,
        "leases were taken before they expired"
    );
    assert_eq!(owners(&store).await, BTreeMap::from([("b".into(), 4)]));
    b.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stealing_balances_four_zero_to_two_two() {
    let store = seeded(4).await;
    let mut a = Worker::start(&store, config("a"));
    wait_until("a holds all 4 leases", || a.held() == 4).await;
    a.drain();
    let b = Worker::start(&store, config("b"));
    wait_until("leases rebalanced 2/2", || a.held() == 2 && b.held() == 2).await;
    a.drain();
    let lost = a.received.iter().filter(|h| h.is_lost()).count();
    assert_eq!(lost, 2, "the two stolen handles are lost on a");
    // Balanced now: nothing moves for several taker runs.
    tokio::time::sleep(FAILOVER * 5).await;
    assert_eq!((a.held(), b.held()), (2, 2));
    assert_eq!(
        owners(&store).await,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
    );
    a.coordinator.shutdown().await;
    b.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_leases_per_worker_is_respected() {
    let store = seeded(5).await;
    let a = Worker::start(
        &store,
        CoordinatorConfig {
            max_leases_per_worker: 2,
            ..config("a")
        },
    );
    wait_until("a holds 2 leases", || a.held() == 2).await;
    let b = Worker::start(&store, config("b"));
    wait_until("b holds the other 3", || b.held() == 3).await;
    tokio::time::sleep(FAILOVER * 5).await;
    assert_eq!((a.held(), b.held()), (2, 3));
    a.coordinator.shutdown().await;
    b.coordinator.shutdown().await;
}

#[tokio::test]
async fn checkpoint_after_being_stolen_fails_with_lost() {
    let store = seeded(1).await;
    let mut a = Worker::start(
        &store,
        CoordinatorConfig {
            failover_time: Duration::from_secs(30),
            ..config("a")
        },
    );
    let handle = a.handles.recv().await.unwrap();
    handle.checkpoint(Checkpoint::Latest).await.unwrap();
    assert_eq!(
        store
            .get_lease("shard-0")
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        Checkpoint::Latest
    );

    // Another worker steals it behind a's back.
    let current = store.get_lease("shard-0").await.unwrap().unwrap();
    store.take(&current, "thief").await.unwrap();

    let lost = handle.lost();
    let err = handle
        .checkpoint(Checkpoint::TrimHorizon)
        .await
        .unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert!(lost.is_cancelled());
    assert!(a.coordinator.held_lease_keys().is_empty());
    let stored = store.get_lease("shard-0").await.unwrap().unwrap();
    assert_eq!(
        (stored.lease_owner.as_deref(), stored.checkpoint),
        (Some("thief"), Checkpoint::Latest)
    );
    // Later calls fail at once.
    assert!(handle
        .set_child_shard_ids(&["c".into()])
        .await
        .unwrap_err()
        .is_lost());
    a.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_lease_is_taken_at_once_and_stop_taking_holds() {
    let store = seeded(2).await;
    let mut a = Worker::start(
        &store,
        CoordinatorConfig {
            failover_time: Duration::from_secs(5),
            ..config("a")
        },
    );
    let first = a.handles.recv().await.unwrap();
    let _second = a.handles.recv().await.unwrap();
    a.coordinator.stop_taking();
    first.release(Some(Checkpoint::ShardEnd)).await.unwrap();
    assert!(first.is_lost());
    let stored = store.get_lease(first.lease_key()).await.unwrap().unwrap();
    assert_eq!(
        (stored.lease_owner, stored.checkpoint),
        (None, Checkpoint::ShardEnd)
    );
    assert!(
        first.release(None).await.unwrap_err().is_lost(),
        "a released handle is lost"
    );

    // b takes the released (unowned) lease on its first run, long before
    // the 5 s failover; SHARD_END leases are never taken, so release the
    // second without a final checkpoint to see it move.
    _second.release(None).await.unwrap();
    let b = Worker::start(
        &store,
        CoordinatorConfig {
            failover_time: Duration::from_secs(5),
            ..config("b")
        },
    );
    wait_until("b holds the released lease", || b.held() == 1).await;
    assert_eq!(
        b.coordinator.held_lease_keys(),
        vec![_second.lease_key().to_owned()]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.coordinator.held_lease_keys().is_empty(),
        "a stopped taking"
    );
    a.coordinator.shutdown().await;
    b.coordinator.shutdown().await;
}

/// A store whose renewals fail (as if DynamoDB were unreachable) while
/// `failing` is set, and whose checkpoints are written but answered `Lost`
/// (as an SDK retry of a timed-out write is) while `lose_answers` is set.
struct Unreachable {
    inner: EmbeddedLeaseStore,
    failing: AtomicBool,
    lose_answers: AtomicBool,
}

#[async_trait]
impl LeaseStore for Unreachable {
    async fn ensure_table(&self) -> Result<(), LeaseError> {
        self.inner.ensure_table().await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>, LeaseError> {
        self.inner.list_leases().await
    }
    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>, LeaseError> {
        self.inner.get_lease(lease_key).await
    }
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError> {
        self.inner.create_lease_if_absent(lease).await
    }
    async fn renew(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(LeaseError::Unavailable {
                table: "t".into(),
                operation: "renew",
                message: "connection refused".into(),
                source: "connection refused".into(),
            });
        }
        self.inner.renew(expected).await
    }
    async fn take(&self, expected: &Lease, new_owner: &str) -> Result<Lease, LeaseError> {
        self.inner.take(expected, new_owner).await
    }
    async fn evict(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        self.inner.evict(expected).await
    }
    async fn checkpoint(
        &self,
        expected: &Lease,
        checkpoint: &Checkpoint,
        transform_state: Option<&str>,
    ) -> Result<Lease, LeaseError> {
        let written = self
            .inner
            .checkpoint(expected, checkpoint, transform_state)
            .await?;
        if self.lose_answers.load(Ordering::SeqCst) {
            return Err(LeaseError::Lost {
                table: "t".into(),
                lease_key: written.lease_key,
                reason: "retry".into(),
            });
        }
        Ok(written)
    }
    async fn update_child_shard_ids(
        &self,
        expected: &Lease,
        children: &[String],
    ) -> Result<Lease, LeaseError> {
        self.inner.update_child_shard_ids(expected, children).await
    }
    async fn delete_finished_lease(&self, expected: &Lease) -> Result<(), LeaseError> {
        self.inner.delete_finished_lease(expected).await
    }
    async fn delete_lease(&self, lease_key: &str) -> Result<(), LeaseError> {
        self.inner.delete_lease(lease_key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_not_renewed_within_failover_is_given_up() {
    let inner = EmbeddedLeaseStore::in_memory();
    inner
        .create_lease_if_absent(&Lease::new("shard-0", Checkpoint::TrimHorizon))
        .await
        .unwrap();
    let store = Arc::new(Unreachable {
        inner,
        failing: AtomicBool::new(false),
        lose_answers: AtomicBool::new(false),
    });
    let dyn_store: Arc<dyn LeaseStore> = store.clone();
    let mut a = Worker::start(&dyn_store, CoordinatorConfig { ..config("a") });
    let handle = a.handles.recv().await.unwrap();
    a.coordinator.stop_taking();
    // Renewals keep it alive well past the failover time.
    tokio::time::sleep(FAILOVER * 2).await;
    assert!(!handle.is_lost());
    let failed_at = std::time::Instant::now();
    store.failing.store(true, Ordering::SeqCst);
    tokio::time::timeout(DEADLINE, handle.lost().cancelled())
        .await
        .expect("handle marked lost");
    assert!(
        failed_at.elapsed() <= FAILOVER * 3,
        "lost within about the failover time: {:?}",
        failed_at.elapsed()
    );
    assert!(handle
        .checkpoint(Checkpoint::Latest)
        .await
        .unwrap_err()
        .is_lost());
    a.coordinator.shutdown().await;
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_recognised() {
    let inner = EmbeddedLeaseStore::in_memory();
    inner
        .create_lease_if_absent(&Lease::new("shard-0", Checkpoint::TrimHorizon))
        .await
        .unwrap();
    let store = Arc::new(Unreachable {
        inner,
        failing: AtomicBool::new(false),
        lose_answers: AtomicBool::new(true),
    });
    let dyn_store: Arc<dyn LeaseStore> = store.clone();
    let mut a = Worker::start(
        &dyn_store,
        CoordinatorConfig {
            failover_time: Duration::from_secs(30),
            ..config("a")
        },
    );
    let handle = a.handles.recv().await.unwrap();
    handle.checkpoint(Checkpoint::Latest).await.unwrap();
    assert!(!handle.is_lost());
    assert_eq!(
        handle.snapshot(),
        store.get_lease("shard-0").await.unwrap().unwrap()
    );
    // A real loss is still a loss.
    let current = store.get_lease("shard-0").await.unwrap().unwrap();
    store.take(&current, "thief").await.unwrap();
    assert!(handle
        .checkpoint(Checkpoint::Latest)
        .await
        .unwrap_err()
        .is_lost());
    assert!(handle.is_lost());
    a.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_release_on_shutdown_a_released_lease_keeps_its_owner_and_checkpoint() {
    let store = seeded(1).await;
    let mut a = Worker::start(&store, CoordinatorConfig { release_on_shutdown: false, failover_time: Duration::from_secs(5), ..config("a") });
    let handle = a.handles.recv().await.unwrap();
    a.coordinator.stop_taking();
    let at = Checkpoint::At(shardline_api::Position::new(
        shardline_api::SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898").unwrap(),
        0,
    ));
    handle.release(Some(at.clone())).await.unwrap();
    assert!(handle.is_lost(), "the handle is given up");
    let stored = store.get_lease(handle.lease_key()).await.unwrap().unwrap();
    assert_eq!((stored.lease_owner.as_deref(), stored.checkpoint), (Some("a"), at), "still owned, checkpointed, left to expire");
}

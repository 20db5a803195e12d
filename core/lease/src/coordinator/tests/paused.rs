//! Coordinator tests on tokio's paused clock (`start_paused`): takeover
//! time after a worker stops, lineage at `max_leases_per_worker`, steal
//! cadence. Virtual time makes them deterministic and lets them use a
//! realistic failover time.

use super::*;

/// The failover time of these tests (virtual time, so a realistic value
/// costs nothing).
const PAUSED_FAILOVER: Duration = Duration::from_secs(6);

/// Starts `workers` on `leases` fresh leases, waits until they are spread
/// evenly, lets `phase` pass, stops the first worker (no release: its leases
/// stay owned, as after kill -9) and returns how long the others took until
/// they held every lease.
async fn takeover_time(workers: &[&str], leases: usize, phase: Duration) -> Duration {
    let store = seeded(leases).await;
    let mut running: Vec<Worker> = workers
        .iter()
        .map(|w| {
            Worker::start(
                &store,
                CoordinatorConfig {
                    failover_time: PAUSED_FAILOVER,
                    ..config(w)
                },
            )
        })
        .collect();
    let share = leases / workers.len();
    wait_until("the leases are spread evenly", || {
        running.iter().all(|w| w.held() == share)
    })
    .await;
    // Sample the table every step to know when the killed worker's counters
    // last moved: each lease must have stood still for the failover time
    // before another worker takes it.
    const STEP: Duration = Duration::from_millis(5);
    let killed_id = workers[0];
    let mut last_moved: BTreeMap<String, (u64, tokio::time::Instant)> = BTreeMap::new();
    let kill_at = tokio::time::Instant::now() + phase;
    let mut killed_at = None;
    loop {
        let now = tokio::time::Instant::now();
        for lease in store.list_leases().await.unwrap() {
            let key = lease.lease_key.clone();
            if lease.is_owned_by(killed_id) {
                if last_moved.get(&key).map(|(c, _)| *c) != Some(lease.lease_counter) {
                    last_moved.insert(key, (lease.lease_counter, now));
                }
            } else if let (Some(_), Some((_, moved))) = (killed_at, last_moved.get(&key)) {
                let still = now - *moved;
                assert!(
                    still + STEP >= PAUSED_FAILOVER,
                    "{key} taken when its counter had stood still for {still:?} only"
                );
            }
        }
        if killed_at.is_none() && now >= kill_at {
            let worker = running.remove(0);
            killed_at = Some(now);
            worker.coordinator.shutdown().await;
        }
        if killed_at.is_some() && running.iter().map(Worker::held).sum::<usize>() == leases {
            break;
        }
        assert!(
            now < kill_at + PAUSED_FAILOVER * 10,
            "the killed worker's leases were never all taken"
        );
        tokio::time::sleep(STEP).await;
    }
    let took = killed_at.map(|at| at.elapsed()).unwrap_or_default();
    for worker in running {
        worker.coordinator.shutdown().await;
    }
    took
}

/// Every shard of a stopped worker must be read again within
/// `2 * failover_time` of the stop. The coordinator's share of that is at
/// most `1.5 * failover_time` (see the taker's module docs); the rest is the
/// budget of the handle channel and the shard worker's start. Checked at
/// kill times spread over a whole renewal and scan cycle.
#[tokio::test(start_paused = true)]
async fn stopped_workers_leases_are_all_taken_within_one_and_a_half_failover_times() {
    let bound = PAUSED_FAILOVER * 3 / 2 + Duration::from_millis(10);
    let mut worst = Duration::ZERO;
    for step in 0..12u32 {
        let phase = PAUSED_FAILOVER * step / 12;
        let two = takeover_time(&["a", "b"], 4, phase).await;
        let three = takeover_time(&["a", "b", "c"], 6, phase).await;
        worst = worst.max(two).max(three);
        assert!(
            two <= bound && three <= bound,
            "kill {phase:?} into the cycle: taken over after {two:?} (2 workers) and {three:?} (3 workers), bound {bound:?}"
        );
    }
    eprintln!("worst takeover {worst:?} at failover_time {PAUSED_FAILOVER:?}");
}

/// Leases `parent` (owned by a worker that is gone) and its children
/// `c1`, `c2`, plus `x`, `y`, for the lineage tests at the cap.
async fn split_while_parent_is_unowned() -> Arc<dyn LeaseStore> {
    let store = EmbeddedLeaseStore::in_memory();
    let parent = Lease::new("parent", Checkpoint::TrimHorizon);
    store.create_lease_if_absent(&parent).await.unwrap();
    store.take(&parent, "gone").await.unwrap();
    for child in ["c1", "c2"] {
        let mut lease = Lease::new(child, Checkpoint::TrimHorizon);
        lease.parent_shard_ids = vec!["parent".into()];
        store.create_lease_if_absent(&lease).await.unwrap();
    }
    for other in ["x", "y"] {
        store
            .create_lease_if_absent(&Lease::new(other, Checkpoint::TrimHorizon))
            .await
            .unwrap();
    }
    Arc::new(store)
}

/// Two workers at `max_leases_per_worker = 2` and five leases: filling the
/// slots with the children before the dead owner's parent expires must not
/// leave the parent (and so the children) unread forever.
#[tokio::test(start_paused = true)]
async fn capped_workers_do_not_starve_a_parent_for_its_children() {
    let store = split_while_parent_is_unowned().await;
    let capped = |w| CoordinatorConfig {
        max_leases_per_worker: 2,
        failover_time: PAUSED_FAILOVER,
        ..config(w)
    };
    let mut workers = [
        Worker::start(&store, capped("a")),
        Worker::start(&store, capped("b")),
    ];
    let holds = |workers: &[Worker], key: &str| {
        workers
            .iter()
            .any(|w| w.coordinator.held_lease_keys().iter().any(|k| k == key))
    };
    wait_until("a worker holds the parent", || holds(&workers, "parent")).await;
    // Read the parent to its end: the children become readable.
    for worker in &mut workers {
        worker.drain();
    }
    let parent = workers
        .iter()
        .flat_map(|w| &w.received)
        .find(|h| h.lease_key() == "parent" && !h.is_lost())
        .cloned()
        .unwrap();
    parent.release(Some(Checkpoint::ShardEnd)).await.unwrap();
    wait_until("x, y, c1 and c2 are held, at most 2 per worker", || {
        ["x", "y", "c1", "c2"].iter().all(|k| holds(&workers, k))
            && workers.iter().all(|w| w.held() <= 2)
    })
    .await;
    for worker in workers {
        worker.coordinator.shutdown().await;
    }
}

/// Faster scans do not mean faster stealing: a worker steals in at most one
/// run per `2 * failover_time`, as the KCL's taker does.
#[tokio::test(start_paused = true)]
async fn stealing_keeps_the_kcl_cadence() {
    let store = seeded(4).await;
    let slow = |w| CoordinatorConfig {
        failover_time: PAUSED_FAILOVER,
        ..config(w)
    };
    let a = Worker::start(&store, slow("a"));
    wait_until("a holds all 4 leases", || a.held() == 4).await;
    let b = Worker::start(&store, slow("b"));
    wait_until("b stole one lease", || b.held() == 1).await;
    let first_steal = tokio::time::Instant::now();
    tokio::time::sleep(PAUSED_FAILOVER * 3 / 2).await;
    assert_eq!(
        (a.held(), b.held()),
        (3, 1),
        "a second steal within 1.5 failover times"
    );
    wait_until("leases rebalanced 2/2", || a.held() == 2 && b.held() == 2).await;
    assert!(first_steal.elapsed() >= PAUSED_FAILOVER * 2 - PAUSED_FAILOVER / 4);
    a.coordinator.shutdown().await;
    b.coordinator.shutdown().await;
}

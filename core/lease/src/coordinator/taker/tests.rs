//! Tests of the taker's decision function and expiry tracking.

use super::*;
use proptest::prelude::*;

fn view(key: &str, owner: Option<&str>) -> LeaseView {
    LeaseView {
        lease_key: key.into(),
        owner: owner.map(Into::into),
        expired: false,
        finished: false,
        held_locally: false,
    }
}

fn held(key: &str, me: &str) -> LeaseView {
    LeaseView {
        held_locally: true,
        ..view(key, Some(me))
    }
}

#[test]
fn takes_unowned_up_to_target() {
    let leases = vec![
        view("a", None),
        view("b", None),
        view("c", Some("w2")),
        view("d", Some("w2")),
    ];
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!(plan.target, 2);
    assert_eq!(plan.take, vec!["a".to_owned(), "b".to_owned()]);
    assert!(plan.steal.is_empty());
}

#[test]
fn steals_from_most_loaded_when_nothing_available() {
    let leases: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| view(k, Some("w2")))
        .collect();
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!((plan.target, plan.take.len(), plan.steal.len()), (2, 0, 1));
    let plan = plan_takes(&leases, "me", usize::MAX, 5);
    assert_eq!(plan.steal.len(), 2);
}

#[test]
fn finished_and_expired_leases() {
    let mut done = view("done", None);
    done.finished = true;
    let mut expired = view("x", Some("dead"));
    expired.expired = true;
    let leases = vec![done, expired, held("m", "me")];
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    // "dead" owns only an expired lease, so it is no worker: 2 leases, 1 worker.
    assert_eq!(plan.target, 2);
    assert_eq!(plan.take, vec!["x".to_owned()]);
}

#[test]
fn own_lease_without_handle_is_taken_back() {
    let leases = vec![view("a", Some("me")), view("b", Some("w2"))];
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!(plan.take, vec!["a".to_owned()]);
}

#[test]
fn spill_over_steals_one_from_a_worker_at_target() {
    // 4 leases, 3 workers: target 2; w1 and w2 at target, me at 0.
    let leases = vec![
        view("a", Some("w1")),
        view("b", Some("w1")),
        view("c", Some("w2")),
        view("d", Some("w2")),
    ];
    let plan = plan_takes(&leases, "me", usize::MAX, 5);
    assert_eq!(plan.steal.len(), 1);
    // With one lease, me needs only 1 more: no steal from a worker at target.
    let leases = vec![
        view("a", Some("w1")),
        view("b", Some("w1")),
        view("c", Some("w2")),
        view("d", Some("w2")),
        held("e", "me"),
    ];
    assert!(plan_takes(&leases, "me", usize::MAX, 5).steal.is_empty());
}

#[tokio::test]
async fn expiry_needs_an_unchanged_counter_for_the_failover_time() {
    let failover = Duration::from_secs(10);
    let mut tracker = ExpiryTracker::default();
    let mut owned = Lease::new("a", shardline_api::Checkpoint::TrimHorizon);
    owned.lease_owner = Some("w".into());
    let unowned = Lease::new("b", shardline_api::Checkpoint::TrimHorizon);
    let t0 = Instant::now();
    let expired = tracker.observe(&[owned.clone(), unowned.clone()], t0, failover);
    assert_eq!(
        expired,
        HashSet::from(["b".to_owned()]),
        "new owned leases are not expired on first sight"
    );
    assert!(tracker
        .observe(&[owned.clone()], t0 + Duration::from_secs(9), failover)
        .is_empty());
    owned.lease_counter += 1;
    assert!(
        tracker
            .observe(&[owned.clone()], t0 + Duration::from_secs(11), failover)
            .is_empty(),
        "counter moved"
    );
    assert!(tracker
        .observe(&[owned.clone()], t0 + Duration::from_secs(20), failover)
        .is_empty());
    assert_eq!(
        tracker
            .observe(&[owned], t0 + Duration::from_secs(21), failover)
            .len(),
        1
    );
}

fn arb_leases() -> impl Strategy<Value = Vec<LeaseView>> {
    let owners = prop::option::of(prop::sample::select(vec!["me", "w1", "w2", "w3"]));
    prop::collection::vec(
        (
            owners,
            any::<bool>(),
            prop::bool::weighted(0.1),
            any::<bool>(),
        ),
        0..24,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (owner, expired, finished, held))| LeaseView {
                lease_key: format!("shard-{i}"),
                held_locally: held && owner == Some("me"),
                owner: owner.map(Into::into),
                expired,
                finished,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn never_exceeds_target_or_takes_the_wrong_leases(
        leases in arb_leases(),
        max_per_worker in prop_oneof![Just(usize::MAX), 0usize..6],
        max_steal in 0usize..4,
    ) {
        let plan = plan_takes(&leases, "me", max_per_worker, max_steal);
        let mine = leases.iter().filter(|l| !l.finished && l.held_locally).count();
        prop_assert!(plan.target <= max_per_worker);
        prop_assert!(mine + plan.take.len() + plan.steal.len() <= plan.target.max(mine));
        prop_assert!(plan.steal.len() <= max_steal);
        prop_assert!(plan.take.is_empty() || plan.steal.is_empty());
        let by_key: HashMap<&str, &LeaseView> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
        for key in plan.take.iter().chain(&plan.steal) {
            let lease = by_key[key.as_str()];
            prop_assert!(!lease.finished && !lease.held_locally, "{lease:?}");
        }
        for key in &plan.take {
            let lease = by_key[key.as_str()];
            prop_assert!(lease.owner.is_none() || lease.expired || lease.owner.as_deref() == Some("me"), "{lease:?}");
        }
        let victims: HashSet<Option<&str>> = plan.steal.iter().map(|k| by_key[k.as_str()].owner.as_deref()).collect();
        prop_assert!(victims.len() <= 1 && !victims.contains(&Some("me")) && !victims.contains(&None));
    }

    #[test]
    fn never_steals_when_balanced(counts in prop::collection::vec(0usize..6, 1..5), extra in 0usize..2, max_steal in 1usize..4) {
        // Every worker (me included) holds `base` or `base + 1` live leases.
        let base = counts[0];
        let mut leases = Vec::new();
        let workers: Vec<String> = (0..counts.len()).map(|i| format!("w{i}")).collect();
        for (i, worker) in workers.iter().enumerate() {
            let n = base + usize::from(counts[i] % 2 == 1);
            for j in 0..n {
                leases.push(view(&format!("{worker}-{j}"), Some(worker)));
            }
        }
        for j in 0..base + extra {
            leases.push(held(&format!("me-{j}"), "me"));
        }
        let plan = plan_takes(&leases, "me", usize::MAX, max_steal);
        prop_assert!(plan.steal.is_empty(), "{plan:?}");
        prop_assert!(plan.take.is_empty());
    }
}

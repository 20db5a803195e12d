//! Tests of the taker's decision function and expiry tracking.

use super::*;
use proptest::prelude::*;

fn view(key: &str, owner: Option<&str>) -> LeaseView {
    LeaseView {
        lease_key: key.into(),
        owner: owner.map(Into::into),
        expired: false,
        finished: false,
        parents_finished: true,
        held_locally: false,
    }
}

fn waiting(key: &str, owner: Option<&str>) -> LeaseView {
    LeaseView {
        parents_finished: false,
        ..view(key, owner)
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

#[test]
fn held_children_waiting_for_their_parents_do_not_fill_the_cap() {
    // Cap 2: me holds two children of `p`, whose owner died; w2 is at the
    // cap with readable leases. Counting the children, me is full and
    // nobody can take `p`: the children would wait forever.
    let mut parent = view("p", Some("dead"));
    parent.expired = true;
    let mut c1 = waiting("c1", Some("me"));
    c1.held_locally = true;
    let mut c2 = waiting("c2", Some("me"));
    c2.held_locally = true;
    let leases = vec![c1, c2, parent, view("x", Some("w2")), view("y", Some("w2"))];
    let plan = plan_takes(&leases, "me", 2, 1);
    assert_eq!(plan.take, vec!["p".to_owned()]);
    // Unlimited too: two held children were a fair share of 5 leases.
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!(plan.take, vec!["p".to_owned()]);
}

#[test]
fn parents_are_taken_before_their_children() {
    // 2 workers with one free slot each and a split whose parent is
    // unowned: whatever the order, the parent is taken first.
    let leases = vec![
        waiting("c1", None),
        waiting("c2", None),
        view("p", None),
        view("x", Some("w2")),
        held("y", "me"),
    ];
    let plan = plan_takes(&leases, "me", 2, 1);
    assert_eq!(plan.take, vec!["p".to_owned()]);
    assert!(plan.take_waiting.is_empty(), "{plan:?}");
    // With room to spare the children are taken too, after the parent.
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!(plan.take, vec!["p".to_owned()]);
    assert_eq!(plan.take_waiting, vec!["c1".to_owned()]);
}

#[test]
fn a_lost_race_falls_back_to_spare_leases() {
    let leases = vec![
        view("a", None),
        view("b", None),
        view("c", None),
        view("d", Some("w2")),
    ];
    let plan = plan_takes(&leases, "me", usize::MAX, 1);
    assert_eq!(plan.take, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(plan.spare, vec!["c".to_owned()]);
}

#[test]
fn waiting_leases_are_never_stolen_nor_count_for_the_victim() {
    // w2 holds four children waiting for their parent and nothing else is
    // readable: there is nothing to balance.
    let leases: Vec<_> = ["c1", "c2", "c3", "c4"]
        .iter()
        .map(|k| waiting(k, Some("w2")))
        .chain([view("p", Some("w3"))])
        .collect();
    let plan = plan_takes(&leases, "me", usize::MAX, 4);
    assert!(plan.steal.is_empty(), "{plan:?}");
}

#[test]
fn scan_interval_is_a_quarter_of_the_failover_time_or_a_little_less() {
    let failover = Duration::from_secs(8);
    for _ in 0..100 {
        let interval = scan_interval(failover);
        assert!(
            interval <= Duration::from_secs(2) && interval >= Duration::from_millis(1600),
            "{interval:?}"
        );
    }
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
            prop::bool::weighted(0.7),
            any::<bool>(),
        ),
        0..24,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(
                |(i, (owner, expired, finished, parents_finished, held))| LeaseView {
                    lease_key: format!("shard-{i}"),
                    held_locally: held && owner == Some("me"),
                    owner: owner.map(Into::into),
                    expired,
                    finished,
                    parents_finished,
                },
            )
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
        let mine = |readable: bool| leases.iter().filter(|l| !l.finished && l.held_locally && l.parents_finished == readable).count();
        let (mine_readable, mine_waiting) = (mine(true), mine(false));
        prop_assert!(plan.target <= max_per_worker);
        let readable_taken = plan.take.len() + plan.steal.len();
        prop_assert!(mine_readable + readable_taken <= plan.target.max(mine_readable));
        prop_assert!(
            mine_readable + mine_waiting + readable_taken + plan.take_waiting.len()
                <= max_per_worker.max(mine_readable + mine_waiting + readable_taken)
        );
        prop_assert!(plan.steal.len() <= max_steal);
        prop_assert!(plan.steal.is_empty() || (plan.take.is_empty() && plan.take_waiting.is_empty()));
        let by_key: HashMap<&str, &LeaseView> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
        let planned: Vec<&String> = plan.take.iter().chain(&plan.spare).chain(&plan.take_waiting).chain(&plan.steal).collect();
        let distinct: HashSet<&String> = planned.iter().copied().collect();
        prop_assert_eq!(distinct.len(), planned.len(), "a lease is planned twice: {:?}", plan);
        for key in &planned {
            let lease = by_key[key.as_str()];
            prop_assert!(!lease.finished && !lease.held_locally, "{lease:?}");
        }
        for key in plan.take.iter().chain(&plan.spare).chain(&plan.take_waiting) {
            let lease = by_key[key.as_str()];
            prop_assert!(lease.owner.is_none() || lease.expired || lease.owner.as_deref() == Some("me"), "{lease:?}");
        }
        for key in plan.take.iter().chain(&plan.spare).chain(&plan.steal) {
            prop_assert!(by_key[key.as_str()].parents_finished, "only readable leases are taken first or stolen");
        }
        for key in &plan.take_waiting {
            prop_assert!(!by_key[key.as_str()].parents_finished);
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

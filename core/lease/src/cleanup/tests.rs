use std::time::Instant;

use shardline_api::{Position, SequenceNumber};

use super::*;
use crate::EmbeddedLeaseStore;

const MAX: &str = "340282366920938463463374607431768211455";
const MID: &str = "170141183460469231731687303715884105727";
const MID_1: &str = "170141183460469231731687303715884105728";

fn at(seq: &str) -> Checkpoint {
    Checkpoint::At(Position::new(SequenceNumber::parse(seq).unwrap(), 0))
}

fn lease(key: &str, checkpoint: Checkpoint, parents: &[&str], range: (&str, &str)) -> Lease {
    let mut lease = Lease::new(key, checkpoint);
    lease.parent_shard_ids = parents.iter().map(|p| (*p).to_owned()).collect();
    lease.starting_hash_key = Some(range.0.to_owned());
    lease.ending_hash_key = Some(range.1.to_owned());
    lease
}

/// p split into c1 (lower half) and c2 (upper half).
fn split(c1: Checkpoint, c2: Checkpoint, child_ids: bool) -> Vec<Lease> {
    let mut p = lease("p", Checkpoint::ShardEnd, &[], ("0", MAX));
    if child_ids {
        p.child_shard_ids = vec!["c1".into(), "c2".into()];
    }
    vec![p, lease("c1", c1, &["p"], ("0", MID)), lease("c2", c2, &["p"], (MID_1, MAX))]
}

fn picked(leases: &[Lease]) -> Vec<&str> {
    finished_leases_to_delete(leases).into_iter().map(|l| l.lease_key.as_str()).collect()
}

#[test]
fn a_finished_lease_goes_once_every_child_moved_past_its_start() {
    for child_ids in [true, false] {
        assert_eq!(picked(&split(at("5"), at("9"), child_ids)), ["p"]);
        assert_eq!(picked(&split(at("5"), Checkpoint::ShardEnd, child_ids)), ["p"]);
        for not_started in [Checkpoint::TrimHorizon, Checkpoint::Latest, Checkpoint::AtTimestamp] {
            assert!(picked(&split(at("5"), not_started, child_ids)).is_empty(), "child_ids {child_ids}");
        }
    }
}

#[test]
fn a_lease_that_is_not_finished_stays() {
    let mut leases = split(at("5"), at("9"), true);
    leases[0].checkpoint = at("100");
    assert!(picked(&leases).is_empty());
}

#[test]
fn a_child_without_a_lease_keeps_the_parent() {
    // childShardIds names c2, which has no lease yet
    let leases: Vec<Lease> = split(at("5"), at("9"), true).into_iter().filter(|l| l.lease_key != "c2").collect();
    assert!(picked(&leases).is_empty());
    // without childShardIds, c1 alone does not cover p's hash range
    let leases: Vec<Lease> = split(at("5"), at("9"), false).into_iter().filter(|l| l.lease_key != "c2").collect();
    assert!(picked(&leases).is_empty());
}

#[test]
fn unknown_children_keep_the_parent() {
    let alone = vec![lease("p", Checkpoint::ShardEnd, &[], ("0", MAX))];
    assert!(picked(&alone).is_empty());
    let mut no_range = split(at("5"), at("9"), false);
    no_range[0].starting_hash_key = None;
    assert!(picked(&no_range).is_empty(), "children cannot be checked against the parent's range");
}

#[test]
fn parents_are_deleted_before_their_children() {
    // g split into p (finished) and q; p split into c1, c2
    let mut leases = split(at("5"), at("9"), true);
    leases[0].parent_shard_ids = vec!["g".into()];
    let mut g = lease("g", Checkpoint::ShardEnd, &[], ("0", MAX));
    g.child_shard_ids = vec!["p".into(), "q".into()];
    leases.push(g);
    leases.push(lease("q", at("3"), &["g"], ("0", "1")));
    assert_eq!(picked(&leases), ["g"]);
    leases.retain(|l| l.lease_key != "g");
    assert_eq!(picked(&leases), ["p"]);
}

#[test]
fn merged_parents_go_when_the_child_is_read() {
    let mut leases = vec![
        lease("a", Checkpoint::ShardEnd, &[], ("0", MID)),
        lease("b", Checkpoint::ShardEnd, &[], (MID_1, MAX)),
        lease("m", Checkpoint::TrimHorizon, &["a", "b"], ("0", MAX)),
    ];
    assert!(picked(&leases).is_empty());
    leases[2].checkpoint = at("7");
    assert_eq!(picked(&leases), ["a", "b"]);
}

#[test]
fn hash_range_coverage() {
    assert!(covers((10, 20), &mut [(0, 15), (16, 30)]));
    assert!(covers((10, 20), &mut [(10, 20)]));
    assert!(!covers((10, 20), &mut [(11, 20)]));
    assert!(!covers((10, 20), &mut [(10, 14), (16, 20)]));
    assert!(!covers((10, 20), &mut []));
    assert!(covers((0, u128::MAX), &mut [(5, u128::MAX), (0, 4)]));
}

async fn stored(store: &EmbeddedLeaseStore, leases: &[Lease]) {
    for lease in leases {
        assert!(store.create_lease_if_absent(lease).await.unwrap());
    }
}

#[tokio::test]
async fn a_pass_deletes_only_what_did_not_change_since_the_scan() {
    let store = EmbeddedLeaseStore::in_memory();
    stored(&store, &split(at("5"), at("9"), true)).await;
    let scanned = store.get_lease("p").await.unwrap().unwrap();
    let taken = store.take(&scanned, "w").await.unwrap();
    let err = store.delete_finished_lease(&scanned).await.unwrap_err();
    assert!(err.is_lost(), "{err}");
    let unfinished = store.get_lease("c1").await.unwrap().unwrap();
    assert!(store.delete_finished_lease(&unfinished).await.unwrap_err().is_lost(), "not at SHARD_END");
    assert_eq!(cleanup_finished_leases(&store, "pl").await.unwrap(), 1);
    assert_eq!(store.get_lease("p").await.unwrap(), None);
    assert!(store.delete_finished_lease(&taken).await.unwrap_err().is_lost(), "gone");
    assert_eq!(cleanup_finished_leases(&store, "pl").await.unwrap(), 0);
    assert_eq!(store.list_leases().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_loop_cleans_up_every_interval_until_shutdown() {
    let store = Arc::new(EmbeddedLeaseStore::in_memory());
    stored(&store, &split(at("5"), Checkpoint::TrimHorizon, true)).await;
    let cleanup = LeaseCleanup::start(store.clone(), "pl".into(), Duration::from_millis(20));
    let c2 = store.get_lease("c2").await.unwrap().unwrap();
    let c2 = store.take(&c2, "w").await.unwrap();
    assert!(store.get_lease("p").await.unwrap().is_some(), "c2 has not started");
    store.checkpoint(&c2, &at("11"), None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get_lease("p").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "p was not cleaned up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cleanup.shutdown().await;
}

//! Shard sync tests. The lineage-graph cases are ported from the Java KCL's
//! `HierarchicalShardSyncerTest` (graphs A, B and C, with TRIM_HORIZON,
//! LATEST and AT_TIMESTAMP, with and without existing leases), each with
//! the KCL's expected leases and checkpoints.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::plan::{covers_hash_key_space, plan_for_empty_table, plan_new_leases};
use super::*;
use crate::EmbeddedLeaseStore;

const MAX: &str = "340282366920938463463374607431768211455";
const TH: Checkpoint = Checkpoint::TrimHorizon;
const LATEST: Checkpoint = Checkpoint::Latest;
const AT_TS: Checkpoint = Checkpoint::AtTimestamp;

fn id(n: u32) -> String {
    format!("shardId-{n}")
}

fn shard(n: u32, parents: &[u32], open: bool, hash: (&str, &str)) -> ShardInfo {
    ShardInfo {
        shard_id: id(n),
        parent_shard_ids: parents.iter().map(|p| id(*p)).collect(),
        starting_hash_key: hash.0.to_owned(),
        ending_hash_key: hash.1.to_owned(),
        closed: !open,
    }
}

/// ```text
/// 0 1 2 3 4   5   - shards till epoch 102
/// \ / \ / |   |
///  6   7  4   5   - shards from epoch 103 - 205
///   \ /   |  / \
///    8    4 9  10 - shards from epoch 206 (open)
/// ```
fn graph_a() -> Vec<ShardInfo> {
    vec![
        shard(0, &[], false, ("0", "99")),
        shard(1, &[], false, ("100", "199")),
        shard(2, &[], false, ("200", "299")),
        shard(3, &[], false, ("300", "399")),
        shard(4, &[], true, ("400", "499")),
        shard(5, &[], false, ("500", MAX)),
        shard(6, &[0, 1], false, ("0", "199")),
        shard(7, &[2, 3], false, ("200", "399")),
        shard(8, &[6, 7], true, ("0", "399")),
        shard(9, &[5], true, ("500", "799")),
        shard(10, &[5], true, ("800", MAX)),
    ]
}

/// ```text
/// 0  3   6   9
/// \ / \ / \ /
///  2   5   8
/// / \ / \ / \
/// 1  4   7  10
/// ```
/// (x-axis is epochs; 9 and 10 are open)
fn graph_b() -> Vec<ShardInfo> {
    let low = ("0", "499");
    let high = ("500", MAX);
    let all = ("0", MAX);
    vec![
        shard(0, &[], false, low),
        shard(1, &[], false, high),
        shard(2, &[0, 1], false, all),
        shard(3, &[2], false, low),
        shard(4, &[2], false, high),
        shard(5, &[3, 4], false, all),
        shard(6, &[5], false, low),
        shard(7, &[5], false, high),
        shard(8, &[6, 7], false, all),
        shard(9, &[8], true, low),
        shard(10, &[8], true, high),
    ]
}

/// ```text
///     0      1  2  3
///   /   \    |  \ /
///  4     5   1   6
/// / \   / \  |   |
/// 7  8 9  10 1   6   (1, 6, 7, 8, 9, 10 open)
/// ```
fn graph_c() -> Vec<ShardInfo> {
    vec![
        shard(0, &[], false, ("0", "399")),
        shard(1, &[], true, ("400", "499")),
        shard(2, &[], false, ("500", "599")),
        shard(3, &[], false, ("600", MAX)),
        shard(4, &[0], false, ("0", "199")),
        shard(5, &[0], false, ("200", "399")),
        shard(6, &[2, 3], true, ("500", MAX)),
        shard(7, &[4], true, ("0", "99")),
        shard(8, &[4], true, ("100", "199")),
        shard(9, &[5], true, ("200", "299")),
        shard(10, &[5], true, ("300", "399")),
    ]
}

fn leases_for(ids: &[u32], checkpoint: Checkpoint) -> Vec<Lease> {
    ids.iter().map(|n| Lease::new(id(*n), checkpoint.clone())).collect()
}

fn planned(plan: &[Lease]) -> BTreeMap<String, Checkpoint> {
    plan.iter().map(|l| (l.lease_key.clone(), l.checkpoint.clone())).collect()
}

fn expected(ids: &[u32], checkpoint: Checkpoint) -> BTreeMap<String, Checkpoint> {
    ids.iter().map(|n| (id(*n), checkpoint.clone())).collect()
}

/// The KCL's `assertExpectedLeasesAreCreated` (non-empty synchronizer).
#[track_caller]
fn assert_plan(graph: &[ShardInfo], leased: &[u32], initial: Checkpoint, created: &[u32], at: Checkpoint) {
    let plan = plan_new_leases(graph, &leases_for(leased, TH), &initial);
    assert_eq!(planned(&plan), expected(created, at), "leased {leased:?}, initial {initial}");
}

#[test]
fn graph_a_latest() {
    assert_plan(&graph_a(), &[3, 4, 5], LATEST, &[2, 6], LATEST); // PartialHashRange1
    assert_plan(&graph_a(), &[4, 5, 7], LATEST, &[6], LATEST); // PartialHashRange2
    assert_plan(&graph_a(), &[2, 6], LATEST, &[3, 4, 9, 10], LATEST); // PartialHashRange3
    assert_plan(&graph_a(), &[4, 9, 10], LATEST, &[8], LATEST); // PartialHashRange4
    assert_plan(&graph_a(), &[4, 5, 6, 7], LATEST, &[], LATEST); // CompleteHashRange
    assert_plan(&graph_a(), &[0, 1, 2, 3, 4, 5, 6, 7], LATEST, &[], LATEST); // WithoutGC
    assert_plan(&graph_a(), &[], LATEST, &[4, 8, 9, 10], LATEST); // EmptyLeaseTable
    assert_plan(&graph_a(), &[0, 1, 4, 7, 9, 10], LATEST, &[], LATEST); // AcrossDifferentEpochs
}

#[test]
fn graph_b_latest() {
    assert_plan(&graph_b(), &[6], LATEST, &[7], LATEST); // PartialHashRange
    assert_plan(&graph_b(), &[5], LATEST, &[], LATEST); // CompleteHashRange
    assert_plan(&graph_b(), &[0, 1, 2, 3, 4, 5], LATEST, &[], LATEST); // WithoutGC
    assert_plan(&graph_b(), &[], LATEST, &[9, 10], LATEST); // EmptyLeaseTable
}

#[test]
fn graph_c_latest() {
    assert_plan(&graph_c(), &[9, 10], LATEST, &[1, 6, 7, 8], LATEST); // PartialHashRange5
}

#[test]
fn graph_a_trim_horizon_and_at_timestamp() {
    for initial in [TH, AT_TS] {
        let at = initial.clone();
        assert_plan(&graph_a(), &[3, 4, 5], initial.clone(), &[0, 1, 2], at.clone());
        assert_plan(&graph_a(), &[4, 5, 7], initial.clone(), &[0, 1], at.clone());
        assert_plan(&graph_a(), &[2, 6], initial.clone(), &[3, 4, 5], at.clone());
        assert_plan(&graph_a(), &[4, 9, 10], initial.clone(), &[0, 1, 2, 3], at.clone());
        assert_plan(&graph_a(), &[4, 5, 6, 7], initial.clone(), &[], at.clone());
        assert_plan(&graph_a(), &[0, 1, 2, 3, 4, 5, 6, 7], initial.clone(), &[], at.clone());
        assert_plan(&graph_a(), &[], initial.clone(), &[0, 1, 2, 3, 4, 5], at.clone());
        assert_plan(&graph_a(), &[0, 1, 4, 7, 9, 10], initial.clone(), &[], at.clone());
    }
}

#[test]
fn graph_b_trim_horizon_and_at_timestamp() {
    for initial in [TH, AT_TS] {
        let at = initial.clone();
        assert_plan(&graph_b(), &[5], initial.clone(), &[], at.clone());
        assert_plan(&graph_b(), &[0, 1, 2, 3, 4, 5], initial.clone(), &[], at.clone());
        assert_plan(&graph_b(), &[], initial.clone(), &[0, 1], at.clone());
    }
}

/// `testDetermineNewLeasesToCreateNoShards`, `…0Leases0Reshards`,
/// `…StartingPosition` (both synchronizers).
#[test]
fn no_shards_and_no_reshards() {
    for initial in [TH, LATEST, AT_TS] {
        assert!(plan_new_leases(&[], &[], &initial).is_empty());
        assert!(plan_for_empty_table(&[], &initial).is_empty());
        let shards = [shard(0, &[], true, ("0", "9")), shard(1, &[], true, ("10", MAX))];
        let both = expected(&[0, 1], initial.clone());
        assert_eq!(planned(&plan_new_leases(&shards, &[], &initial)), both);
        assert_eq!(planned(&plan_for_empty_table(&shards, &initial)), both);
    }
}

/// `testDetermineNewLeasesToCreate0Leases0Reshards1Inconsistent`: an open
/// shard whose parent is still open is left for the next sync.
#[test]
fn open_child_of_an_open_parent_is_skipped() {
    let shards = [
        shard(3, &[], true, ("0", "9")),
        shard(0, &[], true, ("10", "19")),
        shard(1, &[], true, ("20", "29")),
        shard(2, &[1], true, ("20", "29")),
    ];
    let plan = plan_new_leases(&shards, &leases_for(&[3], LATEST), &LATEST);
    assert_eq!(planned(&plan), expected(&[0, 1], LATEST));
}

/// `testDetermineNewLeasesToCreateIgnoreClosedShard`.
#[test]
fn latest_ignores_closed_shards_without_leased_descendants() {
    let shards = [shard(2, &[], false, ("0", "9")), shard(0, &[], false, ("10", "19")), shard(1, &[], true, ("20", MAX))];
    let plan = plan_new_leases(&shards, &leases_for(&[2], LATEST), &LATEST);
    assert_eq!(planned(&plan), expected(&[1], LATEST));
}

/// `testCheckIfDescendantAndAddNewLeasesForAncestors2P2ANotDescendant` and
/// the trimmed-parent case: parents missing from the listing are ignored.
#[test]
fn trimmed_parents_are_ignored() {
    let shards = [shard(9, &[7, 8], true, ("0", MAX))];
    assert_eq!(planned(&plan_new_leases(&shards, &[], &LATEST)), expected(&[9], LATEST));
    let two_roots = [shard(0, &[], false, ("0", "9")), shard(1, &[], false, ("10", MAX)), shard(9, &[0, 1], true, ("0", MAX))];
    assert_eq!(planned(&plan_new_leases(&two_roots, &[], &LATEST)), expected(&[9], LATEST));
}

#[test]
fn a_finished_lease_gets_its_children_at_trim_horizon() {
    // graph A, every shard up to epoch 205 read to its end
    let finished = leases_for(&[0, 1, 2, 3, 5, 6, 7], Checkpoint::ShardEnd);
    let mut leases = finished;
    leases.extend(leases_for(&[4], TH));
    for initial in [TH, LATEST, AT_TS] {
        let plan = plan_new_leases(&graph_a(), &leases, &initial);
        assert_eq!(planned(&plan), expected(&[8, 9, 10], TH));
        let eight = plan.iter().find(|l| l.lease_key == id(8)).map(|l| l.parent_shard_ids.clone());
        assert_eq!(eight, Some(vec![id(6), id(7)]));
    }
    // 6 and 7 deleted after they finished (cleanup): nothing is created again
    let leases = [leases_for(&[4, 8, 9, 10], TH), leases_for(&[5], Checkpoint::ShardEnd)].concat();
    assert!(plan_new_leases(&graph_a(), &leases, &TH).is_empty());
}

#[test]
fn a_merged_child_waits_for_the_lease_of_its_other_parent() {
    // graph A: 6 finished; 7 is a descendant of the leased 3 and gets its
    // lease when 3 ends, so 8 (6 + 7) must wait.
    let leases = [leases_for(&[6], Checkpoint::ShardEnd), leases_for(&[3, 4, 5], TH)].concat();
    let plan = plan_new_leases(&graph_a(), &leases, &LATEST);
    assert_eq!(planned(&plan), expected(&[2], LATEST));
    // with 7 leased, 8 is created although 7 is still being read
    let leases = [leases_for(&[6], Checkpoint::ShardEnd), leases_for(&[4, 5, 7], TH)].concat();
    assert_eq!(planned(&plan_new_leases(&graph_a(), &leases, &LATEST)), expected(&[8], TH));
}

#[test]
fn a_finished_parent_no_longer_listed_still_leads_to_its_children() {
    let shards = [shard(1, &[0], true, ("0", MAX))];
    let mut parent = Lease::new(id(0), Checkpoint::ShardEnd);
    parent.child_shard_ids = vec![id(1)];
    // 0 is past retention; its lease still makes 1 its descendant, not a new
    // shard to start at the tip
    assert_eq!(planned(&plan_new_leases(&shards, &[parent.clone()], &LATEST)), expected(&[1], TH));
    parent.checkpoint = TH;
    assert!(plan_new_leases(&shards, &[parent], &LATEST).is_empty(), "1 waits for 0's end");
}

#[test]
fn new_leases_come_parents_first_with_shard_metadata() {
    let plan = plan_new_leases(&graph_a(), &[], &TH);
    let keys: Vec<&str> = plan.iter().map(|l| l.lease_key.as_str()).collect();
    assert_eq!(keys, ["shardId-0", "shardId-1", "shardId-2", "shardId-3", "shardId-4", "shardId-5"]);
    let plan = plan_for_empty_table(&graph_a(), &TH);
    let position = |n: u32| plan.iter().position(|l| l.lease_key == id(n));
    assert!(position(0) < position(6) && position(6) < position(8) && position(7) < position(8));
    let eight = &plan[position(8).unwrap_or(0)];
    assert_eq!(eight.parent_shard_ids, vec![id(6), id(7)]);
    assert_eq!((eight.starting_hash_key.as_deref(), eight.ending_hash_key.as_deref()), (Some("0"), Some("399")));
    assert!(plan.iter().all(|l| l.lease_owner.is_none() && l.lease_counter == 0));
}

#[test]
fn hash_key_space_coverage() {
    let whole = |ranges: &[(&str, &str)]| -> bool {
        let shards: Vec<ShardInfo> = ranges.iter().enumerate().map(|(i, r)| shard(i as u32, &[], true, *r)).collect();
        covers_hash_key_space(&shards)
    };
    assert!(whole(&[("0", MAX)]));
    assert!(whole(&[("421", MAX), ("0", "420")]));
    assert!(!whole(&[]));
    assert!(!whole(&[("0", "69"), ("71", MAX)]), "gap");
    assert!(!whole(&[("0", "1"), ("2", "3")]), "short of the maximum");
    assert!(!whole(&[("1", MAX)]), "does not start at 0");
    assert!(!whole(&[("0", "100"), ("50", MAX)]), "overlap");
    assert!(!whole(&[("0", "x")]));
}

/// Records which listings `sync_leases` asked for and answers them in turn.
struct Listings {
    asked: Mutex<Vec<ShardListing>>,
    answers: Mutex<Vec<Vec<ShardInfo>>>,
    all: Vec<ShardInfo>,
}

impl Listings {
    fn new(filtered: Vec<Vec<ShardInfo>>, all: Vec<ShardInfo>) -> Self {
        Listings { asked: Mutex::new(Vec::new()), answers: Mutex::new(filtered), all }
    }

    async fn list(&self, listing: ShardListing) -> Result<Vec<ShardInfo>, LeaseError> {
        self.asked.lock().map_err(|_| LeaseError::lost("t", "k", "poisoned"))?.push(listing);
        match listing {
            ShardListing::All => Ok(self.all.clone()),
            ShardListing::AtInitialPosition => {
                let mut answers = self.answers.lock().map_err(|_| LeaseError::lost("t", "k", "poisoned"))?;
                Ok(if answers.len() > 1 { answers.remove(0) } else { answers[0].clone() })
            }
        }
    }

    fn asked(&self) -> Vec<ShardListing> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

async fn keys(store: &dyn LeaseStore) -> Vec<(String, Checkpoint)> {
    store.list_leases().await.unwrap().into_iter().map(|l| (l.lease_key, l.checkpoint)).collect()
}

/// `testEmptyLeaseTableBootstrapUsesListShardsWithFilter`,
/// `testEmptyLeaseTablePopulatesLeasesWithCompleteHashRange` and
/// `testNonEmptyLeaseTableUsesListShards`.
#[tokio::test]
async fn an_empty_table_gets_leases_for_the_shards_at_the_initial_position() {
    let store = EmbeddedLeaseStore::in_memory();
    let at_initial = vec![shard(2, &[], false, ("0", "420")), shard(3, &[], false, ("421", MAX))];
    let all = [graph_a(), at_initial.clone()].concat();
    let listings = Listings::new(vec![at_initial], all);
    let synced = sync_leases(&store, &LATEST, |l| listings.list(l)).await.unwrap();
    assert_eq!(synced.created, 2);
    assert_eq!(listings.asked(), [ShardListing::AtInitialPosition]);
    assert_eq!(keys(&store).await, [(id(2), LATEST), (id(3), LATEST)]);
    sync_leases(&store, &LATEST, |l| listings.list(l)).await.unwrap();
    assert_eq!(listings.asked(), [ShardListing::AtInitialPosition, ShardListing::All]);
}

/// `testEmptyLeaseTablePopulatesLeasesWithCompleteHashRangeAfterTwoRetries`.
#[tokio::test(start_paused = true)]
async fn an_incomplete_filtered_listing_is_asked_again() {
    let store = EmbeddedLeaseStore::in_memory();
    let incomplete = vec![shard(0, &[], true, ("0", "69")), shard(1, &[], true, ("71", MAX))];
    let complete = vec![shard(2, &[], false, ("0", "420")), shard(3, &[], false, ("421", MAX))];
    let listings = Listings::new(vec![incomplete.clone(), incomplete, complete], Vec::new());
    let synced = sync_leases(&store, &TH, |l| listings.list(l)).await.unwrap();
    assert_eq!(listings.asked(), [ShardListing::AtInitialPosition; 3]);
    assert_eq!(synced.created, 2);
    assert_eq!(keys(&store).await, [(id(2), TH), (id(3), TH)]);
}

/// `testEmptyLeaseTableThrowsExceptionWhenHashRangeIsStillIncompleteAfterRetries`:
/// where the KCL fails the sync, every shard is listed and the rules for
/// a non-empty table apply, so a start-up never fails on a listing race.
#[tokio::test(start_paused = true)]
async fn a_filtered_listing_that_stays_incomplete_falls_back_to_every_shard() {
    let store = EmbeddedLeaseStore::in_memory();
    let incomplete = vec![shard(0, &[], true, ("0", "1")), shard(1, &[], true, ("2", "3"))];
    let listings = Listings::new(vec![incomplete], graph_b());
    let synced = sync_leases(&store, &LATEST, |l| listings.list(l)).await.unwrap();
    let mut asked = vec![ShardListing::AtInitialPosition; 3];
    asked.push(ShardListing::All);
    assert_eq!(listings.asked(), asked);
    assert_eq!(synced.shards, graph_b());
    assert_eq!(keys(&store).await, [(id(10), LATEST), (id(9), LATEST)]);
}

#[tokio::test]
async fn a_deleted_finished_parent_is_not_created_again() {
    let store = EmbeddedLeaseStore::in_memory();
    let shards = vec![shard(0, &[], false, ("0", MAX)), shard(1, &[0], true, ("0", "99")), shard(2, &[0], true, ("100", MAX))];
    for n in [1, 2] {
        let mut child = Lease::new(id(n), TH);
        child.parent_shard_ids = vec![id(0)];
        store.create_lease_if_absent(&child).await.unwrap();
    }
    // shardId-0 was read to its end and its lease deleted (cleanup, operator, KCL)
    for initial in [TH, AT_TS, LATEST] {
        let synced = sync_leases(&store, &initial, |_| async { Ok::<_, LeaseError>(shards.clone()) }).await.unwrap();
        assert_eq!(synced.created, 0);
        assert_eq!(store.get_lease(&id(0)).await.unwrap(), None, "the finished parent must not be read again");
    }
}

#[tokio::test]
async fn sync_is_idempotent_and_parents_finished_follows_shard_end() {
    let store = EmbeddedLeaseStore::in_memory();
    // 0 split into 1 and 2; 0 is listed at the initial position
    let all = vec![shard(0, &[], false, ("0", MAX)), shard(1, &[0], true, ("0", "99")), shard(2, &[0], true, ("100", MAX))];
    let listings = Listings::new(vec![vec![all[0].clone()]], all.clone());
    assert_eq!(sync_leases(&store, &TH, |l| listings.list(l)).await.unwrap().created, 1);
    assert_eq!(sync_leases(&store, &TH, |l| listings.list(l)).await.unwrap().created, 0, "children wait for the parent's end");
    let parent = store.get_lease(&id(0)).await.unwrap().unwrap();
    assert!(parents_finished(&store, &parent).await.unwrap(), "no parents");
    let parent = store.take(&parent, "w").await.unwrap();
    store.checkpoint(&parent, &Checkpoint::ShardEnd, None).await.unwrap();
    assert_eq!(sync_leases(&store, &TH, |l| listings.list(l)).await.unwrap().created, 2);
    assert_eq!(sync_leases(&store, &TH, |l| listings.list(l)).await.unwrap().created, 0);
    let child = store.get_lease(&id(1)).await.unwrap().unwrap();
    assert_eq!(child.checkpoint, TH);
    assert!(parents_finished(&store, &child).await.unwrap());
    store.delete_lease(&id(0)).await.unwrap();
    assert!(parents_finished(&store, &child).await.unwrap(), "a deleted parent counts as finished");
    let mut blocked = Lease::new("x", TH);
    blocked.parent_shard_ids = vec![id(2)];
    assert!(!parents_finished(&store, &blocked).await.unwrap());
}

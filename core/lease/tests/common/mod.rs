//! The conformance suite every [`LeaseStore`] passes, and shared helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use shardline_api::{Position, SequenceNumber, ShardInfo};
use shardline_lease::{
    cleanup_finished_leases, parents_finished, sync_leases, Checkpoint, Lease, LeaseCleanup,
    LeaseError, LeaseStore, ShardListing,
};

const MAX_HASH_KEY: &str = "340282366920938463463374607431768211455";

pub fn at(seq: &str, sub: u64) -> Checkpoint {
    Checkpoint::At(Position::new(SequenceNumber::parse(seq).unwrap(), sub))
}

pub fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
    ShardInfo {
        shard_id: id.to_owned(),
        parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
        starting_hash_key: "0".to_owned(),
        ending_hash_key: MAX_HASH_KEY.to_owned(),
        closed,
    }
}

/// `n` open shards without parents that split the hash key space.
pub fn open_shards(n: u128) -> Vec<ShardInfo> {
    let width = u128::MAX / n;
    let mut start = 0;
    (0..n)
        .map(|i| {
            let end = if i + 1 == n { u128::MAX } else { (i + 1) * width };
            let shard = ShardInfo {
                shard_id: format!("shardId-{i:012}"),
                parent_shard_ids: Vec::new(),
                starting_hash_key: start.to_string(),
                ending_hash_key: end.to_string(),
                closed: false,
            };
            start = end.wrapping_add(1);
            shard
        })
        .collect()
}

/// Shard sync against a fixed listing of `shards`; for an empty table the
/// shards at the initial position are those without a listed parent (all
/// of them cover the hash key space in these tests). Returns how many
/// leases were created.
pub async fn sync(store: &dyn LeaseStore, shards: &[ShardInfo], initial: Checkpoint) -> usize {
    let roots: Vec<ShardInfo> = shards
        .iter()
        .filter(|s| s.parent_shard_ids.iter().all(|p| shards.iter().all(|o| &o.shard_id != p)))
        .cloned()
        .collect();
    let listed = |listing: ShardListing| {
        let shards = match listing {
            ShardListing::All => shards.to_vec(),
            ShardListing::AtInitialPosition => roots.clone(),
        };
        async move { Ok::<_, LeaseError>(shards) }
    };
    sync_leases(store, &initial, listed).await.unwrap().created
}

/// Polls `condition` every 20 ms until it holds; panics after `deadline`.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every [`LeaseStore`] contract check against an empty table.
pub async fn lease_store_conformance(store: &dyn LeaseStore) {
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    assert!(store.list_leases().await.unwrap().is_empty());

    // Shard sync: p0 closed, split into c1/c2. An empty table gets a lease
    // for p0 (the shard at TRIM_HORIZON); c1/c2 follow p0's end.
    let shards = [
        shard("p0", &[], true),
        shard("c1", &["p0"], false),
        shard("c2", &["p0"], false),
    ];
    assert_eq!(sync(store, &shards, Checkpoint::TrimHorizon).await, 1);
    assert_eq!(sync(store, &shards, Checkpoint::TrimHorizon).await, 0);
    let p0 = store.get_lease("p0").await.unwrap().unwrap();
    let p0 = store.take(&p0, "w0").await.unwrap();
    let p0 = store.checkpoint(&p0, &Checkpoint::ShardEnd, None).await.unwrap();
    let p0 = store
        .update_child_shard_ids(&p0, &["c1".into(), "c2".into()])
        .await
        .unwrap();
    assert_eq!(p0.child_shard_ids, vec!["c1".to_owned(), "c2".to_owned()]);
    assert_eq!(store.get_lease("p0").await.unwrap().unwrap(), p0);
    assert_eq!(sync(store, &shards, Checkpoint::TrimHorizon).await, 2);
    assert_eq!(sync(store, &shards, Checkpoint::Latest).await, 0);
    let listed = store.list_leases().await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|l| l.lease_key.as_str()).collect();
    assert_eq!(keys, ["c1", "c2", "p0"]);
    let c1 = store.get_lease("c1").await.unwrap().unwrap();
    assert_eq!(c1.parent_shard_ids, vec!["p0".to_owned()]);
    assert_eq!(c1.starting_hash_key.as_deref(), Some("0"));
    assert_eq!((c1.lease_owner.as_deref(), c1.lease_counter), (None, 0));
    assert!(store.get_lease("nope").await.unwrap().is_none());
    assert!(!store.create_lease_if_absent(&c1).await.unwrap());

    // Take, renew, checkpoint; each returns the lease as written.
    let taken = store.take(&c1, "w1").await.unwrap();
    assert_eq!(
        (
            taken.lease_owner.as_deref(),
            taken.lease_counter,
            taken.owner_switches_since_checkpoint
        ),
        (Some("w1"), 1, 0)
    );
    let renewed = store.renew(&taken).await.unwrap();
    assert_eq!(renewed.lease_counter, 2);
    let seq = "49590338271490256608559692538361571095921575989136588898";
    let checkpointed = store.checkpoint(&renewed, &at(seq, 7), None).await.unwrap();
    assert_eq!(
        (checkpointed.lease_counter, checkpointed.checkpoint.clone()),
        (3, at(seq, 7))
    );
    assert_eq!(store.get_lease("c1").await.unwrap().unwrap(), checkpointed);

    // Transform state goes in the same write as the checkpoint; `None`
    // keeps what is stored.
    let with_state = store.checkpoint(&checkpointed, &at(seq, 7), Some("{\"emitted_until\":60}")).await.unwrap();
    assert_eq!(with_state.transform_state.as_deref(), Some("{\"emitted_until\":60}"));
    let kept = store.checkpoint(&with_state, &at(seq, 7), None).await.unwrap();
    assert_eq!(kept.transform_state.as_deref(), Some("{\"emitted_until\":60}"));
    assert_eq!(store.get_lease("c1").await.unwrap().unwrap(), kept);
    let checkpointed = kept;

    // Every stale write is Lost.
    for result in [
        store.renew(&taken).await,
        store.take(&taken, "w2").await,
        store.checkpoint(&taken, &Checkpoint::ShardEnd, None).await,
        store.update_child_shard_ids(&taken, &["x".into()]).await,
    ] {
        let err = result.unwrap_err();
        assert!(err.is_lost(), "{err}");
        assert_eq!(err.kind(), shardline_api::ErrorKind::Permanent);
    }
    let mut other_owner = checkpointed.clone();
    other_owner.lease_owner = Some("w9".into());
    assert!(store.renew(&other_owner).await.unwrap_err().is_lost());
    assert!(store
        .checkpoint(&other_owner, &Checkpoint::ShardEnd, None)
        .await
        .unwrap_err()
        .is_lost());
    assert!(store.evict(&other_owner).await.unwrap_err().is_lost());
    let missing = Lease::new("nope", Checkpoint::Latest);
    assert!(store.renew(&missing).await.unwrap_err().is_lost());
    assert!(
        store.evict(&missing).await.unwrap_err().is_lost(),
        "evict never creates a lease"
    );
    assert!(store
        .update_child_shard_ids(&missing, &[])
        .await
        .unwrap_err()
        .is_lost());
    assert!(store.get_lease("nope").await.unwrap().is_none());

    // Steal: owner switch counted, reset by the next checkpoint.
    let stolen = store.take(&checkpointed, "w2").await.unwrap();
    assert_eq!(
        (
            stolen.lease_owner.as_deref(),
            stolen.owner_switches_since_checkpoint
        ),
        (Some("w2"), 1)
    );
    assert_eq!(stolen.checkpoint, at(seq, 7));
    let stolen = store.checkpoint(&stolen, &at(seq, 8), None).await.unwrap();
    assert_eq!(stolen.owner_switches_since_checkpoint, 0);

    // Evict is conditional on the owner only.
    let mut stale_counter = stolen.clone();
    stale_counter.lease_counter = 0;
    let evicted = store.evict(&stale_counter).await.unwrap();
    assert_eq!(
        (evicted.lease_owner.as_deref(), evicted.lease_counter),
        (None, stolen.lease_counter + 1)
    );

    // Parents: c1 waits for nothing (p0 is at SHARD_END), a child of c2 does.
    assert!(parents_finished(store, &evicted).await.unwrap());
    let mut grandchild = Lease::new("d", Checkpoint::TrimHorizon);
    grandchild.parent_shard_ids = vec!["c2".into()];
    assert!(!parents_finished(store, &grandchild).await.unwrap());

    // Conditional delete of a finished lease.
    let mut stale = p0.clone();
    stale.lease_counter -= 1;
    assert!(store.delete_finished_lease(&stale).await.unwrap_err().is_lost());
    assert!(
        store.delete_finished_lease(&evicted).await.unwrap_err().is_lost(),
        "c1 is not at SHARD_END"
    );
    assert!(store.delete_finished_lease(&missing).await.unwrap_err().is_lost());
    store.delete_finished_lease(&p0).await.unwrap();
    assert!(store.get_lease("p0").await.unwrap().is_none());
    assert!(store.delete_finished_lease(&p0).await.unwrap_err().is_lost());
    store.delete_lease("p0").await.unwrap();
    store.delete_lease("p0").await.unwrap();
    assert_eq!(store.list_leases().await.unwrap().len(), 2);
}

async fn finish(store: &dyn LeaseStore, key: &str, children: &[&str]) {
    let lease = store.get_lease(key).await.unwrap().unwrap();
    let lease = store.take(&lease, "w").await.unwrap();
    let lease = store.checkpoint(&lease, &Checkpoint::ShardEnd, None).await.unwrap();
    let children: Vec<String> = children.iter().map(|c| (*c).to_owned()).collect();
    let lease = store.update_child_shard_ids(&lease, &children).await.unwrap();
    store.evict(&lease).await.unwrap();
}

async fn start_reading(store: &dyn LeaseStore, key: &str, seq: &str) {
    let lease = store.get_lease(key).await.unwrap().unwrap();
    let lease = store.take(&lease, "w").await.unwrap();
    store.checkpoint(&lease, &at(seq, 0), None).await.unwrap();
}

/// Lease cleanup against a real store: p0 split into c1/c2, c2 into d1/d2.
/// A finished lease goes once every child moved past its start, and shard
/// sync never creates it again.
pub async fn lease_cleanup_conformance(store: Arc<dyn LeaseStore>) {
    store.ensure_table().await.unwrap();
    let ranged = |mut s: ShardInfo, start: &str, end: &str| {
        s.starting_hash_key = start.into();
        s.ending_hash_key = end.into();
        s
    };
    let shards = [
        shard("p0", &[], true),
        ranged(shard("c1", &["p0"], false), "0", "100"),
        ranged(shard("c2", &["p0"], true), "101", MAX_HASH_KEY),
        ranged(shard("d1", &["c2"], false), "101", "200"),
        ranged(shard("d2", &["c2"], false), "201", MAX_HASH_KEY),
    ];
    let store = store.as_ref();
    let shards = &shards;
    assert_eq!(sync(store, shards, Checkpoint::TrimHorizon).await, 1);
    finish(store, "p0", &["c1", "c2"]).await;
    assert_eq!(sync(store, shards, Checkpoint::TrimHorizon).await, 2);
    assert_eq!(cleanup_finished_leases(store, "test").await.unwrap(), 0, "children not started");
    start_reading(store, "c1", "10").await;
    assert_eq!(cleanup_finished_leases(store, "test").await.unwrap(), 0, "c2 not started");
    start_reading(store, "c2", "20").await;
    assert_eq!(cleanup_finished_leases(store, "test").await.unwrap(), 1);
    assert!(store.get_lease("p0").await.unwrap().is_none());
    for initial in [Checkpoint::TrimHorizon, Checkpoint::AtTimestamp, Checkpoint::Latest] {
        assert_eq!(sync(store, shards, initial).await, 0, "p0 is not read again");
    }

    // The background loop: c2 ends without recording its children (a crash
    // before `childShardIds` was written); d1/d2 cover its range.
    finish(store, "c2", &[]).await;
    assert_eq!(sync(store, shards, Checkpoint::Latest).await, 2);
    let d1 = store.get_lease("d1").await.unwrap().unwrap();
    assert_eq!((d1.checkpoint, d1.parent_shard_ids), (Checkpoint::TrimHorizon, vec!["c2".to_owned()]));
}

/// The background loop against a real store, after
/// [`lease_cleanup_conformance`].
pub async fn lease_cleanup_loop(store: Arc<dyn LeaseStore>) {
    let cleanup = LeaseCleanup::start(Arc::clone(&store), "test".into(), Duration::from_millis(50));
    start_reading(store.as_ref(), "d1", "30").await;
    assert!(store.get_lease("c2").await.unwrap().is_some(), "d2 not started");
    start_reading(store.as_ref(), "d2", "40").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.get_lease("c2").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "c2 was not cleaned up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cleanup.shutdown().await;
    let keys: Vec<String> = store.list_leases().await.unwrap().into_iter().map(|l| l.lease_key).collect();
    assert_eq!(keys, ["c1", "d1", "d2"]);
}

//! The conformance suite every [`LeaseStore`] passes, and shared helpers.
#![allow(dead_code)]

use std::time::Duration;

use shardline_api::{Position, SequenceNumber, ShardInfo};
use shardline_lease::{parents_finished, sync_leases, Checkpoint, Lease, LeaseStore};

pub fn at(seq: &str, sub: u64) -> Checkpoint {
    Checkpoint::At(Position::new(SequenceNumber::parse(seq).unwrap(), sub))
}

pub fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
    ShardInfo {
        shard_id: id.to_owned(),
        parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
        starting_hash_key: "0".to_owned(),
        ending_hash_key: "340282366920938463463374607431768211455".to_owned(),
        closed,
    }
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

    // Shard sync: p0 closed, split into c1/c2; TRIM_HORIZON creates all.
    let shards = [
        shard("p0", &[], true),
        shard("c1", &["p0"], false),
        shard("c2", &["p0"], false),
    ];
    assert_eq!(
        sync_leases(store, &shards, &Checkpoint::TrimHorizon)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        sync_leases(store, &shards, &Checkpoint::TrimHorizon)
            .await
            .unwrap(),
        0
    );
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

    // Parents: p0 blocks c1 until SHARD_END.
    assert!(!parents_finished(store, &evicted).await.unwrap());
    let p0 = store
        .take(&store.get_lease("p0").await.unwrap().unwrap(), "w1")
        .await
        .unwrap();
    let p0 = store.checkpoint(&p0, &Checkpoint::ShardEnd, None).await.unwrap();
    let p0 = store
        .update_child_shard_ids(&p0, &["c1".into(), "c2".into()])
        .await
        .unwrap();
    assert_eq!(p0.child_shard_ids, vec!["c1".to_owned(), "c2".to_owned()]);
    assert_eq!(store.get_lease("p0").await.unwrap().unwrap(), p0);
    assert!(parents_finished(store, &evicted).await.unwrap());

    store.delete_lease("p0").await.unwrap();
    store.delete_lease("p0").await.unwrap();
    assert!(store.get_lease("p0").await.unwrap().is_none());
    assert_eq!(store.list_leases().await.unwrap().len(), 2);
}

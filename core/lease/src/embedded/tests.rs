//! Tests of the embedded store: conditional semantics and crash-safe files.

use super::*;
use shardline_api::{Position, SequenceNumber};

fn at(seq: &str, sub: u64) -> Checkpoint {
    Checkpoint::At(Position::new(SequenceNumber::parse(seq).unwrap(), sub))
}

#[tokio::test]
async fn conditional_writes_follow_counter_and_owner() {
    let store = EmbeddedLeaseStore::in_memory();
    let fresh = Lease::new("shard-1", Checkpoint::TrimHorizon);
    assert!(store.create_lease_if_absent(&fresh).await.unwrap());
    assert!(
        !store.create_lease_if_absent(&fresh).await.unwrap(),
        "second create is refused"
    );

    let w1 = store.take(&fresh, "w1").await.unwrap();
    assert_eq!(
        (
            w1.lease_counter,
            w1.lease_owner.as_deref(),
            w1.owner_switches_since_checkpoint
        ),
        (1, Some("w1"), 0)
    );

    // A stale counter loses, whatever the call.
    let err = store.take(&fresh, "w2").await.unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert!(store.renew(&fresh).await.unwrap_err().is_lost());
    assert!(store
        .checkpoint(&fresh, &at("5", 0), None)
        .await
        .unwrap_err()
        .is_lost());
    assert!(store
        .update_child_shard_ids(&fresh, &["c".into()])
        .await
        .unwrap_err()
        .is_lost());

    // Right counter, wrong owner: renew and checkpoint lose.
    let mut wrong_owner = w1.clone();
    wrong_owner.lease_owner = Some("w9".into());
    assert!(store.renew(&wrong_owner).await.unwrap_err().is_lost());
    assert!(store
        .checkpoint(&wrong_owner, &at("5", 0), None)
        .await
        .unwrap_err()
        .is_lost());

    let renewed = store.renew(&w1).await.unwrap();
    assert_eq!(renewed.lease_counter, 2);

    // Stealing counts an owner switch; a checkpoint resets it.
    let w2 = store.take(&renewed, "w2").await.unwrap();
    assert_eq!(
        (w2.lease_counter, w2.owner_switches_since_checkpoint),
        (3, 1)
    );
    let w2 = store.take(&w2, "w2").await.unwrap();
    assert_eq!(
        w2.owner_switches_since_checkpoint, 1,
        "taking from oneself is no switch"
    );
    let checkpointed = store
        .checkpoint(&w2, &at(
                "49590338271490256608559692538361571095921575989136588898",
                2,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(checkpointed.owner_switches_since_checkpoint, 0);
    assert_eq!(
        checkpointed.checkpoint,
        at(
            "49590338271490256608559692538361571095921575989136588898",
            2
        )
    );
    assert_eq!(
        store.get_lease("shard-1").await.unwrap().unwrap(),
        checkpointed
    );

    // Evict is conditional on the owner only, and removes it.
    assert!(store.evict(&wrong_owner).await.unwrap_err().is_lost());
    let evicted = store.evict(&w2).await.unwrap();
    assert_eq!(evicted.lease_owner, None);
    assert_eq!(evicted.lease_counter, checkpointed.lease_counter + 1);
    assert_eq!(
        evicted.checkpoint, checkpointed.checkpoint,
        "evict keeps the checkpoint"
    );

    let with_children = store
        .update_child_shard_ids(&evicted, &["c1".into(), "c2".into()])
        .await
        .unwrap();
    assert_eq!(
        with_children.child_shard_ids,
        vec!["c1".to_owned(), "c2".to_owned()]
    );

    assert!(store
        .renew(&Lease::new("missing", Checkpoint::Latest))
        .await
        .unwrap_err()
        .is_lost());
    store.delete_lease("shard-1").await.unwrap();
    store.delete_lease("shard-1").await.unwrap();
    assert!(store.get_lease("shard-1").await.unwrap().is_none());
    assert!(store.list_leases().await.unwrap().is_empty());
}

#[tokio::test]
async fn reloads_from_file_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut lease = Lease::new("shardId-000000000001", Checkpoint::TrimHorizon);
    lease.parent_shard_ids = vec!["shardId-000000000000".into()];
    lease.starting_hash_key = Some("0".into());
    lease.ending_hash_key = Some("99".into());
    let written = {
        let store = EmbeddedLeaseStore::open(dir.path(), "orders").unwrap();
        store.ensure_table().await.unwrap();
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
        assert!(store
            .create_lease_if_absent(&Lease::new("other", Checkpoint::Latest))
            .await
            .unwrap());
        let taken = store.take(&lease, "w1").await.unwrap();
        store.checkpoint(&taken, &at("123", 4), None).await.unwrap()
    };
    // A temp file left by a crash mid-write is ignored and removed.
    let stale = dir.path().join(".orders.leases.json.tmp-1-2");
    std::fs::write(&stale, b"{garbage").unwrap();

    let reopened = EmbeddedLeaseStore::open(dir.path(), "orders").unwrap();
    assert_eq!(
        reopened.get_lease("shardId-000000000001").await.unwrap(),
        Some(written.clone())
    );
    assert_eq!(reopened.list_leases().await.unwrap().len(), 2);
    assert!(!stale.exists());
    // The counter condition survives the restart.
    assert!(reopened.renew(&lease).await.unwrap_err().is_lost());
    reopened.renew(&written).await.unwrap();

    let text = std::fs::read_to_string(reopened.path().unwrap()).unwrap();
    for name in [
        "leaseKey",
        "leaseOwner",
        "leaseCounter",
        "checkpoint",
        "checkpointSubSequenceNumber",
        "parentShardId",
    ] {
        assert!(
            text.contains(&format!("\"{name}\"")),
            "{name} missing in {text}"
        );
    }
    let entries = files_besides_the_lock(dir.path());
    assert_eq!(entries.len(), 1, "only the table file remains: {entries:?}");
}

/// The names in `dir`, except the lock files the stores hold.
fn files_besides_the_lock(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| !name.to_string_lossy().ends_with(".leases.lock"))
        .collect()
}

#[test]
fn rejects_bad_table_names_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "../x", "a/b", ".hidden"] {
        let err = EmbeddedLeaseStore::open(dir.path(), bad).unwrap_err();
        assert!(matches!(err, LeaseError::Validation { .. }), "{bad}: {err}");
    }
    std::fs::write(dir.path().join("t.leases.json"), b"not json").unwrap();
    let err = EmbeddedLeaseStore::open(dir.path(), "t").unwrap_err();
    assert!(matches!(err, LeaseError::Corrupt { .. }), "{err}");
    assert_eq!(err.kind(), shardline_api::ErrorKind::Permanent);
}

#[tokio::test]
async fn failed_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedLeaseStore::open(dir.path(), "t").unwrap();
    let lease = Lease::new("s", Checkpoint::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    // A non-empty directory where the table file should be: the rename
    // fails (even for root).
    let path = store.path().unwrap().to_owned();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("blocker"), b"x").unwrap();
    let err = store.take(&lease, "w").await.unwrap_err();
    assert!(matches!(err, LeaseError::Io { .. }), "{err}");
    assert_eq!(
        store.get_lease("s").await.unwrap(),
        Some(lease.clone()),
        "memory unchanged after a failed write"
    );
    let leftovers = files_besides_the_lock(dir.path());
    assert_eq!(leftovers.len(), 1, "the temp file is removed: {leftovers:?}");
    std::fs::remove_dir_all(&path).unwrap();
    store.take(&lease, "w").await.unwrap();
}

#[tokio::test]
async fn a_second_open_of_the_same_table_fails_naming_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = EmbeddedLeaseStore::open(&state, "orders").unwrap();
    first
        .create_lease_if_absent(&Lease::new("shard-1", Checkpoint::TrimHorizon))
        .await
        .unwrap();
    let err = EmbeddedLeaseStore::open(&state, "orders").unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&state.display().to_string()), "{message}");
    assert!(message.contains("orders"), "{message}");
    assert_eq!(err.kind(), shardline_api::ErrorKind::Permanent, "{message}");
    // Other tables in the same directory (several pipelines in one
    // process) and the embedded Kinesis server's `kinesis/` are not locked.
    let other = EmbeddedLeaseStore::open(&state, "payments").unwrap();
    let kinesis = shardline_dir_lock::DirLock::acquire(&state.join("kinesis"), "lock").unwrap();
    drop((other, kinesis));
    drop(first);
    let reopened = EmbeddedLeaseStore::open(&state, "orders").unwrap();
    assert_eq!(reopened.list_leases().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_snapshot_reads_a_locked_table_as_last_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    assert!(EmbeddedLeaseStore::read_snapshot(&state, "orders").unwrap().is_empty(), "no file yet: an empty table");
    let store = EmbeddedLeaseStore::open(&state, "orders").unwrap();
    let lease = Lease::new("shard-1", Checkpoint::TrimHorizon);
    store.create_lease_if_absent(&lease).await.unwrap();
    let taken = store.take(&lease, "w1").await.unwrap();
    // The store holds the lock; the snapshot reads anyway.
    let snapshot = EmbeddedLeaseStore::read_snapshot(&state, "orders").unwrap();
    assert_eq!(snapshot, vec![taken.clone()]);
    store.checkpoint(&taken, &at("49590338271490256608559692538361571095921575989136588898", 0), None).await.unwrap();
    let snapshot = EmbeddedLeaseStore::read_snapshot(&state, "orders").unwrap();
    assert_eq!(snapshot[0].checkpoint, at("49590338271490256608559692538361571095921575989136588898", 0));
    std::fs::write(state.join("orders.leases.json"), b"not json").unwrap();
    let error = EmbeddedLeaseStore::read_snapshot(&state, "orders").unwrap_err();
    assert!(matches!(error, LeaseError::Corrupt { .. }), "{error}");
}

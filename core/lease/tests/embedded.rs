//! The embedded stores pass the lease store conformance suite.

mod common;

use std::sync::Arc;

use shardline_lease::EmbeddedLeaseStore;

#[tokio::test]
async fn in_memory_store_conforms() {
    common::lease_store_conformance(&EmbeddedLeaseStore::in_memory()).await;
}

#[tokio::test]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    common::lease_store_conformance(&EmbeddedLeaseStore::open(dir.path(), "conformance").unwrap())
        .await;
}

#[tokio::test]
async fn finished_leases_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedLeaseStore::open(dir.path(), "cleanup").unwrap());
    common::lease_cleanup_conformance(store.clone()).await;
    common::lease_cleanup_loop(store).await;
    let reopened = EmbeddedLeaseStore::open(dir.path(), "cleanup").unwrap();
    let keys: Vec<String> = shardline_lease::LeaseStore::list_leases(&reopened).await.unwrap().into_iter().map(|l| l.lease_key).collect();
    assert_eq!(keys, ["c1", "d1", "d2"], "deletions are on disk");
}

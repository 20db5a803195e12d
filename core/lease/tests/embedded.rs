//! The embedded stores pass the lease store conformance suite.

mod common;

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

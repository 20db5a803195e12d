//! The DynamoDB lease store against a DynamoDB emulator (dynalite).
//!
//! Set `SHARDLINE_TEST_DYNAMODB_ENDPOINT` (e.g. `http://127.0.0.1:8000`);
//! without it the tests are skipped, except under `CI=true` where they fail.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, ScalarAttributeType};
use aws_sdk_dynamodb::Client;
use shardline_lease::{
    Checkpoint, CoordinatorConfig, DynamoDbLeaseStore, LeaseCoordinator, LeaseError, LeaseStore,
};

fn client() -> Option<Client> {
    match std::env::var("SHARDLINE_TEST_DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            Some(Client::new(&shardline_aws::emulator_sdk_config(&endpoint)))
        }
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("SHARDLINE_TEST_DYNAMODB_ENDPOINT must be set when CI=true");
            }
            println!("skipped: SHARDLINE_TEST_DYNAMODB_ENDPOINT not set");
            None
        }
    }
}

fn fresh_table() -> String {
    format!("shardline-lease-test-{:016x}", rand::random::<u64>())
}

async fn raw_item(
    client: &Client,
    table: &str,
    key: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test]
async fn creates_table_with_kcl_schema() {
    let Some(client) = client() else { return };
    let table = fresh_table();
    let store = DynamoDbLeaseStore::new(client.clone(), &table);
    let err = store.list_leases().await.unwrap_err();
    assert!(matches!(err, LeaseError::TableMissing { .. }), "{err}");
    assert!(err.to_string().contains(&table), "{err}");
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    let description = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let key = &description.key_schema()[0];
    assert_eq!(
        (key.attribute_name(), key.key_type()),
        ("leaseKey", &KeyType::Hash)
    );
    let attribute = &description.attribute_definitions()[0];
    assert_eq!(
        (attribute.attribute_name(), attribute.attribute_type()),
        ("leaseKey", &ScalarAttributeType::S)
    );
    if let Some(billing) = description.billing_mode_summary() {
        assert_eq!(billing.billing_mode(), Some(&BillingMode::PayPerRequest));
    }
}

#[tokio::test]
async fn store_conforms() {
    let Some(client) = client() else { return };
    common::lease_store_conformance(&DynamoDbLeaseStore::new(client, fresh_table())).await;
}

#[tokio::test]
async fn finished_leases_are_cleaned_up() {
    let Some(client) = client() else { return };
    let store: Arc<dyn LeaseStore> = Arc::new(DynamoDbLeaseStore::new(client, fresh_table()));
    common::lease_cleanup_conformance(Arc::clone(&store)).await;
    common::lease_cleanup_loop(store).await;
}

#[tokio::test]
async fn writes_and_reads_kcl_attributes() {
    let Some(client) = client() else { return };
    let table = fresh_table();
    let store = DynamoDbLeaseStore::new(client.clone(), &table);
    store.ensure_table().await.unwrap();
    let shards = [
        common::shard("shardId-000000000000", &[], true),
        common::shard("shardId-000000000001", &["shardId-000000000000"], false),
    ];
    common::sync(&store, &shards, Checkpoint::TrimHorizon).await;
    let parent = store.get_lease("shardId-000000000000").await.unwrap().unwrap();
    let parent = store.take(&parent, "worker-0").await.unwrap();
    let parent = store.checkpoint(&parent, &Checkpoint::ShardEnd, None).await.unwrap();
    store.evict(&parent).await.unwrap();
    // the child's lease is created once its parent reached SHARD_END
    assert_eq!(common::sync(&store, &shards, Checkpoint::TrimHorizon).await, 1);
    let child = store
        .get_lease("shardId-000000000001")
        .await
        .unwrap()
        .unwrap();
    let child = store.take(&child, "worker-1").await.unwrap();
    let child = store
        .checkpoint(&child, &common::at("4959", 3), None)
        .await
        .unwrap();

    let item = raw_item(&client, &table, "shardId-000000000001").await;
    let expected: BTreeMap<&str, AttributeValue> = BTreeMap::from([
        ("leaseKey", AttributeValue::S("shardId-000000000001".into())),
        ("leaseOwner", AttributeValue::S("worker-1".into())),
        ("leaseCounter", AttributeValue::N("2".into())),
        ("checkpoint", AttributeValue::S("4959".into())),
        ("checkpointSubSequenceNumber", AttributeValue::N("3".into())),
        (
            "ownerSwitchesSinceCheckpoint",
            AttributeValue::N("0".into()),
        ),
        (
            "parentShardId",
            AttributeValue::Ss(vec!["shardId-000000000000".into()]),
        ),
        ("startingHashKey", AttributeValue::S("0".into())),
        (
            "endingHashKey",
            AttributeValue::S("340282366920938463463374607431768211455".into()),
        ),
    ]);
    let actual: BTreeMap<&str, AttributeValue> =
        item.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(actual, expected);
    let parent = raw_item(&client, &table, "shardId-000000000000").await;
    assert!(
        !parent.contains_key("parentShardId") && !parent.contains_key("childShardIds"),
        "empty sets are omitted: {parent:?}"
    );
    assert!(!parent.contains_key("leaseOwner"));

    store
        .update_child_shard_ids(&child, &["a".into(), "b".into()])
        .await
        .unwrap();
    let item = raw_item(&client, &table, "shardId-000000000001").await;
    let mut children = item["childShardIds"].as_ss().unwrap().clone();
    children.sort();
    assert_eq!(children, vec!["a".to_owned(), "b".to_owned()]);
}

#[tokio::test]
async fn reads_a_lease_written_by_the_java_kcl() {
    let Some(client) = client() else { return };
    let table = fresh_table();
    let store = DynamoDbLeaseStore::new(client.clone(), &table);
    store.ensure_table().await.unwrap();
    client
        .put_item()
        .table_name(&table)
        .item("leaseKey", AttributeValue::S("shardId-000000000007".into()))
        .item("leaseOwner", AttributeValue::S("kcl-worker".into()))
        .item("leaseCounter", AttributeValue::N("41".into()))
        .item("checkpoint", AttributeValue::S("TRIM_HORIZON".into()))
        .item("pendingCheckpoint", AttributeValue::S("123".into()))
        .item(
            "pendingCheckpointSubSequenceNumber",
            AttributeValue::N("0".into()),
        )
        .item("someFutureAttribute", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let lease = store
        .get_lease("shardId-000000000007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            lease.lease_owner.as_deref(),
            lease.lease_counter,
            &lease.checkpoint
        ),
        (Some("kcl-worker"), 41, &Checkpoint::TrimHorizon)
    );
    assert_eq!(lease.owner_switches_since_checkpoint, 0);
    let stolen = store.take(&lease, "shardline").await.unwrap();
    assert_eq!(
        (stolen.lease_counter, stolen.owner_switches_since_checkpoint),
        (42, 1)
    );
    store
        .checkpoint(&stolen, &common::at("200", 0), None)
        .await
        .unwrap();
    let item = raw_item(&client, &table, "shardId-000000000007").await;
    assert!(
        !item.contains_key("pendingCheckpoint"),
        "a checkpoint clears the pending checkpoint"
    );
    assert!(
        item.contains_key("someFutureAttribute"),
        "unknown attributes are left alone"
    );

    client
        .put_item()
        .table_name(&table)
        .item("leaseKey", AttributeValue::S("broken".into()))
        .item("checkpoint", AttributeValue::S("???".into()))
        .send()
        .await
        .unwrap();
    let err = store.get_lease("broken").await.unwrap_err();
    assert!(
        matches!(&err, LeaseError::Corrupt { attribute, .. } if attribute == "checkpoint"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_split_leases() {
    let Some(client) = client() else { return };
    let store: Arc<dyn LeaseStore> = Arc::new(DynamoDbLeaseStore::new(client, fresh_table()));
    store.ensure_table().await.unwrap();
    let shards = common::open_shards(4);
    assert_eq!(common::sync(store.as_ref(), &shards, Checkpoint::Latest).await, 4);
    let config = |worker: &str| CoordinatorConfig {
        pipeline: "test".into(),
        worker_id: worker.into(),
        failover_time: Duration::from_millis(500),
        ..CoordinatorConfig::default()
    };
    let (a, mut a_rx) = LeaseCoordinator::start(Arc::clone(&store), config("a"));
    let (b, _b_rx) = LeaseCoordinator::start(Arc::clone(&store), config("b"));
    common::wait_until("leases split 2/2", Duration::from_secs(20), || {
        a.held_lease_keys().len() == 2 && b.held_lease_keys().len() == 2
    })
    .await;
    let mut owners = BTreeMap::new();
    for lease in store.list_leases().await.unwrap() {
        *owners.entry(lease.lease_owner.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        owners,
        BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 2)])
    );

    // A graceful hand-back from a: b takes the lease without waiting for expiry.
    a.stop_taking();
    let mut handles = Vec::new();
    while let Ok(handle) = a_rx.try_recv() {
        handles.push(handle);
    }
    let live: Vec<_> = handles.into_iter().filter(|h| !h.is_lost()).collect();
    assert_eq!(live.len(), 2);
    live[0].checkpoint(common::at("1000", 0)).await.unwrap();
    for handle in &live {
        handle.release(None).await.unwrap();
    }
    a.shutdown().await;
    common::wait_until("b holds all 4 leases", Duration::from_secs(20), || {
        b.held_lease_keys().len() == 4
    })
    .await;
    b.shutdown().await;
}

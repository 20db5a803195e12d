//! The DynamoDB lease store against a DynamoDB that accepts connections and
//! never answers (a half-open connection): a checkpoint, which holds the
//! lease's write lock while it runs, ends within the configured bounds
//! with a retriable error instead of hanging.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use shardline_aws::test_support::hung_endpoint;
use shardline_aws::Timeouts;
use shardline_lease::{Checkpoint, DynamoDbLeaseStore, Lease, LeaseError, LeaseStore};

const BOUNDS: Timeouts = Timeouts { operation: Duration::from_millis(1500), attempt: Duration::from_millis(300) };
const SLACK: Duration = Duration::from_secs(3);

fn owned_lease() -> Lease {
    let mut lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    lease.lease_owner = Some("worker-1".to_owned());
    lease.lease_counter = 7;
    lease
}

#[tokio::test]
async fn a_checkpoint_on_a_hung_connection_fails_retriable_within_the_bound() {
    let endpoint = hung_endpoint().await.expect("listener");
    let sdk = shardline_aws::emulator_sdk_config_with(&endpoint, BOUNDS);
    let lease = owned_lease();
    let guard = BOUNDS.operation + SLACK;

    // Without the bounds (as before: the SDK's connect timeout only) the
    // checkpoint never ends.
    let unbounded = Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).timeout_config(TimeoutConfig::disabled()).build());
    let store = DynamoDbLeaseStore::new(unbounded, "leases");
    let before = tokio::time::timeout(guard, store.checkpoint(&lease, &Checkpoint::TrimHorizon, None)).await;
    assert!(before.is_err(), "the unbounded checkpoint should still be waiting after {guard:?}: {before:?}");

    let store = DynamoDbLeaseStore::new(Client::new(&sdk), "leases");
    let started = Instant::now();
    let err = tokio::time::timeout(guard, store.checkpoint(&lease, &Checkpoint::TrimHorizon, None))
        .await
        .expect("the bounded checkpoint must end by itself")
        .expect_err("nobody answers");
    let elapsed = started.elapsed();
    assert!(matches!(err, LeaseError::Unavailable { .. }), "{err}");
    assert!(err.kind().is_retriable(), "{err}");
    assert!(elapsed < BOUNDS.operation + Duration::from_secs(1), "took {elapsed:?}");
}

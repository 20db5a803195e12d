//! A server that accepts connections and never answers (a half-open
//! connection, the fault production sees most): Kinesis and DynamoDB calls
//! through the real SDK clients end within the configured bounds with a
//! retriable error, where a client without them hangs.

use std::time::{Duration, Instant};

use shardline_aws::test_support::hung_endpoint;
use shardline_aws::{classify, emulator_sdk_config_with, Reason, Timeouts};

const BOUNDS: Timeouts = Timeouts { operation: Duration::from_millis(1500), attempt: Duration::from_millis(300) };

/// Generous slack over the operation timeout for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(3);

/// What the SDK does without our bounds: an `SdkConfig` with only the
/// connect timeout (the state before), for the hang guard.
fn unbounded(endpoint: &str) -> aws_types::SdkConfig {
    emulator_sdk_config_with(endpoint, BOUNDS)
        .into_builder()
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).build())
        .build()
}

#[tokio::test]
async fn kinesis_get_records_ends_within_the_bounds() {
    let endpoint = hung_endpoint().await.expect("listener");
    let call = |sdk: &aws_types::SdkConfig| {
        let client = aws_sdk_kinesis::Client::new(sdk);
        async move { client.get_records().shard_iterator("AAAA").send().await }
    };

    let guard = BOUNDS.operation + SLACK;
    let before = tokio::time::timeout(guard, call(&unbounded(&endpoint))).await;
    assert!(before.is_err(), "without the bounds the call should hang past {guard:?}: {before:?}");

    let started = Instant::now();
    let result = tokio::time::timeout(guard, call(&emulator_sdk_config_with(&endpoint, BOUNDS))).await.expect("the bounded call must end by itself");
    let elapsed = started.elapsed();
    let err = result.expect_err("nobody answers");
    assert_eq!(classify(&err), Reason::Timeout, "{err:?}");
    assert!(classify(&err).is_retriable());
    assert!(elapsed >= BOUNDS.attempt && elapsed < BOUNDS.operation + Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn dynamodb_get_item_and_update_item_end_within_the_bounds() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let endpoint = hung_endpoint().await.expect("listener");
    let key = || AttributeValue::S("shardId-000000000000".to_owned());

    let guard = BOUNDS.operation + SLACK;
    let client = aws_sdk_dynamodb::Client::new(&unbounded(&endpoint));
    let before = tokio::time::timeout(guard, client.get_item().table_name("leases").key("leaseKey", key()).send()).await;
    assert!(before.is_err(), "without the bounds GetItem should hang past {guard:?}: {before:?}");

    let client = aws_sdk_dynamodb::Client::new(&emulator_sdk_config_with(&endpoint, BOUNDS));
    let started = Instant::now();
    let get = tokio::time::timeout(guard, client.get_item().table_name("leases").key("leaseKey", key()).send())
        .await
        .expect("GetItem must end by itself")
        .expect_err("nobody answers");
    assert_eq!(classify(&get), Reason::Timeout, "{get:?}");
    let update = tokio::time::timeout(
        guard,
        client
            .update_item()
            .table_name("leases")
            .key("leaseKey", key())
            .update_expression("SET checkpoint = :c")
            .expression_attribute_values(":c", AttributeValue::S("TRIM_HORIZON".to_owned()))
            .send(),
    )
    .await
    .expect("UpdateItem must end by itself")
    .expect_err("nobody answers");
    assert_eq!(classify(&update), Reason::Timeout, "{update:?}");
    assert!(classify(&update).is_retriable());
    assert!(started.elapsed() < 2 * BOUNDS.operation + Duration::from_secs(1), "{:?}", started.elapsed());
}

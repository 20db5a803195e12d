//! End-to-end tests against a Kinesis emulator (kinesis-mock).
//!
//! Set `SHARDLINE_TEST_KINESIS_ENDPOINT=http://127.0.0.1:PORT` (kinesis-mock's
//! plain port). Without it every test prints a skip message, unless `CI=true`,
//! where a missing emulator is a failure. Each test uses a fresh stream and
//! deletes it when it passes; start kinesis-mock with e.g. `SHARD_LIMIT=1000`
//! so that streams left by failed runs do not exhaust its shard limit.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use aws_smithy_types::Blob;
use bytes::Bytes;
use shardline_api::{ErrorKind, Position, Record, SequenceNumber};
use shardline_kinesis::kpl::{aggregate, UserRecord};
use shardline_kinesis::{KinesisSource, ReadBatch, ReadMode, ReaderOptions, ShardReader, SourceError, StartPosition};

const DEADLINE: Duration = Duration::from_secs(30);

fn endpoint() -> Option<String> {
    match std::env::var("SHARDLINE_TEST_KINESIS_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("SHARDLINE_TEST_KINESIS_ENDPOINT must be set when CI=true");
            }
            println!("skipped: SHARDLINE_TEST_KINESIS_ENDPOINT not set");
            None
        }
    }
}

fn client(endpoint: &str) -> Client {
    Client::new(&shardline_aws::emulator_sdk_config(endpoint))
}

fn options() -> ReaderOptions {
    ReaderOptions {
        pipeline: "test".into(),
        idle_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        ..ReaderOptions::default()
    }
}

async fn wait_active(client: &Client, stream: &str) {
    let start = Instant::now();
    loop {
        let out = client.describe_stream_summary().stream_name(stream).send().await;
        if let Ok(out) = out {
            if out.stream_description_summary.map(|d| d.stream_status) == Some(StreamStatus::Active) {
                return;
            }
        }
        assert!(start.elapsed() < DEADLINE, "stream {stream} not active in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_stream(client: &Client, shards: i32) -> String {
    let name = format!("shardline-test-{:016x}", rand::random::<u64>());
    client.create_stream().stream_name(&name).shard_count(shards).send().await.unwrap();
    wait_active(client, &name).await;
    name
}

/// Deletes a test stream (kinesis-mock counts every shard ever created
/// against its `SHARD_LIMIT`, default 50, until the stream is deleted).
async fn delete_stream(client: &Client, stream: &str) {
    let _ = client.delete_stream().stream_name(stream).enforce_consumer_deletion(true).send().await;
}

async fn put(client: &Client, stream: &str, partition_key: &str, data: Vec<u8>) -> String {
    let out = client.put_record().stream_name(stream).partition_key(partition_key).data(Blob::new(data)).send().await.unwrap();
    out.sequence_number
}

async fn split_in_half(client: &Client, stream: &str, shard_id: &str) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard_id)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_active(client, stream).await;
}

/// Reads until `want` records or the shard's end, with a deadline.
async fn read(reader: &mut Box<dyn ShardReader>, want: usize) -> (Vec<Record>, Option<Vec<String>>) {
    let start = Instant::now();
    let mut records = Vec::new();
    loop {
        let ReadBatch { records: batch, shard_end, .. } = reader.next_batch().await.unwrap();
        records.extend(batch);
        if shard_end.is_some() || records.len() >= want {
            return (records, shard_end);
        }
        assert!(start.elapsed() < DEADLINE, "read {} of {want} records before the deadline", records.len());
    }
}

fn user(pk: &str, data: &str) -> UserRecord {
    UserRecord { partition_key: pk.into(), explicit_hash_key: None, data: Bytes::copy_from_slice(data.as_bytes()) }
}

fn summary(records: &[Record]) -> Vec<(u64, String, bool)> {
    records
        .iter()
        .map(|r| (r.meta.sub_sequence_number, String::from_utf8(r.payload.to_bytes().to_vec()).unwrap(), r.meta.aggregated))
        .collect()
}

#[tokio::test]
async fn stream_not_found_names_the_stream_and_endpoint() {
    let Some(endpoint) = endpoint() else { return };
    let err = KinesisSource::connect(client(&endpoint), "no-such-stream-for-shardline").await.unwrap_err();
    assert!(matches!(err, SourceError::StreamNotFound { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    let message = err.to_string();
    assert!(message.contains("no-such-stream-for-shardline") && message.contains(&endpoint), "{message}");
}

#[tokio::test]
async fn list_shards_after_a_split() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    assert!(source.stream_arn().contains(&stream), "{}", source.stream_arn());
    let before = source.list_shards().await.unwrap();
    assert_eq!(before.len(), 1);
    assert!(!before[0].closed);
    split_in_half(&client, &stream, &before[0].shard_id).await;

    let shards = source.list_shards().await.unwrap();
    assert_eq!(shards.len(), 3, "{shards:?}");
    let parent = shards.iter().find(|s| s.shard_id == before[0].shard_id).unwrap();
    assert!(parent.closed);
    let children: Vec<_> = shards.iter().filter(|s| s.parent_shard_ids == vec![parent.shard_id.clone()]).collect();
    assert_eq!(children.len(), 2, "{shards:?}");
    assert!(children.iter().all(|c| !c.closed));
    let mut ranges: Vec<_> = children.iter().map(|c| (c.starting_hash_key.clone(), c.ending_hash_key.clone())).collect();
    ranges.sort_by_key(|(start, _)| start.parse::<u128>().unwrap());
    assert_eq!(ranges[0], ("0".to_string(), ((1u128 << 127) - 1).to_string()));
    assert_eq!(ranges[1], ((1u128 << 127).to_string(), u128::MAX.to_string()));
    delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn list_shards_at_an_initial_position_after_a_split() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let parent = source.list_shards().await.unwrap().remove(0);
    let before_split = std::time::SystemTime::now();
    split_in_half(&client, &stream, &parent.shard_id).await;
    let after_split = std::time::SystemTime::now() + Duration::from_secs(1);

    let ids = |shards: Vec<shardline_api::ShardInfo>| {
        let mut ids: Vec<String> = shards.into_iter().map(|s| s.shard_id).collect();
        ids.sort();
        ids
    };
    let all = source.list_shards().await.unwrap();
    let mut children: Vec<String> = all.iter().filter(|s| !s.closed).map(|s| s.shard_id.clone()).collect();
    children.sort();
    assert_eq!(children.len(), 2, "{all:?}");
    // AWS answers AT_TRIM_HORIZON with the shards open at the trim horizon
    // (here the parent); kinesis-mock answers with every shard in retention
    let at_trim_horizon = ids(source.list_shards_at(&StartPosition::TrimHorizon).await.unwrap());
    assert!(at_trim_horizon.contains(&parent.shard_id), "{at_trim_horizon:?}");
    assert_eq!(ids(source.list_shards_at(&StartPosition::Latest).await.unwrap()), children);
    // likewise AT_TIMESTAMP before the split: AWS lists the parent only
    let at_start = ids(source.list_shards_at(&StartPosition::AtTimestamp(before_split)).await.unwrap());
    assert!(at_start.contains(&parent.shard_id), "{at_start:?}");
    assert_eq!(ids(source.list_shards_at(&StartPosition::AtTimestamp(after_split)).await.unwrap()), children);
    let position = Position::new(SequenceNumber::parse("1").unwrap(), 0);
    assert_eq!(source.list_shards_at(&StartPosition::After(position)).await.unwrap().len(), 3, "no filter");
    delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn polling_reads_aggregates_and_resumes_after_a_position() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    put(&client, &stream, "p", b"first".to_vec()).await;
    let agg_seq = put(&client, &stream, "agg", aggregate(&[user("a", "a0"), user("b", "a1"), user("c", "a2")])).await;
    put(&client, &stream, "p", b"last".to_vec()).await;

    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let shard = source.list_shards().await.unwrap().remove(0);
    let mut reader = source.reader(&shard, StartPosition::TrimHorizon, &ReadMode::Polling, options());
    let (records, end) = read(&mut reader, 5).await;
    assert_eq!(end, None);
    assert_eq!(
        summary(&records),
        vec![
            (0, "first".into(), false),
            (0, "a0".into(), true),
            (1, "a1".into(), true),
            (2, "a2".into(), true),
            (0, "last".into(), false)
        ]
    );
    let agg_seq = SequenceNumber::parse(&agg_seq).unwrap();
    assert!(records[1..4].iter().all(|r| r.meta.sequence_number == agg_seq));
    assert_eq!(records[2].meta.partition_key, "b");
    assert_eq!(&*records[0].meta.stream, stream.as_str());
    assert_eq!(&*records[0].meta.shard_id, shard.shard_id.as_str());

    // an empty batch at the tip is normal
    let idle = reader.next_batch().await.unwrap();
    assert!(idle.records.is_empty() && idle.shard_end.is_none());

    // resume after the middle user record of the aggregate
    let after = Position::new(agg_seq, 1);
    let mut resumed = source.reader(&shard, StartPosition::After(after), &ReadMode::Polling, options());
    let (records, _) = read(&mut resumed, 2).await;
    assert_eq!(summary(&records), vec![(2, "a2".into(), true), (0, "last".into(), false)]);
    delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn polling_reports_shard_end_with_children() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    put(&client, &stream, "p", b"one".to_vec()).await;
    put(&client, &stream, "p", b"two".to_vec()).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let parent = source.list_shards().await.unwrap().remove(0);
    split_in_half(&client, &stream, &parent.shard_id).await;

    let mut reader = source.reader(&parent, StartPosition::TrimHorizon, &ReadMode::Polling, options());
    let (records, end) = read(&mut reader, usize::MAX).await;
    assert_eq!(summary(&records), vec![(0, "one".into(), false), (0, "two".into(), false)]);
    let mut children = end.expect("shard end");
    children.sort();
    let mut expected: Vec<_> = source
        .list_shards()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.parent_shard_ids.contains(&parent.shard_id))
        .map(|s| s.shard_id)
        .collect();
    expected.sort();
    assert_eq!(children, expected);
    assert_eq!(children.len(), 2);
    delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn fan_out_reads_records() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    put(&client, &stream, "p", b"before".to_vec()).await;
    put(&client, &stream, "agg", aggregate(&[user("a", "x"), user("b", "y")])).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let shard = source.list_shards().await.unwrap().remove(0);
    let mode = ReadMode::FanOut { consumer_name: "shardline-test".into() };
    let mut reader = source.reader(&shard, StartPosition::TrimHorizon, &mode, options());
    let (records, _) = read(&mut reader, 3).await;
    assert_eq!(summary(&records), vec![(0, "before".into(), false), (0, "x".into(), true), (1, "y".into(), true)]);
    // the consumer is registered once and reused
    let arn = source.ensure_consumer("shardline-test").await.unwrap();
    assert!(arn.contains("shardline-test"), "{arn}");

    put(&client, &stream, "p", b"after".to_vec()).await;
    let (records, _) = read(&mut reader, 1).await;
    assert_eq!(summary(&records), vec![(0, "after".into(), false)]);
    delete_stream(&client, &stream).await;
}

/// A deregistered consumer makes SubscribeToShard answer
/// ResourceNotFoundException too: that is not the end of the shard. The
/// reader registers the consumer again and goes on reading.
#[tokio::test]
async fn fan_out_survives_a_deregistered_consumer() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    put(&client, &stream, "p", b"before".to_vec()).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let shard = source.list_shards().await.unwrap().remove(0);
    // The source caches the consumer's ARN; deregistering leaves it stale.
    let stale = source.ensure_consumer("shardline-dereg").await.unwrap();
    client.deregister_stream_consumer().consumer_arn(&stale).send().await.unwrap();
    let mode = ReadMode::FanOut { consumer_name: "shardline-dereg".into() };
    let mut reader = source.reader(&shard, StartPosition::TrimHorizon, &mode, options());
    let (records, shard_end) = read(&mut reader, 1).await;
    assert_eq!(summary(&records), vec![(0, "before".into(), false)]);
    assert_eq!(shard_end, None, "a live shard was ended because its consumer was deregistered");
    delete_stream(&client, &stream).await;
}

/// Replaces some `GetRecords` responses with throttling and expired-iterator
/// errors (kinesis-mock never sends them).
/// The `X-Amz-Target` of the request being sent (the request is gone by the
/// time the response is seen).
#[derive(Debug, Clone)]
struct Target(String);

impl aws_smithy_types::config_bag::Storable for Target {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

#[derive(Debug, Default, Clone)]
struct FaultInjector {
    get_records_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default().to_owned();
        cfg.interceptor_state().store_put(Target(target));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let is_get_records = cfg.load::<Target>().is_some_and(|t| t.0.ends_with(".GetRecords"));
        if !is_get_records {
            return Ok(());
        }
        let call = self.get_records_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let code = match call % 5 {
            1 => "ProvisionedThroughputExceededException",
            3 => "ExpiredIteratorException",
            _ => return Ok(()),
        };
        let response = context.response_mut();
        *response.status_mut() = 400u16.try_into()?;
        response.headers_mut().remove("content-length");
        response.headers_mut().insert("x-amzn-errortype", code);
        *response.body_mut() = aws_smithy_types::body::SdkBody::from(format!(r#"{{"__type":"{code}","message":"injected"}}"#));
        Ok(())
    }
}

#[tokio::test]
async fn polling_survives_throttling_and_expired_iterators_without_gaps_or_duplicates() {
    let Some(endpoint) = endpoint() else { return };
    let plain = client(&endpoint);
    let stream = new_stream(&plain, 1).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        put(&plain, &stream, "p", format!("r{i:02}").into_bytes()).await;
        sent.push((0, format!("r{i:02}"), false));
    }
    let injector = FaultInjector::default();
    let faulty = Client::from_conf(plain.config().to_builder().interceptor(injector.clone()).build());
    let source = KinesisSource::connect(faulty, &stream).await.unwrap();
    let shard = source.list_shards().await.unwrap().remove(0);
    let options = ReaderOptions { max_records: 2, max_backoff: Duration::from_millis(50), ..options() };
    let mut reader = source.reader(&shard, StartPosition::TrimHorizon, &ReadMode::Polling, options);
    let (records, _) = read(&mut reader, 12).await;
    assert_eq!(summary(&records), sent);
    assert!(injector.get_records_calls.load(std::sync::atomic::Ordering::SeqCst) >= 4, "faults were injected");
    // nothing comes twice afterwards
    for _ in 0..3 {
        assert!(reader.next_batch().await.unwrap().records.is_empty());
    }
    delete_stream(&plain, &stream).await;
}

/// A shard that no longer exists (past retention, or deleted) is the end of
/// the shard with no children, as in the Java KCL, not an error
/// (`GetShardIterator` answers `ResourceNotFoundException`). Polling only:
/// kinesis-mock's `SubscribeToShard` does not check the shard id.
#[tokio::test]
async fn a_vanished_shard_is_a_shard_end_not_an_error() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let stream = new_stream(&client, 1).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let mut gone = source.list_shards().await.unwrap().remove(0);
    gone.shard_id = "shardId-000000000099".into();
    let mut reader = source.reader(&gone, StartPosition::TrimHorizon, &ReadMode::Polling, options());
    let batch = tokio::time::timeout(DEADLINE, reader.next_batch()).await.expect("an answer in time");
    let batch = batch.unwrap_or_else(|e| panic!("a vanished shard failed the reader: {e}"));
    assert_eq!(batch.shard_end, Some(Vec::new()));
    assert!(batch.records.is_empty());
    // and it stays ended
    let again = reader.next_batch().await.expect("the same end again");
    assert_eq!(again.shard_end, Some(Vec::new()));
    delete_stream(&client, &stream).await;
}

/// The operation and attempt timeouts bound the SubscribeToShard call up to
/// its initial response, not the five-minute event stream that follows: a
/// record put after both have passed arrives on the same subscription.
#[tokio::test]
async fn a_fan_out_subscription_outlives_the_call_timeouts() {
    use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
    let Some(endpoint) = endpoint() else { return };
    let bounds = shardline_aws::Timeouts { operation: Duration::from_millis(1500), attempt: Duration::from_millis(700) };
    let client = Client::new(&shardline_aws::emulator_sdk_config_with(&endpoint, bounds));
    let stream = new_stream(&client, 1).await;
    let source = KinesisSource::connect(client.clone(), &stream).await.unwrap();
    let arn = source.ensure_consumer("bounded").await.unwrap();
    let shard = source.list_shards().await.unwrap().remove(0);
    let subscribed = Instant::now();
    let out = client
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id(&shard.shard_id)
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut events = out.event_stream;
    // Past both bounds (the point of the test, not a wait for a condition).
    tokio::time::sleep_until((subscribed + 2 * bounds.operation).into()).await;
    put(&client, &stream, "p", b"late".to_vec()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.recv()).await.expect("the record arrives before the deadline");
        match event.expect("the subscription is still open past the timeouts") {
            Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) if e.records.iter().any(|r| r.data.as_ref() == b"late") => break,
            Some(_) => {}
            None => panic!("the subscription ended"),
        }
    }
    assert!(subscribed.elapsed() > 2 * bounds.operation);
    delete_stream(&client, &stream).await;
}

//! CreateStream, DeleteStream, DescribeStream(Summary), ListStreams,
//! retention changes.

use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails, StreamStatus};

use super::{failure, Server};

#[tokio::test]
async fn stream_lifecycle() {
    let server = Server::start().await;
    server.create("clicks", 3).await;
    assert_eq!(failure(server.client.create_stream().stream_name("clicks").shard_count(1).send().await), ("ResourceInUseException".into(), 400));

    let description = server.client.describe_stream().stream_name("clicks").send().await.unwrap().stream_description.unwrap();
    assert_eq!(description.stream_name(), "clicks");
    assert_eq!(description.stream_arn(), "arn:aws:kinesis:us-east-1:000000000000:stream/clicks");
    assert_eq!(description.stream_status(), &StreamStatus::Active);
    assert_eq!(description.retention_period_hours(), 24);
    assert!(!description.has_more_shards());
    let shards = description.shards();
    assert_eq!(shards.iter().map(|s| s.shard_id()).collect::<Vec<_>>(), ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(shards[0].hash_key_range().unwrap().starting_hash_key(), "0");
    assert_eq!(shards[1].hash_key_range().unwrap().starting_hash_key(), "113427455640312821154458202477256070485");
    assert_eq!(shards[2].hash_key_range().unwrap().ending_hash_key(), u128::MAX.to_string());
    let starting = shards[0].sequence_number_range().unwrap().starting_sequence_number();
    assert_eq!(starting.len(), 56, "{starting}");
    assert!(shards[0].sequence_number_range().unwrap().ending_sequence_number().is_none());

    // DescribeStream paging and lookup by ARN
    let page = server.client.describe_stream().stream_arn(description.stream_arn()).limit(2).send().await.unwrap().stream_description.unwrap();
    assert_eq!(page.shards().len(), 2);
    assert!(page.has_more_shards());
    let rest = server
        .client
        .describe_stream()
        .stream_name("clicks")
        .exclusive_start_shard_id("shardId-000000000001")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(rest.shards().iter().map(|s| s.shard_id()).collect::<Vec<_>>(), ["shardId-000000000002"]);

    let summary = server.client.describe_stream_summary().stream_name("clicks").send().await.unwrap().stream_description_summary.unwrap();
    assert_eq!(summary.open_shard_count(), 3);
    assert_eq!(summary.stream_mode_details().map(|d| d.stream_mode().clone()), Some(StreamMode::Provisioned));

    server.client.delete_stream().stream_name("clicks").send().await.unwrap();
    assert_eq!(failure(server.client.describe_stream().stream_name("clicks").send().await), ("ResourceNotFoundException".into(), 400));
    assert_eq!(failure(server.client.delete_stream().stream_name("clicks").send().await), ("ResourceNotFoundException".into(), 400));
    // a re-created stream starts empty
    server.create("clicks", 1).await;
    let iterator = server.iterator("clicks", "shardId-000000000000", aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon, None).await;
    assert!(server.drain(iterator).await.0.is_empty());
}

#[tokio::test]
async fn list_streams_pages_and_on_demand_streams_get_four_shards() {
    let server = Server::start().await;
    for name in ["a", "b", "c"] {
        server.create(name, 1).await;
    }
    server
        .client
        .create_stream()
        .stream_name("d")
        .stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build().unwrap())
        .send()
        .await
        .unwrap();
    let summary = server.client.describe_stream_summary().stream_name("d").send().await.unwrap().stream_description_summary.unwrap();
    assert_eq!(summary.open_shard_count(), 4);

    let first = server.client.list_streams().limit(2).send().await.unwrap();
    assert_eq!(first.stream_names(), ["a", "b"]);
    assert!(first.has_more_streams());
    let second = server.client.list_streams().next_token(first.next_token().unwrap()).send().await.unwrap();
    assert_eq!(second.stream_names(), ["c", "d"]);
    assert!(!second.has_more_streams());
    assert_eq!(second.stream_summaries().len(), 2);
    let after = server.client.list_streams().exclusive_start_stream_name("b").send().await.unwrap();
    assert_eq!(after.stream_names(), ["c", "d"]);
}

#[tokio::test]
async fn retention_can_be_raised_and_lowered() {
    let server = Server::start().await;
    server.create("r", 1).await;
    server.client.increase_stream_retention_period().stream_name("r").retention_period_hours(48).send().await.unwrap();
    let hours = |s: &Server| {
        let client = s.client.clone();
        async move { client.describe_stream_summary().stream_name("r").send().await.unwrap().stream_description_summary.unwrap().retention_period_hours() }
    };
    assert_eq!(hours(&server).await, 48);
    assert_eq!(
        failure(server.client.increase_stream_retention_period().stream_name("r").retention_period_hours(24).send().await),
        ("InvalidArgumentException".into(), 400)
    );
    server.client.decrease_stream_retention_period().stream_name("r").retention_period_hours(24).send().await.unwrap();
    assert_eq!(hours(&server).await, 24);
}

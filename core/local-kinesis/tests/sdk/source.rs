//! Our own Kinesis source (`shardline_kinesis::KinesisSource`: shard
//! listing and the polling reader) against the server, as the pipeline
//! uses it with `endpoint = "embedded"`.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_kinesis::{KinesisSource, ReadMode, ReaderOptions, StartPosition};

use super::Server;

#[tokio::test]
async fn kinesis_source_lists_and_reads_to_the_shard_end() {
    let server = Server::start().await;
    server.create("src", 1).await;
    let entries: Vec<PutRecordsRequestEntry> = (0..300)
        .map(|i| PutRecordsRequestEntry::builder().partition_key(format!("k{i}")).data(Blob::new(format!("{{\"n\":{i}}}"))).build().unwrap())
        .collect();
    server.client.put_records().stream_name("src").set_records(Some(entries)).send().await.unwrap();

    let source = KinesisSource::connect(server.client.clone(), "src").await.expect("connect");
    assert_eq!(source.stream_arn(), "arn:aws:kinesis:us-east-1:000000000000:stream/src");
    let shards = source.list_shards().await.expect("list_shards");
    assert_eq!(shards.len(), 1);
    let options = ReaderOptions { max_records: 128, idle_interval: Duration::from_millis(10), poll_interval: Duration::from_millis(1), ..ReaderOptions::default() };
    let mut reader = source.reader(&shards[0], StartPosition::TrimHorizon, &ReadMode::Polling, options);
    let mut received = Vec::new();
    while received.len() < 300 {
        let batch = tokio::time::timeout(Duration::from_secs(10), reader.next_batch()).await.expect("a batch in time").expect("batch");
        assert!(batch.shard_end.is_none());
        received.extend(batch.records);
    }
    assert_eq!(received.len(), 300);
    assert_eq!(received[0].meta.partition_key, "k0");
    assert_eq!(received[299].meta.partition_key, "k299");

    server
        .client
        .split_shard()
        .stream_name("src")
        .shard_to_split(&shards[0].shard_id)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let end = loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), reader.next_batch()).await.expect("a batch in time").expect("batch");
        assert!(batch.records.is_empty());
        if let Some(children) = batch.shard_end {
            break children;
        }
    };
    assert_eq!(end, ["shardId-000000000001", "shardId-000000000002"]);
    let shards = source.list_shards().await.unwrap();
    assert_eq!(shards.len(), 3);
    assert!(shards[0].closed);
    assert_eq!(shards[1].parent_shard_ids, ["shardId-000000000000"]);
}

//! Documented errors and limits: exception names and HTTP 400.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use super::{failure, Server};

fn entry(key: &str, size: usize) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(vec![1u8; size])).build().unwrap()
}

#[tokio::test]
async fn put_limits() {
    let server = Server::start().await;
    server.create("lim", 1).await;
    let put = |key: String, size: usize| server.client.put_record().stream_name("lim").partition_key(key).data(Blob::new(vec![0u8; size])).send();
    assert_eq!(failure(put(String::new(), 1).await), ("ValidationException".into(), 400));
    assert_eq!(failure(put("k".repeat(257), 1).await), ("ValidationException".into(), 400));
    assert_eq!(failure(put("k".into(), 1024 * 1024 + 1).await), ("ValidationException".into(), 400));
    // data within 1 MiB, but not with its key
    assert_eq!(failure(put("kk".into(), 1024 * 1024 - 1).await), ("InvalidArgumentException".into(), 400));
    assert_eq!(
        failure(server.client.put_record().stream_name("nope").partition_key("k").data(Blob::new("x")).send().await),
        ("ResourceNotFoundException".into(), 400)
    );
    let bad_hash = server.client.put_record().stream_name("lim").partition_key("k").explicit_hash_key(u128::MAX.to_string() + "0").data(Blob::new("x"));
    assert_eq!(failure(bad_hash.send().await).1, 400);
    let over_range = server
        .client
        .put_record()
        .stream_name("lim")
        .partition_key("k")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(failure(over_range), ("InvalidArgumentException".into(), 400));

    let records = |n: usize, size: usize| (0..n).map(|i| entry(&i.to_string(), size)).collect::<Vec<_>>();
    let put_records = |entries| server.client.put_records().stream_name("lim").set_records(Some(entries)).send();
    assert_eq!(failure(put_records(records(501, 1)).await), ("ValidationException".into(), 400));
    assert_eq!(failure(put_records(Vec::new()).await), ("ValidationException".into(), 400));
    assert_eq!(failure(put_records(records(6, 1024 * 1024 - 8)).await), ("InvalidArgumentException".into(), 400));
    let ok = put_records(records(500, 10)).await.unwrap();
    assert_eq!(ok.records().len(), 500);
    // 5 MiB exactly is allowed
    let five = put_records(records(5, 1024 * 1024 - 1)).await.unwrap();
    assert_eq!(five.failed_record_count(), Some(0));
}

#[tokio::test]
async fn iterator_and_get_records_errors() {
    let server = Server::start().await;
    server.create("e", 2).await;
    let (_, sequence) = server.put("e", "a", b"x").await; // lands in shard 0
    let iterator = |shard: &str, kind: ShardIteratorType| server.client.get_shard_iterator().stream_name("e").shard_id(shard).shard_iterator_type(kind);
    assert_eq!(failure(iterator("shardId-000000000009", ShardIteratorType::TrimHorizon).send().await), ("ResourceNotFoundException".into(), 400));
    assert_eq!(failure(iterator("shardId-000000000000", ShardIteratorType::AtSequenceNumber).send().await), ("InvalidArgumentException".into(), 400));
    assert_eq!(
        failure(iterator("shardId-000000000000", ShardIteratorType::TrimHorizon).starting_sequence_number(&sequence).send().await),
        ("InvalidArgumentException".into(), 400)
    );
    // a sequence number of another shard
    assert_eq!(
        failure(iterator("shardId-000000000001", ShardIteratorType::AtSequenceNumber).starting_sequence_number(&sequence).send().await),
        ("InvalidArgumentException".into(), 400)
    );
    assert_eq!(
        failure(iterator("shardId-000000000000", ShardIteratorType::AtSequenceNumber).starting_sequence_number("12345").send().await),
        ("InvalidArgumentException".into(), 400)
    );
    assert_eq!(failure(iterator("shardId-000000000000", ShardIteratorType::AtTimestamp).send().await), ("InvalidArgumentException".into(), 400));
    assert_eq!(failure(iterator("shardId-000000000000", ShardIteratorType::from("SOMEWHERE")).send().await), ("ValidationException".into(), 400));

    assert_eq!(failure(server.client.get_records().shard_iterator("bm90IGFuIGl0ZXJhdG9y").send().await), ("InvalidArgumentException".into(), 400));
    let good = server.iterator("e", "shardId-000000000000", ShardIteratorType::TrimHorizon, None).await;
    assert_eq!(failure(server.client.get_records().shard_iterator(&good).limit(10_001).send().await), ("ValidationException".into(), 400));
    assert_eq!(failure(server.client.get_records().shard_iterator(&good).limit(0).send().await), ("ValidationException".into(), 400));
    server.client.delete_stream().stream_name("e").send().await.unwrap();
    assert_eq!(failure(server.client.get_records().shard_iterator(&good).send().await), ("ResourceNotFoundException".into(), 400));
}

#[tokio::test]
async fn validation_of_names_and_counts() {
    let server = Server::start().await;
    assert_eq!(failure(server.client.create_stream().stream_name("bad name!").shard_count(1).send().await), ("ValidationException".into(), 400));
    assert_eq!(failure(server.client.create_stream().stream_name("x".repeat(129)).shard_count(1).send().await), ("ValidationException".into(), 400));
    assert_eq!(failure(server.client.create_stream().stream_name("zero").shard_count(0).send().await), ("ValidationException".into(), 400));
    assert_eq!(failure(server.client.create_stream().stream_name("none").send().await), ("ValidationException".into(), 400));
    assert_eq!(failure(server.client.describe_stream_summary().send().await), ("InvalidArgumentException".into(), 400));
    assert_eq!(
        failure(server.client.describe_stream_summary().stream_arn("arn:aws:kinesis:eu-west-1:000000000000:stream/x").send().await),
        ("ResourceNotFoundException".into(), 400)
    );
}

//! PutRecord, PutRecords, GetShardIterator (all five types), GetRecords.

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use super::{seq_less, Server};

const SHARD: &str = "shardId-000000000000";

#[tokio::test]
async fn every_iterator_type_starts_where_documented() {
    let server = Server::start().await;
    server.create("it", 1).await;
    let latest_before = server.iterator("it", SHARD, ShardIteratorType::Latest, None).await;
    let mut sequences = Vec::new();
    for i in 0..5 {
        let (shard, sequence) = server.put("it", &format!("k{i}"), format!("r{i}").as_bytes()).await;
        assert_eq!(shard, SHARD);
        assert_eq!(sequence.len(), 56, "{sequence}");
        sequences.push(sequence);
    }
    assert!(sequences.windows(2).all(|w| seq_less(&w[0], &w[1])), "{sequences:?}");
    let all: Vec<Vec<u8>> = (0..5).map(|i| format!("r{i}").into_bytes()).collect();

    let trim = server.iterator("it", SHARD, ShardIteratorType::TrimHorizon, None).await;
    assert_eq!(server.drain(trim).await.0, all);
    // LATEST taken before the puts sees them; taken after, sees nothing
    assert_eq!(server.drain(latest_before).await.0, all);
    let latest_after = server.iterator("it", SHARD, ShardIteratorType::Latest, None).await;
    let (nothing, next, _) = server.drain(latest_after).await;
    assert!(nothing.is_empty());
    server.put("it", "k", b"later").await;
    assert_eq!(server.drain(next.expect("open shard keeps an iterator")).await.0, vec![b"later".to_vec()]);

    let at = server.iterator("it", SHARD, ShardIteratorType::AtSequenceNumber, Some(&sequences[2])).await;
    assert_eq!(server.drain(at).await.0[..3], all[2..]);
    let after = server.iterator("it", SHARD, ShardIteratorType::AfterSequenceNumber, Some(&sequences[2])).await;
    assert_eq!(server.drain(after).await.0[..2], all[3..]);

    // AT_TIMESTAMP: before everything = all; in the future = nothing yet
    let out = server
        .client
        .get_shard_iterator()
        .stream_name("it")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_secs(1))
        .send()
        .await
        .unwrap();
    assert_eq!(server.drain(out.shard_iterator.unwrap()).await.0.len(), 6);
    let future = server
        .client
        .get_shard_iterator()
        .stream_name("it")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_secs(4_000_000_000))
        .send()
        .await
        .unwrap();
    assert!(server.drain(future.shard_iterator.unwrap()).await.0.is_empty());
}

#[tokio::test]
async fn get_records_honours_limit_and_reports_lag_and_metadata() {
    let server = Server::start().await;
    server.create("lag", 1).await;
    let entries: Vec<PutRecordsRequestEntry> = (0..20)
        .map(|i| PutRecordsRequestEntry::builder().partition_key(format!("pk-{i}")).data(Blob::new(vec![i as u8; 10])).build().unwrap())
        .collect();
    let put = server.client.put_records().stream_name("lag").set_records(Some(entries)).send().await.unwrap();
    assert_eq!(put.failed_record_count(), Some(0));
    assert_eq!(put.records().len(), 20);
    assert!(put.records().iter().all(|r| r.shard_id() == Some(SHARD) && r.error_code().is_none()));

    let iterator = server.iterator("lag", SHARD, ShardIteratorType::TrimHorizon, None).await;
    let first = server.client.get_records().shard_iterator(iterator).limit(7).send().await.unwrap();
    assert_eq!(first.records().len(), 7);
    assert!(first.millis_behind_latest().is_some());
    let record = &first.records()[3];
    assert_eq!(record.partition_key(), Some("pk-3"));
    assert_eq!(record.data().as_ref(), &[3u8; 10]);
    assert_eq!(record.sequence_number(), put.records()[3].sequence_number().unwrap());
    let arrival = record.approximate_arrival_timestamp().expect("arrival time").secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - arrival).abs() < 60, "arrival {arrival} vs now {now}");
    let rest = server.client.get_records().shard_iterator(first.next_shard_iterator().unwrap()).send().await.unwrap();
    assert_eq!(rest.records().len(), 13);
    assert_eq!(rest.millis_behind_latest(), Some(0));
    assert_eq!(rest.records()[0].partition_key(), Some("pk-7"));
}

#[tokio::test]
async fn partition_keys_and_explicit_hash_keys_route_like_the_service() {
    let server = Server::start().await;
    server.create("route", 2).await;
    // md5("a") starts with 0x0c: the lower half; an explicit key overrides it
    let (low, _) = server.put("route", "a", b"x").await;
    assert_eq!(low, "shardId-000000000000");
    let high = server
        .client
        .put_record()
        .stream_name("route")
        .partition_key("a")
        .explicit_hash_key((1u128 << 127).to_string())
        .data(Blob::new("y"))
        .send()
        .await
        .unwrap();
    assert_eq!(high.shard_id(), "shardId-000000000001");
    // the largest record: 1 MiB of data and key together
    let key = "k".repeat(256);
    let data = vec![0u8; 1024 * 1024 - key.len()];
    let out = server.client.put_record().stream_name("route").partition_key(&key).data(Blob::new(data.clone())).send().await.unwrap();
    let iterator = server.iterator("route", out.shard_id(), ShardIteratorType::AtSequenceNumber, Some(out.sequence_number())).await;
    let got = server.client.get_records().shard_iterator(iterator).limit(1).send().await.unwrap();
    assert_eq!(got.records()[0].data().as_ref(), &data[..]);
    assert_eq!(got.records()[0].partition_key(), Some(key.as_str()));
}

#[tokio::test]
async fn get_records_stops_at_ten_mebibytes() {
    let server = Server::start().await;
    server.create("big", 1).await;
    let chunk = vec![7u8; 1000 * 1000];
    for _ in 0..3 {
        let entries: Vec<PutRecordsRequestEntry> =
            (0..4).map(|i| PutRecordsRequestEntry::builder().partition_key(format!("{i}")).data(Blob::new(chunk.clone())).build().unwrap()).collect();
        server.client.put_records().stream_name("big").set_records(Some(entries)).send().await.unwrap();
    }
    let iterator = server.iterator("big", SHARD, ShardIteratorType::TrimHorizon, None).await;
    let first = server.client.get_records().shard_iterator(iterator).send().await.unwrap();
    assert_eq!(first.records().len(), 10, "10 MiB holds ten 1 MB records");
    assert!(first.millis_behind_latest().is_some());
    let rest = server.client.get_records().shard_iterator(first.next_shard_iterator().unwrap()).send().await.unwrap();
    assert_eq!(rest.records().len(), 2);
}

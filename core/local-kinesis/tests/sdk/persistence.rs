//! Records, shards and lineage survive a restart on the same data
//! directory; sequence numbers keep increasing; old iterators still work.

use aws_sdk_kinesis::types::ShardIteratorType;

use super::{seq_less, Server};

#[tokio::test]
async fn records_and_lineage_survive_a_restart() {
    let server = Server::start().await;
    server.create("keep", 1).await;
    let mut sequences = Vec::new();
    for i in 0..50 {
        sequences.push(server.put("keep", &format!("k{i}"), format!("before-{i}").as_bytes()).await.1);
    }
    server
        .client
        .split_shard()
        .stream_name("keep")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    server.create("other", 2).await;
    let (child, child_seq) = server.put("keep", "a", b"child-before").await;
    let iterator = server.iterator("keep", &child, ShardIteratorType::TrimHorizon, None).await;
    let old_endpoint = server.endpoint();

    let server = server.restart().await;
    assert_ne!(server.endpoint(), "", "{old_endpoint}");
    let names = server.client.list_streams().send().await.unwrap().stream_names().to_vec();
    assert_eq!(names, ["keep", "other"]);
    let shards = server.client.list_shards().stream_name("keep").send().await.unwrap().shards().to_vec();
    assert_eq!(shards.len(), 3);
    assert!(shards[0].sequence_number_range().unwrap().ending_sequence_number().is_some());
    assert_eq!(shards[1].parent_shard_id(), Some("shardId-000000000000"));

    let parent = server.iterator("keep", "shardId-000000000000", ShardIteratorType::TrimHorizon, None).await;
    let (data, next, children) = server.drain(parent).await;
    assert_eq!(data.len(), 50);
    assert_eq!(data[49], b"before-49");
    assert!(next.is_none());
    assert_eq!(children.len(), 2);
    let at = server.iterator("keep", "shardId-000000000000", ShardIteratorType::AtSequenceNumber, Some(&sequences[10])).await;
    assert_eq!(server.drain(at).await.0[0], b"before-10");

    // the iterator issued before the restart still reads, and the counter went on
    let (_, later_seq) = server.put("keep", "a", b"child-after").await;
    assert!(seq_less(&child_seq, &later_seq), "{child_seq} < {later_seq}");
    let (data, _, _) = server.drain(iterator).await;
    assert_eq!(data, vec![b"child-before".to_vec(), b"child-after".to_vec()]);
}

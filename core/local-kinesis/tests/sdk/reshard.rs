//! SplitShard, MergeShards, UpdateShardCount, and ListShards filters and
//! paging over the resulting lineage.

use aws_sdk_kinesis::types::{ScalingType, Shard, ShardFilter, ShardFilterType, ShardIteratorType};

use super::{failure, Server};

async fn list(server: &Server, stream: &str, filter: Option<ShardFilter>) -> Vec<Shard> {
    server.client.list_shards().stream_name(stream).set_shard_filter(filter).send().await.unwrap().shards().to_vec()
}

fn ids(shards: &[Shard]) -> Vec<&str> {
    shards.iter().map(|s| s.shard_id()).collect()
}

fn filter(kind: ShardFilterType) -> Option<ShardFilter> {
    Some(ShardFilter::builder().r#type(kind).build().unwrap())
}

#[tokio::test]
async fn split_then_merge_keeps_lineage_and_ends_parents() {
    let server = Server::start().await;
    server.create("rs", 1).await;
    let (_, before) = server.put("rs", "a", b"parent-record").await;
    let half = (1u128 << 127).to_string();
    server.client.split_shard().stream_name("rs").shard_to_split("shardId-000000000000").new_starting_hash_key(&half).send().await.unwrap();

    let shards = list(&server, "rs", None).await;
    assert_eq!(ids(&shards), ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]);
    assert!(shards[0].sequence_number_range().unwrap().ending_sequence_number().is_some());
    for child in &shards[1..] {
        assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
        assert!(child.adjacent_parent_shard_id().is_none());
    }
    assert_eq!(shards[1].hash_key_range().unwrap().ending_hash_key(), ((1u128 << 127) - 1).to_string());
    assert_eq!(shards[2].hash_key_range().unwrap().starting_hash_key(), half);

    // the parent takes no more records; md5("a") is in the lower half
    let (child, after) = server.put("rs", "a", b"child-record").await;
    assert_eq!(child, "shardId-000000000001");
    assert_eq!((before.len(), after.len()), (56, 56));
    let iterator = server.iterator("rs", "shardId-000000000000", ShardIteratorType::TrimHorizon, None).await;
    let (data, next, children) = server.drain(iterator).await;
    assert_eq!(data, vec![b"parent-record".to_vec()]);
    assert!(next.is_none(), "a closed shard ends with a null NextShardIterator");
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    // reading at the end again answers the end again
    let at_end = server.iterator("rs", "shardId-000000000000", ShardIteratorType::Latest, None).await;
    let end = server.client.get_records().shard_iterator(at_end).send().await.unwrap();
    assert!(end.records().is_empty() && end.next_shard_iterator().is_none());
    let child_shard = &end.child_shards()[0];
    assert_eq!(child_shard.parent_shards(), ["shardId-000000000000"]);
    assert!(child_shard.hash_key_range().is_some());

    // errors: closed shard, bad split point, non-adjacent merge
    let split = |shard: &str, key: &str| server.client.split_shard().stream_name("rs").shard_to_split(shard).new_starting_hash_key(key).send();
    assert_eq!(failure(split("shardId-000000000000", "5").await), ("InvalidArgumentException".into(), 400));
    assert_eq!(failure(split("shardId-000000000001", "1").await), ("InvalidArgumentException".into(), 400));
    assert_eq!(failure(split("shardId-000000000042", "10").await), ("ResourceNotFoundException".into(), 400));

    server
        .client
        .merge_shards()
        .stream_name("rs")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    let shards = list(&server, "rs", filter(ShardFilterType::AtLatest)).await;
    assert_eq!(ids(&shards), ["shardId-000000000003"]);
    assert_eq!(shards[0].parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(shards[0].adjacent_parent_shard_id(), Some("shardId-000000000002"));
    assert_eq!(shards[0].hash_key_range().unwrap().starting_hash_key(), "0");
    assert_eq!(shards[0].hash_key_range().unwrap().ending_hash_key(), u128::MAX.to_string());
    let iterator = server.iterator("rs", "shardId-000000000002", ShardIteratorType::TrimHorizon, None).await;
    let (_, next, children) = server.drain(iterator).await;
    assert!(next.is_none());
    assert_eq!(children, ["shardId-000000000003"]);

    // filters over the lineage
    assert_eq!(ids(&list(&server, "rs", filter(ShardFilterType::AtTrimHorizon)).await), ["shardId-000000000000"]);
    assert_eq!(list(&server, "rs", filter(ShardFilterType::FromTrimHorizon)).await.len(), 4);
    let after = Some(ShardFilter::builder().r#type(ShardFilterType::AfterShardId).shard_id("shardId-000000000001").build().unwrap());
    assert_eq!(ids(&list(&server, "rs", after).await), ["shardId-000000000002", "shardId-000000000003"]);
    let from_now = Some(
        ShardFilter::builder()
            .r#type(ShardFilterType::FromTimestamp)
            .timestamp(aws_sdk_kinesis::primitives::DateTime::from(std::time::SystemTime::now() + std::time::Duration::from_secs(5)))
            .build()
            .unwrap(),
    );
    assert_eq!(ids(&list(&server, "rs", from_now).await), ["shardId-000000000003"]);
    let at_start = Some(ShardFilter::builder().r#type(ShardFilterType::AtTimestamp).timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs(1)).build().unwrap());
    assert_eq!(ids(&list(&server, "rs", at_start).await), ["shardId-000000000000"]);
    let not_adjacent = server.client.merge_shards().stream_name("rs").shard_to_merge("shardId-000000000003").adjacent_shard_to_merge("shardId-000000000003").send().await;
    assert_eq!(failure(not_adjacent), ("InvalidArgumentException".into(), 400));
}

#[tokio::test]
async fn list_shards_pages_with_next_token() {
    let server = Server::start().await;
    server.create("pages", 5).await;
    let mut seen = Vec::new();
    let mut page = server.client.list_shards().stream_name("pages").max_results(2).send().await.unwrap();
    loop {
        seen.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        let Some(token) = page.next_token().map(str::to_owned) else { break };
        assert_eq!(
            failure(server.client.list_shards().stream_name("pages").next_token(&token).send().await),
            ("InvalidArgumentException".into(), 400)
        );
        page = server.client.list_shards().next_token(token).max_results(2).send().await.unwrap();
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[4], "shardId-000000000004");
    let after = server.client.list_shards().stream_name("pages").exclusive_start_shard_id("shardId-000000000002").send().await.unwrap();
    assert_eq!(ids(after.shards()), ["shardId-000000000003", "shardId-000000000004"]);
    assert_eq!(failure(server.client.list_shards().next_token("garbage").send().await), ("InvalidArgumentException".into(), 400));
}

#[tokio::test]
async fn update_shard_count_scales_uniformly_through_splits_and_merges() {
    let server = Server::start().await;
    server.create("scale", 2).await;
    let out = server.client.update_shard_count().stream_name("scale").target_shard_count(3).scaling_type(ScalingType::UniformScaling).send().await.unwrap();
    assert_eq!((out.current_shard_count(), out.target_shard_count()), (Some(2), Some(3)));
    let open = list(&server, "scale", filter(ShardFilterType::AtLatest)).await;
    let mut starts: Vec<u128> = open.iter().map(|s| s.hash_key_range().unwrap().starting_hash_key().parse().unwrap()).collect();
    starts.sort();
    let starts: Vec<String> = starts.iter().map(u128::to_string).collect();
    assert_eq!(starts, ["0", "113427455640312821154458202477256070485", "226854911280625642308916404954512140970"]);
    let all = list(&server, "scale", None).await;
    for shard in &all {
        // every non-root shard names only existing parents, at most two
        for parent in shard.parent_shard_id().into_iter().chain(shard.adjacent_parent_shard_id()) {
            assert!(all.iter().any(|s| s.shard_id() == parent));
        }
    }
    // records still route to exactly one open shard, and scaling back works
    server.put("scale", "x", b"1").await;
    server.client.update_shard_count().stream_name("scale").target_shard_count(2).scaling_type(ScalingType::UniformScaling).send().await.unwrap();
    let open = list(&server, "scale", filter(ShardFilterType::AtLatest)).await;
    assert_eq!(open.len(), 2);
    let mut starts: Vec<String> = open.iter().map(|s| s.hash_key_range().unwrap().starting_hash_key().to_owned()).collect();
    starts.sort_by_key(|s| (s.len(), s.clone()));
    assert_eq!(starts, ["0".to_owned(), (1u128 << 127).to_string()]);
    let too_many = server.client.update_shard_count().stream_name("scale").target_shard_count(5).scaling_type(ScalingType::UniformScaling).send().await;
    assert_eq!(failure(too_many), ("LimitExceededException".into(), 400));
}

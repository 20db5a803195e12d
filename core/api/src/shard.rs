//! What Shardline knows about a shard from `ListShards`.

/// A shard as listed by the stream: lineage, hash-key range and whether it
/// is closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardInfo {
    /// Shard id, e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// Parent shard ids (one after a split, two after a merge, none for an
    /// original shard). A shard is not read until every parent was read to
    /// its end and checkpointed `SHARD_END`.
    pub parent_shard_ids: Vec<String>,
    /// Lowest hash key of the shard's range, a decimal 128-bit number.
    pub starting_hash_key: String,
    /// Highest hash key of the shard's range (inclusive).
    pub ending_hash_key: String,
    /// True when the shard has an ending sequence number (it was split or
    /// merged and takes no more writes).
    pub closed: bool,
}

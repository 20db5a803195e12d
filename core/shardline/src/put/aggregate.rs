//! KPL-compatible aggregation for `shardline put --aggregate`.
//!
//! As the KPL does, user records are grouped by the shard their partition
//! key hashes to, and each group is written as one aggregated record whose
//! explicit hash key is that of its first user record, so the aggregate
//! lands on the shard every user record in it belongs to. The shard map is
//! read once at start; after a reshard, records may land in an aggregate
//! whose sub-records span two child shards, which consumers (the Java KCL
//! and Shardline) then skip as out of range — restart the producer after
//! resharding, as with the KPL's own shard map refresh.

use std::time::Duration;

use shardline_kinesis::kpl::{self, UserRecord};

use super::producer::Ready;

/// Per-record overhead of the aggregate's protobuf (tags, lengths, indexes).
const RECORD_OVERHEAD: usize = 12;
/// Magic, digest and table overhead per aggregate.
const AGGREGATE_OVERHEAD: usize = 4 + 16 + 16;

struct Group {
    end_hash_key: u128,
    start_hash_key: u128,
    records: Vec<UserRecord>,
    bytes: usize,
}

/// Groups user records by destination shard.
pub(super) struct Aggregator {
    groups: Vec<Group>,
    max_bytes: usize,
}

impl Aggregator {
    /// Reads the stream's open shards.
    pub(super) async fn new(client: &aws_sdk_kinesis::Client, stream: &str, max_bytes: usize, endpoint: &str) -> anyhow::Result<Aggregator> {
        let mut groups = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = client.list_shards();
            request = match &next_token {
                Some(token) => request.next_token(token),
                None => request.stream_name(stream),
            };
            let output = match request.send().await {
                Ok(o) => o,
                Err(e) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    anyhow::bail!("ListShards on stream {stream} at {endpoint}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e));
                }
            };
            for shard in output.shards() {
                let open = shard.sequence_number_range().map(|r| r.ending_sequence_number().is_none()).unwrap_or(true);
                let Some(range) = shard.hash_key_range() else { continue };
                if !open {
                    continue;
                }
                let start = range.starting_hash_key().parse::<u128>();
                let end = range.ending_hash_key().parse::<u128>();
                if let (Ok(start_hash_key), Ok(end_hash_key)) = (start, end) {
                    groups.push(Group { start_hash_key, end_hash_key, records: Vec::new(), bytes: 0 });
                }
            }
            next_token = output.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        if groups.is_empty() {
            anyhow::bail!("stream {stream} at {endpoint} has no open shard to aggregate for");
        }
        Ok(Aggregator { groups, max_bytes: max_bytes.clamp(1024, super::producer::MAX_RECORD_BYTES / 2) })
    }

    /// Adds a user record; returns aggregates that became full.
    pub(super) fn add(&mut self, partition_key: String, data: Vec<u8>) -> Vec<Ready> {
        let size = data.len() + partition_key.len() + RECORD_OVERHEAD;
        if size + AGGREGATE_OVERHEAD > self.max_bytes {
            // Too big to share an aggregate: send it on its own, as the KPL does.
            return vec![Ready { partition_key, explicit_hash_key: None, data, user_records: 1 }];
        }
        let hash = kpl::effective_hash_key(&partition_key, None);
        let Some(index) = self.groups.iter().position(|g| g.start_hash_key <= hash && hash <= g.end_hash_key) else {
            return vec![Ready { partition_key, explicit_hash_key: None, data, user_records: 1 }];
        };
        let mut out = Vec::new();
        if self.groups[index].bytes + size + AGGREGATE_OVERHEAD > self.max_bytes {
            out.extend(take(&mut self.groups[index]));
        }
        let group = &mut self.groups[index];
        group.records.push(UserRecord { partition_key, explicit_hash_key: None, data: data.into() });
        group.bytes += size;
        out
    }

    /// Every partial aggregate.
    pub(super) fn drain(&mut self) -> Vec<Ready> {
        self.groups.iter_mut().filter_map(take).collect()
    }
}

fn take(group: &mut Group) -> Option<Ready> {
    if group.records.is_empty() {
        return None;
    }
    let records = std::mem::take(&mut group.records);
    group.bytes = 0;
    let first = &records[0];
    let explicit_hash_key = Some(kpl::effective_hash_key(&first.partition_key, None).to_string());
    let partition_key = first.partition_key.clone();
    let user_records = records.len() as u64;
    Some(Ready { partition_key, explicit_hash_key, data: kpl::aggregate(&records), user_records })
}

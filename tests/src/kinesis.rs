//! Kinesis helpers: fresh streams, puts with retries, KPL aggregates, splits.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};

/// A user record to put (plain, or inside a KPL aggregate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Partition key.
    pub partition_key: String,
    /// Explicit hash key (decimal), if any.
    pub explicit_hash_key: Option<String>,
    /// Payload.
    pub data: Vec<u8>,
}

impl TestRecord {
    /// A record with `partition_key` and a JSON payload.
    pub fn json(partition_key: impl Into<String>, value: &serde_json::Value) -> TestRecord {
        TestRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: value.to_string().into_bytes(),
        }
    }

    /// The hash key that routes this record: the explicit hash key, else
    /// the MD5 of the partition key as a 128-bit big-endian integer.
    pub fn hash_key(&self) -> u128 {
        match &self.explicit_hash_key {
            Some(k) => k
                .parse()
                .unwrap_or_else(|_| panic!("explicit hash key {k:?} is not a u128")),
            None => u128::from_be_bytes(Md5::digest(self.partition_key.as_bytes()).into()),
        }
    }
}

/// Where Kinesis put one Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Shard id.
    pub shard_id: String,
    /// Sequence number.
    pub sequence_number: String,
}

/// A shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard id.
    pub shard_id: String,
    /// Parent shard id (after a split or merge).
    pub parent_shard_id: Option<String>,
    /// Second parent (after a merge).
    pub adjacent_parent_shard_id: Option<String>,
    /// First hash key of the shard's range.
    pub starting_hash_key: u128,
    /// Last hash key of the shard's range.
    pub ending_hash_key: u128,
    /// Set once the shard is closed.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// Open (not closed by a reshard).
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// True when `hash_key` is in the shard's range.
    pub fn contains(&self, hash_key: u128) -> bool {
        self.starting_hash_key <= hash_key && hash_key <= self.ending_hash_key
    }
}

/// A Kinesis client for the emulator.
#[derive(Clone)]
pub struct Kinesis {
    /// The SDK client, for calls the helpers do not cover.
    pub client: Client,
}

const MAX_PUT_ATTEMPTS: usize = 20;

impl Kinesis {
    /// A client for the Kinesis emulator at `endpoint`.
    pub fn new(endpoint: &str) -> Kinesis {
        Kinesis {
            client: Client::new(&shardline_aws::emulator_sdk_config(endpoint)),
        }
    }

    /// Creates a stream named `unique_name(prefix)` with `shards` shards and
    /// waits until it is `ACTIVE`. Returns its name.
    ///
    /// # Errors
    /// When the stream cannot be created or does not become active in 30 s.
    pub async fn create_stream(&self, prefix: &str, shards: i32) -> anyhow::Result<String> {
        let name = crate::unique_name(prefix);
        self.client
            .create_stream()
            .stream_name(&name)
            .shard_count(shards)
            .send()
            .await
            .with_context(|| format!("CreateStream {name}"))?;
        self.wait_active(&name).await?;
        Ok(name)
    }

    /// Waits until `stream` is `ACTIVE` (30 s at most).
    ///
    /// # Errors
    /// On a `DescribeStreamSummary` error or the timeout.
    pub async fn wait_active(&self, stream: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let summary = self
                .client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
                .with_context(|| format!("DescribeStreamSummary {stream}"))?;
            let status = summary
                .stream_description_summary()
                .map(|s| s.stream_status().clone());
            if status == Some(StreamStatus::Active) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("stream {stream} not ACTIVE after 30s (status {status:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// All shards of `stream` (open and closed), in `ListShards` order.
    ///
    /// # Errors
    /// On a `ListShards` error or a malformed hash key.
    pub async fn list_shards(&self, stream: &str) -> anyhow::Result<Vec<ShardInfo>> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(stream),
            };
            let page = request
                .send()
                .await
                .with_context(|| format!("ListShards {stream}"))?;
            for shard in page.shards() {
                let range = shard
                    .hash_key_range()
                    .context("shard without a hash key range")?;
                shards.push(ShardInfo {
                    shard_id: shard.shard_id().to_owned(),
                    parent_shard_id: shard.parent_shard_id().map(str::to_owned),
                    adjacent_parent_shard_id: shard.adjacent_parent_shard_id().map(str::to_owned),
                    starting_hash_key: range
                        .starting_hash_key()
                        .parse()
                        .context("starting hash key")?,
                    ending_hash_key: range.ending_hash_key().parse().context("ending hash key")?,
                    ending_sequence_number: shard
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .map(str::to_owned),
                });
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                return Ok(shards);
            }
        }
    }

    /// Puts `records` with `PutRecords` (500 a call, in order), retrying the
    /// entries that fail. Returns where each record went, in input order.
    ///
    /// # Errors
    /// On a call error, or entries still failing after 20 attempts.
    pub async fn put_records(
        &self,
        stream: &str,
        records: &[TestRecord],
    ) -> anyhow::Result<Vec<PutResult>> {
        let mut results = Vec::with_capacity(records.len());
        for chunk in records.chunks(500) {
            results.extend(self.put_chunk(stream, chunk).await?);
        }
        Ok(results)
    }

    async fn put_chunk(
        &self,
        stream: &str,
        chunk: &[TestRecord],
    ) -> anyhow::Result<Vec<PutResult>> {
        let mut results: Vec<Option<PutResult>> = vec![None; chunk.len()];
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        for attempt in 1..=MAX_PUT_ATTEMPTS {
            let mut request = self.client.put_records().stream_name(stream);
            for &i in &pending {
                let r = &chunk[i];
                let entry = PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .set_explicit_hash_key(r.explicit_hash_key.clone())
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .context("PutRecordsRequestEntry")?;
                request = request.records(entry);
            }
            let output = request
                .send()
                .await
                .with_context(|| format!("PutRecords {stream}"))?;
            let mut failed = Vec::new();
            for (entry, &i) in output.records().iter().zip(&pending) {
                match (
                    entry.error_code(),
                    entry.shard_id(),
                    entry.sequence_number(),
                ) {
                    (None, Some(shard_id), Some(seq)) => {
                        results[i] = Some(PutResult {
                            shard_id: shard_id.to_owned(),
                            sequence_number: seq.to_owned(),
                        })
                    }
                    _ => failed.push(i),
                }
            }
            if output.records().len() != pending.len() {
                bail!(
                    "PutRecords answered {} entries for {} records",
                    output.records().len(),
                    pending.len()
                );
            }
            if failed.is_empty() {
                return Ok(results
                    .into_iter()
                    .map(|r| r.expect("every entry succeeded"))
                    .collect());
            }
            pending = failed;
            tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
        }
        bail!(
            "{} PutRecords entries still failing after {MAX_PUT_ATTEMPTS} attempts",
            pending.len()
        )
    }

    /// Puts `records` as KPL aggregates of at most `per_aggregate` user
    /// records. Like the KPL, an aggregate only holds records that route to
    /// the same (open) shard, and the Kinesis record carries the first user
    /// record's partition and explicit hash key, so each aggregate lands in
    /// the shard its user records belong to (KCL de-aggregation drops user
    /// records whose hash key is outside the shard's range).
    ///
    /// Returns, for each user record in input order, where its aggregate went.
    ///
    /// # Errors
    /// As [`Kinesis::put_records`], or when no open shard covers a record.
    pub async fn put_aggregated(
        &self,
        stream: &str,
        records: &[TestRecord],
        per_aggregate: usize,
    ) -> anyhow::Result<Vec<PutResult>> {
        assert!(per_aggregate > 0);
        let shards: Vec<ShardInfo> = self
            .list_shards(stream)
            .await?
            .into_iter()
            .filter(ShardInfo::is_open)
            .collect();
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); shards.len()];
        for (i, r) in records.iter().enumerate() {
            let hash = r.hash_key();
            let s = shards
                .iter()
                .position(|s| s.contains(hash))
                .context("no open shard covers the hash key")?;
            by_shard[s].push(i);
        }
        let mut aggregates = Vec::new();
        let mut members = Vec::new();
        for indexes in by_shard {
            for group in indexes.chunks(per_aggregate) {
                let users: Vec<TestRecord> = group.iter().map(|&i| records[i].clone()).collect();
                aggregates.push(TestRecord {
                    partition_key: users[0].partition_key.clone(),
                    explicit_hash_key: users[0].explicit_hash_key.clone(),
                    data: crate::kpl::aggregate(&users),
                });
                members.push(group.to_vec());
            }
        }
        let put = self.put_records(stream, &aggregates).await?;
        let mut results: Vec<Option<PutResult>> = vec![None; records.len()];
        for (result, group) in put.into_iter().zip(members) {
            for i in group {
                results[i] = Some(result.clone());
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record is in one aggregate"))
            .collect())
    }

    /// Splits `shard_id` at the middle of its hash key range, waits until the
    /// stream is `ACTIVE` again and returns the two child shard ids.
    ///
    /// # Errors
    /// On a Kinesis error, or when the children cannot be found.
    pub async fn split_shard_in_half(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> anyhow::Result<(String, String)> {
        let shards = self.list_shards(stream).await?;
        let parent = shards
            .iter()
            .find(|s| s.shard_id == shard_id)
            .context("shard to split not found")?;
        let middle =
            parent.starting_hash_key + (parent.ending_hash_key - parent.starting_hash_key) / 2 + 1;
        self.client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(shard_id)
            .new_starting_hash_key(middle.to_string())
            .send()
            .await
            .with_context(|| format!("SplitShard {stream} {shard_id}"))?;
        self.wait_active(stream).await?;
        let mut children: Vec<ShardInfo> = self
            .list_shards(stream)
            .await?
            .into_iter()
            .filter(|s| s.parent_shard_id.as_deref() == Some(shard_id))
            .collect();
        children.sort_by_key(|s| s.starting_hash_key);
        match children.as_slice() {
            [low, high] => Ok((low.shard_id.clone(), high.shard_id.clone())),
            other => bail!("expected 2 children of {shard_id}, found {other:?}"),
        }
    }
    /// Merges the adjacent shards `shard_id` and `adjacent_shard_id`, waits
    /// until the stream is `ACTIVE` again and returns the child's id.
    ///
    /// # Errors
    /// On a Kinesis error, or when the child cannot be found.
    pub async fn merge_shards(
        &self,
        stream: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> anyhow::Result<String> {
        self.client
            .merge_shards()
            .stream_name(stream)
            .shard_to_merge(shard_id)
            .adjacent_shard_to_merge(adjacent_shard_id)
            .send()
            .await
            .with_context(|| format!("MergeShards {stream} {shard_id} {adjacent_shard_id}"))?;
        self.wait_active(stream).await?;
        let children: Vec<ShardInfo> = self
            .list_shards(stream)
            .await?
            .into_iter()
            .filter(|s| {
                let parents = [s.parent_shard_id.as_deref(), s.adjacent_parent_shard_id.as_deref()];
                parents.contains(&Some(shard_id)) && parents.contains(&Some(adjacent_shard_id))
            })
            .collect();
        match children.as_slice() {
            [child] => Ok(child.shard_id.clone()),
            other => bail!("expected 1 child of {shard_id} + {adjacent_shard_id}, found {other:?}"),
        }
    }
}

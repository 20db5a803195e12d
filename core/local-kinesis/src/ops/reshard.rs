//! Resharding: SplitShard, MergeShards and UpdateShardCount.
//!
//! A reshard closes its parent shards (they keep their records, end with
//! `EndingSequenceNumber`, and GetRecords at their end answers a null
//! `NextShardIterator` with `ChildShards`) and adds children that name them
//! in `ParentShardId` / `AdjacentParentShardId`. It is applied at once (the
//! stream never shows `UPDATING`) with the stream write-locked, so no put
//! lands in a closed shard.
//!
//! UpdateShardCount with `UNIFORM_SCALING` is carried out like the service
//! does it, as splits and merges: every open shard is split at the target
//! boundaries that fall inside it, then the pieces of each target range are
//! merged pairwise. Intermediate shards are closed at once and hold no
//! records; every shard keeps at most two parents.

use std::sync::Arc;

use super::request::Request;
use super::streams::SHARD_LIMIT;
use crate::error::{ApiError, ACCOUNT_ID};
use crate::hashkey;
use crate::protocol::Output;
use crate::state::{now_ms, parse_shard_id, shard_id, write, Server, Shard, Stream, StreamState};
use crate::storage::log::ShardLog;
use crate::storage::ShardMeta;

/// Changes to a stream's shards, applied to the state as they are made and
/// undone if the metadata cannot be saved.
struct Reshard<'a> {
    server: &'a Server,
    stream: &'a Stream,
    state: &'a mut StreamState,
    now: u64,
    shards_before: usize,
    closed: Vec<Arc<Shard>>,
}

impl<'a> Reshard<'a> {
    fn new(server: &'a Server, stream: &'a Stream, state: &'a mut StreamState) -> Reshard<'a> {
        let shards_before = state.shards.len();
        Reshard { server, stream, state, now: now_ms(), shards_before, closed: Vec::new() }
    }

    fn open_shard(&self, id: &str) -> Result<Arc<Shard>, ApiError> {
        let not_found = || ApiError::not_found(format!("Could not find shard {id} in stream {} under account {ACCOUNT_ID}.", self.stream.name));
        let shard = parse_shard_id(id).and_then(|i| self.state.shard(i)).cloned().ok_or_else(not_found)?;
        if shard.closed_ms().is_some() {
            return Err(ApiError::invalid_argument(format!(
                "Shard {} in stream {} under account {ACCOUNT_ID} has already been merged or split, and thus is not eligible for merging or splitting.",
                shard.id, self.stream.name
            )));
        }
        Ok(shard)
    }

    fn add(&mut self, parent: &Shard, adjacent: Option<&Shard>, start: u128, end: u128) -> Result<Arc<Shard>, ApiError> {
        let meta = ShardMeta {
            index: self.state.shards.len() as u32,
            parent: Some(parent.index),
            adjacent_parent: adjacent.map(|s| s.index),
            starting_hash_key: start.to_string(),
            ending_hash_key: end.to_string(),
            created_ms: self.now,
            closed_ms: None,
        };
        let log = ShardLog::create(&self.server.data.shard_dir(&self.stream.name, self.stream.created_ms, &shard_id(meta.index)))?;
        let shard = Arc::new(Shard::new(&meta, log));
        self.state.shards.push(shard.clone());
        Ok(shard)
    }

    fn close(&mut self, shard: &Arc<Shard>) {
        shard.close(self.now);
        self.closed.push(shard.clone());
    }

    fn split(&mut self, shard: &Arc<Shard>, new_start: u128) -> Result<(Arc<Shard>, Arc<Shard>), ApiError> {
        let low = self.add(shard, None, shard.start, new_start - 1)?;
        let high = self.add(shard, None, new_start, shard.end)?;
        self.close(shard);
        Ok((low, high))
    }

    fn merge(&mut self, shard: &Arc<Shard>, adjacent: &Arc<Shard>) -> Result<Arc<Shard>, ApiError> {
        let merged = self.add(shard, Some(adjacent), shard.start.min(adjacent.start), shard.end.max(adjacent.end))?;
        self.close(shard);
        self.close(adjacent);
        Ok(merged)
    }

    fn check_limit(&self, added: usize) -> Result<(), ApiError> {
        let open = self.state.open_shards().len();
        if open + added > SHARD_LIMIT {
            return Err(ApiError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {ACCOUNT_ID} in {}. Current shard count for the account: {open}. Limit: {SHARD_LIMIT}.",
                self.server.region
            )));
        }
        Ok(())
    }

    /// Saves the metadata. Without a successful commit (an error on the
    /// way, or the save failing) the shards are restored as they were.
    fn commit(mut self) -> Result<(), ApiError> {
        self.server.persist(&self.stream.name, Some(self.stream.meta(self.state)))?;
        self.closed.clear();
        self.shards_before = self.state.shards.len();
        Ok(())
    }
}

impl Drop for Reshard<'_> {
    fn drop(&mut self) {
        for shard in &self.closed {
            shard.reopen();
        }
        self.state.shards.truncate(self.shards_before);
    }
}

/// SplitShard.
pub(crate) fn split_shard(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let id = req.str_len("ShardToSplit", 1, 128)?;
    let key_text = req.str("NewStartingHashKey")?;
    let new_start = hashkey::parse(key_text)
        .ok_or_else(|| ApiError::validation(&format!("'{key_text}'"), "newStartingHashKey", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})"))?;
    let mut state = write(&stream.state);
    let mut reshard = Reshard::new(server, &stream, &mut state);
    let shard = reshard.open_shard(id)?;
    if new_start <= shard.start.saturating_add(1) || new_start >= shard.end {
        return Err(ApiError::invalid_argument(format!(
            "NewStartingHashKey {key_text} used in SplitShard() on shard {} in stream {} under account {ACCOUNT_ID} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
            shard.id, stream.name, shard.start, shard.end
        )));
    }
    reshard.check_limit(1)?;
    reshard.split(&shard, new_start)?;
    reshard.commit()?;
    tracing::info!(stream = %stream.name, shard_id = %shard.id, "split shard");
    Ok(Output::empty())
}

/// MergeShards.
pub(crate) fn merge_shards(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let first = req.str_len("ShardToMerge", 1, 128)?;
    let second = req.str_len("AdjacentShardToMerge", 1, 128)?;
    let mut state = write(&stream.state);
    let mut reshard = Reshard::new(server, &stream, &mut state);
    let (a, b) = (reshard.open_shard(first)?, reshard.open_shard(second)?);
    let adjacent = a.index != b.index && (a.end.checked_add(1) == Some(b.start) || b.end.checked_add(1) == Some(a.start));
    if !adjacent {
        return Err(ApiError::invalid_argument(format!(
            "Shards {} and {} in stream {} under account {ACCOUNT_ID} are not an adjacent pair of shards eligible for merging",
            a.id, b.id, stream.name
        )));
    }
    reshard.merge(&a, &b)?;
    reshard.commit()?;
    tracing::info!(stream = %stream.name, shard_id = %a.id, adjacent_shard_id = %b.id, "merged shards");
    Ok(Output::empty())
}

/// UpdateShardCount.
pub(crate) fn update_shard_count(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let target = req.opt_int("TargetShardCount", 1, 100_000)?.ok_or_else(|| ApiError::validation("null", "targetShardCount", "Member must not be null"))? as usize;
    let scaling = req.str("ScalingType")?;
    if scaling != "UNIFORM_SCALING" {
        return Err(ApiError::validation(&format!("'{scaling}'"), "scalingType", "Member must satisfy enum value set: [UNIFORM_SCALING]"));
    }
    let mut state = write(&stream.state);
    let current = state.open_shards().len();
    let limit = |message: String| ApiError::limit_exceeded(format!("{message} Current open shard count: {current}, Target shard count: {target}"));
    if target > SHARD_LIMIT {
        return Err(limit(format!("Target shard count or number of open shards cannot be greater than {SHARD_LIMIT}.")));
    }
    if target > current * 2 {
        return Err(limit("UpdateShardCount cannot scale up over double your current open shard count.".into()));
    }
    if target * 2 < current {
        return Err(limit("UpdateShardCount cannot scale down below half your current open shard count.".into()));
    }
    let ranges = hashkey::uniform_ranges(target as u32);
    let mut reshard = Reshard::new(server, &stream, &mut state);
    // 1. split open shards at every target boundary inside them
    let open: Vec<Arc<Shard>> = reshard.state.open_shards().into_iter().cloned().collect();
    let mut pieces: Vec<Arc<Shard>> = Vec::new();
    for shard in open {
        let mut rest = shard;
        for &(boundary, _) in ranges.iter().skip(1) {
            if rest.start < boundary && boundary <= rest.end {
                let (low, high) = reshard.split(&rest, boundary)?;
                pieces.push(low);
                rest = high;
            }
        }
        pieces.push(rest);
    }
    // 2. merge the pieces of each target range, left to right
    pieces.sort_by_key(|s| s.start);
    for &(start, end) in &ranges {
        let mut inside = pieces.iter().filter(|s| s.start >= start && s.end <= end);
        let Some(first) = inside.next() else { continue };
        let mut merged = first.clone();
        for next in inside {
            merged = reshard.merge(&merged, next)?;
        }
    }
    reshard.commit()?;
    tracing::info!(stream = %stream.name, from = current, to = target, "updated shard count");
    Ok(Output::Obj(vec![
        ("StreamName", Output::Str(stream.name.clone())),
        ("CurrentShardCount", Output::Int(current as i64)),
        ("TargetShardCount", Output::Int(target as i64)),
        ("StreamARN", Output::Str(stream.arn.clone())),
    ]))
}

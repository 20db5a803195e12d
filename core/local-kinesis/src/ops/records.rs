//! PutRecord, PutRecords and GetRecords.
//!
//! Limits, as documented: a record's data is at most 1 MiB
//! (`ValidationException`), data plus partition key at most 1 MiB and a
//! PutRecords call at most 5 MiB of them (`InvalidArgumentException`), 1 to
//! 500 records per PutRecords, partition keys of 1 to 256 characters; a
//! GetRecords call returns at most `Limit` (≤ 10 000) records and 10 MiB.

use std::sync::Arc;

use super::iterators::Iterator;
use super::request::Request;
use crate::error::ApiError;
use crate::hashkey;
use crate::protocol::Output;
use crate::state::{lock, now_ms, read, Server, Shard, StreamState};
use crate::storage::log;

/// Largest data blob, and largest data plus partition key.
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Largest PutRecords request (data plus partition keys).
pub(crate) const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// Most records per PutRecords.
pub(crate) const MAX_PUT_RECORDS: usize = 500;
/// Most bytes per GetRecords answer.
pub(crate) const MAX_GET_BYTES: usize = 10 * 1024 * 1024;

/// A validated record to put.
struct Entry {
    partition_key: String,
    data: Vec<u8>,
    hash_key: u128,
}

fn parse_entry(req: Request<'_>) -> Result<Entry, ApiError> {
    let partition_key = req.str_len("PartitionKey", 1, 256)?.to_owned();
    let data = req.blob("Data")?;
    let shown = format!("'java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]'", data.len());
    req.check_len("Data", &shown, data.len(), 0, MAX_RECORD_BYTES)?;
    let explicit = req.opt_str("ExplicitHashKey")?;
    let hash_key = match explicit {
        None => hashkey::of_partition_key(&partition_key),
        Some(text) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 39 || (text.len() > 1 && text.starts_with('0')) {
                return Err(ApiError::validation(&format!("'{text}'"), "explicitHashKey", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})"));
            }
            hashkey::parse(text).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
                ))
            })?
        }
    };
    if data.len() + partition_key.len() > MAX_RECORD_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "Record size ({} bytes of data plus {} bytes of partition key) exceeds the 1 MiB limit.",
            data.len(),
            partition_key.len()
        )));
    }
    Ok(Entry { partition_key, data, hash_key })
}

/// The open shard whose hash key range holds `hash_key`.
fn route<'s>(open: &[&'s Arc<Shard>], hash_key: u128) -> Result<&'s Arc<Shard>, ApiError> {
    let at = open.partition_point(|s| s.start <= hash_key);
    at.checked_sub(1)
        .and_then(|i| open.get(i))
        .filter(|s| hash_key <= s.end)
        .copied()
        .ok_or_else(|| ApiError::internal(format!("no open shard holds hash key {hash_key}")))
}

/// Appends `entries` to their shards. Returns `(shard, sequence number)`
/// per entry, in order.
fn append(state: &StreamState, entries: &[Entry]) -> Result<Vec<(Arc<Shard>, String)>, ApiError> {
    let open = state.open_shards();
    let mut groups: Vec<(Arc<Shard>, Vec<usize>)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let shard = route(&open, entry.hash_key)?;
        match groups.iter_mut().find(|(s, _)| Arc::ptr_eq(s, shard)) {
            Some((_, members)) => members.push(i),
            None => groups.push((shard.clone(), vec![i])),
        }
    }
    let mut results: Vec<Option<(Arc<Shard>, String)>> = vec![None; entries.len()];
    let now = now_ms();
    for (shard, members) in groups {
        let records: Vec<(&str, &[u8])> = members.iter().map(|&i| (entries[i].partition_key.as_str(), entries[i].data.as_slice())).collect();
        let (first, arrival_ms) = lock(&shard.log).append(&records, now)?;
        for (n, &i) in members.iter().enumerate() {
            results[i] = Some((shard.clone(), shard.sequence_number(first + n as u64, arrival_ms)));
        }
    }
    results.into_iter().map(|r| r.ok_or_else(|| ApiError::internal("record not appended"))).collect()
}

/// PutRecord.
pub(crate) fn put_record(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let entry = parse_entry(req)?;
    if let Some(ordering) = req.opt_str("SequenceNumberForOrdering")? {
        if !ordering.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::validation(&format!("'{ordering}'"), "sequenceNumberForOrdering", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})"));
        }
        // sequence numbers only increase within a shard: the guarantee holds
    }
    let state = read(&stream.state);
    let mut results = append(&state, std::slice::from_ref(&entry))?;
    let (shard, sequence) = results.pop().ok_or_else(|| ApiError::internal("record not appended"))?;
    Ok(Output::Obj(vec![
        ("ShardId", Output::Str(shard.id.clone())),
        ("SequenceNumber", Output::Str(sequence)),
        ("EncryptionType", Output::str("NONE")),
    ]))
}

/// PutRecords. Every record succeeds or the call fails as a whole: this
/// server never throttles, so `FailedRecordCount` is always 0.
pub(crate) fn put_records(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let items = req.list("Records")?.ok_or_else(|| ApiError::validation("null", "records", "Member must not be null"))?;
    req.check_len("Records", "'[...]'", items.len(), 1, MAX_PUT_RECORDS)?;
    let prefixes: Vec<String> = (1..=items.len()).map(|i| format!("records.{i}.member.")).collect();
    let mut entries = Vec::with_capacity(items.len());
    let mut total = 0;
    for (item, prefix) in items.iter().zip(&prefixes) {
        let entry = parse_entry(Request::item(item, prefix)?)?;
        total += entry.data.len() + entry.partition_key.len();
        entries.push(entry);
    }
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "Records size exceeds 5 MB limit: the request holds {total} bytes of data and partition keys."
        )));
    }
    let state = read(&stream.state);
    let results = append(&state, &entries)?;
    let records = results
        .into_iter()
        .map(|(shard, sequence)| Output::Obj(vec![("SequenceNumber", Output::Str(sequence)), ("ShardId", Output::Str(shard.id.clone()))]))
        .collect();
    Ok(Output::Obj(vec![
        ("FailedRecordCount", Output::Int(0)),
        ("Records", Output::List(records)),
        ("EncryptionType", Output::str("NONE")),
    ]))
}

/// The `ChildShards` of `shard`: shards that name it as a parent.
pub(crate) fn child_shards(state: &StreamState, shard: &Shard) -> Output {
    let children = state
        .shards
        .iter()
        .filter(|s| s.parent == Some(shard.index) || s.adjacent_parent == Some(shard.index))
        .map(|child| {
            let parents = child.parent.iter().chain(child.adjacent_parent.iter()).map(|&p| Output::Str(crate::state::shard_id(p))).collect();
            Output::Obj(vec![
                ("ShardId", Output::Str(child.id.clone())),
                ("ParentShards", Output::List(parents)),
                ("HashKeyRange", super::hash_key_range(child)),
            ])
        })
        .collect();
    Output::List(children)
}

/// GetRecords.
pub(crate) fn get_records(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let token = req.str_len("ShardIterator", 1, 512)?;
    let limit = req.opt_int("Limit", 1, 10_000)?.unwrap_or(10_000) as usize;
    let iterator = Iterator::decode(token)?;
    let now = now_ms();
    iterator.check_fresh(now)?;
    let stream = server.stream(&iterator.stream)?;
    let shard_gone = || ApiError::shard_not_found(&stream.name, &crate::state::shard_id(iterator.shard_index));
    if stream.created_ms != iterator.stream_created_ms {
        return Err(shard_gone());
    }
    let state = read(&stream.state);
    let shard = state.shard(iterator.shard_index).cloned().ok_or_else(shard_gone)?;
    let (plan, next_position, behind_ms, reached_end) = {
        let log = lock(&shard.log);
        let from = log.position_of(iterator.position);
        let plan = log.plan_read(from, limit, MAX_GET_BYTES);
        let entries = log.entries();
        let after = from + plan.count;
        let next_position = match plan.count {
            0 => iterator.position.max(log.first_index()),
            _ => entries[after - 1].index + 1,
        };
        let behind_ms = entries.get(after).map_or(0, |e| now.saturating_sub(e.arrival_ms));
        let reached_end = shard.closed_ms().is_some() && after == entries.len();
        (plan, next_position, behind_ms, reached_end)
    };
    let children = reached_end.then(|| child_shards(&state, &shard));
    drop(state);
    let stored = log::read(plan)?;
    let records = stored
        .into_iter()
        .map(|r| {
            Output::Obj(vec![
                ("SequenceNumber", Output::Str(shard.sequence_number(r.index, r.arrival_ms))),
                ("ApproximateArrivalTimestamp", Output::Time(r.arrival_ms as i64)),
                ("Data", Output::Bytes(r.data)),
                ("PartitionKey", Output::Str(r.partition_key)),
            ])
        })
        .collect();
    let mut out = vec![("Records", Output::List(records))];
    if !reached_end {
        let next = Iterator { position: next_position, issued_ms: now, ..iterator };
        out.push(("NextShardIterator", Output::Str(next.encode())));
    }
    out.push(("MillisBehindLatest", Output::Int(behind_ms as i64)));
    if let Some(children) = children {
        out.push(("ChildShards", children));
    }
    Ok(Output::Obj(out))
}

//! Preparing a batch for `BatchWriteItem`, without I/O: each record is
//! mapped to an item and checked the way DynamoDB would check it (size
//! ≤ 400 KB, key attributes present and typed); records that fail are
//! rejected with the reason. Records with the same key collapse to the last
//! one (DynamoDB refuses a request that writes a key twice); the earlier
//! ones are *superseded* and, once the batch is written, answer what their
//! superseding record answered: delivered when it was written (the table
//! ends as if both had been written in order), retriable or rejected
//! otherwise, so nothing is dropped silently. The items left are cut into
//! requests of at most 25 items and 16 MB.

use std::collections::HashMap;

use shardline_plugin_sdk::{Record, RecordStatus};

use crate::keys::KeySchema;
use crate::mapping::{Item, Mapping};
use crate::size::{item_size, wire_size, MAX_ITEM_SIZE};

/// Most items in one `BatchWriteItem` request.
pub const MAX_BATCH_ITEMS: usize = 25;
/// Most bytes in one `BatchWriteItem` request, less room for the envelope.
pub const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024 - 4 * 1024;

/// One item to write.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Index of its record in the batch.
    pub record: usize,
    /// Its key's identity ([`KeySchema::identity`]).
    pub identity: String,
    /// The item.
    pub item: Item,
}

/// A prepared batch.
#[derive(Debug, Default)]
pub struct Prepared {
    /// One slot per record: `Some` for records already answered (rejected).
    pub statuses: Vec<Option<RecordStatus>>,
    /// The requests to send.
    pub chunks: Vec<Vec<Entry>>,
    /// `(record, superseding record)` for duplicate keys.
    pub superseded: Vec<(usize, usize)>,
}

/// Maps, checks, deduplicates and chunks `batch`.
pub fn prepare(batch: &[Record], mapping: &Mapping, keys: &KeySchema) -> Prepared {
    let mut statuses: Vec<Option<RecordStatus>> = vec![None; batch.len()];
    let mut entries: Vec<Option<Entry>> = Vec::with_capacity(batch.len());
    let mut last_by_identity: HashMap<String, usize> = HashMap::new();
    let mut superseded_identities: Vec<(usize, String)> = Vec::new();
    for (index, record) in batch.iter().enumerate() {
        let reject = |reason: String| Some(RecordStatus::Rejected { reason });
        let item = match mapping.item(record) {
            Ok(item) => item,
            Err(e) => {
                statuses[index] = reject(e.to_string());
                continue;
            }
        };
        let size = item_size(&item);
        if size > MAX_ITEM_SIZE {
            statuses[index] = reject(format!(
                "Item size has exceeded the maximum allowed size: {size} bytes (attribute names and values, as DynamoDB counts them) > {MAX_ITEM_SIZE} bytes (400 KB)"
            ));
            continue;
        }
        if let Err(reason) = keys.check(&item) {
            statuses[index] = reject(reason);
            continue;
        }
        let Some(identity) = keys.identity(&item) else {
            // `check` passed, so every key attribute is there and typed.
            statuses[index] = reject("the item's key cannot be read".to_owned());
            continue;
        };
        if let Some(previous) = last_by_identity.insert(identity.clone(), entries.len()) {
            if let Some(entry) = entries[previous].take() {
                superseded_identities.push((entry.record, identity.clone()));
            }
        }
        entries.push(Some(Entry { record: index, identity, item }));
    }
    let superseded = superseded_identities
        .into_iter()
        .filter_map(|(record, identity)| {
            let winner = last_by_identity.get(&identity).and_then(|&i| entries[i].as_ref()).map(|e| e.record)?;
            Some((record, winner))
        })
        .collect();
    Prepared { statuses, chunks: chunk(entries.into_iter().flatten()), superseded }
}

fn chunk(entries: impl Iterator<Item = Entry>) -> Vec<Vec<Entry>> {
    let mut chunks: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = wire_size(&entry.item);
        if !current.is_empty() && (current.len() == MAX_BATCH_ITEMS || bytes + size > MAX_REQUEST_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Gives each superseded record the answer of the record that superseded it.
pub fn answer_superseded(statuses: &mut [Option<RecordStatus>], superseded: &[(usize, usize)], batch: &[Record]) {
    for &(record, winner) in superseded {
        let sequence = batch.get(winner).map(|r| r.meta.sequence_number.as_str().to_owned()).unwrap_or_default();
        let answer = match statuses.get(winner).cloned().flatten() {
            Some(RecordStatus::Delivered) => RecordStatus::Delivered,
            Some(RecordStatus::Retriable { reason, backoff }) => RecordStatus::Retriable {
                reason: format!("superseded by a later record with the same key (sequence {sequence}), not written yet: {reason}"),
                backoff,
            },
            Some(RecordStatus::Rejected { reason }) => RecordStatus::Rejected {
                reason: format!("superseded by a later record with the same key (sequence {sequence}), which was rejected: {reason}"),
            },
            None => RecordStatus::Retriable { reason: "superseding record was not answered".to_owned(), backoff: None },
        };
        if let Some(slot) = statuses.get_mut(record) {
            *slot = Some(answer);
        }
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;

//! Assertions shared by the end-to-end tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::{cmp_sequence, wait_until, OutputRecord, PutResult, Worker};

/// The `id` field of every output record's JSON payload.
pub fn delivered_ids(records: &[OutputRecord]) -> HashSet<String> {
    records
        .iter()
        .filter_map(|r| r.json_str("id").map(str::to_owned))
        .collect()
}

/// Waits until every id in `expected` appears in the file sink output in
/// `dir`, while every worker keeps running.
///
/// # Panics
/// On timeout (naming how many and which ids are missing) or when a worker
/// exits.
pub async fn wait_for_ids(
    dir: &Path,
    expected: &HashSet<String>,
    workers: &[&Worker],
    timeout: Duration,
) {
    let result = wait_until(timeout, "every id delivered", || async {
        for worker in workers {
            worker.ensure_running()?;
        }
        let delivered = delivered_ids(&OutputRecord::read_dir(dir));
        Ok(expected.iter().all(|id| delivered.contains(id)))
    })
    .await;
    if let Err(e) = result {
        let delivered = delivered_ids(&OutputRecord::read_dir(dir));
        let mut missing: Vec<&String> = expected
            .iter()
            .filter(|id| !delivered.contains(*id))
            .collect();
        missing.sort();
        panic!(
            "{e:#}\n{} of {} ids missing from {} (first: {:?})",
            missing.len(),
            expected.len(),
            dir.display(),
            &missing[..missing.len().min(10)]
        );
    }
}

/// The highest sequence number put into each shard.
pub fn last_sequence_per_shard(puts: &[PutResult]) -> BTreeMap<String, String> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for put in puts {
        match last.get(&put.shard_id) {
            Some(seq) if cmp_sequence(seq, &put.sequence_number).is_ge() => {}
            _ => {
                last.insert(put.shard_id.clone(), put.sequence_number.clone());
            }
        }
    }
    last
}

/// How many times each id was delivered (to report duplicates).
pub fn delivery_counts(records: &[OutputRecord]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for record in records {
        if let Some(id) = record.json_str("id") {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

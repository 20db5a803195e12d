//! Lease cleanup (the KCL's `LeaseCleanupManager`): deletes `SHARD_END`
//! leases once every child shard is being read, so the table does not grow
//! with every reshard.
//!
//! Any worker may run it: each pass scans the whole table (a worker that
//! finished a shard and crashed leaves nothing behind), decides with
//! [`finished_leases_to_delete`], and deletes with
//! [`LeaseStore::delete_finished_lease`], a conditional delete that fails
//! when the lease changed since the scan. A deleted parent is not created
//! again by shard sync (its children's leases stop the lineage walk), and
//! [`parents_finished`](crate::parents_finished) counts a missing parent as
//! finished.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use shardline_api::Checkpoint;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Lease, LeaseError, LeaseStore};

/// How often finished leases are looked for by default (the KCL's
/// `completedLeaseCleanupIntervalMillis`, 5 minutes).
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The `SHARD_END` leases of `leases` (a scan of the whole table) that may
/// be deleted now. A finished lease is deleted when:
///
/// - no parent of it has a lease (parents go first, as in the KCL, so a
///   parent never waits for a child lease that is gone);
/// - its children are known: its `childShardIds`, or else the leases that
///   name it as a parent when their hash-key ranges cover its own (a split
///   whose second child has no lease yet is not "every child");
/// - every child has a lease whose checkpoint moved past its start (a
///   sequence number or `SHARD_END`, not `TRIM_HORIZON`, `LATEST` or
///   `AT_TIMESTAMP`).
pub fn finished_leases_to_delete(leases: &[Lease]) -> Vec<&Lease> {
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    leases
        .iter()
        .filter(|lease| lease.is_finished())
        .filter(|lease| lease.parent_shard_ids.iter().all(|p| !by_key.contains_key(p.as_str())))
        .filter(|lease| match known_children(lease, leases, &by_key) {
            Some(children) => children.iter().all(|child| started(&child.checkpoint)),
            None => false,
        })
        .collect()
}

/// The child leases of `parent`, or `None` when a child has no lease or the
/// children are not known.
fn known_children<'a>(parent: &Lease, leases: &'a [Lease], by_key: &HashMap<&str, &'a Lease>) -> Option<Vec<&'a Lease>> {
    if !parent.child_shard_ids.is_empty() {
        let unique: HashSet<&str> = parent.child_shard_ids.iter().map(String::as_str).collect();
        return unique.into_iter().map(|c| by_key.get(c).copied()).collect();
    }
    let children: Vec<&Lease> = leases.iter().filter(|l| l.parent_shard_ids.contains(&parent.lease_key)).collect();
    let range = hash_range(parent)?;
    let mut child_ranges = Vec::with_capacity(children.len());
    for child in &children {
        child_ranges.push(hash_range(child)?);
    }
    covers(range, &mut child_ranges).then_some(children)
}

fn started(checkpoint: &Checkpoint) -> bool {
    matches!(checkpoint, Checkpoint::At(_) | Checkpoint::ShardEnd)
}

fn hash_range(lease: &Lease) -> Option<(u128, u128)> {
    let start = lease.starting_hash_key.as_deref()?.parse().ok()?;
    let end = lease.ending_hash_key.as_deref()?.parse().ok()?;
    (start <= end).then_some((start, end))
}

/// True when the union of `ranges` contains every key of `range`.
fn covers(range: (u128, u128), ranges: &mut [(u128, u128)]) -> bool {
    ranges.sort_unstable();
    let mut next = range.0; // lowest key not covered yet
    for &(start, end) in ranges.iter() {
        if start > next {
            break;
        }
        if end >= range.1 {
            return true;
        }
        next = next.max(end + 1);
    }
    false
}

/// One cleanup pass: scans the table and deletes the finished leases
/// [`finished_leases_to_delete`] picks; returns how many it deleted. A
/// lease that changed since the scan (the conditional delete lost) is left
/// for the next pass.
///
/// # Errors
/// Errors of [`LeaseStore::list_leases`] and
/// [`LeaseStore::delete_finished_lease`] other than a lost condition;
/// deletions before the error stay.
pub async fn cleanup_finished_leases(store: &dyn LeaseStore, pipeline: &str) -> Result<usize, LeaseError> {
    let leases = store.list_leases().await?;
    let mut deleted = 0;
    for lease in finished_leases_to_delete(&leases) {
        match store.delete_finished_lease(lease).await {
            Ok(()) => {
                deleted += 1;
                metrics::counter!("shardline_leases_cleaned_total", "pipeline" => pipeline.to_owned()).increment(1);
                tracing::info!(
                    pipeline = %pipeline,
                    table = %store.table_name(),
                    lease_key = %lease.lease_key,
                    lease_counter = lease.lease_counter,
                    children = ?lease.child_shard_ids,
                    "deleted finished lease: every child shard is being read"
                );
            }
            Err(e) if e.is_lost() => {
                tracing::debug!(pipeline = %pipeline, lease_key = %lease.lease_key, error = %e, "finished lease changed since the scan, not deleted");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The background lease cleanup of one pipeline: a pass every `interval`
/// (the first one after `interval`), until [`LeaseCleanup::shutdown`].
#[derive(Debug)]
pub struct LeaseCleanup {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LeaseCleanup {
    /// Spawns the cleanup loop on the current tokio runtime. Failed passes
    /// are logged and tried again at the next interval.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(store: Arc<dyn LeaseStore>, pipeline: String, interval: Duration) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let interval = interval.max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = timer.tick() => {}
                }
                let pass = tokio::select! {
                    _ = stopped.cancelled() => return,
                    pass = cleanup_finished_leases(store.as_ref(), &pipeline) => pass,
                };
                match pass {
                    Ok(deleted) => tracing::debug!(pipeline = %pipeline, deleted, "lease cleanup pass done"),
                    Err(e) => tracing::warn!(pipeline = %pipeline, error = %e, "lease cleanup pass failed, will retry at the next interval"),
                }
            }
        });
        LeaseCleanup { stop, task }
    }

    /// Stops the loop (a pass in progress is abandoned between two
    /// conditional deletes) and waits for it to end.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "lease cleanup task failed");
        }
    }
}

#[cfg(test)]
mod tests;

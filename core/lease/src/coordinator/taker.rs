//! The taker: every `2 * failover_time` it scans the table, works out which
//! leases are expired, and takes (or steals) leases to reach this worker's
//! fair share, following the Java KCL's `DynamoDBLeaseTaker`.
//!
//! The decision is the pure function [`plan_takes`]; the loop around it
//! does the I/O.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::{LeaseHandle, Shared};
use crate::{Lease, LeaseError};

/// What the taker knows about one lease when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseView {
    /// The lease key.
    pub lease_key: String,
    /// The owner in the table.
    pub owner: Option<String>,
    /// The counter did not change for the failover time.
    pub expired: bool,
    /// Checkpointed `SHARD_END`: never taken, not counted.
    pub finished: bool,
    /// This worker holds a handle for it.
    pub held_locally: bool,
}

/// The outcome of [`plan_takes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TakePlan {
    /// This worker's fair share.
    pub target: usize,
    /// Unowned or expired leases (or ours without a handle) to take.
    pub take: Vec<String>,
    /// Leases of the most loaded worker to steal.
    pub steal: Vec<String>,
}

/// Decides which leases `me` takes or steals (KCL rules).
///
/// Unfinished leases are counted per live owner (owners of non-expired
/// leases, plus `me`); the target is `ceil(leases / workers)` capped at
/// `max_leases_per_worker`. Below target, `me` takes available leases
/// (unowned, expired, or its own without a local handle) in the order
/// given; when none are available it steals from the most loaded worker if
/// that one is above target (or at target while `me` needs more than one),
/// at most `max_steal` at once. Callers shuffle `leases` to spread workers
/// over different leases.
pub(crate) fn plan_takes(
    leases: &[LeaseView],
    me: &str,
    max_leases_per_worker: usize,
    max_steal: usize,
) -> TakePlan {
    let mut counts: HashMap<&str, usize> = HashMap::from([(me, 0)]);
    let mut available: Vec<&LeaseView> = Vec::new();
    let mut active = 0usize;
    for lease in leases.iter().filter(|l| !l.finished) {
        active += 1;
        match lease.owner.as_deref() {
            Some(owner) if lease.held_locally && owner == me => *counts.entry(me).or_default() += 1,
            _ if lease.held_locally => {
                // Held here but owned by another worker in the table: we
                // are about to find out it was stolen; count it for them.
                if let (Some(owner), false) = (lease.owner.as_deref(), lease.expired) {
                    *counts.entry(owner).or_default() += 1;
                }
            }
            None => available.push(lease),
            Some(owner) if owner == me || lease.expired => available.push(lease),
            Some(owner) => *counts.entry(owner).or_default() += 1,
        }
    }
    let workers = counts.len();
    let target = active.div_ceil(workers).min(max_leases_per_worker);
    let mine = counts.get(me).copied().unwrap_or(0);
    let needed = target.saturating_sub(mine);
    let mut plan = TakePlan {
        target,
        ..TakePlan::default()
    };
    if needed == 0 {
        return plan;
    }
    if !available.is_empty() {
        plan.take = available
            .iter()
            .take(needed)
            .map(|l| l.lease_key.clone())
            .collect();
        return plan;
    }
    let most_loaded = counts
        .iter()
        .filter(|(worker, _)| **worker != me)
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)));
    let Some((victim, victim_count)) = most_loaded else {
        return plan;
    };
    if *victim_count < target {
        return plan;
    }
    let over_target = victim_count - target;
    let mut to_steal = needed.min(over_target);
    if needed > 1 && over_target == 0 {
        // KCL's spill-over rule: workers at target may give one lease to a
        // worker far below it.
        to_steal = 1;
    }
    to_steal = to_steal.min(max_steal);
    plan.steal = leases
        .iter()
        .filter(|l| {
            !l.finished && !l.held_locally && !l.expired && l.owner.as_deref() == Some(*victim)
        })
        .take(to_steal)
        .map(|l| l.lease_key.clone())
        .collect();
    plan
}

/// Remembers, per lease, the last counter seen and when (on this worker's
/// clock) it last changed.
#[derive(Debug, Default)]
pub(crate) struct ExpiryTracker {
    seen: HashMap<String, (u64, Instant)>,
}

impl ExpiryTracker {
    /// Records a scan taken at `now`; returns the keys of expired leases.
    /// A lease seen for the first time is not expired, unless unowned.
    pub(crate) fn observe(
        &mut self,
        leases: &[Lease],
        now: Instant,
        failover_time: Duration,
    ) -> HashSet<String> {
        let mut expired = HashSet::new();
        let present: HashSet<&str> = leases.iter().map(|l| l.lease_key.as_str()).collect();
        self.seen.retain(|key, _| present.contains(key.as_str()));
        for lease in leases {
            match self.seen.get(&lease.lease_key) {
                Some((counter, since)) if *counter == lease.lease_counter => {
                    if lease.lease_owner.is_none()
                        || now.saturating_duration_since(*since) >= failover_time
                    {
                        expired.insert(lease.lease_key.clone());
                    }
                }
                _ => {
                    self.seen
                        .insert(lease.lease_key.clone(), (lease.lease_counter, now));
                    if lease.lease_owner.is_none() {
                        expired.insert(lease.lease_key.clone());
                    }
                }
            }
        }
        expired
    }
}

/// Runs until the coordinator shuts down.
pub(super) async fn run(shared: Arc<Shared>, tx: mpsc::Sender<LeaseHandle>) {
    let mut interval = tokio::time::interval(shared.config.failover_time * 2);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tracker = ExpiryTracker::default();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        if shared.stop_taking.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = take_once(&shared, &mut tracker, &tx).await {
            tracing::warn!(worker_id = %shared.config.worker_id, error = %e, kind = %e.kind(), "lease taker run failed");
        }
    }
}

async fn take_once(
    shared: &Arc<Shared>,
    tracker: &mut ExpiryTracker,
    tx: &mpsc::Sender<LeaseHandle>,
) -> Result<(), LeaseError> {
    let config = &shared.config;
    let leases = shared.store.list_leases().await?;
    let expired = tracker.observe(&leases, Instant::now(), config.failover_time);
    let held: HashSet<String> = shared.held().keys().cloned().collect();
    let mut views: Vec<LeaseView> = leases
        .iter()
        .map(|l| LeaseView {
            lease_key: l.lease_key.clone(),
            owner: l.lease_owner.clone(),
            expired: expired.contains(&l.lease_key),
            finished: l.is_finished(),
            held_locally: held.contains(&l.lease_key),
        })
        .collect();
    views.shuffle(&mut rand::thread_rng());
    let plan = plan_takes(
        &views,
        &config.worker_id,
        config.max_leases_per_worker,
        config.max_leases_to_steal_at_once,
    );
    if !plan.take.is_empty() || !plan.steal.is_empty() {
        tracing::debug!(worker_id = %config.worker_id, target = plan.target, take = ?plan.take, steal = ?plan.steal, "lease taker plan");
    }
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    let chosen = plan
        .take
        .iter()
        .map(|k| (k, false))
        .chain(plan.steal.iter().map(|k| (k, true)));
    for (key, stolen) in chosen {
        if shared.stop_taking.load(Ordering::SeqCst) || shared.shutdown.is_cancelled() {
            break;
        }
        if let Some(lease) = by_key.get(key.as_str()) {
            acquire(shared, lease, stolen, tx).await;
        }
    }
    Ok(())
}

async fn acquire(
    shared: &Arc<Shared>,
    lease: &Lease,
    stolen: bool,
    tx: &mpsc::Sender<LeaseHandle>,
) {
    let config = &shared.config;
    let sent = Instant::now();
    let written = match shared.store.take(lease, &config.worker_id).await {
        Ok(written) => written,
        Err(e) if e.is_lost() => {
            tracing::debug!(lease_key = %lease.lease_key, worker_id = %config.worker_id, "another worker changed the lease first");
            return;
        }
        Err(e) => {
            tracing::warn!(lease_key = %lease.lease_key, worker_id = %config.worker_id, error = %e, "could not take lease");
            return;
        }
    };
    let previous_owner = lease.lease_owner.as_deref().unwrap_or("-");
    let counter_name = if stolen {
        "shardline_lease_stolen_total"
    } else {
        "shardline_lease_taken_total"
    };
    metrics::counter!(counter_name, "pipeline" => config.pipeline.clone(), "shard_id" => lease.lease_key.clone()).increment(1);
    tracing::info!(
        lease_key = %lease.lease_key,
        worker_id = %config.worker_id,
        previous_owner = %previous_owner,
        stolen,
        checkpoint = %written.checkpoint,
        "acquired lease"
    );
    let handle = LeaseHandle::new(Arc::clone(shared), written, sent);
    shared.insert_held(handle.clone());
    tokio::select! {
        _ = shared.shutdown.cancelled() => {}
        sent = tx.send(handle.clone()) => {
            if sent.is_err() {
                tracing::warn!(lease_key = %lease.lease_key, worker_id = %config.worker_id, "nobody receives leases, handing it back");
                if let Err(e) = handle.release(None).await {
                    tracing::warn!(lease_key = %lease.lease_key, error = %e, "could not hand lease back");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

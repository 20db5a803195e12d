//! The taker: it scans the table, works out which leases are expired, and
//! takes (or steals) leases to reach this worker's fair share, following
//! the Java KCL's `DynamoDBLeaseTaker`.
//!
//! The decision is the pure function [`plan_takes`]; the loop around it
//! does the I/O.
//!
//! # How fast a stopped worker's leases move
//! The safety rule is the KCL's: a lease is expired only once its counter
//! stood still for `failover_time` on this worker's clock, counted from the
//! first scan that saw the value. The taker scans every [`scan_interval`]
//! (`failover_time / 4`, less up to a fifth at random so workers spread
//! out), so with `S = failover_time / 4` and a worker stopped at `K`:
//!
//! - its last renewal was written at `r <= K`;
//! - another worker's first scan to see that counter runs at `t1 <= r + S`
//!   (plus the scan's own latency);
//! - the first scan with `now - t1 >= failover_time` runs at
//!   `t2 <= t1 + failover_time + S`, and takes the lease at once (with
//!   several takers, one that loses the race for a lease takes a spare one
//!   in the same run).
//!
//! So the coordinator holds every lease of a stopped worker again by
//! `K + 1.5 * failover_time` (plus two scan and one write latency); the
//! remaining `0.5 * failover_time` of the `2 * failover_time` promise is the
//! budget of the handle channel and the shard worker's start (parent check,
//! `GetShardIterator`). The KCL scans every `2 * failover_time` and needs up
//! to `4 * failover_time`.
//!
//! # Cost
//! A scan reads the whole table: on DynamoDB a consistent `Scan`, one read
//! unit per 4 KiB of leases (a lease is ~300 bytes), four times per
//! failover time per worker. At the default 10 s, 100 leases (~30 KiB) cost
//! ~8 read units per scan, ~3 per second per worker; the renewals of those
//! 100 leases cost 30 write units per second (and a write unit costs five
//! read units on demand). The embedded store's scan is a copy of its map.
//!
//! Stealing keeps the KCL's cadence: at most one stealing run per
//! `2 * failover_time`, so faster scans do not make leases bounce between
//! workers before the victims' renewers noticed the loss.
//!
//! # Lineage and the cap
//! A lease whose parent lease is present and not `SHARD_END` is *waiting*:
//! its shard is not read before the parents end. Waiting leases are taken
//! last and are counted apart: the fair share and `max_leases_per_worker`
//! bound the leases that can be read (`target`), and a worker takes waiting
//! leases only while all its leases stay within the same bound computed
//! over every lease (`total_target`). So children a worker holds never keep
//! it from taking their parents. When the parents end, the children it
//! holds become readable and may put it above the cap for a while: it takes
//! nothing more until it is below again, and workers below their target
//! steal from it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    /// Every parent lease is `SHARD_END` or absent from the table, so the
    /// shard can be read; false while it waits for its parents.
    pub parents_finished: bool,
    /// This worker holds a handle for it.
    pub held_locally: bool,
}

/// The outcome of [`plan_takes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TakePlan {
    /// This worker's fair share of readable leases (capped).
    pub target: usize,
    /// Readable leases that are unowned or expired (or ours without a
    /// handle) to take.
    pub take: Vec<String>,
    /// More such leases, in order, to take instead of one of `take` that
    /// another worker took first.
    pub spare: Vec<String>,
    /// Available leases waiting for their parents, to take after `take`.
    pub take_waiting: Vec<String>,
    /// Readable leases of the most loaded worker to steal.
    pub steal: Vec<String>,
}

/// How many leases a worker holds, split by whether they can be read.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    readable: usize,
    waiting: usize,
}

/// Decides which leases `me` takes or steals (KCL rules, lineage-aware).
///
/// Unfinished leases are counted per live owner (owners of non-expired
/// leases, plus `me`), readable and waiting ones apart (see the module
/// docs). The target is `ceil(readable / workers)` capped at
/// `max_leases_per_worker`. Below target, `me` takes available readable
/// leases (unowned, expired, or its own without a local handle) in the
/// order given; then available waiting leases while its total stays within
/// `ceil(unfinished / workers)` (capped). When it takes nothing and is below
/// target, it steals readable leases from the most loaded worker if that
/// one is above target (or at target while `me` needs more than one), at
/// most `max_steal` at once. Callers shuffle `leases` to spread workers
/// over different leases.
pub(crate) fn plan_takes(
    leases: &[LeaseView],
    me: &str,
    max_leases_per_worker: usize,
    max_steal: usize,
) -> TakePlan {
    let mut loads: HashMap<&str, Load> = HashMap::from([(me, Load::default())]);
    let mut readable_available: Vec<&LeaseView> = Vec::new();
    let mut waiting_available: Vec<&LeaseView> = Vec::new();
    let (mut readable, mut unfinished) = (0usize, 0usize);
    for lease in leases.iter().filter(|l| !l.finished) {
        unfinished += 1;
        readable += usize::from(lease.parents_finished);
        let counted_for = match lease.owner.as_deref() {
            Some(owner) if lease.held_locally && owner == me => Some(me),
            // Held here but owned by another worker in the table: we are
            // about to find out it was stolen; count it for them.
            _ if lease.held_locally => lease.owner.as_deref().filter(|_| !lease.expired),
            Some(owner) if owner != me && !lease.expired => Some(owner),
            _ => {
                if lease.parents_finished {
                    readable_available.push(lease);
                } else {
                    waiting_available.push(lease);
                }
                None
            }
        };
        if let Some(worker) = counted_for {
            let load = loads.entry(worker).or_default();
            if lease.parents_finished {
                load.readable += 1;
            } else {
                load.waiting += 1;
            }
        }
    }
    let workers = loads.len();
    let target = readable.div_ceil(workers).min(max_leases_per_worker);
    let total_target = unfinished.div_ceil(workers).min(max_leases_per_worker);
    let mine = loads.get(me).copied().unwrap_or_default();
    let needed = target.saturating_sub(mine.readable);
    let keys = |leases: &[&LeaseView]| -> Vec<String> {
        leases.iter().map(|l| l.lease_key.clone()).collect()
    };
    let taken = readable_available.len().min(needed);
    let waiting_room = total_target.saturating_sub(mine.readable + mine.waiting + taken);
    let waiting_taken = waiting_available.len().min(waiting_room);
    let mut plan = TakePlan {
        target,
        take: keys(&readable_available[..taken]),
        spare: keys(&readable_available[taken..]),
        take_waiting: keys(&waiting_available[..waiting_taken]),
        steal: Vec::new(),
    };
    if needed == 0 || !plan.take.is_empty() || !plan.take_waiting.is_empty() {
        return plan;
    }
    let most_loaded = loads
        .iter()
        .filter(|(worker, _)| **worker != me)
        .max_by(|a, b| a.1.readable.cmp(&b.1.readable).then_with(|| b.0.cmp(a.0)));
    let Some((victim, victim_load)) = most_loaded else {
        return plan;
    };
    if victim_load.readable < target {
        return plan;
    }
    let over_target = victim_load.readable - target;
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
            !l.finished
                && l.parents_finished
                && !l.held_locally
                && !l.expired
                && l.owner.as_deref() == Some(*victim)
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

/// The time between two scans: `failover_time / 4`, less up to a fifth at
/// random (see the module docs for why a quarter).
pub(crate) fn scan_interval(failover_time: Duration) -> Duration {
    (failover_time / 4).mul_f64(rand::thread_rng().gen_range(0.8..=1.0))
}

/// Runs until the coordinator shuts down: a scan at once, then every
/// [`scan_interval`] (measured start to start); stealing is allowed in at
/// most one run per `2 * failover_time`.
pub(super) async fn run(shared: Arc<Shared>, tx: mpsc::Sender<LeaseHandle>) {
    let failover = shared.config.failover_time;
    let mut tracker = ExpiryTracker::default();
    let mut next_scan = Instant::now();
    let mut next_steal = next_scan;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next_scan) => {}
        }
        let started = Instant::now();
        next_scan = started + scan_interval(failover);
        if shared.stop_taking.load(Ordering::SeqCst) {
            continue;
        }
        let may_steal = started >= next_steal;
        if may_steal {
            next_steal = started + failover * 2;
        }
        if let Err(e) = take_once(&shared, &mut tracker, &tx, may_steal).await {
            tracing::warn!(worker_id = %shared.config.worker_id, error = %e, kind = %e.kind(), "lease taker run failed");
        }
    }
}

/// The views [`plan_takes`] decides on, from one scan.
fn views(leases: &[Lease], expired: &HashSet<String>, held: &HashSet<String>) -> Vec<LeaseView> {
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    leases
        .iter()
        .map(|l| LeaseView {
            lease_key: l.lease_key.clone(),
            owner: l.lease_owner.clone(),
            expired: expired.contains(&l.lease_key),
            finished: l.is_finished(),
            // A parent absent from the table was finished and cleaned up
            // (or trimmed), as in `crate::parents_finished`.
            parents_finished: !l.parent_shard_ids.iter().any(|p| {
                by_key
                    .get(p.as_str())
                    .is_some_and(|parent| !parent.is_finished())
            }),
            held_locally: held.contains(&l.lease_key),
        })
        .collect()
}

async fn take_once(
    shared: &Arc<Shared>,
    tracker: &mut ExpiryTracker,
    tx: &mpsc::Sender<LeaseHandle>,
    may_steal: bool,
) -> Result<(), LeaseError> {
    let config = &shared.config;
    let leases = shared.store.list_leases().await?;
    let expired = tracker.observe(&leases, Instant::now(), config.failover_time);
    let held: HashSet<String> = shared.held().keys().cloned().collect();
    let mut views = views(&leases, &expired, &held);
    views.shuffle(&mut rand::thread_rng());
    let max_steal = if may_steal {
        config.max_leases_to_steal_at_once
    } else {
        0
    };
    let plan = plan_takes(
        &views,
        &config.worker_id,
        config.max_leases_per_worker,
        max_steal,
    );
    if !plan.take.is_empty() || !plan.take_waiting.is_empty() || !plan.steal.is_empty() {
        tracing::debug!(worker_id = %config.worker_id, target = plan.target, take = ?plan.take, take_waiting = ?plan.take_waiting, steal = ?plan.steal, "lease taker plan");
    }
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    let mut spare = plan.spare.iter();
    let chosen = plan
        .take
        .iter()
        .map(|k| (k, Choice::Take))
        .chain(plan.take_waiting.iter().map(|k| (k, Choice::TakeWaiting)))
        .chain(plan.steal.iter().map(|k| (k, Choice::Steal)));
    for (key, choice) in chosen {
        let mut candidate = Some(key);
        while let Some(key) = candidate.take() {
            if shared.stop_taking.load(Ordering::SeqCst) || shared.shutdown.is_cancelled() {
                return Ok(());
            }
            let Some(lease) = by_key.get(key.as_str()) else {
                break;
            };
            let outcome = acquire(shared, lease, choice == Choice::Steal, tx).await;
            if outcome == Acquired::TakenByAnother && choice == Choice::Take {
                candidate = spare.next();
            }
        }
    }
    Ok(())
}

/// Why a lease is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Take,
    TakeWaiting,
    Steal,
}

/// The outcome of [`acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acquired {
    Yes,
    /// Another worker changed the lease first.
    TakenByAnother,
    Failed,
}

async fn acquire(
    shared: &Arc<Shared>,
    lease: &Lease,
    stolen: bool,
    tx: &mpsc::Sender<LeaseHandle>,
) -> Acquired {
    let config = &shared.config;
    let sent = Instant::now();
    let written = match shared.store.take(lease, &config.worker_id).await {
        Ok(written) => written,
        Err(e) if e.is_lost() => {
            tracing::debug!(lease_key = %lease.lease_key, worker_id = %config.worker_id, "another worker changed the lease first");
            return Acquired::TakenByAnother;
        }
        Err(e) => {
            tracing::warn!(lease_key = %lease.lease_key, worker_id = %config.worker_id, error = %e, "could not take lease");
            return Acquired::Failed;
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
    Acquired::Yes
}

#[cfg(test)]
mod tests;

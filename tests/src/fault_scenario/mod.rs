//! The checks of the fault test (`tests/tests/e2e_faults.rs`): lease-table
//! history, lease handovers from the workers' logs, takeover times, and
//! duplicate deliveries explained by handovers. Pure functions over what
//! the test recorded, so each rule is stated (and unit-tested) once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::{cmp_checkpoint, cmp_sequence, is_sequence_number, Lease, LeaseTable};

/// A tracing-subscriber JSON `timestamp` (`2026-12-07T01:23:37.123456Z`).
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// `a - b` in seconds (negative when `a` is earlier).
pub fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// One lease-related log line of a worker.
#[derive(Debug, Clone)]
pub struct LeaseEvent {
    /// The line's timestamp.
    pub at: SystemTime,
    /// The worker that logged it.
    pub worker: String,
    /// `message`.
    pub message: String,
    /// `lease_key` or `shard_id`.
    pub shard: String,
    /// `previous_owner` ("acquired lease").
    pub previous_owner: String,
    /// `checkpoint` ("acquired lease": `seq/sub` or a sentinel).
    pub checkpoint: String,
}

/// The messages [`lease_events`] collects.
pub const LEASE_MESSAGES: [&str; 4] = ["acquired lease", "lost lease", "released lease", "lease lost, stopped reading and checkpointing"];

/// The lease events in one worker's log text.
pub fn lease_events(worker: &str, log_text: &str) -> Vec<LeaseEvent> {
    let field = |v: &serde_json::Value, name: &str| {
        v.get(name).or_else(|| v.pointer(&format!("/fields/{name}"))).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned()
    };
    crate::json_log_events(log_text, &LEASE_MESSAGES)
        .iter()
        .filter_map(|v| {
            let shard = Some(field(v, "lease_key")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(v, "shard_id"));
            Some(LeaseEvent {
                at: parse_timestamp(&field(v, "timestamp"))?,
                worker: worker.to_owned(),
                message: field(v, "message"),
                shard,
                previous_owner: field(v, "previous_owner"),
                checkpoint: field(v, "checkpoint"),
            })
        })
        .collect()
}

/// A kill -9 the test made: when, whom, and the leases the table showed
/// just before.
#[derive(Debug, Clone)]
pub struct Kill {
    /// When the signal was sent.
    pub at: SystemTime,
    /// The killed worker's id.
    pub worker: String,
    /// The lease table read just before the kill.
    pub leases: Vec<Lease>,
}

/// Takeover of one kill: for every lease the killed worker held (not at
/// `SHARD_END`), the time from the kill until another worker logged
/// "acquired lease" for it and, when the shard was readable (every parent
/// at `SHARD_END` or without a lease), also called GetShardIterator for it
/// (seen by the Kinesis proxy). `Err` names the leases never taken over.
pub fn takeover_time(kill: &Kill, events: &[LeaseEvent], iterators: &[(SystemTime, String)]) -> Option<Result<f64, String>> {
    let finished: BTreeSet<&str> =
        kill.leases.iter().filter(|l| l.checkpoint.as_deref() == Some("SHARD_END")).map(|l| l.lease_key.as_str()).collect();
    let held: Vec<&Lease> =
        kill.leases.iter().filter(|l| l.lease_owner.as_deref() == Some(kill.worker.as_str()) && !finished.contains(l.lease_key.as_str())).collect();
    if held.is_empty() {
        return None;
    }
    let leased: BTreeSet<&str> = kill.leases.iter().map(|l| l.lease_key.as_str()).collect();
    let mut worst = 0.0_f64;
    let mut missing = Vec::new();
    for lease in held {
        let key = lease.lease_key.as_str();
        let acquired = events
            .iter()
            .filter(|e| e.message == "acquired lease" && e.shard == key && e.worker != kill.worker && e.at > kill.at)
            .map(|e| e.at)
            .min();
        let readable = lease.parent_shard_ids.iter().all(|p| finished.contains(p.as_str()) || !leased.contains(p.as_str()));
        let read = iterators.iter().filter(|(at, shard)| shard == key && *at > kill.at).map(|(at, _)| *at).min();
        let done = match (acquired, readable, read) {
            (Some(a), false, _) => Some(a),
            (Some(a), true, Some(r)) => Some(a.max(r)),
            _ => None,
        };
        match done {
            Some(at) => worst = worst.max(secs_between(at, kill.at)),
            None => missing.push(format!("{key} (acquired: {}, readable: {readable}, read again: {})", acquired.is_some(), read.is_some())),
        }
    }
    Some(if missing.is_empty() { Ok(worst) } else { Err(missing.join(", ")) })
}

/// A change of hands of a shard's lease: the new owner's "acquired lease"
/// and when the previous owner stopped delivering from it.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The shard.
    pub shard: String,
    /// When the new owner acquired the lease.
    pub at: SystemTime,
    /// The checkpoint it started from (`seq/sub` or a sentinel).
    pub start: String,
    /// When the previous owner stopped: its kill, else its "lost
    /// lease"/"released lease"/"lease lost" line nearest to `at`, else `at`.
    pub previous_end: SystemTime,
}

/// The handovers in `events`, with the kills to date them.
pub fn handovers(events: &[LeaseEvent], kills: &[Kill]) -> Vec<Handover> {
    events
        .iter()
        .filter(|e| e.message == "acquired lease")
        .map(|e| {
            let killed = kills.iter().filter(|k| k.worker == e.previous_owner && k.at <= e.at).map(|k| k.at).max();
            let stopped = events
                .iter()
                .filter(|s| s.worker == e.previous_owner && s.shard == e.shard && s.message != "acquired lease")
                .min_by(|a, b| secs_between(a.at, e.at).abs().total_cmp(&secs_between(b.at, e.at).abs()))
                .map(|s| s.at);
            Handover { shard: e.shard.clone(), at: e.at, start: e.checkpoint.clone(), previous_end: killed.or(stopped).unwrap_or(e.at) }
        })
        .collect()
}

/// True when `sequence` is after the checkpoint `start` (`seq/sub`, or a
/// sentinel that starts before every record).
fn after_checkpoint(sequence: &str, start: &str) -> bool {
    let seq = start.split('/').next().unwrap_or_default();
    !is_sequence_number(seq) || cmp_sequence(sequence, seq) == std::cmp::Ordering::Greater
}

/// Where a produced record went.
#[derive(Debug, Clone)]
pub struct Produced {
    /// Partition key.
    pub key: String,
    /// Its round (per-key counter).
    pub n: usize,
    /// Shard id.
    pub shard: String,
    /// Sequence number.
    pub sequence: String,
}

/// Duplicate rule. A record delivered `m > 1` times (deliveries at
/// `t_1 < ... < t_m`, in the order the store accepted them) has `m - 1`
/// duplicates; delivery `k >= 2` is explained by a handover `H` of the
/// record's shard when all of:
/// - the record's sequence number is after `H.start` (the new owner read it
///   again because it was not checkpointed),
/// - `t_k >= H.at - slack` (the new owner delivered it again),
/// - `t_(k-1) >= H.previous_end - checkpoint_interval - slack` (the earlier
///   delivery was at most one `checkpoint_interval` old when the previous
///   owner stopped: an owner that checkpoints every `checkpoint_interval`
///   leaves only that much uncheckpointed),
/// - `t_(k-1) <= H.previous_end + slack`, or, when the previous owner
///   stopped during a sink fault window, `t_(k-1) <=` the window's end
///   `+ in_flight + slack` (a write it had in flight, held back by the
///   fault, landed late; `in_flight` is the sink's request timeout plus the
///   longest retry back-off).
///
/// Returns the number of duplicates and descriptions of the unexplained
/// ones (their number is `.1.len()`; at most 20 are described in full).
pub fn check_duplicates(
    deliveries: &HashMap<String, Vec<(SystemTime, String)>>,
    produced: &HashMap<String, Produced>,
    handovers: &[Handover],
    rule: &DuplicateRule,
) -> (usize, Vec<String>) {
    let (ci, slack_s) = (rule.checkpoint_interval.as_secs_f64(), rule.slack.as_secs_f64());
    let latest_first = |h: &Handover| {
        let window = rule.sink_faults.iter().find(|(from, to)| *from <= h.previous_end && h.previous_end <= *to);
        match window {
            Some((_, to)) => *to + rule.in_flight + rule.slack,
            None => h.previous_end + rule.slack,
        }
    };
    let mut by_shard: HashMap<&str, Vec<&Handover>> = HashMap::new();
    for h in handovers {
        by_shard.entry(h.shard.as_str()).or_default().push(h);
    }
    let (mut duplicates, mut unexplained) = (0, Vec::new());
    let mut ids: Vec<&String> = deliveries.keys().collect();
    ids.sort();
    for id in ids {
        let times = &deliveries[id];
        let Some(record) = produced.get(id) else {
            unexplained.push(format!("{id}: delivered but never produced"));
            continue;
        };
        for pair in times.windows(2) {
            duplicates += 1;
            let ((earlier, earlier_object), (later, later_object)) = (&pair[0], &pair[1]);
            let (earlier, later) = (*earlier, *later);
            let explained = by_shard.get(record.shard.as_str()).is_some_and(|hs| {
                hs.iter().any(|h| {
                    after_checkpoint(&record.sequence, &h.start)
                        && secs_between(later, h.at) >= -slack_s
                        && secs_between(earlier, h.previous_end) >= -(ci + slack_s)
                        && earlier <= latest_first(h)
                })
            });
            if explained {
                continue;
            }
            if unexplained.len() >= 20 {
                unexplained.push(id.clone());
            } else {
                let near: Vec<String> = by_shard
                    .get(record.shard.as_str())
                    .map(|hs| hs.iter().map(|h| format!("handover at {:+.2}s from {} (previous owner stopped {:+.2}s)", secs_between(h.at, earlier), h.start, secs_between(h.previous_end, earlier))).collect())
                    .unwrap_or_default();
                let object = if earlier_object == later_object { "the same object again".to_owned() } else { format!("object {later_object} after {earlier_object}") };
                unexplained.push(format!(
                    "{id} ({} seq {}): delivered again {:.2}s after an earlier delivery ({object}); handovers of the shard relative to the earlier delivery: {near:?}",
                    record.shard,
                    record.sequence,
                    secs_between(later, earlier)
                ));
            }
        }
    }
    (duplicates, unexplained)
}

/// The allowances of [`check_duplicates`].
#[derive(Debug, Clone)]
pub struct DuplicateRule {
    /// The pipeline's `leases.checkpoint_interval`.
    pub checkpoint_interval: Duration,
    /// Allowance for checkpoint writes, log timestamps and scheduling.
    pub slack: Duration,
    /// `(from, to)` of every sink fault window (writes refused or hung).
    pub sink_faults: Vec<(SystemTime, SystemTime)>,
    /// How long a write in flight may take to land after a fault window:
    /// the sink's request timeout plus the longest retry back-off.
    pub in_flight: Duration,
}

/// Per key, the rounds `n` in the order of their first delivery must grow.
/// `first_deliveries` is every delivered id in delivery order (repeats
/// allowed: only the first counts). Returns the violations (20 at most).
pub fn check_first_delivery_order<'a>(first_deliveries: impl IntoIterator<Item = &'a str>, produced: &HashMap<String, Produced>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut violations = Vec::new();
    for id in first_deliveries {
        if !seen.insert(id) {
            continue;
        }
        let Some(record) = produced.get(id) else { continue };
        if let Some(&previous) = last.get(record.key.as_str()) {
            if record.n < previous && violations.len() < 20 {
                violations.push(format!("key {}: n={} first delivered after n={previous} ({})", record.key, record.n, record.shard));
            }
        }
        let entry = last.entry(record.key.as_str()).or_insert(record.n);
        *entry = (*entry).max(record.n);
    }
    violations
}

/// What [`LeaseWatch`] saw.
#[derive(Debug, Clone, Default)]
pub struct LeaseHistory {
    /// Scans made.
    pub samples: usize,
    /// Checkpoint regressions, described.
    pub regressions: Vec<String>,
    /// Shards whose lease was seen at `SHARD_END`.
    pub shard_end: BTreeSet<String>,
    /// Owner changes seen per shard.
    pub owner_changes: BTreeMap<String, usize>,
}

/// Scans the lease table every 250 ms until [`LeaseWatch::finish`],
/// recording checkpoint regressions (a lease whose checkpoint is lower than
/// one seen before, including a lease deleted and re-created lower), the
/// shards seen at `SHARD_END` and owner changes.
pub struct LeaseWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<LeaseHistory>,
}

impl LeaseWatch {
    /// Starts watching.
    pub fn spawn(leases: &LeaseTable) -> LeaseWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (leases, stop) = (leases.clone(), stop.clone());
            async move {
                let mut history = LeaseHistory::default();
                let mut last: HashMap<String, (Option<String>, u64, Option<String>)> = HashMap::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(scan) = leases.scan().await {
                        history.samples += 1;
                        for lease in scan {
                            observe(&mut history, &mut last, &lease);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                history
            }
        });
        LeaseWatch { stop, task }
    }

    /// Stops watching and returns the history.
    ///
    /// # Panics
    /// When the watching task panicked.
    pub async fn finish(self) -> LeaseHistory {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("lease watch task")
    }
}

fn known_checkpoint(c: &str) -> bool {
    is_sequence_number(c) || matches!(c, "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP" | "SHARD_END")
}

fn observe(history: &mut LeaseHistory, last: &mut HashMap<String, (Option<String>, u64, Option<String>)>, lease: &Lease) {
    let checkpoint = lease.checkpoint.clone();
    let sub = lease.checkpoint_sub_sequence_number.unwrap_or(0);
    if checkpoint.as_deref() == Some("SHARD_END") {
        history.shard_end.insert(lease.lease_key.clone());
    }
    if let Some((previous, previous_sub, owner)) = last.get(&lease.lease_key) {
        if let (Some(p), Some(c)) = (previous, &checkpoint) {
            if !known_checkpoint(p) || !known_checkpoint(c) {
                history.regressions.push(format!("{}: unknown checkpoint value {c:?} (before {p:?})", lease.lease_key));
            } else if cmp_checkpoint((c, sub), (p, *previous_sub)) == std::cmp::Ordering::Less {
                history.regressions.push(format!("{}: checkpoint went back from {p}/{previous_sub} to {c}/{sub} (owner {:?})", lease.lease_key, lease.lease_owner));
            }
        }
        if owner != &lease.lease_owner && lease.lease_owner.is_some() {
            *history.owner_changes.entry(lease.lease_key.clone()).or_default() += 1;
        }
    }
    let keep = match (last.get(&lease.lease_key), &checkpoint) {
        // Never forget a higher checkpoint (a regression stays visible).
        (Some((Some(p), ps, _)), Some(c)) if known_checkpoint(c) && known_checkpoint(p) && cmp_checkpoint((c, sub), (p, *ps)).is_lt() => (Some(p.clone()), *ps),
        _ => (checkpoint, sub),
    };
    last.insert(lease.lease_key.clone(), (keep.0, keep.1, lease.lease_owner.clone()));
}

/// Minimum, median and maximum of `values` (seconds), if any.
pub fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some((*sorted.first()?, sorted[sorted.len() / 2], *sorted.last()?))
}

#[cfg(test)]
mod tests;

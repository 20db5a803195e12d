//! Helpers for resharding tests: a producer of per-key counters and the
//! parent-before-child checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;

use crate::{Kinesis, LeaseTable, OutputRecord, PutResult, TestRecord};

/// The id of round `n` of `key`.
pub fn keyed_id(key: &str, n: usize) -> String {
    format!("{key}-{n:03}")
}

/// A background producer putting rounds of one record per key
/// (`{"id", "key", "n"}`, `n` the round), one `PutRecords` call per round,
/// so each key's `n` grows with its sequence number. It runs until
/// [`KeyedProducer::stop`], so a reshard always happens mid-production.
pub struct KeyedProducer {
    rounds_done: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<Vec<PutResult>>,
}

/// Safety limit on rounds, should a test forget to stop its producer.
const MAX_ROUNDS: usize = 50_000;

impl KeyedProducer {
    /// Starts the producer, pausing `pause` between rounds.
    pub fn spawn(
        kinesis: &Kinesis,
        stream: &str,
        keys: Vec<String>,
        pause: Duration,
    ) -> KeyedProducer {
        let rounds_done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (kinesis, stream, rounds_done, stop) = (
                kinesis.clone(),
                stream.to_owned(),
                rounds_done.clone(),
                stop.clone(),
            );
            async move {
                let mut puts = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < MAX_ROUNDS {
                    let batch: Vec<TestRecord> = keys
                        .iter()
                        .map(|k| {
                            TestRecord::json(
                                k.clone(),
                                &json!({ "id": keyed_id(k, n), "key": k, "n": n }),
                            )
                        })
                        .collect();
                    puts.extend(
                        kinesis
                            .put_records(&stream, &batch)
                            .await
                            .expect("put records"),
                    );
                    n += 1;
                    rounds_done.store(n, Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                }
                puts
            }
        });
        KeyedProducer {
            rounds_done,
            stop,
            task,
        }
    }

    /// Rounds put so far.
    pub fn rounds(&self) -> usize {
        self.rounds_done.load(Ordering::SeqCst)
    }

    /// Waits until `more` further rounds are put (30 s at most), so that
    /// records keep coming after a reshard.
    ///
    /// # Errors
    /// On timeout (the producer task failed or stalled).
    pub async fn wait_more_rounds(&self, more: usize) -> anyhow::Result<()> {
        let target = self.rounds() + more;
        crate::wait_until(Duration::from_secs(30), "more producer rounds", || async {
            Ok(self.rounds() >= target)
        })
        .await
    }

    /// Stops after the round in progress; returns the number of rounds and
    /// every put, in order.
    ///
    /// # Panics
    /// When the producer task panicked (a put failed).
    pub async fn stop(self) -> (usize, Vec<PutResult>) {
        self.stop.store(true, Ordering::SeqCst);
        let puts = self.task.await.expect("producer task");
        (self.rounds_done.load(Ordering::SeqCst), puts)
    }
}

/// For every key: the highest `n` delivered from any of `parents` is below
/// the lowest `n` delivered from any of `children`.
///
/// # Errors
/// A description of the first key that breaks it.
pub fn check_parent_counters_precede_children(
    output: &[OutputRecord],
    parents: &[&str],
    children: &[&str],
) -> Result<(), String> {
    let mut parent_max: HashMap<&str, (u64, &str)> = HashMap::new();
    let mut child_min: HashMap<&str, (u64, &str)> = HashMap::new();
    for out in output {
        let (Some(key), Some(n)) = (out.json_str("key"), out.json_u64("n")) else {
            return Err(format!("output line without key/n: {}", out.line));
        };
        if parents.contains(&out.shard_id.as_str()) {
            let e = parent_max.entry(key).or_insert((n, &out.shard_id));
            if n > e.0 {
                *e = (n, &out.shard_id);
            }
        } else if children.contains(&out.shard_id.as_str()) {
            let e = child_min.entry(key).or_insert((n, &out.shard_id));
            if n < e.0 {
                *e = (n, &out.shard_id);
            }
        }
    }
    let mut keys: Vec<_> = child_min.keys().collect();
    keys.sort();
    for key in keys {
        let (min, child) = child_min[key];
        if let Some(&(max, parent)) = parent_max.get(key) {
            if max >= min {
                return Err(format!("key {key}: n={max} delivered from parent {parent} but n={min} from child {child}"));
            }
        }
    }
    Ok(())
}

/// Reads each child's lease, then the parents' leases (in that order, with
/// consistent reads): if a child has a sequence-number checkpoint (it made
/// progress), every parent must already be at `SHARD_END`. Since checkpoints
/// only move forward, reading the child first makes this sound without
/// a transaction.
///
/// # Errors
/// A description of the violation, or a DynamoDB error.
pub async fn check_children_wait_for_parents(
    leases: &LeaseTable,
    parents: &[&str],
    children: &[&str],
) -> anyhow::Result<Result<(), String>> {
    let mut progressed = Vec::new();
    for child in children {
        if let Some(lease) = leases.get(child).await? {
            if lease
                .checkpoint
                .as_deref()
                .is_some_and(crate::is_sequence_number)
            {
                progressed.push((child.to_string(), lease.checkpoint.clone()));
            }
        }
    }
    if progressed.is_empty() {
        return Ok(Ok(()));
    }
    for parent in parents {
        let checkpoint = leases.get(parent).await?.and_then(|l| l.checkpoint);
        if checkpoint.as_deref() != Some("SHARD_END") {
            return Ok(Err(format!(
                "child lease(s) {progressed:?} checkpointed progress while parent {parent} was at {checkpoint:?}"
            )));
        }
    }
    Ok(Ok(()))
}

/// Runs [`check_children_wait_for_parents`] every 100 ms until
/// [`ReshardOrderSampler::finish`]; collects every violation seen.
pub struct ReshardOrderSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<(usize, Vec<String>)>,
}

impl ReshardOrderSampler {
    /// Starts sampling.
    pub fn spawn(
        leases: &LeaseTable,
        parents: &[String],
        children: &[String],
    ) -> ReshardOrderSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (leases, parents, children, stop) = (
                leases.clone(),
                parents.to_vec(),
                children.to_vec(),
                stop.clone(),
            );
            async move {
                let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
                let children: Vec<&str> = children.iter().map(String::as_str).collect();
                let (mut samples, mut violations) = (0, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(result) =
                        check_children_wait_for_parents(&leases, &parents, &children).await
                    {
                        samples += 1;
                        if let Err(v) = result {
                            violations.push(v);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (samples, violations)
            }
        });
        ReshardOrderSampler { stop, task }
    }

    /// Stops sampling; returns the number of samples and the violations.
    ///
    /// # Panics
    /// When the sampling task panicked.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("sampler task")
    }
}

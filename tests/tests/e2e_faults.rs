//! The fault test: three `shardline run` workers on one DynamoDB lease
//! table, six shards on kinesis-mock, a steady keyed producer (30 keys
//! every 200 ms, at most 150 records/s), and a fault schedule:
//! - kill -9 of a random worker holding a lease every 10-15 s (seeded),
//!   restarted at once under a *new* worker id, so a killed worker's
//!   leases can only come back through takeover (expiry after
//!   `failover_time`);
//! - GetRecords throttling through [`KinesisProxy`]: every 10th call is
//!   answered `400 ProvisionedThroughputExceededException` (Kinesis JSON
//!   1.1), the others forwarded after 25 ms (a real service's latency);
//! - per 100 s cycle: a split of the widest open shard at +12 s, S3
//!   throttling (every 2nd write `503 SlowDown`) +25..40 s, a merge of the
//!   split's two children at +45 s, an S3 outage +55..80 s (10 s refused
//!   with `503 SlowDown`, then 15 s of hung connections) through
//!   [`S3Proxy`].
//!
//! The sink is the S3 plugin (`request_timeout = "3s"`, `[delivery]
//! retry_attempts = 0` so an outage delays records instead of
//! dead-lettering them). Faults run for `SHARDLINE_FAULT_DURATION`
//! (default `100s`, i.e. one cycle; `scripts/soak 30m` runs more), with the
//! seed `SHARDLINE_FAULT_SEED` (default 9). Then the producer stops, faults
//! end, every record is waited for and every worker gets SIGTERM.
//!
//! It asserts (all failures are collected and reported together, after
//! the figures):
//! - nothing lost: every produced record is in the bucket;
//! - per-key order of first deliveries: in the order the store accepted
//!   the writes (the S3 proxy's log), each key's first deliveries have
//!   growing rounds `n`;
//! - checkpoints never regress (the lease table scanned every 250 ms);
//! - the split parent and both merge parents reach `SHARD_END`;
//! - every duplicate is explained by a lease handover within
//!   `checkpoint_interval` (500 ms) of it: the rule is
//!   [`fault_scenario::check_duplicates`] with a slack of 1 s for
//!   checkpoint writes and clocks. A re-delivery is explained when the
//!   record's shard changed hands, the new owner's start checkpoint (its
//!   "acquired lease" log line) is before the record, the re-delivery came
//!   after the acquisition, and the earlier delivery came at most
//!   `checkpoint_interval` (+ slack) before the previous owner stopped (its
//!   kill, or its "lost lease" line) and no later than that stop, or, when
//!   it stopped during an S3 fault window, than the window's end plus the
//!   sink's request timeout and longest back-off (a write it had in flight);
//! - takeover within 2 × `failover_time` (6 s): from each kill until
//!   another worker has logged "acquired lease" for every lease the killed
//!   worker held and, for readable shards, has called GetShardIterator for
//!   it (seen by the proxy) — [`fault_scenario::takeover_time`];
//! - abandoned GetRecords under 1 % of GetRecords calls, counted by the
//!   proxy (the client dropped the call before the answer); calls dropped
//!   within 1 s of a kill -9 (the dead process's connections) are excluded
//!   and reported apart;
//! - every worker exits 0 on SIGTERM.
//!
//! Sanity checks make sure the faults did happen (kills, throttled calls,
//! refused and hung writes, a reshard).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use rand::{Rng, SeedableRng};
use shardline_e2e::fault_proxy::{KinesisProxy, S3Fault, S3Proxy, S3Put};
use shardline_e2e::fault_scenario::{self as scenario, Kill, Produced};
use shardline_e2e::s3::{self, S3};
use shardline_e2e::*;

const SHARDS: i32 = 6;
const KEYS: usize = 30;
const WORKERS: usize = 3;
const FAILOVER_TIME: Duration = Duration::from_secs(3);
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_secs(1);
const CYCLE: Duration = Duration::from_secs(100);
const THROTTLE_EVERY: u32 = 10;
/// The sink's `request_timeout` plus `[delivery] retry_max_backoff`.
const SINK_IN_FLIGHT: Duration = Duration::from_secs(3 + 2);

#[derive(Debug, Clone, Copy)]
enum Step {
    Kill,
    Split,
    Merge,
    S3(S3Fault),
}

/// The seeded schedule: `(offset from the start, step)`, sorted.
fn schedule(duration: Duration, seed: u64) -> Vec<(Duration, Step)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut cycle = Duration::ZERO;
    while cycle < duration {
        for (at, step) in [
            (12, Step::Split),
            (25, Step::S3(S3Fault::SlowDownEvery(2))),
            (40, Step::S3(S3Fault::Pass)),
            (45, Step::Merge),
            (55, Step::S3(S3Fault::Refuse)),
            (65, Step::S3(S3Fault::Hang)),
            (80, Step::S3(S3Fault::Pass)),
        ] {
            let at = cycle + Duration::from_secs(at);
            if at < duration {
                steps.push((at, step));
            }
        }
        cycle += CYCLE;
    }
    let mut at = Duration::from_secs(rng.gen_range(8..=12));
    while at + Duration::from_secs(5) < duration {
        steps.push((at, Step::Kill));
        at += Duration::from_millis(rng.gen_range(10_000..=15_000));
    }
    steps.sort_by_key(|(at, _)| *at);
    steps
}

fn duration_from_env() -> Duration {
    let text = std::env::var("SHARDLINE_FAULT_DURATION").unwrap_or_default();
    if text.is_empty() {
        return CYCLE;
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("SHARDLINE_FAULT_DURATION={text:?}: want e.g. 100s, 30m, 2h"));
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => panic!("SHARDLINE_FAULT_DURATION={text:?}: unit must be s, m or h"),
    };
    Duration::from_secs(secs)
}

/// Every delivered id with the times the store accepted it, decoded from
/// the S3 proxy's write log as it grows.
#[derive(Default)]
struct Deliveries {
    decoded: usize,
    times: HashMap<String, Vec<(SystemTime, String)>>,
    order: Vec<String>,
}

impl Deliveries {
    fn update(&mut self, puts: &[S3Put]) {
        for put in &puts[self.decoded.min(puts.len())..] {
            let body = s3::decompress(&put.key, put.content_encoding.as_deref(), &put.body).unwrap_or_else(|e| panic!("{e:#}"));
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| panic!("{}: not JSON ({e})", put.key));
                let id = value.get("id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
                self.times.entry(id.clone()).or_default().push((put.at, put.key.clone()));
                self.order.push(id);
            }
        }
        self.decoded = puts.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_schedule_loses_nothing_and_recovers_fast() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(s3_endpoint) = s3::endpoint_from_env() else { return };
    let Some(plugins) = s3::plugin_dir() else { return };
    let Some(bin) = shardline_bin() else { return };
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let duration = duration_from_env();
    let seed: u64 = std::env::var("SHARDLINE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(9);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1));
    let dir = TestDir::new("faults");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-faults", SHARDS).await.expect("create stream");
    let s3 = S3::new(&s3_endpoint);
    let bucket = s3.create_bucket("faults").await.expect("create bucket");
    let kinesis_proxy = KinesisProxy::start(&emulators.kinesis_endpoint).await.expect("kinesis proxy");
    let s3_proxy = S3Proxy::start(&s3_endpoint).await.expect("s3 proxy");
    kinesis_proxy.set_get_records_latency(Duration::from_millis(25));
    kinesis_proxy.throttle_every(THROTTLE_EVERY);

    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.kinesis_endpoint = kinesis_proxy.endpoint();
    spec.transforms = Vec::new();
    spec.failover_time = format!("{}s", FAILOVER_TIME.as_secs());
    spec.checkpoint_interval = Some(format!("{}ms", CHECKPOINT_INTERVAL.as_millis()));
    spec.buffer_max_records = 100;
    spec.buffer_max_age = "500ms".into();
    let sink = format!(
        "type = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nforce_path_style = true\nchecksum_calculation = \"when_required\"\nrequest_timeout = \"3s\"",
        s3_proxy.endpoint()
    );
    let toml = s3::pipeline_with_sink(&spec, &sink) + "\n[delivery]\nretry_attempts = 0\nretry_max_backoff = \"2s\"\n";
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, toml).expect("write the pipeline");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());

    let mut current: Vec<Worker> = (1..=WORKERS).map(|i| Worker::start(&bin, &pipeline, &format!("w{i}"), dir.path())).collect();
    let mut retired: Vec<Worker> = Vec::new();
    wait_until(Duration::from_secs(60), "every shard leased and every worker holding a lease", || async {
        for w in &current {
            w.ensure_running()?;
        }
        let scan = leases.scan().await?;
        let owners: BTreeSet<&str> = scan.iter().filter_map(|l| l.lease_owner.as_deref()).collect();
        Ok(scan.iter().filter(|l| l.lease_owner.is_some()).count() >= SHARDS as usize && current.iter().all(|w| owners.contains(w.id())))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    let watch = scenario::LeaseWatch::spawn(&leases);
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key{k:02}")).collect();
    let producer = KeyedProducer::spawn(&kinesis, &stream, keys.clone(), Duration::from_millis(200));
    let start = tokio::time::Instant::now();
    let (mut kills, mut parents, mut split_children, mut generation) = (Vec::<Kill>::new(), BTreeSet::new(), None, 0);
    // `(from, to)` of each S3 fault window; `to` is far off while it lasts.
    let far_future = SystemTime::now() + Duration::from_secs(365 * 86_400);
    let mut sink_faults: Vec<(SystemTime, SystemTime)> = Vec::new();
    eprintln!("fault schedule: {duration:?}, seed {seed}, workers w1..w{WORKERS}, dir {}", dir.path().display());
    for (at, step) in schedule(duration, seed) {
        tokio::time::sleep_until(start + at).await;
        for w in &current {
            w.ensure_running().unwrap_or_else(|e| panic!("at +{at:?}: {e:#}"));
        }
        match step {
            Step::Kill => {
                // A random worker among those holding a lease that is not
                // finished (a worker without one has nothing to take over).
                let snapshot = leases.scan().await.expect("scan leases before the kill");
                let holding: Vec<usize> = (0..WORKERS)
                    .filter(|&i| snapshot.iter().any(|l| l.lease_owner.as_deref() == Some(current[i].id()) && l.checkpoint.as_deref() != Some("SHARD_END")))
                    .collect();
                let slot = if holding.is_empty() { rng.gen_range(0..WORKERS) } else { holding[rng.gen_range(0..holding.len())] };
                let victim = current[slot].id().to_owned();
                let killed_at = SystemTime::now();
                current[slot].kill9();
                generation += 1;
                let id = format!("w{}-{generation}", slot + 1);
                eprintln!("+{:>5.1}s kill -9 {victim} (held {}), start {id}", at.as_secs_f64(), snapshot.iter().filter(|l| l.lease_owner.as_deref() == Some(&victim)).count());
                kills.push(Kill { at: killed_at, worker: victim, leases: snapshot });
                let fresh = Worker::start(&bin, &pipeline, &id, dir.path());
                retired.push(std::mem::replace(&mut current[slot], fresh));
            }
            Step::Split => {
                let shards = kinesis.list_shards(&stream).await.expect("list shards");
                let widest = shards.iter().filter(|s| s.is_open()).max_by_key(|s| s.ending_hash_key - s.starting_hash_key).expect("an open shard");
                let children = kinesis.split_shard_in_half(&stream, &widest.shard_id).await.expect("split");
                eprintln!("+{:>5.1}s split {} into {children:?}", at.as_secs_f64(), widest.shard_id);
                parents.insert(widest.shard_id.clone());
                split_children = Some(children);
            }
            Step::Merge => {
                if let Some((low, high)) = split_children.take() {
                    let child = kinesis.merge_shards(&stream, &low, &high).await.expect("merge");
                    eprintln!("+{:>5.1}s merge {low} + {high} into {child}", at.as_secs_f64());
                    parents.insert(low);
                    parents.insert(high);
                }
            }
            Step::S3(fault) => {
                eprintln!("+{:>5.1}s s3 {fault:?}", at.as_secs_f64());
                s3_proxy.set_fault(fault);
                let now = SystemTime::now();
                match (fault, sink_faults.last_mut()) {
                    (S3Fault::Pass, Some(window)) => window.1 = now,
                    (S3Fault::Pass, None) => {}
                    (_, Some(window)) if window.1 == far_future => {}
                    _ => sink_faults.push((now, far_future)),
                }
            }
        }
    }
    tokio::time::sleep_until(start + duration).await;
    let (rounds, puts) = producer.stop().await;
    s3_proxy.set_fault(S3Fault::Pass);
    if let Some(window) = sink_faults.last_mut().filter(|w| w.1 == far_future) {
        window.1 = SystemTime::now();
    }
    let mut produced: HashMap<String, Produced> = HashMap::new();
    for (i, put) in puts.iter().enumerate() {
        let (n, key) = (i / KEYS, &keys[i % KEYS]);
        produced.insert(keyed_id(key, n), Produced { key: key.clone(), n, shard: put.shard_id.clone(), sequence: put.sequence_number.clone() });
    }
    eprintln!("faults over after {:?}: {rounds} rounds, {} records; waiting for delivery", start.elapsed(), produced.len());

    let mut deliveries = Deliveries::default();
    let delivered = wait_until(Duration::from_secs(120), "every record delivered", || {
        deliveries.update(&s3_proxy.stats().puts);
        let missing = produced.keys().filter(|id| !deliveries.times.contains_key(*id)).count();
        let running = current.iter().try_for_each(Worker::ensure_running);
        async move {
            running?;
            Ok(missing == 0)
        }
    })
    .await;

    // SIGTERM to all at once, then collect every exit status.
    let shutdown_started = SystemTime::now();
    let mut exits = Vec::new();
    for w in &current {
        if let Err(e) = w.sigterm() {
            exits.push(format!("{}: {e:#}", w.id()));
        }
    }
    for w in &current {
        match w.wait_exit(Duration::from_secs(60)) {
            Ok(status) if status.code() == Some(0) => {}
            Ok(status) => exits.push(format!("{} exited with {status} after SIGTERM; its log:\n{}", w.id(), w.log_tail(30))),
            Err(e) => exits.push(format!("{e:#}")),
        }
    }
    let history = watch.finish().await;
    let final_leases = leases.scan().await.expect("final lease scan");
    let stored: BTreeSet<String> = s3::ndjson_ids(&s3.objects(&bucket, "").await.expect("read the bucket")).into_iter().collect();
    let s3_stats = s3_proxy.stats();
    deliveries.update(&s3_stats.puts);
    let kinesis_stats = kinesis_proxy.stats();

    // The analysis.
    let events: Vec<scenario::LeaseEvent> =
        current.iter().chain(&retired).flat_map(|w| scenario::lease_events(w.id(), &w.log_text())).collect();
    let handovers = scenario::handovers(&events, &kills);
    let rule = scenario::DuplicateRule { checkpoint_interval: CHECKPOINT_INTERVAL, slack: SLACK, sink_faults: sink_faults.clone(), in_flight: SINK_IN_FLIGHT };
    let (duplicates, unexplained) = scenario::check_duplicates(&deliveries.times, &produced, &handovers, &rule);
    let order = scenario::check_first_delivery_order(deliveries.order.iter().map(String::as_str), &produced);
    let lost: Vec<&String> = produced.keys().filter(|id| !stored.contains(*id)).collect();
    let takeovers: Vec<(String, Option<Result<f64, String>>)> =
        kills.iter().map(|k| (k.worker.clone(), scenario::takeover_time(k, &events, &kinesis_stats.iterators))).collect();
    let times: Vec<f64> = takeovers.iter().filter_map(|(_, t)| t.clone()?.ok()).collect();
    let near_kill = |t: &SystemTime| kills.iter().any(|k| (-0.1..=1.0).contains(&scenario::secs_between(*t, k.at)));
    let abandoned_kill = kinesis_stats.abandoned.iter().filter(|t| near_kill(t)).count();
    let abandoned_shutdown = kinesis_stats.abandoned.iter().filter(|t| !near_kill(t) && **t >= shutdown_started).count();
    let abandoned = kinesis_stats.abandoned.len() - abandoned_kill - abandoned_shutdown;
    let losses: Vec<SystemTime> = events.iter().filter(|e| e.message == "lost lease").map(|e| e.at).collect();
    let abandoned_at_loss = kinesis_stats
        .abandoned
        .iter()
        .filter(|t| !near_kill(t) && **t < shutdown_started && losses.iter().any(|l| (-0.1..=1.0).contains(&scenario::secs_between(**t, *l))))
        .count();
    let pct = |a: usize, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let abandoned_pct = pct(abandoned, kinesis_stats.get_records);
    let limit = 2.0 * FAILOVER_TIME.as_secs_f64();
    let (tmin, tmed, tmax) = scenario::min_median_max(&times).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
    let deliveries_total: usize = deliveries.times.values().map(Vec::len).sum();
    let not_at_end: Vec<String> = parents
        .iter()
        .filter(|p| !history.shard_end.contains(*p) || final_leases.iter().any(|l| &l.lease_key == *p && l.checkpoint.as_deref() != Some("SHARD_END")))
        .cloned()
        .collect();

    eprintln!("\n===== fault test figures =====");
    eprintln!("duration / seed          : {duration:?} of faults, seed {seed}, {WORKERS} workers, {SHARDS} shards + split + merge, failover_time {FAILOVER_TIME:?}, checkpoint_interval {CHECKPOINT_INTERVAL:?}");
    eprintln!("records produced         : {} ({rounds} rounds x {KEYS} keys)", produced.len());
    eprintln!("records delivered        : {} distinct, {deliveries_total} deliveries in {} objects; lost {}", deliveries.times.len(), s3_stats.puts.len(), lost.len());
    eprintln!("duplicates               : {duplicates} ({:.3} % of produced), unexplained {}", 100.0 * duplicates as f64 / produced.len().max(1) as f64, unexplained.len());
    eprintln!("kills (kill -9)          : {} ; takeover min/median/max {tmin:.2} / {tmed:.2} / {tmax:.2} s (limit {limit:.1} s), per kill: {:?}", kills.len(), takeovers.iter().map(|(w, t)| format!("{w}: {t:.2?}")).collect::<Vec<_>>());
    eprintln!("GetRecords               : {} calls, {} throttled ({:.2} %), {abandoned} abandoned ({abandoned_pct:.2} %, {abandoned_at_loss} of them within 1 s of a lease loss) [+{abandoned_kill} at kill -9, +{abandoned_shutdown} at shutdown, not counted]", kinesis_stats.get_records, kinesis_stats.throttled, pct(kinesis_stats.throttled as usize, kinesis_stats.get_records));
    eprintln!("S3 requests              : {} ; refused (503 SlowDown) {}, hung {}, abandoned by the client {}", s3_stats.requests, s3_stats.refused, s3_stats.hung, s3_stats.abandoned);
    eprintln!("lease table              : {} scans, {} owner changes, {} checkpoint regressions, parents {:?} at SHARD_END: {}", history.samples, history.owner_changes.values().sum::<usize>(), history.regressions.len(), parents, not_at_end.is_empty());
    eprintln!("SIGTERM exits            : {}", if exits.is_empty() { "all 0".to_owned() } else { format!("{} failed", exits.len()) });
    eprintln!("==============================\n");

    let mut failures = Vec::new();
    if let Err(e) = &delivered {
        failures.push(format!("delivery: {e:#}"));
    }
    if !lost.is_empty() {
        let sample: Vec<String> = lost.iter().take(10).map(|id| format!("{id} ({})", produced[*id].shard)).collect();
        failures.push(format!("lost: {} of {} records are not in the bucket, e.g. {sample:?}", lost.len(), produced.len()));
    }
    if !order.is_empty() {
        failures.push(format!("per-key order of first deliveries broken: {order:#?}"));
    }
    if !history.regressions.is_empty() {
        failures.push(format!("checkpoints regressed: {:#?}", history.regressions));
    }
    if !not_at_end.is_empty() {
        failures.push(format!("closed parents not at SHARD_END: {not_at_end:?}; final leases: {:#?}", Lease::summary(&final_leases)));
    }
    if !unexplained.is_empty() {
        failures.push(format!("{} of {duplicates} duplicates not explained by a lease handover within {CHECKPOINT_INTERVAL:?} (+{SLACK:?}), the first: {:#?}", unexplained.len(), &unexplained[..unexplained.len().min(20)]));
    }
    for (worker, t) in &takeovers {
        match t {
            Some(Ok(t)) if *t > limit => failures.push(format!("takeover after killing {worker} took {t:.2} s, limit 2 x failover_time = {limit:.1} s")),
            Some(Err(missing)) => failures.push(format!("after killing {worker}, leases never taken over and read again: {missing}")),
            _ => {}
        }
    }
    if abandoned_pct >= 1.0 {
        failures.push(format!("{abandoned} of {} GetRecords calls abandoned ({abandoned_pct:.2} %), limit 1 %", kinesis_stats.get_records));
    }
    failures.extend(exits.iter().map(|e| format!("shutdown: {e}")));
    if events.iter().all(|e| e.message != "acquired lease") {
        failures.push("no \"acquired lease\" line in any worker log: takeovers and duplicates cannot be checked (did the log message change?)".into());
    }
    for (happened, what) in [
        (!kills.is_empty(), "no kill -9 happened"),
        (takeovers.iter().any(|(_, t)| t.is_some()), "no kill hit a worker holding leases"),
        (kinesis_stats.throttled > 0, "no GetRecords was throttled"),
        (s3_stats.refused > 0, "no S3 write was refused"),
        (s3_stats.hung > 0, "no S3 write was hung"),
        (!s3_stats.puts.is_empty(), "the S3 proxy logged no object write (its PutObject detection is broken)"),
        (parents.len() >= 3, "the split and the merge did not both happen"),
    ] {
        if !happened {
            failures.push(format!("the fault schedule did not run: {what}"));
        }
    }
    assert!(failures.is_empty(), "{} fault-test assertion(s) failed:\n- {}", failures.len(), failures.join("\n- "));
}

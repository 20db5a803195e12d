//! `ShardPipeline` end to end with an in-test sink that answers scripted
//! statuses and an in-memory dead-letter destination. Time is paused, so
//! back-offs and `max_age` pass instantly and nothing sleeps for real.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::{
    ByteSize, HumanDuration, Payload, Position, Record, RecordMeta, RecordStatus, RejectedRecord, SequenceNumber, Sink, SinkError,
    Transform,
};
use shardline_pipeline::{
    BufferConfig, DeadLetter, DeadLetterEntry, DeliveryConfig, PipelineEvent, ShardContext, ShardPipeline,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;

fn pos(i: u64) -> Position {
    Position::new(SequenceNumber::parse(&(1000 + i).to_string()).expect("digits"), 0)
}

fn record(i: u64, data: &str) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("stream"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: pos(i).sequence,
        sub_sequence_number: 0,
        partition_key: format!("pk{i}"),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH,
        aggregated: false,
    };
    Record::new(Bytes::from(data.to_owned()), Arc::new(meta))
}

fn text(record: &Record) -> String {
    String::from_utf8_lossy(&record.payload.to_bytes()).into_owned()
}

/// Answers per record by payload: `reject…` is rejected, `flaky<N>…` is
/// retriable for its first N sends, `never…` is always retriable; anything
/// else is delivered. Queued whole-batch errors are answered first. A batch
/// whose first payload has a gate waits for a permit.
#[derive(Default)]
struct ScriptedSink {
    batch_errors: Mutex<VecDeque<SinkError>>,
    sends: Mutex<HashMap<String, u32>>,
    batches: Mutex<Vec<Vec<String>>>,
    delivered: Mutex<Vec<String>>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    flushes: AtomicU32,
}

impl ScriptedSink {
    fn gate(&self, first_payload: &str) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        self.gates.lock().expect("lock").insert(first_payload.to_owned(), gate.clone());
        gate
    }
    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().expect("lock").clone()
    }
    fn delivered(&self) -> Vec<String> {
        self.delivered.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Sink for ScriptedSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let payloads: Vec<String> = batch.iter().map(text).collect();
        self.batches.lock().expect("lock").push(payloads.clone());
        let gate = payloads.first().and_then(|p| self.gates.lock().expect("lock").get(p).cloned());
        if let Some(gate) = gate {
            gate.acquire().await.expect("open").forget();
        }
        if let Some(err) = self.batch_errors.lock().expect("lock").pop_front() {
            return Err(err);
        }
        let mut sends = self.sends.lock().expect("lock");
        let mut statuses = Vec::new();
        for p in payloads {
            let n = sends.entry(p.clone()).or_insert(0);
            *n += 1;
            let status = if p.starts_with("reject") {
                RecordStatus::Rejected { reason: format!("{p} is not welcome") }
            } else if p.starts_with("never") {
                RecordStatus::Retriable { reason: "throttled".to_owned(), backoff: None }
            } else if let Some(times) = p.strip_prefix("flaky").and_then(|r| r[..1].parse::<u32>().ok()) {
                if *n <= times {
                    RecordStatus::Retriable { reason: "throttled".to_owned(), backoff: Some(Duration::from_millis(5)) }
                } else {
                    RecordStatus::Delivered
                }
            } else {
                RecordStatus::Delivered
            };
            if status == RecordStatus::Delivered {
                self.delivered.lock().expect("lock").push(p);
            }
            statuses.push(status);
        }
        Ok(statuses)
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Keeps entries in memory; fails every write while `failing` is set.
#[derive(Default)]
struct MemoryDeadLetter {
    entries: Mutex<Vec<DeadLetterEntry>>,
    failing: AtomicBool,
    failures: AtomicU32,
}

impl MemoryDeadLetter {
    fn entries(&self) -> Vec<(String, String, String)> {
        self.entries.lock().expect("lock").iter().map(|e| (text(&e.record), e.stage.clone(), e.reason.clone())).collect()
    }
}

#[async_trait]
impl DeadLetter for MemoryDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        if self.failing.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::retriable("disk full"));
        }
        self.entries.lock().expect("lock").extend_from_slice(entries);
        Ok(())
    }
}

struct Harness {
    pipeline: ShardPipeline,
    sink: Arc<ScriptedSink>,
    dead: Arc<MemoryDeadLetter>,
}

fn harness(max_records: usize, delivery: DeliveryConfig, transforms: Vec<Box<dyn Transform>>) -> Harness {
    let sink = Arc::new(ScriptedSink::default());
    let dead = Arc::new(MemoryDeadLetter::default());
    let ctx = ShardContext {
        pipeline: Arc::from("orders"),
        stream: Arc::from("stream"),
        shard_id: Arc::from("shardId-000000000000"),
    };
    let buffer =
        BufferConfig { max_records, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(60) };
    let pipeline = ShardPipeline::new(ctx, transforms, buffer, delivery, sink.clone(), dead.clone());
    Harness { pipeline, sink, dead }
}

fn delivery(retry_attempts: u32, concurrency: usize) -> DeliveryConfig {
    DeliveryConfig { concurrency, retry_attempts, ..DeliveryConfig::default() }
}

/// Drives `next_event` until `done` holds, failing after a (virtual) minute
/// of no success.
async fn drive_until(p: &mut ShardPipeline, what: &str, mut done: impl FnMut(&ShardPipeline) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !done(p) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if p.next_event().await == PipelineEvent::Idle && !done(p) {
            panic!("pipeline idle before {what}");
        }
    }
}

/// Polls a condition on shared state (e.g. a gated sink was called),
/// letting spawned tasks run.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn checkpoint_only_after_the_sink_acknowledged() {
    let mut h = harness(2, delivery(10, 1), vec![]);
    let gate = h.sink.gate("a");
    h.pipeline.push(vec![record(0, "a"), record(1, "b"), record(2, "c")]);
    wait_for("first send", || h.sink.batches().len() == 1).await;
    assert_eq!(h.pipeline.checkpoint(), None);
    assert_eq!(h.pipeline.outstanding(), 3);
    // Held by the gate: no event within a virtual minute.
    assert!(tokio::time::timeout(Duration::from_secs(30), h.pipeline.next_event()).await.is_err());
    assert_eq!(h.pipeline.checkpoint(), None);
    gate.add_permits(1);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: Some(pos(1)) });
    // "c" is below the limits: drain flushes it.
    assert_eq!(h.pipeline.drain().await, Some(pos(2)));
    assert_eq!(h.sink.batches(), [vec!["a", "b"], vec!["c"]]);
    assert_eq!(h.sink.flushes.load(Ordering::SeqCst), 1);
    assert_eq!(h.pipeline.outstanding(), 0);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Idle);
    assert_eq!(h.pipeline.stats().records_delivered, 3);
}

#[tokio::test(start_paused = true)]
async fn retriable_records_are_retried_then_delivered() {
    let mut h = harness(3, delivery(10, 1), vec![]);
    h.pipeline.push(vec![record(0, "ok0"), record(1, "flaky2"), record(2, "ok2")]);
    drive_until(&mut h.pipeline, "all acknowledged", |p| p.checkpoint() == Some(pos(2))).await;
    assert_eq!(h.sink.batches(), [vec!["ok0", "flaky2", "ok2"], vec!["flaky2"], vec!["flaky2"]]);
    assert_eq!(h.sink.delivered(), ["ok0", "ok2", "flaky2"]);
    assert!(h.dead.entries().is_empty());
    let stats = h.pipeline.stats();
    assert_eq!((stats.sink_retries, stats.records_delivered, stats.records_dead_lettered), (2, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn rejected_and_exhausted_records_are_dead_lettered() {
    let mut h = harness(3, delivery(3, 1), vec![]);
    h.pipeline.push(vec![record(0, "reject-me"), record(1, "never-ok"), record(2, "fine")]);
    drive_until(&mut h.pipeline, "all acknowledged", |p| p.checkpoint() == Some(pos(2))).await;
    assert_eq!(h.sink.batches().len(), 3, "three attempts of the retriable record");
    assert_eq!(h.sink.delivered(), ["fine"]);
    let dead = h.dead.entries();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].0, "reject-me");
    assert_eq!((dead[0].1.as_str(), dead[0].2.as_str()), ("sink", "reject-me is not welcome"));
    assert_eq!(dead[1].0, "never-ok");
    assert_eq!(dead[1].2, "gave up after 3 attempts: throttled");
    let stats = h.pipeline.stats();
    assert_eq!((stats.records_dead_lettered, stats.sink_retries, stats.records_delivered), (2, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn whole_batch_errors() {
    let mut h = harness(2, delivery(10, 1), vec![]);
    {
        let mut errors = h.sink.batch_errors.lock().expect("lock");
        errors.push_back(SinkError::retriable("503 from endpoint"));
        errors.push_back(SinkError::retriable("503 from endpoint"));
    }
    h.pipeline.push(vec![record(0, "a"), record(1, "b")]);
    drive_until(&mut h.pipeline, "retried batch", |p| p.checkpoint() == Some(pos(1))).await;
    assert_eq!(h.sink.delivered(), ["a", "b"]);
    assert_eq!(h.pipeline.stats().sink_retries, 4, "two records retried twice");

    h.sink.batch_errors.lock().expect("lock").push_back(SinkError::permanent("access denied to bucket x"));
    h.pipeline.push(vec![record(2, "c"), record(3, "d")]);
    drive_until(&mut h.pipeline, "dead-lettered batch", |p| p.checkpoint() == Some(pos(3))).await;
    let dead = h.dead.entries();
    assert_eq!(dead.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["c", "d"]);
    assert!(dead.iter().all(|d| d.2 == "permanent sink error: access denied to bucket x"), "{dead:?}");
    assert_eq!(h.sink.batches().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn transforms_split_filter_and_dead_letter_end_to_end() {
    let build = |name: &str| shardline_transforms::build(name, &toml::Table::new()).expect("known transform");
    let transforms = vec![build("parse_json"), build("split"), build("encode_json")];
    let mut h = harness(100, delivery(10, 1), transforms);
    h.pipeline.push(vec![
        record(0, "[1, {\"a\": 2}]"),
        record(1, "not json"),
        record(2, "[]"),
        record(3, "{\"not\": \"an array\"}"),
        record(4, "[\"x\"]"),
    ]);
    assert_eq!(h.pipeline.outstanding(), 4, "the filtered record is acknowledged at once");
    assert_eq!(h.pipeline.checkpoint(), None);
    assert_eq!(h.pipeline.drain().await, Some(pos(4)));
    assert_eq!(h.sink.batches(), [vec!["1", "{\"a\":2}", "\"x\""]]);
    let dead = h.dead.entries();
    assert_eq!(dead.len(), 2);
    assert_eq!((dead[0].0.as_str(), dead[0].1.as_str()), ("not json", "transform:parse_json"));
    assert!(dead[0].2.starts_with("invalid JSON at byte 1 (line 1, column 2): "), "{}", dead[0].2);
    // The input as it was read is dead-lettered, not the parsed value.
    assert_eq!(dead[1], ("{\"not\": \"an array\"}".to_owned(), "transform:split".to_owned(),
        "split needs a JSON array, got an object".to_owned()));
    let stats = h.pipeline.stats();
    assert_eq!((stats.records_filtered, stats.records_dead_lettered, stats.records_delivered), (1, 2, 3));
}

#[tokio::test(start_paused = true)]
async fn failing_dead_letter_writes_stall_the_checkpoint_and_lose_nothing() {
    let mut h = harness(10, delivery(10, 1), vec![shardline_transforms::build("parse_json", &toml::Table::new())
        .expect("known")]);
    h.dead.failing.store(true, Ordering::SeqCst);
    h.pipeline.push(vec![record(0, "1"), record(1, "{bad"), record(2, "2")]);
    drive_until(&mut h.pipeline, "good records delivered", |p| p.checkpoint() == Some(pos(0))).await;
    // The batch of "1" and "2" is delivered after its age flush, but the
    // record in between is still waiting for the dead-letter destination.
    drive_until(&mut h.pipeline, "delivery", |_| h.sink.delivered().len() == 2).await;
    assert!(tokio::time::timeout(Duration::from_secs(600), h.pipeline.next_event()).await.is_err());
    assert_eq!(h.pipeline.checkpoint(), Some(pos(0)), "never passes the undead-lettered record");
    assert_eq!(h.pipeline.outstanding(), 1);
    let failures = h.dead.failures.load(Ordering::SeqCst);
    assert!(failures >= 3, "retried with back-off: {failures}");
    assert_eq!(h.pipeline.stats().dead_letter_write_failures, u64::from(failures));
    h.dead.failing.store(false, Ordering::SeqCst);
    drive_until(&mut h.pipeline, "dead letter written", |p| p.checkpoint() == Some(pos(2))).await;
    assert_eq!(h.dead.entries().len(), 1);
    assert_eq!(h.dead.entries()[0].0, "{bad");
}

#[tokio::test(start_paused = true)]
async fn age_flush_while_idle() {
    let mut h = harness(100, delivery(10, 1), vec![]);
    let start = Instant::now();
    h.pipeline.push(vec![record(0, "lonely")]);
    // Not yet due: nothing sent within 59 virtual seconds.
    assert!(tokio::time::timeout(Duration::from_secs(59), h.pipeline.next_event()).await.is_err());
    assert!(h.sink.batches().is_empty());
    assert!(h.pipeline.has_capacity());
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: None });
    assert!(start.elapsed() >= Duration::from_secs(60), "{:?}", start.elapsed());
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: Some(pos(0)) });
    assert_eq!(h.sink.batches(), [vec!["lonely"]]);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Idle);
    assert_eq!(h.pipeline.stats().batches_flushed, 1);
}

#[tokio::test(start_paused = true)]
async fn backpressure_while_the_in_flight_slot_is_held() {
    let mut h = harness(2, delivery(10, 1), vec![]);
    let gate = h.sink.gate("a");
    h.pipeline.push(vec![record(0, "a"), record(1, "b")]);
    assert!(h.pipeline.has_capacity(), "one batch in flight, nothing waiting");
    h.pipeline.push(vec![record(2, "c")]);
    assert!(h.pipeline.has_capacity(), "open batch below its limits");
    h.pipeline.push(vec![record(3, "d")]);
    assert!(!h.pipeline.has_capacity(), "a full batch waits for the only slot");
    wait_for("first send", || !h.sink.batches().is_empty()).await;
    assert!(!h.pipeline.has_capacity());
    assert_eq!(h.sink.batches().len(), 1);
    gate.add_permits(1);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: Some(pos(1)) });
    assert!(h.pipeline.has_capacity(), "the waiting batch took the freed slot");
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: Some(pos(3)) });
    assert_eq!(h.sink.batches(), [vec!["a", "b"], vec!["c", "d"]]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_batches_complete_out_of_order() {
    let mut h = harness(2, delivery(10, 2), vec![]);
    let first = h.sink.gate("a");
    let second = h.sink.gate("c");
    h.pipeline.push(vec![record(0, "a"), record(1, "b"), record(2, "c"), record(3, "d")]);
    wait_for("both batches in flight", || h.sink.batches().len() == 2).await;
    second.add_permits(1);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: None });
    assert_eq!(h.pipeline.outstanding(), 2, "later batch done, but the earlier one is not");
    first.add_permits(1);
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Progress { checkpoint: Some(pos(3)) });
    assert_eq!(h.pipeline.outstanding(), 0);
}

#[tokio::test(start_paused = true)]
async fn abort_drops_everything() {
    let mut h = harness(2, delivery(10, 1), vec![]);
    let _gate = h.sink.gate("a");
    h.pipeline.push(vec![record(0, "a"), record(1, "b"), record(2, "c")]);
    wait_for("first send", || h.sink.batches().len() == 1).await;
    h.pipeline.abort();
    assert_eq!(h.pipeline.checkpoint(), None);
    assert_eq!(h.pipeline.outstanding(), 0);
    assert!(!h.pipeline.has_capacity());
    assert_eq!(h.pipeline.next_event().await, PipelineEvent::Idle);
    assert_eq!(h.pipeline.drain().await, None);
    h.pipeline.push(vec![record(3, "d")]);
    assert_eq!(h.pipeline.outstanding(), 0, "push after abort is ignored");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.sink.batches().len(), 1, "nothing more was sent");
    assert!(h.sink.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn byte_limit_flushes_and_json_payloads_count() {
    let sink = Arc::new(ScriptedSink::default());
    let dead = Arc::new(MemoryDeadLetter::default());
    let ctx = ShardContext { pipeline: Arc::from("p"), stream: Arc::from("s"), shard_id: Arc::from("shard") };
    let buffer = BufferConfig { max_records: 1000, max_bytes: ByteSize(10), max_age: HumanDuration::from_secs(60) };
    let mut p = ShardPipeline::new(ctx, vec![], buffer, DeliveryConfig::default(), sink.clone(), dead);
    let mut big = record(2, "");
    big.payload = Payload::Json(serde_json::json!("0123456789"));
    p.push(vec![record(0, "12345"), record(1, "67890"), big, record(3, "x")]);
    assert_eq!(p.drain().await, Some(pos(3)));
    assert_eq!(sink.batches(), [vec!["12345", "67890"], vec!["\"0123456789\""], vec!["x"]]);
}

#[tokio::test(start_paused = true)]
async fn records_the_source_rejects_are_dead_lettered_in_shard_order() {
    let mut h = harness(10, delivery(10, 1), vec![]);
    h.dead.failing.store(true, Ordering::SeqCst);
    let rejected = |i: u64, data: &str| RejectedRecord {
        record: record(i, data),
        stage: "source:kpl".to_owned(),
        reason: "outside the shard's hash key range".to_owned(),
    };
    // Rejected positions before, between and after the pipeline's records.
    h.pipeline.push_with_rejected(
        vec![record(1, "a"), record(3, "b")],
        vec![rejected(0, "agg0"), rejected(2, "agg2"), rejected(4, "agg4")],
    );
    assert_eq!(h.pipeline.outstanding(), 5);
    drive_until(&mut h.pipeline, "delivery", |_| h.sink.delivered().len() == 2).await;
    assert_eq!(h.pipeline.checkpoint(), None, "never passes a record not yet dead-lettered");
    h.dead.failing.store(false, Ordering::SeqCst);
    drive_until(&mut h.pipeline, "dead letters written", |p| p.checkpoint() == Some(pos(4))).await;
    let dead = h.dead.entries();
    let mut texts: Vec<&str> = dead.iter().map(|(t, _, _)| t.as_str()).collect();
    texts.sort_unstable();
    assert_eq!(texts, ["agg0", "agg2", "agg4"]);
    assert!(dead.iter().all(|(_, stage, reason)| stage == "source:kpl" && reason.contains("hash key range")));
    assert_eq!(h.pipeline.stats().records_dead_lettered, 3);
}

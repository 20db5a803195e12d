//! A sink call that never completes, through `ShardPipeline` and
//! `CallTimeout` (`[delivery] call_timeout`): the batch is abandoned at the
//! deadline, counted as a retriable failure, and sent again through the
//! emitter's retry path: delivered once the sink answers again, or
//! dead-lettered after `retry_attempts`. Time is paused, so the deadlines
//! pass instantly.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::{ByteSize, HumanDuration, Position, Record, RecordMeta, RecordStatus, SequenceNumber, Sink, SinkError};
use shardline_pipeline::{BufferConfig, CallTimeout, DeadLetter, DeadLetterEntry, DeliveryConfig, ShardContext, ShardPipeline};
use tokio::time::Instant;

const CALL_TIMEOUT: Duration = Duration::from_secs(90);

fn pos(i: u64) -> Position {
    Position::new(SequenceNumber::parse(&(1000 + i).to_string()).expect("digits"), 0)
}

fn record(i: u64) -> Record {
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
    Record::new(Bytes::from(format!("r{i}")), Arc::new(meta))
}

/// Never answers its first `hangs` sends; delivers every later one.
struct HangingSink {
    hangs: u32,
    sends: AtomicU32,
    delivered: Mutex<Vec<Bytes>>,
}

#[async_trait]
impl Sink for HangingSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        if self.sends.fetch_add(1, Ordering::SeqCst) < self.hangs {
            std::future::pending::<()>().await;
        }
        self.delivered.lock().expect("lock").extend(batch.iter().map(|r| r.payload.to_bytes()));
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }
}

#[derive(Default)]
struct MemoryDeadLetter {
    entries: Mutex<Vec<DeadLetterEntry>>,
}

#[async_trait]
impl DeadLetter for MemoryDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        self.entries.lock().expect("lock").extend_from_slice(entries);
        Ok(())
    }
}

struct Run {
    sink: Arc<HangingSink>,
    dead: Arc<MemoryDeadLetter>,
    checkpoint: Option<Position>,
    pipeline: ShardPipeline,
    took: Duration,
}

async fn run(hangs: u32, retry_attempts: u32, records: u64) -> Run {
    let sink = Arc::new(HangingSink { hangs, sends: AtomicU32::new(0), delivered: Mutex::default() });
    let dead = Arc::new(MemoryDeadLetter::default());
    let ctx = ShardContext { pipeline: Arc::from("orders"), stream: Arc::from("stream"), shard_id: Arc::from("shardId-000000000000") };
    let buffer = BufferConfig { max_records: 100, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(1) };
    let delivery = DeliveryConfig {
        retry_attempts,
        call_timeout: HumanDuration::from_secs(CALL_TIMEOUT.as_secs()),
        ..DeliveryConfig::default()
    };
    let bounded = CallTimeout::wrap(sink.clone(), delivery.call_timeout.get(), "orders");
    let mut pipeline = ShardPipeline::new(ctx, Vec::new(), buffer, delivery, bounded, dead.clone());
    let started = Instant::now();
    pipeline.push((0..records).map(record).collect());
    // Without the deadline `drain` never returns: bound the test itself.
    let checkpoint = tokio::time::timeout(Duration::from_secs(24 * 3600), pipeline.drain()).await.expect("the shard drains");
    Run { sink, dead, checkpoint, pipeline, took: started.elapsed() }
}

#[tokio::test(start_paused = true)]
async fn a_hung_send_is_sent_again_after_the_deadline_and_delivered_once_the_sink_answers() {
    let run = run(2, 5, 3).await;
    assert_eq!(run.sink.sends.load(Ordering::SeqCst), 3, "two abandoned sends, then one that answered");
    let delivered = run.sink.delivered.lock().expect("lock").clone();
    assert_eq!(delivered, [&b"r0"[..], b"r1", b"r2"].map(Bytes::from_static), "each record delivered once, in order");
    assert!(run.dead.entries.lock().expect("lock").is_empty());
    assert_eq!(run.checkpoint, Some(pos(2)), "the checkpoint reaches the last record");
    let stats = run.pipeline.stats();
    assert_eq!((stats.records_delivered, stats.sink_retries), (3, 6), "{stats:?}");
    assert!(run.took >= 2 * CALL_TIMEOUT, "each hung send was waited for up to call_timeout: {:?}", run.took);
}

#[tokio::test(start_paused = true)]
async fn a_send_that_never_answers_is_dead_lettered_after_retry_attempts() {
    let run = run(u32::MAX, 3, 2).await;
    assert_eq!(run.sink.sends.load(Ordering::SeqCst), 3, "retry_attempts bounds the sends");
    assert!(run.sink.delivered.lock().expect("lock").is_empty());
    let entries = run.dead.entries.lock().expect("lock").clone();
    let dead: Vec<Bytes> = entries.iter().map(|e| e.record.payload.to_bytes()).collect();
    assert_eq!(dead, [&b"r0"[..], b"r1"].map(Bytes::from_static));
    for entry in &entries {
        assert_eq!(entry.stage, "sink");
        assert!(entry.reason.contains("gave up after 3 attempts") && entry.reason.contains("call_timeout (1m 30s)"), "{}", entry.reason);
    }
    assert_eq!(run.checkpoint, Some(pos(1)), "the checkpoint passes the dead-lettered records");
    assert_eq!(run.pipeline.stats().records_dead_lettered, 2);
    assert!(run.took >= 3 * CALL_TIMEOUT, "{:?}", run.took);
}

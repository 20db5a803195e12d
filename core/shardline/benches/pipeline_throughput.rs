//! Throughput of the read path on one core: GetRecords pages (plain 1 KiB
//! records, and KPL aggregates of 1 KiB user records) → `user_records`
//! (de-aggregation, hash-range filtering) → `ShardPipeline` (watermark,
//! buffer, emitter) → a sink that acknowledges everything.
//!
//! Prints records/s and MB/s of user-record payload. Target: at least
//! 100 MB/s per core for 1 KiB records. Run with `cargo bench -p shardline`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::Record as KinesisRecord;
use shardline_api::{ByteSize, HumanDuration, Record, RecordStatus, ShardInfo, Sink, SinkError};
use shardline_kinesis::kpl::{aggregate, UserRecord};
use shardline_kinesis::{user_records, RecordContext};
use shardline_pipeline::{BufferConfig, DeadLetterConfig, DeliveryConfig, PipelineEvent, ShardContext, ShardPipeline};

const RECORD_SIZE: usize = 1024;
const PAGE_RECORDS: usize = 1000;
const TOTAL_USER_RECORDS: usize = 200_000;

struct NullSink;

#[async_trait]
impl Sink for NullSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }
}

fn payload(i: usize) -> Vec<u8> {
    let mut body = format!("{{\"id\":{i},\"resource\":\"/products/{}\",\"referrer\":\"https://example.com/{}\",\"pad\":\"", i % 977, i % 31).into_bytes();
    while body.len() < RECORD_SIZE - 2 {
        body.push(b'x');
    }
    body.extend_from_slice(b"\"}");
    body
}

fn kinesis_record(sequence: u128, data: Vec<u8>, partition_key: String) -> KinesisRecord {
    KinesisRecord::builder()
        .sequence_number(format!("{:056}", 49_000_000_000_000_000_000_000u128 + sequence))
        .approximate_arrival_timestamp(DateTime::from(SystemTime::now()))
        .data(Blob::new(data))
        .partition_key(partition_key)
        .build()
        .expect("all required fields set")
}

/// Pages as GetRecords returns them; `per_aggregate` user records per
/// Kinesis record (1 = not aggregated).
fn pages(per_aggregate: usize) -> Vec<Vec<KinesisRecord>> {
    let kinesis_records = TOTAL_USER_RECORDS / per_aggregate;
    let mut all = Vec::with_capacity(kinesis_records);
    for k in 0..kinesis_records {
        let record = if per_aggregate == 1 {
            kinesis_record(k as u128, payload(k), format!("pk-{}", k % 64))
        } else {
            let users: Vec<UserRecord> = (0..per_aggregate)
                .map(|j| UserRecord {
                    partition_key: format!("pk-{}", (k * per_aggregate + j) % 64),
                    explicit_hash_key: None,
                    data: payload(k * per_aggregate + j).into(),
                })
                .collect();
            kinesis_record(k as u128, aggregate(&users), "agg".to_owned())
        };
        all.push(record);
    }
    let per_page = (PAGE_RECORDS / per_aggregate).max(1);
    let mut out = Vec::new();
    let mut it = all.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(per_page).collect());
    }
    out
}

async fn run(pages: Vec<Vec<KinesisRecord>>) -> (usize, usize, Duration) {
    let shard = ShardInfo {
        shard_id: "shardId-000000000000".into(),
        parent_shard_ids: vec![],
        starting_hash_key: "0".into(),
        ending_hash_key: u128::MAX.to_string(),
        closed: false,
    };
    let context = RecordContext::new("bench", "bench-stream", &shard);
    let buffer = BufferConfig { max_records: 1000, max_bytes: ByteSize(5 << 20), max_age: HumanDuration::from_secs(60) };
    let delivery = DeliveryConfig { concurrency: 4, ..DeliveryConfig::default() };
    let dead_letter = DeadLetterConfig::Stderr.build("bench").expect("stderr dead letter");
    let mut pipeline = ShardPipeline::new(
        ShardContext { pipeline: "bench".into(), stream: "bench-stream".into(), shard_id: shard.shard_id.as_str().into() },
        Vec::new(),
        buffer,
        delivery,
        Arc::new(NullSink),
        dead_letter,
    );
    let mut records = 0;
    let mut bytes = 0;
    let started = Instant::now();
    for page in pages {
        let users = user_records(page, &context, None).expect("valid sequence numbers").records;
        records += users.len();
        bytes += users.iter().map(|r| r.payload.approximate_len()).sum::<usize>();
        while !pipeline.has_capacity() {
            if let PipelineEvent::Idle = pipeline.next_event().await {
                break;
            }
        }
        pipeline.push(users);
    }
    let last = pipeline.drain().await;
    let elapsed = started.elapsed();
    assert!(last.is_some(), "every record must be acknowledged");
    assert_eq!(pipeline.outstanding(), 0);
    (records, bytes, elapsed)
}

fn main() {
    // One thread: the figures are per core.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!("pipeline throughput, one core, {RECORD_SIZE}-byte user records, {TOTAL_USER_RECORDS} per run");
    for (label, per_aggregate) in [("plain records", 1usize), ("KPL aggregates of 20", 20)] {
        let mut best: Option<(usize, usize, Duration)> = None;
        for _ in 0..3 {
            let input = pages(per_aggregate);
            let result = runtime.block_on(run(input));
            if best.is_none_or(|b| result.2 < b.2) {
                best = Some(result);
            }
        }
        if let Some((records, bytes, elapsed)) = best {
            let secs = elapsed.as_secs_f64();
            println!(
                "{label:<22} {:>10.0} records/s {:>8.1} MB/s  ({records} records in {:.3}s, best of 3)",
                records as f64 / secs,
                bytes as f64 / secs / 1e6,
                secs
            );
        }
    }
}

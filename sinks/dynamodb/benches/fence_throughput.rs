//! Items/s of the `dynamodb` sink with and without `fence_on_sequence` on
//! dynalite (`SHARDLINE_TEST_DYNAMODB_ENDPOINT`, set by `scripts/test`):
//!
//! ```text
//! scripts/test -p shardline-sink-dynamodb --bench fence_throughput
//! ```
//!
//! Writes the same batches of 500 new items (1 KiB each) through the
//! plugin host into a fresh table per setting, and prints items/s. Without
//! the fence the sink uses `BatchWriteItem` (25 items per request);
//! with it one conditional `PutItem` per item. dynalite is single-threaded
//! JavaScript, so the figures compare the two write paths on one machine,
//! not DynamoDB's own limits.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use serde_json::json;
use shardline_api::{BatchFence, RecordStatus};
use support::{client, create_table, record, sink, unique};

const BATCHES: u64 = 6;
const BATCH: u64 = 500;

async fn run(endpoint: &str, fenced: bool, concurrency: usize) -> f64 {
    let table = unique("bench");
    create_table(&client(endpoint), &table, ("id", T::S), None, None).await;
    let config = json!({ "table": table, "endpoint": endpoint, "region": "us-east-1", "fence_on_sequence": fenced, "concurrency": concurrency });
    let sink = sink(config, "bench");
    sink.healthcheck().await.expect("healthcheck");
    let filler = "x".repeat(1000);
    let fence = BatchFence {
        shard_id: "shardId-000000000004".into(),
        lease_counter: 1,
    };
    let started = Instant::now();
    for b in 0..BATCHES {
        let batch: Vec<_> = (0..BATCH)
            .map(|i| {
                record(
                    b * BATCH + i,
                    json!({ "id": format!("i-{b}-{i}"), "f": filler }).to_string(),
                )
            })
            .collect();
        let statuses = sink.send_fenced(&fence, &batch).await.expect("send");
        assert!(
            statuses.iter().all(|s| *s == RecordStatus::Delivered),
            "{statuses:?}"
        );
    }
    (BATCHES * BATCH) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(endpoint) = support::dynalite() else {
        return;
    };
    for (fenced, concurrency) in [(false, 4), (true, 4), (true, 16), (true, 64)] {
        let rate = run(&endpoint, fenced, concurrency).await;
        let how = if fenced {
            "fence_on_sequence = true  (PutItem)       "
        } else {
            "fence_on_sequence = false (BatchWriteItem)"
        };
        println!(
            "{how} concurrency = {concurrency:2}: {rate:8.0} items/s ({} items of 1 KiB)",
            BATCHES * BATCH
        );
    }
}

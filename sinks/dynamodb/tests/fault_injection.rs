//! **Fault injection**: `UnprocessedItems` and throttling, which neither
//! dynalite nor moto ever produce, injected by the test proxy in
//! `support/proxy.rs` in front of dynalite. The proxy's answers follow
//! DynamoDB's documented response format (a 200 `BatchWriteItem` response
//! whose `UnprocessedItems` lists the held-back `WriteRequest`s, which are
//! really not written; a 400 `ProvisionedThroughputExceededException`).
//!
//! Checked: unprocessed items and throttled requests are retried until
//! written; past `unprocessed_retry_timeout` the unwritten records are
//! answered retriable (never delivered, never dropped) and the engine,
//! once its retries run out, dead-letters them with the reason.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use serde_json::json;
use shardline_api::{ByteSize, HumanDuration, RecordStatus, SinkError};
use shardline_pipeline::{BufferConfig, DeadLetter, DeadLetterEntry, DeliveryConfig, ShardContext, ShardPipeline};
use support::proxy::Proxy;
use support::{client, create_table, dynalite, record, scan_json, sink, unique};

/// A table on dynalite and a proxy in front of it.
async fn setup(name: &str) -> Option<(String, Proxy, aws_sdk_dynamodb::Client)> {
    let endpoint = dynalite()?;
    let dynamo = client(&endpoint);
    let table = unique(name);
    create_table(&dynamo, &table, ("id", T::S), None, None).await;
    Some((table, Proxy::start(&endpoint), dynamo))
}

fn config(table: &str, proxy: &Proxy, timeout: &str) -> serde_json::Value {
    json!({
        "table": table, "endpoint": proxy.endpoint, "region": "us-east-1",
        "unprocessed_retry_timeout": timeout,
        "unprocessed_retry_initial_backoff": "5ms",
        "unprocessed_retry_max_backoff": "40ms",
    })
}

fn batch(n: u64) -> Vec<shardline_api::Record> {
    (0..n).map(|i| record(i, json!({ "id": format!("r-{i:02}"), "i": i }).to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_items_are_retried_until_written() {
    let Some((table, proxy, dynamo)) = setup("unprocessed").await else { return };
    let sink = sink(config(&table, &proxy, "30s"), "unprocessed");
    sink.healthcheck().await.expect("healthcheck");
    // Each of the next 5 BatchWriteItem calls leaves half its items
    // unprocessed.
    proxy.set(|f| f.unprocess_batch_writes = 5);
    let statuses = sink.send(&batch(60)).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 60]);
    let seen = proxy.seen();
    assert!(seen.unprocessed_items.load(Ordering::SeqCst) >= 5, "the proxy held items back");
    assert!(seen.batch_writes.load(Ordering::SeqCst) >= 3 + 5, "3 requests of <=25 items, plus a retry per injected fault");
    let items = scan_json(&dynamo, &table, "id").await;
    assert_eq!(items.len(), 60, "every record landed once");
    for i in 0..60 {
        assert_eq!(items[&format!("r-{i:02}")]["i"], json!(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_are_retried_until_written() {
    let Some((table, proxy, dynamo)) = setup("throttled").await else { return };
    let sink = sink(config(&table, &proxy, "30s"), "throttled");
    proxy.set(|f| f.throttle_batch_writes = 4);
    let statuses = sink.send(&batch(30)).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 30]);
    assert_eq!(proxy.seen().injected_errors.load(Ordering::SeqCst), 4);
    assert_eq!(scan_json(&dynamo, &table, "id").await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_deadline_unwritten_records_are_retriable_never_delivered() {
    let Some((table, proxy, dynamo)) = setup("deadline").await else { return };
    let sink = sink(config(&table, &proxy, "300ms"), "deadline");
    sink.healthcheck().await.expect("healthcheck");

    // Every item of every request is unprocessed: all are answered
    // retriable with the reason, none delivered.
    proxy.set(|f| f.unprocess_everything = true);
    let statuses = sink.send(&batch(4)).await.expect("send");
    for status in &statuses {
        assert!(
            matches!(status, RecordStatus::Retriable { reason, .. } if reason.contains("UnprocessedItems") && reason.contains("300ms")),
            "{status:?}"
        );
    }
    assert!(scan_json(&dynamo, &table, "id").await.is_empty());

    // Throttled past the deadline: retriable with DynamoDB's error.
    proxy.set(|f| {
        f.unprocess_everything = false;
        f.throttle_batch_writes = 10_000;
    });
    let statuses = sink.send(&batch(3)).await.expect("send");
    for status in &statuses {
        assert!(matches!(status, RecordStatus::Retriable { reason, .. } if reason.contains("ProvisionedThroughputExceededException")), "{status:?}");
    }
    assert!(scan_json(&dynamo, &table, "id").await.is_empty());
}

#[derive(Default)]
struct MemoryDeadLetter(Mutex<Vec<DeadLetterEntry>>);

#[async_trait]
impl DeadLetter for MemoryDeadLetter {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        self.0.lock().map_err(|_| SinkError::permanent("poisoned"))?.extend_from_slice(entries);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_dead_letters_what_stays_unprocessed_and_delivers_the_rest() {
    let Some((table, proxy, dynamo)) = setup("engine").await else { return };
    let sink = sink(config(&table, &proxy, "200ms"), "engine");
    // Every BatchWriteItem keeps its even positions and holds back the odd
    // ones, forever: the held-back records are retried by the sink, then
    // by the engine, then dead-lettered; the others are delivered.
    proxy.set(|f| f.unprocess_batch_writes = u32::MAX);
    let dead_letter = Arc::new(MemoryDeadLetter::default());
    let ctx = ShardContext { pipeline: Arc::from("engine"), stream: Arc::from("dynamodb-tests"), shard_id: Arc::from("shardId-000000000004") };
    let buffer = BufferConfig { max_records: 10, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(3600) };
    let delivery = DeliveryConfig {
        concurrency: 1,
        retry_attempts: 2,
        retry_initial_backoff: HumanDuration::from_millis(1),
        retry_max_backoff: HumanDuration::from_millis(5),
        ..DeliveryConfig::default()
    };
    let mut engine = ShardPipeline::new(ctx, Vec::new(), buffer, delivery, sink, dead_letter.clone());
    engine.push(batch(10));
    let checkpoint = engine.drain().await;
    assert!(checkpoint.is_some(), "the checkpoint passes the dead-lettered records");
    let dead = dead_letter.0.lock().expect("entries").clone();
    let stats = engine.stats();
    assert!(!dead.is_empty(), "something stayed unprocessed");
    assert_eq!(stats.records_delivered + dead.len() as u64, 10, "every record is delivered or dead-lettered: {stats:?}");
    for entry in &dead {
        assert_eq!(entry.stage, "sink");
        assert!(entry.reason.contains("UnprocessedItems"), "{}", entry.reason);
    }
    let items = scan_json(&dynamo, &table, "id").await;
    assert_eq!(items.len() as u64, stats.records_delivered, "what was delivered is in the table");
    for entry in &dead {
        let data: serde_json::Value = serde_json::from_slice(&entry.record.payload.to_bytes()).expect("json");
        assert!(!items.contains_key(data["id"].as_str().expect("id")), "a dead-lettered record was not written: {data}");
    }
}

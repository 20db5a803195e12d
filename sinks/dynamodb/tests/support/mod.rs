//! What the `dynamodb` sink's integration tests share: the dynalite
//! endpoint (or a skip), tables, scans, records, and the plugin driven
//! through the host's real C ABI.
#![allow(dead_code)]

pub mod proxy;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use shardline_api::{Record, RecordMeta, SequenceNumber, Sink};
use shardline_plugin_host::LoadedPlugin;
use shardline_sink_dynamodb::DynamoDbSink;

/// dynalite's endpoint from `SHARDLINE_TEST_DYNAMODB_ENDPOINT`, or `None`
/// after printing `skipped: ...` (a panic under `CI=true`).
pub fn dynalite() -> Option<String> {
    match std::env::var("SHARDLINE_TEST_DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            static CREDENTIALS: OnceLock<()> = OnceLock::new();
            CREDENTIALS.get_or_init(|| {
                // The sink reads the standard credential chain; dynalite
                // takes any credentials. Set once, before any client exists.
                for (key, value) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_EC2_METADATA_DISABLED", "true")] {
                    if std::env::var_os(key).is_none() {
                        std::env::set_var(key, value);
                    }
                }
            });
            Some(endpoint)
        }
        _ => {
            let message = "SHARDLINE_TEST_DYNAMODB_ENDPOINT not set (run scripts/test)";
            if std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A client for `endpoint` with static test credentials.
pub fn client(endpoint: &str) -> Client {
    Client::new(&shardline_aws::emulator_sdk_config(endpoint))
}

/// A key attribute: name and type.
pub type Key<'a> = (&'a str, ScalarAttributeType);

/// Creates an on-demand table with the given key (and optionally a global
/// secondary index on one more attribute) and waits until it is active.
pub async fn create_table(client: &Client, table: &str, partition: Key<'_>, sort: Option<Key<'_>>, index: Option<Key<'_>>) {
    let mut request = client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    let define = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().expect("definition")
    };
    let element = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("key");
    request = request.attribute_definitions(define(partition.0, partition.1.clone())).key_schema(element(partition.0, KeyType::Hash));
    if let Some((name, kind)) = sort {
        request = request.attribute_definitions(define(name, kind)).key_schema(element(name, KeyType::Range));
    }
    if let Some((name, kind)) = index {
        request = request.attribute_definitions(define(name, kind)).global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(format!("by-{name}"))
                .key_schema(element(name, KeyType::Hash))
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .expect("index"),
        );
    }
    request.send().await.unwrap_or_else(|e| panic!("create table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
    for _ in 0..200 {
        let description = client.describe_table().table_name(table).send().await.expect("describe");
        if description.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("table {table} did not become active");
}

/// Every item of `table` (all Scan pages).
pub async fn scan(client: &Client, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).set_exclusive_start_key(start).send().await.expect("scan");
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return items,
        }
    }
}

/// Items as JSON text keyed by the string attribute `key`.
pub async fn scan_json(client: &Client, table: &str, key: &str) -> HashMap<String, serde_json::Value> {
    scan(client, table)
        .await
        .into_iter()
        .map(|item| {
            let id = match item.get(key) {
                Some(AttributeValue::S(s)) => s.clone(),
                other => panic!("item without a string `{key}`: {other:?}"),
            };
            (id, shardline_sink_dynamodb::item_to_json(&item))
        })
        .collect()
}

/// Record `i` of a test batch with `data`.
pub fn record(i: u64, data: impl Into<Vec<u8>>) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("dynamodb-tests"),
        shard_id: Arc::from("shardId-000000000004"),
        sequence_number: SequenceNumber::parse(&format!("4959033827149025660855969253836157109592157598913658{:04}", 1000 + i)).expect("digits"),
        sub_sequence_number: 0,
        partition_key: format!("pk-{i}"),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    };
    Record::new(data.into().into(), Arc::new(meta))
}

/// The plugin, linked into the test, behind the host's loader (the real C
/// ABI, as `shardline` drives it).
pub fn plugin() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let table = shardline_plugin_sdk::testing::table::<DynamoDbSink>();
            // SAFETY: the table is made by the SDK for the plugin linked in.
            Arc::new(unsafe { LoadedPlugin::from_table(table, Path::new("<dynamodb>")) }.expect("the plugin loads"))
        })
        .clone()
}

/// A sink for `config` (the `[sink]` table as JSON, without `type`).
pub fn sink(config: serde_json::Value, pipeline: &str) -> Arc<dyn Sink> {
    Arc::new(plugin().build_sink(config, pipeline))
}

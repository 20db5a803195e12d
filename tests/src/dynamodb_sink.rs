//! Helpers for the `dynamodb` sink plugin's end-to-end tests: the plugin
//! directory, a `[sink]` section in place of the harness's file sink, and
//! a DynamoDB table on dynalite read back as JSON.
//!
//! Items are turned back into JSON here, independently of the sink's own
//! mapping code, so that a scan-and-compare does not share the reading of
//! the format with the code under test.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use base64::Engine;
use serde_json::Value;

use crate::PipelineSpec;

/// The directory holding `libshardline_sink_dynamodb.so`:
/// `$SHARDLINE_TEST_PLUGIN_DIR`, else `<target>/debug`. `None` (after
/// printing `skipped: ...`) when the plugin is not built there.
///
/// # Panics
/// When the plugin is missing and `CI=true`.
pub fn dynamodb_plugin_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SHARDLINE_TEST_PLUGIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
        }
        .join("debug"),
    };
    let file = format!(
        "{}shardline_sink_dynamodb{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    if dir.join(&file).is_file() {
        return Some(dir);
    }
    let message = format!(
        "{file} not found in {} (run scripts/test, or cargo build -p shardline-sink-dynamodb)",
        dir.display()
    );
    if crate::emulators::running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// The pipeline file of `spec` with its file sink replaced by `sink` (the
/// `[sink]` table's lines, `type` included).
///
/// # Panics
/// When the harness's sink section is not where it is expected.
pub fn pipeline_with_sink(spec: &PipelineSpec, sink: &str) -> String {
    let toml = spec.to_toml();
    let start = toml.find("\n[sink]\n").expect("the pipeline has a [sink] section");
    let end = toml[start + 1..]
        .find("\n[")
        .map_or(toml.len(), |i| start + 1 + i);
    format!("{}\n[sink]\n{}\n{}", &toml[..start], sink.trim_end(), &toml[end..])
}

/// A DynamoDB table on the emulator.
pub struct DynamoDbTable {
    client: Client,
    /// Table name.
    pub name: String,
}

impl DynamoDbTable {
    /// Creates an on-demand table with a string partition key `key` and
    /// waits until it is active.
    ///
    /// # Errors
    /// When DynamoDB refuses or the table does not become active.
    pub async fn create(endpoint: &str, name: &str, key: &str) -> anyhow::Result<DynamoDbTable> {
        let client = Client::new(&shardline_aws::emulator_sdk_config(endpoint));
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build()?)
            .send()
            .await?;
        let table = DynamoDbTable { client, name: name.to_owned() };
        crate::wait_until(std::time::Duration::from_secs(30), "the table to be active", || async {
            let out = table.client.describe_table().table_name(&table.name).send().await?;
            Ok(out.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE"))
        })
        .await?;
        Ok(table)
    }

    /// Every item (all Scan pages).
    ///
    /// # Errors
    /// When a Scan fails.
    pub async fn scan(&self) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self.client.scan().table_name(&self.name).set_exclusive_start_key(start).send().await?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Every item as JSON ([`item_json`]), by the string attribute `key`.
    ///
    /// # Errors
    /// When a Scan fails or an item has no string `key`.
    pub async fn scan_json(&self, key: &str) -> anyhow::Result<HashMap<String, Value>> {
        self.scan()
            .await?
            .into_iter()
            .map(|item| match item.get(key) {
                Some(AttributeValue::S(id)) => Ok((id.clone(), item_json(&item))),
                other => anyhow::bail!("item without a string {key:?}: {other:?}"),
            })
            .collect()
    }
}

/// An item as JSON: `S` string, `N` number (its text parsed as JSON),
/// `BOOL`, `NULL`, `M` object, `L` array, `B` `{"$binary": "<base64>"}`.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

fn value_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => item_json(m),
        AttributeValue::L(l) => Value::Array(l.iter().map(value_json).collect()),
        AttributeValue::B(b) => serde_json::json!({
            "$binary": base64::engine::general_purpose::STANDARD.encode(b.as_ref())
        }),
        other => Value::String(format!("<unexpected {other:?}>")),
    }
}

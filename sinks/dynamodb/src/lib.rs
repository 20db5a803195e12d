//! `dynamodb`: the Shardline sink plugin that writes JSON records as
//! DynamoDB items.
//!
//! ```toml
//! [sink]
//! type = "dynamodb"
//! table = "orders"                      # required; must exist
//! region = "eu-west-1"                  # default: environment/profile, then us-east-1
//! endpoint = "http://127.0.0.1:8000"    # default: the regional endpoint
//! rename = { user = "pk" }              # record field = attribute name
//! attributes = ["user", "total"]        # keep only these fields (default: all)
//! binary_fields = ["thumbnail"]         # base64 strings stored as B
//! add_metadata = true                   # kinesis_shard_id, kinesis_sequence_number, kinesis_sub_sequence_number
//! unprocessed_retry_timeout = "30s"
//! fence_on_sequence = false              # conditional PutItem: never go back to an older record
//! fence_attribute = "_kinesis_position"
//! ```
//!
//! How a batch goes ([`batch`], [`writer`]):
//! 1. Each record is mapped to an item ([`mapping`]); one that is not a
//!    JSON object, holds a number DynamoDB cannot store, is over 400 KB
//!    ([`size`]) or lacks a correctly typed key attribute ([`keys`]; the
//!    key schema is read with `DescribeTable` at start) is **rejected**
//!    (dead-lettered) with the reason, in DynamoDB's words.
//! 2. Records with the same key collapse to the last one; the earlier
//!    ones answer what it answers (delivered once it is written).
//! 3. Items go out in `BatchWriteItem` requests of at most 25 items and
//!    16 MB; `UnprocessedItems` and throttled/5xx requests are retried
//!    with back-off until `unprocessed_retry_timeout`, then answered
//!    retriable (the engine retries, then dead-letters). A request
//!    DynamoDB refuses is retried item by item with `PutItem`, so only the
//!    refused items are rejected and the rest lands.
//!
//! With `fence_on_sequence = true` step 3 is different: each item is
//! written with a conditional `PutItem` that only lands when the stored
//! item is older ([`fence`]).
//!
//! `healthcheck` is `DescribeTable`: a missing table or denied access is a
//! permanent error naming the table. The SDK's own retries are turned off:
//! the sink's loop above is the one retry policy.
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod error;
pub mod fence;
pub mod keys;
pub mod mapping;
pub mod number;
pub mod size;
pub mod writer;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use shardline_aws::{AwsConnection, Timeouts};
use shardline_plugin_sdk::{async_trait, ConfigProblem, InitContext, PluginInfo, Record, RecordStatus, SinkError, SinkPlugin};

pub use config::Config;
pub use error::DynamoError;
pub use keys::KeySchema;
pub use mapping::{item_to_json, Item, Mapping};

use crate::writer::{RetrySettings, Writer};

/// The `dynamodb` sink.
#[derive(Debug)]
pub struct DynamoDbSink {
    pipeline: String,
    mapping: Mapping,
    writer: Writer,
    /// `fence_attribute` when `fence_on_sequence` is on.
    fence: Option<String>,
}

/// A DynamoDB client for `config`: the shared AWS settings, no SDK retries
/// (the sink retries), `request_timeout` per attempt.
pub async fn client(config: &Config) -> Client {
    let connection = AwsConnection {
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
        profile: config.profile.clone(),
        timeouts: Timeouts::for_attempts(config.request_timeout.get(), 1),
    };
    let sdk = shardline_aws::load_sdk_config(&connection).await;
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(dynamodb)
}

/// Reads the key schema of `table`.
///
/// # Errors
/// A classified [`DynamoError`]: a missing table or denied access is
/// permanent, a table still being created or an unreachable service is
/// retriable.
pub async fn describe_table(client: &Client, table: &str) -> Result<KeySchema, DynamoError> {
    let output = client.describe_table().table_name(table).send().await.map_err(|e| error::classify(e, table, "DescribeTable"))?;
    let bad = |message: String| DynamoError::BadDescription { table: table.to_owned(), message };
    let description = output.table.ok_or_else(|| bad("DescribeTable returned no table".to_owned()))?;
    if let Some(status) = description.table_status() {
        use aws_sdk_dynamodb::types::TableStatus;
        if matches!(status, TableStatus::Creating) {
            return Err(DynamoError::NotActive { table: table.to_owned(), status: status.as_str().to_owned() });
        }
    }
    KeySchema::from_description(&description).map_err(bad)
}

#[async_trait]
impl SinkPlugin for DynamoDbSink {
    type Config = Config;

    fn describe() -> PluginInfo {
        config::describe()
    }

    fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
        config.validate()
    }

    async fn init(config: Config, ctx: InitContext) -> Result<Self, SinkError> {
        let client = client(&config).await;
        let keys = describe_table(&client, &config.table).await?;
        tracing::info!(table = %config.table, pipeline = %ctx.pipeline, key = ?keys, "dynamodb sink ready");
        let retry = RetrySettings {
            timeout: config.unprocessed_retry_timeout.get(),
            initial_backoff: config.unprocessed_retry_initial_backoff.get(),
            max_backoff: config.unprocessed_retry_max_backoff.get(),
        };
        let writer = Writer { client, table: config.table.clone(), keys, retry, concurrency: config.concurrency };
        let fence = config.fence_on_sequence.then(|| config.fence_attribute.clone());
        if fence.is_some() {
            metrics::describe_counter!(
                "shardline_dynamodb_fenced_total",
                "writes fence_on_sequence refused because the item already held this or a newer Kinesis position (counted as delivered)"
            );
        }
        Ok(DynamoDbSink { pipeline: ctx.pipeline, mapping: config.mapping(), writer, fence })
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let keys = describe_table(&self.writer.client, &self.writer.table).await?;
        if keys != self.writer.keys {
            return Err(SinkError::permanent(format!(
                "the key schema of DynamoDB table `{}` changed since start: {:?}, now {keys:?}",
                self.writer.table, self.writer.keys
            )));
        }
        Ok(())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let prepared = batch::prepare(batch, &self.mapping, &self.writer.keys);
        let mut statuses = prepared.statuses;
        let rejected = statuses.iter().filter(|s| s.is_some()).count();
        let answers = match &self.fence {
            Some(attribute) => self.writer.write_fenced(prepared.chunks.into_iter().flatten().collect(), batch, attribute).await?,
            None => self.writer.write(prepared.chunks).await?,
        };
        for (record, status) in answers {
            if let Some(slot) = statuses.get_mut(record) {
                *slot = Some(status);
            }
        }
        batch::answer_superseded(&mut statuses, &prepared.superseded, batch);
        tracing::debug!(
            pipeline = %self.pipeline,
            table = %self.writer.table,
            records = batch.len(),
            rejected_before_sending = rejected,
            superseded = prepared.superseded.len(),
            "batch written"
        );
        Ok(statuses
            .into_iter()
            .map(|s| s.unwrap_or_else(|| RecordStatus::Retriable { reason: "no answer for this record (a bug in the dynamodb sink)".to_owned(), backoff: None }))
            .collect())
    }
}

shardline_plugin_sdk::export_sink_plugin!(DynamoDbSink);

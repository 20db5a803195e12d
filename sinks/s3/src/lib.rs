//! `s3`: a Shardline sink plugin that writes each flushed batch to Amazon S3
//! (or an S3-compatible store) as one object per partition.
//!
//! ```toml
//! [sink]
//! type = "s3"
//! bucket = "my-bucket"                     # required
//! key = "{stream}/{yyyy}/{MM}/{dd}/{HH}/{shard_id}-{first_seq}-{first_subseq}-{last_seq}-{last_subseq}"
//! encoding = "ndjson"                      # ndjson | csv | raw | parquet
//! compression = "gzip"                     # none | gzip | zstd (parquet: snappy | zstd | gzip | none)
//!
//! # with encoding = "parquet": the columns, by dotted JSON path
//! [sink.parquet]
//! schema = { user = "string", amount = "double", ts = "timestamp_ms", "geo.country" = "string" }
//! required = ["user"]
//! ```
//!
//! - **Keys are deterministic**: they are rendered from the records an
//!   object holds (shard, first and last position, the oldest record's
//!   arrival time, partition values), so a batch re-sent after a crash
//!   overwrites its objects instead of adding duplicates. Templates must
//!   contain `{shard_id}`, `{first_seq}` and `{first_subseq}`.
//! - **Dynamic partitioning**: `{field.a.b}` placeholders group a batch's
//!   records by those JSON fields, one object per group, at most
//!   `max_partitions` per batch (records of further partitions are
//!   dead-lettered with the reason). A record missing a field is
//!   dead-lettered with the reason; the rest of the batch goes on.
//! - **Bad records**: with `ndjson` or `csv` a record that is not JSON (or,
//!   for CSV, not an object) is rejected with the parser's message; with
//!   `parquet` also a record that does not fit the schema (a wrong type, a
//!   required field missing), with the field and the reason.
//! - **Errors**: throttling (`SlowDown`, 503), 5xx and timeouts are
//!   retriable (after the SDK's own `request_max_attempts`); access denied
//!   and a missing bucket are permanent: those records are dead-lettered
//!   with a reason naming the bucket and key, and logged as errors.
//!   `healthcheck` is `HeadBucket`, so a missing bucket stops the pipeline
//!   at start with a clear message.
//!
//! Modules: [`config`] (keys and `validate`), [`template`] (keys),
//! [`encode`] (rows and compression), [`parquet`] (Parquet schema, rows
//! and files), [`batch`] (records to objects),
//! [`upload`] (PutObject and multipart), [`error`] (classification).
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod encode;
pub mod error;
pub mod parquet;
pub mod template;
pub mod upload;

use std::sync::Arc;

use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_types::retry::RetryConfig;
use futures::stream::{self, StreamExt};
use shardline_aws::{AwsConnection, Timeouts};
use shardline_plugin_sdk::{
    async_trait, ConfigKey, ConfigProblem, ErrorKind, InitContext, PluginInfo, Record, RecordStatus, SinkError, SinkPlugin,
};

use crate::batch::Planner;
use crate::config::{ChecksumCalculation, Config};
use crate::encode::{Encoder, Encoding};
use crate::template::{TimeZoneSpec, Zone};
use crate::upload::Uploader;

/// The `s3` sink.
pub struct S3Sink {
    planner: Arc<Planner>,
    uploader: Uploader,
    concurrency: usize,
}

fn describe_keys(info: PluginInfo) -> PluginInfo {
    let key = |name: &str, text: &str| ConfigKey::optional(name, text);
    info.key(ConfigKey::required("bucket", "bucket name"))
        .key(key("key", "object key template: {pipeline} {stream} {shard_id} {first_seq} {first_subseq} {last_seq} {last_subseq}, {yyyy} {MM} {dd} {HH} {mm} of the oldest record's arrival time, {field.<path>} to partition by a JSON field; must contain {shard_id}, {first_seq} and {first_subseq}; default \"{stream}/{yyyy}/{MM}/{dd}/{HH}/{shard_id}-{first_seq}-{first_subseq}-{last_seq}-{last_subseq}\""))
        .key(key("extension", "appended to keys; default from encoding and compression (\".ndjson.gz\", \".csv.zst\", \".raw\"); \"\" for none"))
        .key(key("region", "AWS region; default from the environment or profile, then \"us-east-1\""))
        .key(key("endpoint", "endpoint URL override (S3-compatible stores); default none"))
        .key(key("profile", "shared config profile; default none"))
        .key(key("force_path_style", "path-style URLs (endpoint/bucket/key); default false"))
        .key(key("checksum_calculation", "\"when_supported\" (default) or \"when_required\" (S3-compatible stores without checksum trailers)"))
        .key(key("encoding", "\"ndjson\" (default; records must be JSON), \"csv\" (JSON objects), \"raw\" (bytes) or \"parquet\" (JSON objects, columns from [sink.parquet])"))
        .key(key("parquet", "[sink.parquet] with encoding = \"parquet\": schema = { <dotted path> = \"string|int64|double|bool|timestamp_ms|json\", ... } (required), required = [columns that must be present and non-null] (default none)"))
        .key(key("csv_fields", "CSV columns, dotted JSON paths; required with encoding = \"csv\" (default none)"))
        .key(key("csv_header", "first line of each CSV object names the columns; default true"))
        .key(key("raw_delimiter", "written after each record with encoding = \"raw\"; default \"\\n\""))
        .key(key("compression", "\"none\", \"gzip\" (default) or \"zstd\"; sets Content-Encoding and the extension; with encoding = \"parquet\" the column codec: \"snappy\" (default there), \"zstd\", \"gzip\" or \"none\""))
        .key(key("compression_level", "gzip 0-9 (default 5), zstd 1-19 (default 3); none for snappy"))
        .key(key("time_zone", "time zone of the key's time parts: \"UTC\" (default), an offset (\"+02:00\") or an IANA name (\"Europe/Paris\", from the system tz database)"))
        .key(key("max_partitions", "most objects ({field.*} partitions) per batch; records of further partitions are dead-lettered; default 100"))
        .key(key("multipart_threshold", "objects larger than this (compressed) use multipart upload; default \"16MiB\", at least multipart_part_size, at most 5GiB"))
        .key(key("multipart_part_size", "multipart part size; default \"8MiB\", 5MiB to 5GiB"))
        .key(key("max_concurrent_uploads", "objects, or parts of one object, in flight per batch; default 4"))
        .key(key("request_max_attempts", "attempts per S3 request by the AWS SDK (its own back-off) before the pipeline's retries take over; default 3"))
        .key(key("request_timeout", "time limit of one request attempt; default \"60s\""))
        .key(key("content_encoding", "set Content-Encoding on compressed objects; default true (not with parquet)"))
}

#[async_trait]
impl SinkPlugin for S3Sink {
    type Config = Config;

    fn describe() -> PluginInfo {
        describe_keys(
            PluginInfo::new("s3", env!("CARGO_PKG_VERSION"))
                .description("one S3 object per batch and partition: NDJSON, CSV, raw or Parquet; gzip, zstd or snappy; multipart above a threshold"),
        )
    }

    fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
        config.validate()
    }

    async fn init(config: Config, ctx: InitContext) -> Result<Self, SinkError> {
        let invalid = |message: String| SinkError::permanent(format!("s3 sink: {message}"));
        config.validate().map_err(|problems| invalid(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
        let template = config.key_template().map_err(|e| invalid(format!("`key`: {e}")))?;
        let zone = TimeZoneSpec::parse(&config.time_zone).and_then(|spec| Zone::resolve(&spec)).map_err(|e| invalid(format!("`time_zone`: {e}")))?;
        let connection = AwsConnection {
            region: config.region.clone(),
            endpoint: config.endpoint.clone(),
            profile: config.profile.clone(),
            timeouts: Timeouts::for_attempts(config.request_timeout.get(), config.request_max_attempts),
        };
        let sdk = shardline_aws::load_sdk_config(&connection).await;
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(config.request_max_attempts));
        if config.checksum_calculation == ChecksumCalculation::WhenRequired {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let client = aws_sdk_s3::Client::from_conf(builder.build());
        let compression = config.compression();
        let encoder = match config.encoding {
            Encoding::Parquet => {
                let schema = config.parquet_schema().map_err(|problems| {
                    invalid(problems.iter().map(|(key, message)| format!("`{key}`: {message}")).collect::<Vec<_>>().join("; "))
                })?;
                let columns = schema.columns.len();
                let writer = crate::parquet::FileWriter::new(Arc::new(schema), compression, config.compression_level)
                    .map_err(|e| invalid(format!("`compression`: {e}")))?;
                tracing::debug!(pipeline = %ctx.pipeline, columns, "parquet schema ready");
                Encoder::parquet(writer)
            }
            _ => Encoder::new(config.encoding, &config.csv_fields, config.csv_header(), config.raw_delimiter(), compression, config.compression_level),
        };
        let planner = Planner {
            template,
            zone,
            extension: config.extension(),
            encoder,
            pipeline: ctx.pipeline.clone(),
            max_partitions: config.max_partitions,
            content_type: config.encoding.content_type(),
            content_encoding: config.content_encoding(),
        };
        tracing::info!(pipeline = %ctx.pipeline, bucket = %config.bucket, key = %config.key, encoding = ?config.encoding, compression = ?compression, "s3 sink ready");
        Ok(S3Sink {
            planner: Arc::new(planner),
            uploader: Uploader {
                client,
                bucket: config.bucket,
                multipart_threshold: config.multipart_threshold.bytes(),
                part_size: config.multipart_part_size.bytes(),
                concurrency: config.max_concurrent_uploads,
            },
            concurrency: config.max_concurrent_uploads,
        })
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.uploader.head_bucket().await.map_err(|e| {
            tracing::error!(bucket = %self.uploader.bucket, error = %e, "s3 healthcheck failed");
            SinkError { kind: e.kind(), message: format!("bucket `{}` is not usable: {e}", self.uploader.bucket) }
        })
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // JSON validation, encoding and compression take well over 0.5 ms a batch.
        let planner = self.planner.clone();
        let records = batch.to_vec();
        let plan = tokio::task::spawn_blocking(move || planner.plan(&records))
            .await
            .map_err(|e| SinkError::permanent(format!("s3 sink: encoding task failed: {e}")))?
            .map_err(|e| SinkError::permanent(format!("s3 sink: {e}")))?;
        let mut statuses: Vec<RecordStatus> = plan
            .rejected
            .into_iter()
            .map(|reason| match reason {
                Some(reason) => RecordStatus::Rejected { reason },
                None => RecordStatus::Delivered,
            })
            .collect();
        let results: Vec<_> = stream::iter(plan.objects)
            .map(|(object, members)| async move { (self.uploader.put(&object).await, object.key, members) })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (result, key, members) in results {
            let Err(error) = result else { continue };
            let status = match error.kind() {
                ErrorKind::Retriable => {
                    tracing::warn!(bucket = %self.uploader.bucket, key = %key, records = members.len(), error = %error, "s3 write failed, will retry");
                    RecordStatus::Retriable { reason: error.to_string(), backoff: error.backoff_hint() }
                }
                ErrorKind::Permanent => {
                    tracing::error!(bucket = %self.uploader.bucket, key = %key, records = members.len(), error = %error, "s3 write refused, records go to the dead-letter destination");
                    RecordStatus::Rejected { reason: error.to_string() }
                }
            };
            for i in members {
                statuses[i] = status.clone();
            }
        }
        Ok(statuses)
    }
}

shardline_plugin_sdk::export_sink_plugin!(S3Sink);

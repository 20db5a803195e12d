//! `redshift`: a Shardline sink plugin that loads batches into Amazon
//! Redshift with `COPY`, through the Redshift Data API.
//!
//! For each batch (records of one shard):
//! 1. Records that cannot be a line of the staged file are rejected at
//!    once (with `format = "json"`: payloads that are not a JSON object).
//! 2. The loads table (`loads_table`, created if missing) is asked which
//!    positions of the shard are already loaded; those records are
//!    delivered without loading (a batch sent again after a crash).
//! 3. The rest, in runs of consecutive records, is staged as one (gzip)
//!    file per run at `s3://{staging_bucket}/{staging_prefix}{pipeline}/{shard_id}/{first}_{last}.json.gz`
//!    with a COPY manifest beside it (`.manifest`); the keys come from the
//!    positions, so a run sent again overwrites its own files.
//! 4. One `BatchExecuteStatement` (one transaction) runs `COPY <table>
//!    [(columns)] FROM 's3://.../x.manifest' <credentials> <format> GZIP
//!    MANIFEST <copy_options>`, `LOCK` of the loads table, an `INSERT` of the
//!    manifest with its shard and position range, and a guard that fails
//!    the transaction (rolling the COPY back) when another recorded load
//!    overlaps the range. DescribeStatement is polled until the statement
//!    ends or `statement_timeout` passes (the statement is then cancelled).
//!
//! So a batch is never loaded twice, even when the process dies between the
//! COPY and the checkpoint: the load and its record commit together.
//!
//! **Failures.** A COPY failing for its data (`Load into table ... failed`)
//! is reported with Redshift's text plus the first `stl_load_errors` row
//! (line, column, value, code, reason); the record on that line is
//! rejected (dead-lettered) and the rest of the run loaded without it (at
//! most 10 bad rows per batch; after that, and when no line can be blamed,
//! the whole run is rejected). An unavailable cluster, a timeout, or any
//! other failed statement is retriable for `retry_window` (default 1h)
//! counted from the run's first failure; then its staged file is listed in
//! `{staging_prefix}errors/{pipeline}/{shard_id}/{first}_{last}.manifest`
//! for a later backfill (as Firehose does) and the records are rejected, so
//! they are dead-lettered too. The engine's `delivery.retry_attempts` also
//! bounds retries: set it to `0` (forever) to let `retry_window` decide.
//! Validation and access errors from the Data API are permanent.
//!
//! **Credentials.** The Data API and S3 calls use the standard AWS chain
//! (or `profile`). COPY reads the staging bucket as `iam_role` when set,
//! else with the sink's own credentials (`ACCESS_KEY_ID`/`SECRET_ACCESS_KEY`
//! /`SESSION_TOKEN`, resolved per batch, never logged).
#![warn(missing_docs)]

pub mod config;
pub mod service;
pub mod sink;
pub mod sql;
pub mod staging;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_credential_types::provider::ProvideCredentials;
use shardline_aws::AwsConnection;
use shardline_plugin_sdk::{async_trait, ConfigProblem, InitContext, PluginInfo, Record, RecordStatus, SinkError, SinkPlugin};

pub use config::Config;
use service::DataApi;
use sink::Loader;
use sql::CopyCredentials;

/// The `redshift` sink.
pub struct RedshiftSink {
    loader: Loader,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

impl RedshiftSink {
    async fn copy_credentials(&self) -> Result<CopyCredentials, SinkError> {
        if let Some(role) = &self.loader.config.iam_role {
            return Ok(CopyCredentials::IamRole(role.clone()));
        }
        let provider = self.credentials.as_ref().ok_or_else(|| SinkError::permanent("no iam_role and no AWS credentials for COPY"))?;
        let credentials = provider.provide_credentials().await.map_err(|e| SinkError::retriable(format!("resolving AWS credentials for COPY: {e}")))?;
        Ok(CopyCredentials::Keys {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().map(str::to_owned),
        })
    }
}

#[async_trait]
impl SinkPlugin for RedshiftSink {
    type Config = Config;

    fn describe() -> PluginInfo {
        config::describe()
    }

    fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
        config::validate(config)
    }

    async fn init(config: Config, ctx: InitContext) -> Result<Self, SinkError> {
        let data_sdk = shardline_aws::load_sdk_config(&AwsConnection { region: config.region.clone(), endpoint: config.endpoint.clone(), profile: config.profile.clone(), ..AwsConnection::default() }).await;
        let s3_sdk = shardline_aws::load_sdk_config(&AwsConnection { region: config.region.clone(), endpoint: config.s3_endpoint.clone(), profile: config.profile.clone(), ..AwsConnection::default() }).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&s3_sdk).force_path_style(config.s3_force_path_style).build());
        let data = DataApi::new(aws_sdk_redshiftdata::Client::new(&data_sdk), config.clone());
        tracing::info!(table = %config.table, bucket = %config.staging_bucket, "redshift sink ready");
        Ok(RedshiftSink {
            credentials: s3_sdk.credentials_provider(),
            loader: Loader {
                config,
                pipeline: ctx.pipeline,
                data,
                s3,
                first_failures: Mutex::new(HashMap::new()),
                loads_table_ready: tokio::sync::OnceCell::new(),
            },
        })
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.loader.ensure_loads_table().await.map_err(|e| if e.is_retriable() { SinkError::retriable(e.to_string()) } else { SinkError::permanent(e.to_string()) })
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let credentials = self.copy_credentials().await?;
        self.loader.send(batch, &credentials).await
    }
}

shardline_plugin_sdk::export_sink_plugin!(RedshiftSink);

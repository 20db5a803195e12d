//! `elasticsearch`: a Shardline sink plugin that indexes records into
//! Elasticsearch (7.x/8.x) or OpenSearch (1.x-3.x, Amazon OpenSearch
//! Service and Serverless) through the `_bulk` API.
//!
//! ```toml
//! [sink]
//! type = "elasticsearch"
//! endpoint = "https://search.example.com:9200"   # required
//! index = "clicks-{yyyy.MM.dd}"                  # required; daily indices (UTC)
//! time_field = "ts"                              # default: the Kinesis arrival time
//! id_field = "event_id"                          # default: {stream}-{shard_id}-{sequence}-{sub_sequence}
//! op_type = "index"                              # index (default) | create
//! bulk_max_actions = 1000                        # default 1000
//! bulk_max_bytes = "5MiB"                        # default 5MiB (uncompressed)
//! compression = "gzip"                           # gzip (default) | none
//! request_timeout = "60s"                        # default 60s
//! [sink.auth]
//! strategy = "basic"                             # basic | api_key | aws
//! user = "shardline"
//! password = "${ES_PASSWORD}"
//! ```
//!
//! Every record must be a JSON object (raw bytes or parsed by
//! `parse_json`); anything else is rejected to the dead-letter destination
//! with the reason. Each item of a `_bulk` answer is handled alone: 2xx
//! delivered, 429/5xx retried (only those records), other 4xx (mapping
//! errors, invalid index names, unexpected version conflicts) rejected
//! with the cluster's `type: reason`. A request that fails as a whole
//! (connection refused, timeout, 5xx, 429, 401/403) is retriable, so a
//! cluster that is down stalls the shard (backpressure) instead of losing
//! records; set `delivery.retry_attempts = 0` (retry forever) so a long
//! outage does not dead-letter them.
//!
//! Modules: [`config`] (keys, validate), [`index`] (templates, rotation),
//! [`request_builder`] (documents, ids, bodies, gzip), [`service`] (HTTP,
//! auth, SigV4), [`retry`] (classification), [`sink`] (the batching loop).
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod index;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod sink;

use shardline_plugin_sdk::{async_trait, ConfigProblem, InitContext, PluginInfo, Record, RecordStatus, SinkError, SinkPlugin};

use crate::config::{Config, Endpoint};
use crate::index::IndexTemplate;
use crate::request_builder::{field_path, ActionSettings};

/// The sink type this plugin provides.
pub const SINK_TYPE: &str = "elasticsearch";

/// The plugin: an HTTP client and the batching settings.
pub struct Elasticsearch {
    bulk: sink::Bulk,
}

#[async_trait]
impl SinkPlugin for Elasticsearch {
    type Config = Config;

    fn describe() -> PluginInfo {
        config::describe_keys(
            PluginInfo::new(SINK_TYPE, env!("CARGO_PKG_VERSION"))
                .description("Elasticsearch / OpenSearch through the _bulk API (basic auth, API key, AWS SigV4)"),
        )
    }

    fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
        config::validate(config)
    }

    async fn init(config: Config, ctx: InitContext) -> Result<Self, SinkError> {
        let invalid = |key: &str, message: String| SinkError::permanent(format!("`{key}`: {message}"));
        let endpoint = Endpoint::parse(&config.endpoint).map_err(|m| invalid("endpoint", m))?;
        let index = IndexTemplate::parse(&config.index).map_err(|m| invalid("index", m))?;
        let service = service::Service::new(endpoint, config.auth.as_ref(), config.request_timeout.get()).await?;
        tracing::info!(endpoint = %service.endpoint(), index = %config.index, pipeline = %ctx.pipeline, "elasticsearch sink ready");
        Ok(Elasticsearch {
            bulk: sink::Bulk {
                service,
                settings: ActionSettings {
                    index,
                    time_field: config.time_field.as_deref().map(field_path),
                    id_field: config.id_field.as_deref().map(field_path),
                    op_type: config.op_type,
                },
                max_actions: config.bulk_max_actions,
                max_bytes: config.bulk_max_bytes.bytes(),
                compression: config.compression,
            },
        })
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(self.bulk.service.healthcheck().await?)
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        self.bulk.send(batch).await
    }
}

shardline_plugin_sdk::export_sink_plugin!(Elasticsearch);

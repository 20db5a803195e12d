//! The typed pipeline file.

use std::path::PathBuf;

use serde::Deserialize;
use shardline_api::HumanDuration;
use shardline_pipeline::{BufferConfig, DeadLetterConfig, DeliveryConfig};

/// One pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Application name: names the pipeline in logs and metrics and is the
    /// default lease table name. Required; letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Where records come from (`[source]`). Required.
    pub source: SourceConfig,
    /// Where leases and checkpoints are kept (`[leases]`). Default: the
    /// embedded store in `./state`.
    #[serde(default)]
    pub leases: LeasesConfig,
    /// Transforms applied in order (`[[transforms]]`). Default: none.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// When a shard's buffer is flushed to the sink (`[buffer]`).
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Retries and concurrency of deliveries to the sink (`[delivery]`).
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Where records go (`[sink]`): `type` plus the sink's own keys.
    /// Required.
    pub sink: toml::Table,
    /// Where records that cannot be delivered go (`[dead_letter]`).
    /// Default: `type = "file"`, `path = "./dead-letters"`.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Pipeline unit tests run by `shardline test` (`[[tests]]`). Default:
    /// none. Ignored by `shardline run`.
    #[serde(default)]
    pub tests: Vec<crate::testing::TestCase>,
}

/// `[[transforms]]`: `type` plus the transform's own keys.
pub type TransformConfig = toml::Table;

/// The kinds of source. Only Kinesis for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// Amazon Kinesis Data Streams.
    Kinesis,
}

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InitialPosition {
    /// Only records written after the lease is created (the KCL default).
    #[default]
    Latest,
    /// The oldest record still retained.
    TrimHorizon,
    /// Records written at or after `source.timestamp`.
    AtTimestamp,
}

/// How shards are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// `GetRecords` polling (shared 2 MB/s per shard).
    #[default]
    Polling,
    /// Enhanced fan-out: `SubscribeToShard` with a registered consumer
    /// (dedicated 2 MB/s per shard per consumer, ~70 ms latency).
    FanOut,
}

/// `[source]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Source kind; `"kinesis"`. Required.
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// Stream name. Required.
    pub stream: String,
    /// AWS region. Default: from the environment/profile, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (emulators, VPC endpoints), an `http(s)://` URL,
    /// or `"embedded"`: an in-process Kinesis-compatible stream with its
    /// data in `<leases.state_dir>/kinesis` (local-kinesis). Default: the
    /// regional endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named AWS profile. Default: the default credential chain.
    #[serde(default)]
    pub profile: Option<String>,
    /// Where shards without a checkpoint start: `latest`, `trim_horizon`,
    /// `at_timestamp`. Default `latest` (as the KCL).
    #[serde(default)]
    pub initial_position: InitialPosition,
    /// RFC 3339 time for `initial_position = "at_timestamp"`, e.g.
    /// `"2026-11-01T00:00:00Z"`. Required with it, refused otherwise.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `polling` or `fan_out`. Default `polling`.
    #[serde(default)]
    pub read: ReadMode,
    /// Enhanced fan-out consumer name. Default: the pipeline name.
    #[serde(default)]
    pub consumer_name: Option<String>,
    /// Records per `GetRecords` call, 1 to 10000. Default 10000.
    #[serde(default = "default_max_records")]
    pub max_records: i32,
    /// Wait after a `GetRecords` call that returned nothing, once the
    /// shard has returned no records for `idle_after`. Default `"1s"`.
    #[serde(default = "default_idle_interval")]
    pub idle_interval: HumanDuration,
    /// How long a shard must return no records before polls slow from
    /// `poll_interval` to `idle_interval`; `"0s"` slows after every empty
    /// read. Default `"2s"`.
    #[serde(default = "default_idle_after")]
    pub idle_after: HumanDuration,
    /// Least time between two `GetRecords` calls on one shard (the service
    /// allows 5 calls/s per shard, shared by all consumers). Default
    /// `"200ms"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How often shards are listed to find new ones after a reshard.
    /// Default `"60s"`.
    #[serde(default = "default_shard_sync_interval")]
    pub shard_sync_interval: HumanDuration,
    /// Longest back-off after throttling or service errors. Default `"30s"`.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// Longest one Kinesis call may take, the SDK's retries included; past
    /// it the call fails as retriable and is tried again. Default `"30s"`
    /// (the KCL's `kinesisRequestTimeout`). At least `attempt_timeout`.
    #[serde(default = "default_source_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Longest one HTTP attempt of a Kinesis call may take (a connection
    /// that stops answering is dropped after it and the call retried on a
    /// new one). Default `"10s"`. Greater than zero.
    #[serde(default = "default_source_attempt_timeout")]
    pub attempt_timeout: HumanDuration,
}

impl SourceConfig {
    /// The bounds of every Kinesis call.
    pub fn timeouts(&self) -> shardline_aws::Timeouts {
        shardline_aws::Timeouts { operation: self.request_timeout.get(), attempt: self.attempt_timeout.get() }
    }
}

fn default_source_request_timeout() -> HumanDuration {
    HumanDuration(shardline_aws::Timeouts::KINESIS.operation)
}
fn default_source_attempt_timeout() -> HumanDuration {
    HumanDuration(shardline_aws::Timeouts::KINESIS.attempt)
}

fn default_max_records() -> i32 {
    10_000
}
fn default_idle_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_true() -> bool {
    true
}
fn default_idle_after() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_millis(200)
}
fn default_shard_sync_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// Which lease store keeps leases and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStoreKind {
    /// A file in `state_dir`, for one process.
    #[default]
    Embedded,
    /// A DynamoDB table in the KCL 2.x schema, shared by many workers (and
    /// by Java KCL applications using the same table).
    Dynamodb,
}

/// `[leases]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeasesConfig {
    /// `embedded` or `dynamodb`. Default `embedded`.
    #[serde(default)]
    pub store: LeaseStoreKind,
    /// Lease table name. Default: the pipeline name.
    #[serde(default)]
    pub table: Option<String>,
    /// Directory of the embedded store. Default `"./state"`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// DynamoDB region. Default: the source's region.
    #[serde(default)]
    pub region: Option<String>,
    /// DynamoDB endpoint override. Default: the regional endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named AWS profile for DynamoDB. Default: the source's profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// A lease whose `leaseCounter` did not change for this long is expired
    /// and may be taken by another worker; leases are renewed every third
    /// of it. Default `"10s"` (the KCL's `failoverTimeMillis`).
    #[serde(default = "default_failover_time")]
    pub failover_time: HumanDuration,
    /// Most leases this worker holds. Default: no limit.
    #[serde(default)]
    pub max_leases_per_worker: Option<usize>,
    /// Most leases stolen from an overloaded worker per taking round.
    /// Default 1.
    #[serde(default = "default_steal")]
    pub max_leases_to_steal_at_once: usize,
    /// At a graceful shutdown, hand every lease back (owner removed, after
    /// its final checkpoint) so another worker takes it at once; `false`
    /// leaves the leases owned, to expire after `failover_time`, as the
    /// Java KCL 2.x does. Set `false` on a table shared with KCL 2.x
    /// workers (KCL 2.5.8's lease taker fails on a lease it saw owned that
    /// has no owner). Default `true`.
    #[serde(default = "default_true")]
    pub release_on_shutdown: bool,
    /// Least time between two checkpoints of one shard (checkpoints are
    /// also written at shard end and at shutdown). Default `"5s"`.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// How often this worker scans the lease table for finished leases to
    /// delete: a `SHARD_END` lease goes once every child shard's checkpoint
    /// moved past its start (the KCL's `LeaseCleanupManager`). Default
    /// `"5m"` (the KCL's `completedLeaseCleanupIntervalMillis`); at least
    /// `"1s"`.
    #[serde(default = "default_cleanup_interval")]
    pub cleanup_interval: HumanDuration,
    /// Longest one lease-table (DynamoDB) call may take, the SDK's retries
    /// included; past it the call fails as retriable (a checkpoint is
    /// tried again, a renewal counts as missed). Default `"60s"` (the
    /// KCL's `dynamoDbRequestTimeout`). At least `attempt_timeout`.
    #[serde(default = "default_leases_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Longest one HTTP attempt of a lease-table call may take. Default
    /// `"5s"`, half the default `failover_time`, so a call on a hung
    /// connection is retried on a new one while the lease is still held.
    /// Greater than zero.
    #[serde(default = "default_leases_attempt_timeout")]
    pub attempt_timeout: HumanDuration,
}

impl LeasesConfig {
    /// The bounds of every lease-table call.
    pub fn timeouts(&self) -> shardline_aws::Timeouts {
        shardline_aws::Timeouts { operation: self.request_timeout.get(), attempt: self.attempt_timeout.get() }
    }
}

fn default_leases_request_timeout() -> HumanDuration {
    HumanDuration(shardline_aws::Timeouts::LEASES.operation)
}
fn default_leases_attempt_timeout() -> HumanDuration {
    HumanDuration(shardline_aws::Timeouts::LEASES.attempt)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}
fn default_failover_time() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_steal() -> usize {
    1
}
fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_cleanup_interval() -> HumanDuration {
    HumanDuration::from_secs(5 * 60)
}

impl Default for LeasesConfig {
    fn default() -> Self {
        LeasesConfig {
            store: LeaseStoreKind::default(),
            table: None,
            state_dir: default_state_dir(),
            region: None,
            endpoint: None,
            profile: None,
            failover_time: default_failover_time(),
            max_leases_per_worker: None,
            max_leases_to_steal_at_once: default_steal(),
            release_on_shutdown: true,
            checkpoint_interval: default_checkpoint_interval(),
            cleanup_interval: default_cleanup_interval(),
            request_timeout: default_leases_request_timeout(),
            attempt_timeout: default_leases_attempt_timeout(),
        }
    }
}

impl PipelineConfig {
    /// The lease table name: `leases.table`, else the pipeline name.
    pub fn lease_table(&self) -> &str {
        self.leases.table.as_deref().unwrap_or(&self.name)
    }

    /// Where and how to reach the Kinesis source.
    pub fn source_connection(&self) -> shardline_aws::AwsConnection {
        shardline_aws::AwsConnection {
            region: self.source.region.clone(),
            endpoint: self.source.endpoint.clone(),
            profile: self.source.profile.clone(),
            timeouts: self.source.timeouts(),
        }
    }

    /// Where and how to reach a DynamoDB lease table: `[leases]` region and
    /// profile, else the source's; `[leases]` endpoint.
    pub fn lease_connection(&self) -> shardline_aws::AwsConnection {
        shardline_aws::AwsConnection {
            region: self.leases.region.clone().or_else(|| self.source.region.clone()),
            endpoint: self.leases.endpoint.clone(),
            profile: self.leases.profile.clone().or_else(|| self.source.profile.clone()),
            timeouts: self.leases.timeouts(),
        }
    }

    /// The sink's `type`, if it is a string.
    pub fn sink_type(&self) -> Option<&str> {
        self.sink.get("type").and_then(|v| v.as_str())
    }
}

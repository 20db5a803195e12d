//! `shardline status`: a live view of a pipeline's fleet, from its lease
//! table (DynamoDB or embedded) and, where given or found, each worker's
//! `/metrics`.
//!
//! Only the attributes of the Java KCL's schema are needed (owner,
//! counter, checkpoint, parents, children), so a table that a KCL fleet
//! writes shows the same way. Lag and records/s come from the workers'
//! metrics: a shard's figures are taken from the worker that owns its
//! lease now (a worker that lost a lease keeps its last gauge).

mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use shardline_api::Checkpoint;
use shardline_lease::{DynamoDbLeaseStore, EmbeddedLeaseStore, Lease, LeaseError, LeaseStore};

use crate::config::{LeaseStoreKind, PipelineConfig};
use crate::scrape::{self, ScrapeError};

pub use render::render_text;

/// The metrics address tried when none is given: the default of
/// `shardline run --metrics-address`.
pub const DISCOVERED_METRICS: &str = "http://127.0.0.1:9464/metrics";

/// How long one `/metrics` read may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The lease table could not be read.
    #[error("pipeline {pipeline}: lease table {table:?} ({store}): {source}")]
    Leases {
        /// Pipeline name.
        pipeline: String,
        /// Table name.
        table: String,
        /// Where it is.
        store: String,
        /// Cause.
        source: LeaseError,
    },
    /// No credentials for the DynamoDB lease table.
    #[error("pipeline {pipeline}: {source}")]
    Credentials {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        source: shardline_aws::CredentialsError,
    },
}

/// One shard's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardRow {
    /// The shard id (`leaseKey`).
    pub shard_id: String,
    /// `leaseOwner`; `None` when unowned.
    pub owner: Option<String>,
    /// `checkpoint`: a sequence number or a KCL sentinel
    /// (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END`).
    pub checkpoint: String,
    /// `checkpointSubSequenceNumber` (KPL user record within the aggregate).
    pub checkpoint_sub_sequence_number: u64,
    /// `leaseCounter`.
    pub lease_counter: u64,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `open`, `ended` (checkpoint at `SHARD_END`) or `waiting` (a
    /// parent's lease has not reached `SHARD_END`).
    pub state: &'static str,
    /// `parentShardId`.
    pub parents: Vec<String>,
    /// `childShardIds`.
    pub children: Vec<String>,
    /// The owner's `shardline_millis_behind_latest` for the shard.
    pub millis_behind_latest: Option<f64>,
    /// The owner's records/s read from the shard, between two reads of its
    /// metrics.
    pub records_per_second: Option<f64>,
}

/// One worker's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    /// Worker id (`leaseOwner`).
    pub worker_id: String,
    /// Leases it owns.
    pub leases: usize,
    /// Sum of its shards' records/s, when its metrics were read.
    pub records_per_second: Option<f64>,
    /// Its largest millis behind latest, when its metrics were read.
    pub max_millis_behind_latest: Option<f64>,
    /// The metrics address it was read from.
    pub metrics: Option<String>,
}

/// One metrics address and what it gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    /// The address.
    pub url: String,
    /// The workers of the pipeline it reports (`shardline_leases_held`).
    pub worker_ids: Vec<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The whole view of one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name.
    pub stream: String,
    /// Lease table name.
    pub table: String,
    /// Where the table is.
    pub store: String,
    /// When it was read, milliseconds since the epoch.
    pub at_ms: i64,
    /// Shards, by id.
    pub shards: Vec<ShardRow>,
    /// Workers owning a lease, by id.
    pub workers: Vec<WorkerRow>,
    /// Metrics addresses read.
    pub metrics: Vec<SourceRow>,
}

/// What one read of one `/metrics` gave for a pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Workers of the pipeline this process runs.
    pub worker_ids: Vec<String>,
    /// shard id → millis behind latest.
    pub lag: HashMap<String, f64>,
    /// shard id → records received so far.
    pub received: HashMap<String, f64>,
}

impl MetricsSnapshot {
    /// The pipeline's samples from an exposition.
    pub fn parse(pipeline: &str, exposition: &str) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::default();
        for sample in scrape::samples(exposition) {
            if sample.label("pipeline") != Some(pipeline) {
                continue;
            }
            match (sample.name, sample.label("shard_id"), sample.label("worker_id")) {
                ("shardline_leases_held", _, Some(worker)) if !snapshot.worker_ids.iter().any(|w| w == worker) => {
                    snapshot.worker_ids.push(worker.to_owned());
                }
                ("shardline_millis_behind_latest", Some(shard), _) => {
                    snapshot.lag.insert(shard.to_owned(), sample.value);
                }
                ("shardline_records_received_total", Some(shard), _) => {
                    *snapshot.received.entry(shard.to_owned()).or_default() += sample.value;
                }
                _ => {}
            }
        }
        snapshot
    }
}

/// A metrics address with its last two reads, for rates.
#[derive(Debug)]
pub struct MetricsSource {
    url: String,
    /// Found rather than given: not answering is not worth a line.
    discovered: bool,
    previous: Option<(Instant, MetricsSnapshot)>,
    last: Result<(Instant, MetricsSnapshot), String>,
}

impl MetricsSource {
    /// A source for `address` (`HOST:PORT` or a URL).
    pub fn new(address: &str, discovered: bool) -> MetricsSource {
        MetricsSource { url: scrape::metrics_url(address), discovered, previous: None, last: Err("not read yet".to_owned()) }
    }

    /// This process's own metrics (`shardline run --web`), recorded with
    /// [`MetricsSource::record`].
    pub fn local() -> MetricsSource {
        MetricsSource { url: "this process".to_owned(), discovered: false, previous: None, last: Err("not read yet".to_owned()) }
    }

    /// Reads the address once more.
    pub async fn refresh(&mut self, pipeline: &str) {
        let result = scrape::fetch(&self.url, SCRAPE_TIMEOUT).await;
        self.record(pipeline, Instant::now(), result);
    }

    /// Stores the result of a read made at `at`.
    pub fn record(&mut self, pipeline: &str, at: Instant, result: Result<String, ScrapeError>) {
        let next = result.map(|text| (at, MetricsSnapshot::parse(pipeline, &text))).map_err(|e| e.to_string());
        let before = std::mem::replace(&mut self.last, next);
        if let Ok(read) = before {
            self.previous = Some(read);
        }
    }

    /// True when there is something to show: answered, or given by the
    /// user (then its error is shown).
    fn shown(&self) -> bool {
        !self.discovered || self.last.is_ok()
    }
}

/// Records/s per shard between the previous and the last read.
fn rates(source: &MetricsSource) -> HashMap<String, f64> {
    let (Some((t0, before)), Ok((t1, after))) = (&source.previous, &source.last) else { return HashMap::new() };
    let seconds = t1.duration_since(*t0).as_secs_f64();
    if seconds <= 0.0 {
        return HashMap::new();
    }
    after
        .received
        .iter()
        .map(|(shard, total)| {
            let earlier = before.received.get(shard).copied().unwrap_or(*total);
            (shard.clone(), ((total - earlier) / seconds).max(0.0))
        })
        .collect()
}

/// The state of a shard from its lease and the table's other leases.
fn shard_state(lease: &Lease, by_key: &BTreeMap<&str, &Lease>) -> &'static str {
    if lease.checkpoint == Checkpoint::ShardEnd {
        return "ended";
    }
    // A parent whose lease is gone was cleaned up after it ended.
    let waiting = lease.parent_shard_ids.iter().any(|p| by_key.get(p.as_str()).is_some_and(|parent| parent.checkpoint != Checkpoint::ShardEnd));
    if waiting {
        "waiting"
    } else {
        "open"
    }
}

/// Builds the report from the leases and the metrics sources.
pub fn build_report(config: &PipelineConfig, leases: &[Lease], sources: &[MetricsSource], at: SystemTime) -> Report {
    let by_key: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    // worker id → (source url, lag per shard, rate per shard)
    let mut per_worker: HashMap<&str, (&str, &MetricsSnapshot, HashMap<String, f64>)> = HashMap::new();
    for source in sources {
        if let Ok((_, snapshot)) = &source.last {
            let rates = rates(source);
            for worker in &snapshot.worker_ids {
                per_worker.insert(worker.as_str(), (source.url.as_str(), snapshot, rates.clone()));
            }
        }
    }
    let shards: Vec<ShardRow> = by_key
        .values()
        .map(|lease| {
            let metrics = lease.lease_owner.as_deref().and_then(|owner| per_worker.get(owner));
            let (checkpoint, sub) = match &lease.checkpoint {
                Checkpoint::At(position) => (position.sequence.to_string(), position.sub_sequence),
                other => (other.sequence_string(), 0),
            };
            ShardRow {
                shard_id: lease.lease_key.clone(),
                owner: lease.lease_owner.clone(),
                checkpoint,
                checkpoint_sub_sequence_number: sub,
                lease_counter: lease.lease_counter,
                owner_switches_since_checkpoint: lease.owner_switches_since_checkpoint,
                state: shard_state(lease, &by_key),
                parents: lease.parent_shard_ids.clone(),
                children: lease.child_shard_ids.clone(),
                millis_behind_latest: metrics.and_then(|(_, m, _)| m.lag.get(&lease.lease_key).copied()),
                records_per_second: metrics.and_then(|(_, _, r)| r.get(&lease.lease_key).copied()),
            }
        })
        .collect();
    let mut workers: BTreeMap<String, WorkerRow> = BTreeMap::new();
    for shard in &shards {
        let Some(owner) = shard.owner.as_deref() else { continue };
        let metrics = per_worker.get(owner);
        let row = workers.entry(owner.to_owned()).or_insert_with(|| WorkerRow {
            worker_id: owner.to_owned(),
            leases: 0,
            records_per_second: None,
            max_millis_behind_latest: None,
            metrics: metrics.map(|(url, _, _)| (*url).to_owned()),
        });
        row.leases += 1;
        if let Some(rate) = shard.records_per_second {
            row.records_per_second = Some(row.records_per_second.unwrap_or(0.0) + rate);
        }
        if let Some(lag) = shard.millis_behind_latest {
            row.max_millis_behind_latest = Some(row.max_millis_behind_latest.map_or(lag, |m: f64| m.max(lag)));
        }
    }
    Report {
        pipeline: config.name.clone(),
        stream: config.source.stream.clone(),
        table: config.lease_table().to_owned(),
        store: crate::runtime::lease_store_location(config),
        at_ms: crate::quickstart::state::epoch_millis(at),
        shards,
        workers: workers.into_values().collect(),
        metrics: sources
            .iter()
            .filter(|s| s.shown())
            .map(|s| SourceRow {
                url: s.url.clone(),
                worker_ids: s.last.as_ref().map(|(_, m)| m.worker_ids.clone()).unwrap_or_default(),
                error: s.last.as_ref().err().cloned(),
            })
            .collect(),
    }
}

/// Reads a pipeline's lease table.
pub struct LeaseReader {
    config: PipelineConfig,
    dynamodb: Option<DynamoDbLeaseStore>,
}

impl LeaseReader {
    /// Connects to the pipeline's lease table (for DynamoDB: credentials
    /// are checked first; nothing is created).
    ///
    /// # Errors
    /// [`StatusError::Credentials`] when none can be had.
    pub async fn connect(config: &PipelineConfig) -> Result<LeaseReader, StatusError> {
        let dynamodb = match config.leases.store {
            LeaseStoreKind::Embedded => None,
            LeaseStoreKind::Dynamodb => {
                let sdk_config = shardline_aws::load_checked_sdk_config(&config.lease_connection(), "the dynamodb lease table")
                    .await
                    .map_err(|source| StatusError::Credentials { pipeline: config.name.clone(), source })?;
                Some(DynamoDbLeaseStore::new(aws_sdk_dynamodb::Client::new(&sdk_config), config.lease_table().to_owned()))
            }
        };
        Ok(LeaseReader { config: config.clone(), dynamodb })
    }

    /// Every lease, as stored now.
    ///
    /// # Errors
    /// [`StatusError::Leases`] naming the table and the cause.
    pub async fn read(&self) -> Result<Vec<Lease>, StatusError> {
        let result = match &self.dynamodb {
            Some(store) => store.list_leases().await,
            None => EmbeddedLeaseStore::read_snapshot(&self.config.leases.state_dir, self.config.lease_table()),
        };
        result.map_err(|source| StatusError::Leases {
            pipeline: self.config.name.clone(),
            table: self.config.lease_table().to_owned(),
            store: crate::runtime::lease_store_location(&self.config),
            source,
        })
    }
}

/// How `shardline status` shows what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Aligned text.
    Text,
    /// One JSON document per pipeline and refresh.
    Json,
}

/// `shardline status` settings.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Metrics addresses given (`--metrics`); none: try [`DISCOVERED_METRICS`].
    pub metrics: Vec<String>,
    /// Refresh every this long (`--watch`); also the gap between the two
    /// metrics reads that give records/s.
    pub interval: Duration,
    /// Keep refreshing until interrupted.
    pub watch: bool,
    /// Text or JSON.
    pub output: Output,
    /// Clear the screen before each refresh (`--watch` in a terminal).
    pub clear_screen: bool,
}

/// One pipeline's view, kept across refreshes.
struct Watched {
    config: PipelineConfig,
    reader: LeaseReader,
    sources: Vec<MetricsSource>,
}

impl Watched {
    async fn refresh_metrics(&mut self) {
        let pipeline = self.config.name.clone();
        futures::future::join_all(self.sources.iter_mut().map(|s| s.refresh(&pipeline))).await;
    }

    async fn report(&self) -> Result<Report, StatusError> {
        let leases = self.reader.read().await?;
        Ok(build_report(&self.config, &leases, &self.sources, SystemTime::now()))
    }
}

/// Shows the status of `pipelines` once, or every `interval` until
/// `shutdown` with `watch`. `print` receives each rendered refresh.
///
/// # Errors
/// The first pipeline whose lease table cannot be read.
pub async fn run(
    pipelines: Vec<PipelineConfig>,
    options: StatusOptions,
    shutdown: tokio_util::sync::CancellationToken,
    mut print: impl FnMut(&str),
) -> Result<(), StatusError> {
    let mut watched = Vec::new();
    for config in pipelines {
        let reader = LeaseReader::connect(&config).await?;
        let sources = if options.metrics.is_empty() {
            vec![MetricsSource::new(DISCOVERED_METRICS, true)]
        } else {
            options.metrics.iter().map(|m| MetricsSource::new(m, false)).collect()
        };
        watched.push(Watched { config, reader, sources });
    }
    // Two reads of the metrics, `interval` apart, give the first rates.
    for w in &mut watched {
        w.refresh_metrics().await;
    }
    if watched.iter().any(|w| w.sources.iter().any(|s| s.last.is_ok())) && !wait(options.interval, &shutdown).await {
        return Ok(());
    }
    loop {
        let mut text = String::new();
        if options.clear_screen {
            text.push_str("\x1b[H\x1b[2J");
        }
        for w in &mut watched {
            w.refresh_metrics().await;
            let report = w.report().await?;
            match options.output {
                Output::Text => text.push_str(&render_text(&report)),
                Output::Json => {
                    // A report is plain data: serialising cannot fail.
                    text.push_str(&serde_json::to_string(&report).unwrap_or_default());
                    text.push('\n');
                }
            }
        }
        print(&text);
        if !options.watch || !wait(options.interval, &shutdown).await {
            return Ok(());
        }
    }
}

/// Waits `interval`; false when `shutdown` came first.
async fn wait(interval: Duration, shutdown: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(interval) => true,
    }
}

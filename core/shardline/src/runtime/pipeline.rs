//! One pipeline in a process: connect the source, the lease store and the
//! sink, keep leases in sync with the stream's shards, and run a shard
//! worker for every lease this worker holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline_api::{Checkpoint, ShardInfo, Sink};
use shardline_kinesis::{KinesisSource, ReadMode, ReaderOptions, SourceError, StartPosition};
use shardline_lease::{
    CoordinatorConfig, DynamoDbLeaseStore, EmbeddedLeaseStore, LeaseCleanup, LeaseCoordinator, LeaseError, LeaseHandle, LeaseStore, ShardListing,
};
use shardline_pipeline::{DeadLetter, ShardContext, ShardPipeline};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::shard_tasks::ShardTasks;
use super::shard_worker::{ShardExit, ShardWorker, WorkerError};
use crate::config::{InitialPosition, LeaseStoreKind, PipelineConfig};
use crate::metrics::Telemetry;
use crate::sink::SinkBuildError;

/// Settings of the process that apply to every pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This worker's id in the lease table (`leaseOwner`).
    pub worker_id: String,
    /// How long a graceful shutdown may take before leases are left to
    /// expire.
    pub shutdown_timeout: Duration,
}

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The sink could not be built.
    #[error("pipeline {pipeline}: {source}")]
    Sink {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        source: SinkBuildError,
    },
    /// The sink is unusable (healthcheck failed permanently).
    #[error("pipeline {pipeline}: sink healthcheck failed: {message}")]
    SinkUnhealthy {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        message: String,
    },
    /// Something else in the configuration could not be built.
    #[error("pipeline {pipeline}: {message}")]
    Build {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        message: String,
    },
    /// No AWS credentials could be had for the source or the lease table.
    #[error("pipeline {pipeline}: {source}")]
    Credentials {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        source: shardline_aws::CredentialsError,
    },
    /// The source failed permanently.
    #[error("pipeline {pipeline} (kinesis endpoint {endpoint}): {source}")]
    Source {
        /// Pipeline name.
        pipeline: String,
        /// The configured endpoint, or "regional" when none is set.
        endpoint: String,
        /// Cause.
        source: SourceError,
    },
    /// The lease store failed permanently.
    #[error("pipeline {pipeline}: lease store: {source}")]
    Lease {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        source: LeaseError,
    },
    /// Two pipelines of the process name the same lease table: they would
    /// share a worker id and take and evict each other's leases.
    #[error("pipelines {first} and {second} share the lease table {table:?} ({store}); give each pipeline its own `[leases] table`")]
    SharedLeaseTable {
        /// The table name.
        table: String,
        /// Where the table is: the embedded store's directory, or the
        /// DynamoDB endpoint and region.
        store: String,
        /// The first pipeline naming it.
        first: String,
        /// The second pipeline naming it.
        second: String,
    },
    /// A shard worker failed permanently.
    #[error("pipeline {pipeline}: {source}")]
    Worker {
        /// Pipeline name.
        pipeline: String,
        /// Cause.
        source: WorkerError,
    },
}

/// Creates the lease table if missing (or checks the embedded store),
/// retrying retriable failures a few times with back-off so a briefly
/// unreachable DynamoDB does not kill the process at start, while a wrong
/// endpoint or missing permission still fails with its error.
async fn ensure_lease_table(store: &dyn LeaseStore, shutdown: &CancellationToken) -> Result<(), LeaseError> {
    const ATTEMPTS: u32 = 4;
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match store.ensure_table().await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind().is_retriable() && attempt < ATTEMPTS && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, attempt, "preparing the lease table failed, retrying in {delay:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(e),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(8));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `config` until `shutdown` is cancelled (then drains) or a permanent
/// error stops it.
///
/// # Errors
/// [`PipelineError`] naming the pipeline and the part that failed.
pub async fn run_pipeline(config: PipelineConfig, options: RunOptions, shutdown: CancellationToken) -> Result<(), PipelineError> {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let pipeline = config.name.clone();
    let telemetry = Telemetry::global();
    telemetry.set_ready(&pipeline, false);
    let build_error = |message: String| PipelineError::Build { pipeline: pipeline.clone(), message };

    // Sink and dead-letter destination first: they need no network to build.
    let sink = crate::sink::build(&config.sink, &pipeline).map_err(|source| PipelineError::Sink { pipeline: pipeline.clone(), source })?;
    // Every call into the sink (the shard workers' flushes included) is
    // bounded by `[delivery] call_timeout`.
    let sink = shardline_pipeline::CallTimeout::wrap(sink, config.delivery.call_timeout.get(), &pipeline);
    let dead_letter: Arc<dyn DeadLetter> = config.dead_letter.build(&pipeline).map_err(|e| build_error(format!("dead letter: {e}")))?;
    crate::transforms::build_chain(&config.transforms).map_err(build_error)?;

    // Credentials before anything calls AWS: without them every call would
    // be retried until its bound, logging the chain's internals each time.
    let credentials_error = |source| PipelineError::Credentials { pipeline: pipeline.clone(), source };
    let embedded_source = config.source.endpoint.as_deref() == Some(shardline_local_kinesis::EMBEDDED_ENDPOINT);
    let source_sdk_config = if embedded_source {
        None
    } else {
        Some(shardline_aws::load_checked_sdk_config(&config.source_connection(), "the kinesis source").await.map_err(credentials_error)?)
    };
    let lease_sdk_config = match config.leases.store {
        LeaseStoreKind::Embedded => None,
        LeaseStoreKind::Dynamodb => {
            Some(shardline_aws::load_checked_sdk_config(&config.lease_connection(), "the dynamodb lease table").await.map_err(credentials_error)?)
        }
    };

    if let Err(e) = sink.healthcheck().await {
        if !e.kind.is_retriable() {
            return Err(PipelineError::SinkUnhealthy { pipeline: pipeline.clone(), message: e.message });
        }
        tracing::warn!(pipeline = %pipeline, error = %e, "sink healthcheck failed; starting anyway, deliveries will be retried");
    }

    // Source.
    let source_endpoint = config.source.endpoint.clone().unwrap_or_else(|| "regional".to_owned());
    // local-kinesis: `endpoint = "embedded"` starts (or reuses) the in-process
    // Kinesis server on `<leases.state_dir>/kinesis`, creates the stream when
    // missing, and is reached with test credentials.
    let kinesis_client = match source_sdk_config {
        Some(sdk_config) => aws_sdk_kinesis::Client::new(&sdk_config),
        None => {
            let data_dir = shardline_local_kinesis::embedded_data_dir(&config.leases.state_dir);
            let endpoint = shardline_local_kinesis::embedded_endpoint(&data_dir, Some(&config.source.stream))
                .await
                .map_err(|e| build_error(format!("source.endpoint = \"embedded\": {e}")))?;
            aws_sdk_kinesis::Client::new(&shardline_aws::emulator_sdk_config_with(&endpoint, config.source.timeouts()))
        }
    };
    let stream = config.source.stream.clone();
    // `connect` retries retriable failures itself (bounded), then reports
    // the endpoint and the cause.
    let source = KinesisSource::connect(kinesis_client.clone(), &stream)
        .await
        .map_err(|source| PipelineError::Source { pipeline: pipeline.clone(), endpoint: source_endpoint.clone(), source })?;
    let read_mode = match config.source.read {
        crate::config::ReadMode::Polling => ReadMode::Polling,
        crate::config::ReadMode::FanOut => {
            let consumer_name = config.source.consumer_name.clone().unwrap_or_else(|| pipeline.clone());
            ReadMode::FanOut { consumer_name }
        }
    };

    // Lease store.
    let table = config.lease_table().to_owned();
    let store: Arc<dyn LeaseStore> = match lease_sdk_config {
        Some(sdk_config) => Arc::new(DynamoDbLeaseStore::new(aws_sdk_dynamodb::Client::new(&sdk_config), table.clone())),
        None => Arc::new(
            EmbeddedLeaseStore::open(&config.leases.state_dir, &table)
                .map_err(|source| PipelineError::Lease { pipeline: pipeline.clone(), source })?,
        ),
    };
    ensure_lease_table(store.as_ref(), &shutdown)
        .await
        .map_err(|source| PipelineError::Lease { pipeline: pipeline.clone(), source })?;

    let initial = match config.source.initial_position {
        InitialPosition::Latest => Checkpoint::Latest,
        InitialPosition::TrimHorizon => Checkpoint::TrimHorizon,
        InitialPosition::AtTimestamp => Checkpoint::AtTimestamp,
    };
    let at_timestamp: Option<SystemTime> = config
        .source
        .timestamp
        .as_deref()
        .map(humantime::parse_rfc3339_weak)
        .transpose()
        .map_err(|e| build_error(format!("source.timestamp: {e}")))?;
    let mut shards = sync_shards(&source, store.as_ref(), &initial, at_timestamp)
        .await
        .map_err(|e| match e {
            SyncError::Source(source) => PipelineError::Source { pipeline: pipeline.clone(), endpoint: source_endpoint.clone(), source },
            SyncError::Lease(source) => PipelineError::Lease { pipeline: pipeline.clone(), source },
        })?;
    tracing::info!(pipeline = %pipeline, stream = %stream, shards = shards.len(), worker_id = %options.worker_id, "pipeline started");
    telemetry.set_ready(&pipeline, true);

    let coordinator_config = CoordinatorConfig {
        pipeline: pipeline.clone(),
        worker_id: options.worker_id.clone(),
        failover_time: config.leases.failover_time.get(),
        max_leases_per_worker: config.leases.max_leases_per_worker.unwrap_or(usize::MAX),
        max_leases_to_steal_at_once: config.leases.max_leases_to_steal_at_once,
        release_on_shutdown: config.leases.release_on_shutdown,
    };
    let (coordinator, mut acquired) = LeaseCoordinator::start(store.clone(), coordinator_config);
    let cleanup = LeaseCleanup::start(store.clone(), pipeline.clone(), config.leases.cleanup_interval.get());
    let mut workers: Workers = JoinSet::new();
    let mut tasks = ShardTasks::default();
    let workers_shutdown = CancellationToken::new();
    let mut sync_timer = tokio::time::interval(config.source.shard_sync_interval.get());
    sync_timer.tick().await;
    let reader_options = ReaderOptions {
        pipeline: pipeline.clone(),
        max_records: config.source.max_records,
        idle_interval: config.source.idle_interval.get(),
        idle_after: config.source.idle_after.get(),
        poll_interval: config.source.poll_interval.get(),
        max_backoff: config.source.max_backoff.get(),
    };
    let context = WorkerContext {
        name: name.clone(),
        config: &config,
        source: &source,
        store: &store,
        read_mode: &read_mode,
        reader_options: &reader_options,
        at_timestamp,
        sink: &sink,
        dead_letter: &dead_letter,
        telemetry: &telemetry,
    };

    let mut failure: Option<PipelineError> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            handle = acquired.recv() => {
                let Some(handle) = handle else { break };
                let Some(handle) = tasks.acquired(handle) else { continue };
                if let Err(message) = context.spawn(handle, &shards, &mut tasks, &mut workers, &workers_shutdown) {
                    failure = Some(build_error(message));
                    break;
                }
            }
            _ = sync_timer.tick() => {
                match sync_shards(&source, store.as_ref(), &initial, at_timestamp).await {
                    Ok(s) => shards = s,
                    Err(e) => tracing::warn!(pipeline = %pipeline, error = %e, "shard sync failed, will retry"),
                }
            }
            Some(joined) = workers.join_next() => {
                if let Ok((shard_id, _)) = &joined {
                    if let Some(handle) = tasks.ended(shard_id) {
                        if let Err(message) = context.spawn(handle, &shards, &mut tasks, &mut workers, &workers_shutdown) {
                            failure = Some(build_error(message));
                            break;
                        }
                    }
                }
                match joined {
                    Ok((shard_id, Ok(exit))) => {
                        tracing::debug!(pipeline = %pipeline, shard_id = %shard_id, exit = ?exit, "shard worker ended");
                        if let ShardExit::ShardEnd(_) = exit {
                            // Children may be new to us: list shards now rather than at the next tick.
                            match sync_shards(&source, store.as_ref(), &initial, at_timestamp).await {
                                Ok(s) => shards = s,
                                Err(e) => tracing::warn!(pipeline = %pipeline, error = %e, "shard sync failed, will retry"),
                            }
                        }
                    }
                    Ok((shard_id, Err(e))) => {
                        tracing::error!(pipeline = %pipeline, shard_id = %shard_id, error = %e, "shard worker failed permanently, stopping the pipeline");
                        failure = Some(PipelineError::Worker { pipeline: pipeline.clone(), source: e });
                        break;
                    }
                    Err(e) => {
                        tracing::error!(pipeline = %pipeline, error = %e, "shard worker panicked, stopping the pipeline");
                        failure = Some(build_error(format!("a shard worker panicked: {e}")));
                        break;
                    }
                }
            }
        }
    }

    // Drain: stop taking leases, let every worker flush, checkpoint and
    // release, then stop renewing.
    tracing::info!(pipeline = %pipeline, shards = tasks.running(), "draining");
    telemetry.set_ready(&pipeline, false);
    coordinator.stop_taking();
    cleanup.shutdown().await;
    for handle in tasks.take_waiting() {
        if let Err(e) = handle.release(None).await {
            tracing::warn!(pipeline = %pipeline, lease_key = %handle.lease_key(), error = %e, "lease release failed; it will expire after the failover time");
        }
    }
    workers_shutdown.cancel();
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while let Some(joined) = workers.join_next().await {
            if let Ok((shard_id, Err(e))) = joined {
                tracing::error!(pipeline = %pipeline, shard_id = %shard_id, error = %e, "shard worker failed while draining");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(pipeline = %pipeline, timeout = ?options.shutdown_timeout, "shutdown timed out; remaining leases will expire");
        workers.abort_all();
    }
    if let Err(e) = sink.flush().await {
        tracing::warn!(pipeline = %pipeline, error = %e, "final sink flush failed");
    }
    if let Err(e) = sink.close().await {
        tracing::warn!(pipeline = %pipeline, error = %e, "sink close failed");
    }
    coordinator.shutdown().await;
    if config.leases.release_on_shutdown {
        release_orphaned_leases(store.as_ref(), &options.worker_id, &pipeline).await;
    }
    tracing::info!(pipeline = %pipeline, "pipeline stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct WorkerContext<'a> {
    name: Arc<str>,
    config: &'a PipelineConfig,
    source: &'a KinesisSource,
    store: &'a Arc<dyn LeaseStore>,
    read_mode: &'a ReadMode,
    reader_options: &'a ReaderOptions,
    at_timestamp: Option<SystemTime>,
    sink: &'a Arc<dyn Sink>,
    dead_letter: &'a Arc<dyn DeadLetter>,
    telemetry: &'a Arc<Telemetry>,
}

type Workers = JoinSet<(String, Result<ShardExit, WorkerError>)>;

impl WorkerContext<'_> {
    /// Starts a shard worker task for `handle`.
    fn spawn(
        &self,
        handle: LeaseHandle,
        shards: &HashMap<String, ShardInfo>,
        tasks: &mut ShardTasks,
        workers: &mut Workers,
        workers_shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let shard_id = handle.lease_key().to_owned();
        let worker = self.worker(handle, shards.get(&shard_id).cloned(), workers_shutdown.child_token())?;
        tasks.started(&shard_id);
        workers.spawn(async move { (shard_id, worker.run().await) });
        Ok(())
    }

    fn worker(&self, handle: LeaseHandle, listed: Option<ShardInfo>, shutdown: CancellationToken) -> Result<ShardWorker, String> {
        let lease = handle.snapshot();
        // The lease carries lineage and hash range, so a shard this process
        // has not listed yet (created by another worker) still works.
        let shard = listed.unwrap_or_else(|| ShardInfo {
            shard_id: lease.lease_key.clone(),
            parent_shard_ids: lease.parent_shard_ids.clone(),
            starting_hash_key: lease.starting_hash_key.clone().unwrap_or_else(|| "0".to_owned()),
            ending_hash_key: lease
                .ending_hash_key
                .clone()
                .unwrap_or_else(|| u128::MAX.to_string()),
            closed: false,
        });
        let context = ShardContext {
            pipeline: self.name.clone(),
            stream: Arc::from(self.source.stream()),
            shard_id: Arc::from(shard.shard_id.as_str()),
        };
        let transforms = crate::transforms::build_chain(&self.config.transforms)?;
        let mut pipeline = ShardPipeline::new(
            context,
            transforms,
            self.config.buffer.clone(),
            self.config.delivery.clone(),
            self.sink.clone(),
            self.dead_letter.clone(),
        );
        // Each batch carries the lease counter held when it is sent.
        let lease = handle.clone();
        pipeline.set_lease_counter(Arc::new(move || lease.lease_counter()));
        Ok(ShardWorker {
            pipeline_name: self.name.clone(),
            handle,
            shard,
            source: self.source.clone(),
            store: self.store.clone(),
            read_mode: self.read_mode.clone(),
            reader_options: self.reader_options.clone(),
            at_timestamp: self.at_timestamp,
            checkpoint_interval: self.config.leases.checkpoint_interval.get(),
            parent_poll_interval: (self.config.leases.failover_time.get() / 2).clamp(Duration::from_millis(200), Duration::from_secs(5)),
            pipeline,
            sink: self.sink.clone(),
            shutdown,
            telemetry: self.telemetry.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Source(SourceError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Lists the stream's shards and creates leases for new ones (an empty
/// table: only for the shards at the initial position).
async fn sync_shards(source: &KinesisSource, store: &dyn LeaseStore, initial: &Checkpoint, at_timestamp: Option<SystemTime>) -> Result<HashMap<String, ShardInfo>, SyncError> {
    let at_initial = match (initial, at_timestamp) {
        (Checkpoint::Latest, _) => Some(StartPosition::Latest),
        (Checkpoint::TrimHorizon, _) => Some(StartPosition::TrimHorizon),
        (Checkpoint::AtTimestamp, Some(t)) => Some(StartPosition::AtTimestamp(t)),
        _ => None,
    };
    let at_initial = at_initial.as_ref();
    let list = move |listing: ShardListing| async move {
        match (listing, at_initial) {
            (ShardListing::AtInitialPosition, Some(position)) => source.list_shards_at(position).await,
            _ => source.list_shards().await,
        }
        .map_err(SyncError::Source)
    };
    let synced = shardline_lease::sync_leases(store, initial, list).await?;
    if synced.created > 0 {
        tracing::info!(stream = %source.stream(), created = synced.created, "created leases for new shards");
    }
    Ok(synced.shards.into_iter().map(|s| (s.shard_id.clone(), s)).collect())
}

/// Hands back leases the table still gives to this worker id although no
/// shard worker of this process holds them: a previous incarnation with the
/// same id crashed, and this one was asked to stop before it took them
/// back. Without this they would wait `failover_time` for another worker.
/// Evicting is conditional on the owner, so a lease another worker took in
/// the meantime is left alone. Failures are logged: the leases then expire.
async fn release_orphaned_leases(store: &dyn LeaseStore, worker_id: &str, pipeline: &str) {
    let leases = match store.list_leases().await {
        Ok(leases) => leases,
        Err(e) => {
            tracing::warn!(pipeline = %pipeline, error = %e, "could not list leases at shutdown; leases of an earlier run of this worker will expire");
            return;
        }
    };
    for lease in leases.iter().filter(|l| l.lease_owner.as_deref() == Some(worker_id)) {
        match store.evict(lease).await {
            Ok(_) => tracing::info!(pipeline = %pipeline, lease_key = %lease.lease_key, "released a lease left by an earlier run of this worker"),
            Err(e) if e.is_lost() => {}
            Err(e) => tracing::warn!(pipeline = %pipeline, lease_key = %lease.lease_key, error = %e, "could not release a lease left by an earlier run of this worker"),
        }
    }
}

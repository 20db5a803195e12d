//! `shardline quickstart`: the seed's visualisation demo in one process,
//! with no AWS account and nothing else installed.
//!
//! 1. starts the embedded Kinesis server on `<state_dir>/kinesis` and
//!    creates the `quickstart` stream (2 shards) when it is missing;
//! 2. runs the referrer generator (`shardline put --generate referrers`,
//!    KPL-aggregated) at `rate` records/s;
//! 3. runs `pipelines/quickstart.toml` (parse_json → timestamp →
//!    window_count → the `dashboard` sink) with the embedded lease store in
//!    `state_dir`;
//! 4. serves a page on 127.0.0.1 charting the counts per referrer, with
//!    per-shard lag and throughput, from `/api/dashboard`.
//!
//! Cancelling the shutdown token (Ctrl-C in the binary) stops the generator
//! and drains the pipeline: buffers flushed, shards checkpointed, leases
//! released. The next run resumes from the checkpoints.

pub(crate) mod server;
pub mod sink;
pub mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_aws::AwsConnection;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, PipelineConfig};
use crate::put::{generate, Generator, PartitionKey, Producer, ProducerOptions};
use crate::runtime::{PipelineError, RunOptions};
use state::DashboardState;

/// The quickstart pipeline, compiled in (`--pipeline` reads another file).
pub const PIPELINE: &str = include_str!("../../../../pipelines/quickstart.toml");
/// Shards of the `quickstart` stream when the quickstart creates it.
pub const SHARDS: i32 = 2;
/// How often the generator sends what it has (so the chart moves smoothly
/// instead of in 500-record bursts).
const GENERATOR_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// How to run the quickstart.
#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    /// Address of the page (port 0: a free port).
    pub address: SocketAddr,
    /// Where the stream's records, leases and checkpoints live.
    pub state_dir: PathBuf,
    /// Generator records per second.
    pub rate: f64,
    /// Run the generator (`false`: only consume what the stream holds).
    pub generator: bool,
    /// A pipeline file to run instead of the compiled-in
    /// `pipelines/quickstart.toml`.
    pub pipeline_file: Option<PathBuf>,
    /// Worker id in the lease table and how long draining may take.
    pub run: RunOptions,
}

/// Why the quickstart stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// The pipeline file is not valid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The pipeline does not read the embedded stream.
    #[error("{file}: the quickstart runs pipelines with `[source] endpoint = \"embedded\"`")]
    NotEmbedded {
        /// The pipeline file.
        file: PathBuf,
    },
    /// The page's address cannot be bound.
    #[error("cannot serve the page on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The embedded stream could not start.
    #[error("embedded kinesis in {}: {source}", data_dir.display())]
    Stream {
        /// Its data directory.
        data_dir: PathBuf,
        /// The cause.
        source: shardline_local_kinesis::LocalKinesisError,
    },
    /// The stream could not be created.
    #[error("creating stream {stream}: {message}")]
    CreateStream {
        /// The stream.
        stream: String,
        /// The cause.
        message: String,
    },
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Loads the quickstart pipeline with its state in `state_dir`.
///
/// # Errors
/// [`QuickstartError::Config`] or [`QuickstartError::NotEmbedded`].
pub fn load_pipeline(file: Option<&Path>, state_dir: &Path) -> Result<PipelineConfig, QuickstartError> {
    let mut config = match file {
        Some(path) => crate::config::load_file(path)?,
        None => crate::config::load_str(PIPELINE, Path::new("pipelines/quickstart.toml"))?,
    };
    if config.source.endpoint.as_deref() != Some(shardline_local_kinesis::EMBEDDED_ENDPOINT) {
        let file = file.map(Path::to_owned).unwrap_or_else(|| PathBuf::from("pipelines/quickstart.toml"));
        return Err(QuickstartError::NotEmbedded { file });
    }
    config.leases.state_dir = state_dir.to_owned();
    Ok(config)
}

/// Runs the quickstart until `shutdown` is cancelled, then drains. Calls
/// `on_listening` with the page's address once it is served.
///
/// # Errors
/// [`QuickstartError`] naming the part that failed.
///
/// # Cancel safety
/// Not cancel-safe: cancel `shutdown` and await the future to drain.
pub async fn run(
    options: QuickstartOptions,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), QuickstartError> {
    let telemetry = crate::metrics::Telemetry::global();
    let config = load_pipeline(options.pipeline_file.as_deref(), &options.state_dir)?;
    let state = sink::install(Arc::new(DashboardState::default()));

    let server_stop = CancellationToken::new();
    let address = server::serve(options.address, state.clone(), telemetry.clone(), server_stop.clone())
        .await
        .map_err(|source| QuickstartError::Bind { address: options.address, source })?;
    on_listening(address);

    let data_dir = shardline_local_kinesis::embedded_data_dir(&options.state_dir);
    let endpoint = shardline_local_kinesis::embedded_endpoint(&data_dir, None)
        .await
        .map_err(|source| QuickstartError::Stream { data_dir: data_dir.clone(), source })?;
    let client = aws_sdk_kinesis::Client::new(&shardline_aws::emulator_sdk_config(&endpoint));
    let stream = config.source.stream.clone();
    let producer_options = ProducerOptions {
        stream: stream.clone(),
        connection: AwsConnection { endpoint: Some(endpoint.clone()), ..AwsConnection::default() },
        partition_key: PartitionKey::Random,
        create_shards: Some(SHARDS),
        aggregate_max_bytes: Some(50 * 1024),
        rate: Some(options.rate),
        progress: false,
    };
    // Connecting creates the stream (2 shards) before the pipeline would
    // create it with the on-demand default.
    let producer = Producer::with_client(client, producer_options)
        .await
        .map_err(|e| QuickstartError::CreateStream { stream: stream.clone(), message: format!("{e:#}") })?;

    let generator_stop = shutdown.child_token();
    let generator = if options.generator {
        Some(tokio::spawn(run_generator(producer, state.clone(), generator_stop.clone())))
    } else {
        None
    };
    let sampler = tokio::spawn(sample_metrics(config.name.clone(), state.clone(), telemetry, server_stop.clone()));

    tracing::info!(stream = %stream, endpoint = %endpoint, page = %format!("http://{address}/"), "quickstart running");
    let result = crate::runtime::run_pipeline(config, options.run, shutdown.clone()).await;

    generator_stop.cancel();
    if let Some(task) = generator {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "generator task ended abnormally");
        }
    }
    server_stop.cancel();
    let _ = sampler.await;
    result.map_err(QuickstartError::from)
}

/// Writes referrer click pairs until `stop`, flushing every
/// [`GENERATOR_FLUSH_INTERVAL`]; a failed send is logged and retried.
async fn run_generator(mut producer: Producer, state: Arc<DashboardState>, stop: CancellationToken) {
    // `thread_rng` is not `Send`; this task moves between threads.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut last_flush = Instant::now();
    let mut last_sample = Instant::now();
    state.sample_generator(0);
    while !stop.is_cancelled() {
        let record = generate(Generator::Referrers, &mut rng);
        let pushed = tokio::select! {
            _ = stop.cancelled() => break,
            pushed = producer.push(record) => pushed,
        };
        let flushed = if last_flush.elapsed() >= GENERATOR_FLUSH_INTERVAL {
            last_flush = Instant::now();
            producer.flush().await
        } else {
            Ok(())
        };
        if let Err(e) = pushed.and(flushed) {
            tracing::warn!(error = %format!("{e:#}"), "generator: writing to the stream failed, retrying in 1s");
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            state.sample_generator(producer.written());
        }
    }
    if let Err(e) = producer.flush().await {
        tracing::warn!(error = %format!("{e:#}"), "generator: final flush failed");
    }
    tracing::info!(records = producer.written(), "generator stopped");
}

/// Copies per-shard lag and throughput from the metrics into the page's
/// state every second.
async fn sample_metrics(pipeline: String, state: Arc<DashboardState>, telemetry: Arc<crate::metrics::Telemetry>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => state.sample_metrics(&pipeline, &telemetry.render()),
        }
    }
}

#[cfg(test)]
mod tests;

//! `shardline local-kinesis`: a Kinesis Data Streams API server on
//! loopback, for development, tests, the quickstart and benchmarks, that
//! the AWS SDKs, boto3 and the AWS CLI talk to unchanged.
//!
//! - Protocol: HTTP/1.1, `POST /` with `X-Amz-Target:
//!   Kinesis_20131202.<Operation>`, bodies in awsJson1_1
//!   (`application/x-amz-json-1.1`, what the Rust, Python and JavaScript
//!   SDKs and the CLI send) or CBOR (`application/x-amz-cbor-1.1`, the Java
//!   SDK's default). Signatures are not checked.
//! - Operations: see [`OPERATIONS`]; errors carry the service's exception
//!   names (`ResourceNotFoundException`, `ResourceInUseException`,
//!   `InvalidArgumentException`, `ValidationException`,
//!   `ExpiredIteratorException`, `LimitExceededException`…) with HTTP 400.
//! - Storage: `data_dir` holds a metadata file and an append-only,
//!   checksummed log per shard; records survive restarts and are trimmed
//!   after the stream's retention period. An acknowledged put survives the
//!   process being killed; logs are fsynced every `sync_interval`, so a
//!   power loss can lose that much.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use shardline_local_kinesis::{serve, LocalKinesisConfig};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let address = serve(LocalKinesisConfig::new("./kinesis-data"), shutdown.clone()).await?;
//! println!("endpoint http://{address}");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod cli;
mod embedded;
mod error;
mod hashkey;
mod http;
mod ops;
mod protocol;
mod sequence;
mod state;
mod storage;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use embedded::{embedded_data_dir, embedded_endpoint, EMBEDDED_ENDPOINT};
pub use error::{ApiError, LocalKinesisError};
pub use ops::OPERATIONS;

/// How to run the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalKinesisConfig {
    /// Address to listen on. Default `127.0.0.1:0` (a free port).
    pub address: SocketAddr,
    /// Directory for stream metadata and shard logs (created if missing).
    pub data_dir: PathBuf,
    /// Retention period of new streams: records older than this are
    /// trimmed. Default 24 h (the service's default). Streams report it as
    /// `RetentionPeriodHours`, rounded up.
    pub retention: Duration,
    /// Region in stream ARNs. Default `us-east-1`.
    pub region: String,
    /// How often shard logs are fsynced and trimmed. Default 1 s.
    pub sync_interval: Duration,
}

impl LocalKinesisConfig {
    /// Defaults with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalKinesisConfig {
        LocalKinesisConfig {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            data_dir: data_dir.into(),
            retention: Duration::from_secs(24 * 3600),
            region: "us-east-1".to_owned(),
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// A running server.
pub struct LocalKinesis {
    address: SocketAddr,
    task: JoinHandle<()>,
    server: Arc<state::Server>,
}

impl std::fmt::Debug for LocalKinesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKinesis").field("address", &self.address).finish()
    }
}

impl LocalKinesis {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`, for an SDK endpoint override.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn state(&self) -> &Arc<state::Server> {
        &self.server
    }

    /// Waits until the server stopped after its shutdown token was
    /// cancelled: connections drained and logs synced.
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "local kinesis server task failed");
        }
    }
}

/// Loads `config.data_dir`, binds `config.address` and serves until
/// `shutdown` is cancelled (then stops accepting, lets open requests
/// finish and syncs the logs). Returns the address it listens on.
///
/// # Errors
/// [`LocalKinesisError::Bind`] when the address is taken,
/// [`LocalKinesisError::Io`] / [`LocalKinesisError::Metadata`] when the data
/// directory cannot be read.
///
/// # Cancel safety
/// Not cancel-safe while loading; once it returned, the server runs on its
/// own tasks.
pub async fn serve(config: LocalKinesisConfig, shutdown: CancellationToken) -> Result<SocketAddr, LocalKinesisError> {
    start(config, shutdown).await.map(|server| server.address)
}

/// Like [`serve`], returning a handle that can wait for the shutdown to
/// complete.
///
/// # Errors
/// As [`serve`].
pub async fn start(config: LocalKinesisConfig, shutdown: CancellationToken) -> Result<LocalKinesis, LocalKinesisError> {
    let retention_ms = config.retention.as_millis().max(1) as u64;
    let data_dir = config.data_dir.clone();
    let region = config.region.clone();
    let server = tokio::task::spawn_blocking(move || {
        let data = storage::DataDir::open(&data_dir)?;
        state::Server::load(data, region, retention_ms)
    })
    .await
    .map_err(|e| LocalKinesisError::Io { action: "load", path: config.data_dir.clone(), source: std::io::Error::other(e) })??;
    let server = Arc::new(server);
    let listener = TcpListener::bind(config.address).await.map_err(|source| LocalKinesisError::Bind { address: config.address, source })?;
    let address = listener.local_addr().map_err(|source| LocalKinesisError::Bind { address: config.address, source })?;
    tracing::info!(address = %address, data_dir = %config.data_dir.display(), "local kinesis listening");
    let task = tokio::spawn(run(server.clone(), listener, config.sync_interval, shutdown));
    Ok(LocalKinesis { address, task, server })
}

async fn run(server: Arc<state::Server>, listener: TcpListener, sync_interval: Duration, shutdown: CancellationToken) {
    let maintenance = {
        let server = server.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sync_interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let server = server.clone();
                let _ = tokio::task::spawn_blocking(move || server.maintain()).await;
            }
        })
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| http::handle(server.clone(), request));
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    let _ = maintenance.await;
    let _ = tokio::task::spawn_blocking(move || server.maintain()).await;
    tracing::info!("local kinesis stopped");
}

//! `shardline local-kinesis`: the command-line front of the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{start, LocalKinesisConfig};

/// Arguments of `shardline local-kinesis`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalKinesisArgs {
    /// Port to listen on (0: a free port, printed at start).
    #[arg(long, default_value_t = 4567, env = "SHARDLINE_LOCAL_KINESIS_PORT")]
    pub port: u16,
    /// Address to listen on. Loopback by default: the server checks no
    /// credentials.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Directory for stream metadata and shard logs (created if missing).
    #[arg(long, default_value = "./kinesis-data", env = "SHARDLINE_LOCAL_KINESIS_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Retention period of new streams, e.g. `24h`, `7d`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub retention: Duration,
    /// Region used in stream ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))
}

async fn signalled() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until SIGINT/SIGTERM. Prints `endpoint http://…` on
/// standard output once it listens.
pub async fn run(args: LocalKinesisArgs) -> ExitCode {
    let config = LocalKinesisConfig {
        address: SocketAddr::new(args.host, args.port),
        data_dir: args.data_dir,
        retention: args.retention,
        region: args.region,
        ..LocalKinesisConfig::new(".")
    };
    let shutdown = CancellationToken::new();
    let server = match start(config, shutdown.clone()).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("endpoint {}", server.endpoint());
    signalled().await;
    tracing::info!("stopping local kinesis");
    shutdown.cancel();
    server.stopped().await;
    ExitCode::SUCCESS
}

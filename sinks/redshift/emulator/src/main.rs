//! `shardline-redshift-data-emulator`: the Redshift Data API emulator as a
//! process (test support; see the library docs). Prints
//! `listening on http://ADDR` once it accepts requests.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use shardline_redshift_data_emulator::{s3_client, start, EngineConfig};

/// A Redshift Data API server running statements on PostgreSQL (test support).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// libpq key=value settings of the PostgreSQL server, without dbname.
    #[arg(long, env = "REDSHIFT_EMULATOR_POSTGRES", default_value = "host=127.0.0.1 port=5432 user=postgres")]
    postgres: String,
    /// The S3 endpoint COPY reads from (path-style).
    #[arg(long, env = "REDSHIFT_EMULATOR_S3_ENDPOINT")]
    s3_endpoint: String,
    /// Statements running at once before ActiveStatementsExceededException.
    #[arg(long, default_value_t = 200)]
    max_active_statements: usize,
    /// Pause before each statement starts, in milliseconds.
    #[arg(long, default_value_t = 0)]
    statement_delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let config = EngineConfig {
        postgres: args.postgres,
        max_active_statements: args.max_active_statements,
        statement_delay: Duration::from_millis(args.statement_delay_ms),
    };
    let running = match start(args.listen, config, s3_client(&args.s3_endpoint)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.endpoint());
    let _ = tokio::signal::ctrl_c().await;
    running.stop();
    std::process::ExitCode::SUCCESS
}

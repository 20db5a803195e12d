//! **Test support, not a product**: a Redshift Data API emulator.
//!
//! Amazon Redshift cannot be run outside AWS, and moto's `redshift-data`
//! runs no SQL. This server speaks the real Redshift Data API wire protocol
//! (awsJson1_1, `X-Amz-Target: RedshiftData.<Operation>`), so a client built
//! on `aws-sdk-redshiftdata` takes the same code path as against AWS, and
//! runs the statements on a real PostgreSQL:
//!
//! - **Operations**: `ExecuteStatement` (with `Parameters`),
//!   `BatchExecuteStatement` (up to 40 statements, run as one transaction
//!   like Redshift), `DescribeStatement` (with `SubStatements`),
//!   `GetStatementResult` (paged by 1000 rows; `uuid:n` for a
//!   sub-statement), `ListStatements`, `CancelStatement`.
//! - **Shapes and statuses** as the service: statements run in the
//!   background and go `SUBMITTED` → `PICKED` → `STARTED` → `FINISHED` /
//!   `FAILED` (with `Error` text, `ERROR: ...`) / `ABORTED`; `Id` UUIDs,
//!   `RedshiftQueryId`, `RedshiftPid`, `HasResultSet`, `ResultRows`,
//!   `Duration` (ns), timestamps as epoch seconds.
//! - **Errors**: `ValidationException` (missing target, database or SQL;
//!   both cluster and workgroup; unknown parameters; results of a statement
//!   without one), `ResourceNotFoundException` (unknown id),
//!   `ActiveStatementsExceededException` (more than
//!   `--max-active-statements` running), `ExecuteStatementException` /
//!   `BatchExecuteStatementException` (500, the database unreachable:
//!   PostgreSQL down, or the cluster/workgroup made unavailable through
//!   `POST /_emulator/availability {"target": name, "available": false}`).
//! - **COPY** ([`copy`]) is performed by the emulator: `COPY t [(cols)] FROM
//!   's3://...' [MANIFEST] [FORMAT AS JSON 'auto' | 'auto ignorecase' |
//!   's3://jsonpaths' | CSV [QUOTE 'c']] [DELIMITER 'x'] [GZIP]
//!   [IGNOREHEADER n] [TIMEFORMAT ...] [NULL AS ...] [TRUNCATECOLUMNS]
//!   [BLANKSASNULL] [EMPTYASNULL] IAM_ROLE|CREDENTIALS|ACCESS_KEY_ID...`;
//!   the objects and manifests are read from an S3 emulator with
//!   `aws-sdk-s3`, rows are inserted in the statement's transaction, and a
//!   bad row fails the COPY with `Load into table 't' failed.  Check
//!   'stl_load_errors' system table for details.` and a row in
//!   `stl_load_errors` (`query` = the sub-statement's `RedshiftQueryId`,
//!   `filename`, `line_number`, `colname`, `raw_field_value`, `err_code`,
//!   `err_reason`).
//! - Each database gets `public.stl_load_errors` and a `getdate()`
//!   function on first use. The database of a request is the PostgreSQL
//!   database of the same name.
//!
//! Not emulated: authentication (signatures are not checked; COPY
//! credentials are checked for form only), sessions (`SessionId`),
//! `MAXERROR` > 0, columnar formats, `UNLOAD`, Redshift-only SQL beyond
//! `getdate()`.
#![warn(missing_docs)]

pub mod api;
pub mod copy;
pub mod pg;
pub mod runner;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use runner::{Engine, EngineConfig};

/// A running emulator.
pub struct Running {
    /// Where it listens.
    pub address: SocketAddr,
    /// The engine (for in-process tests).
    pub engine: Arc<Engine>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://address`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// An S3 client for the S3 emulator at `endpoint` (path-style, static test
/// credentials unless the environment has others).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = shardline_aws::emulator_sdk_config(endpoint);
    let config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Binds `address` and serves the API on the current tokio runtime.
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(address: SocketAddr, config: EngineConfig, s3: aws_sdk_s3::Client) -> std::io::Result<Running> {
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    let engine = Arc::new(Engine::new(config, s3));
    let serving = engine.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let engine = serving.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| server::handle(engine.clone(), request));
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
    });
    Ok(Running { address, engine, task })
}

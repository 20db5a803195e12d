//! What the Redshift sink's tests share: the emulator endpoints (or a
//! skip), PostgreSQL and S3 clients, the emulator's availability switch.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::time::Duration;

/// Endpoints `scripts/test` exported.
#[derive(Debug, Clone)]
pub struct Env {
    /// S3 (moto).
    pub s3: String,
    /// The Redshift Data API emulator.
    pub data_api: String,
    /// libpq settings of its `dev` database.
    pub pg: String,
}

/// The endpoints, or `None` after printing `skipped: ...` (a panic under CI=true).
pub fn env() -> Option<Env> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (get("SHARDLINE_TEST_S3_ENDPOINT"), get("SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT"), get("SHARDLINE_TEST_REDSHIFT_PG")) {
        (Some(s3), Some(data_api), Some(pg)) => Some(Env { s3, data_api, pg }),
        _ => {
            let message = "SHARDLINE_TEST_S3_ENDPOINT / SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT / SHARDLINE_TEST_REDSHIFT_PG not set (run scripts/test)";
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// Runs `f` to completion on a runtime of its own, on another thread (so
/// it works inside and outside a runtime).
pub fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f))
        .join()
        .expect("the helper thread")
}

/// A PostgreSQL session on the emulator's database.
pub async fn pg(settings: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(settings, tokio_postgres::NoTls).await.expect("connect to postgres");
    tokio::spawn(connection);
    client
}

/// Runs SQL on PostgreSQL directly.
pub fn pg_execute(settings: &str, sql: &str) {
    let (settings, sql) = (settings.to_owned(), sql.to_owned());
    block_on(async move { pg(&settings).await.batch_execute(&sql).await.expect("sql") })
}

/// An S3 client for moto.
pub fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = shardline_aws::emulator_sdk_config(endpoint);
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
}

/// A Data API client for the emulator.
pub fn data_api(endpoint: &str) -> aws_sdk_redshiftdata::Client {
    aws_sdk_redshiftdata::Client::new(&shardline_aws::emulator_sdk_config(endpoint))
}

/// Creates a bucket (ignoring "already exists").
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    let _ = s3.create_bucket().bucket(bucket).send().await;
}

/// Makes a cluster/workgroup unavailable (DatabaseConnectionException) or available.
pub fn set_available(endpoint: &str, target: &str, available: bool) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = format!("{{\"target\":\"{target}\",\"available\":{available}}}");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the emulator");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "POST /_emulator/availability HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A name usable as a table, bucket part or cluster id: `prefix_pid_n`.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

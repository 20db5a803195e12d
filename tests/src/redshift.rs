//! Helpers for the `redshift` sink's end-to-end tests: the Redshift Data
//! API emulator and its PostgreSQL (started by
//! `scripts/emulators/extra/30-postgres-redshift.sh`), target tables, the
//! plugin directory and the `[sink]` table of a pipeline file.

use std::path::PathBuf;

use anyhow::Context;

use crate::emulators::running_in_ci;

/// Where the Redshift sink's servers are.
#[derive(Debug, Clone)]
pub struct RedshiftEnv {
    /// moto S3 (staging).
    pub s3_endpoint: String,
    /// The Redshift Data API emulator.
    pub data_api_endpoint: String,
    /// libpq settings of the emulator's `dev` database.
    pub postgres: String,
}

impl RedshiftEnv {
    /// Reads `SHARDLINE_TEST_S3_ENDPOINT`, `SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT`
    /// and `SHARDLINE_TEST_REDSHIFT_PG`; `None` (after printing why) when one is unset.
    ///
    /// # Panics
    /// When one is unset and `CI=true`.
    pub fn from_env() -> Option<RedshiftEnv> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (get("SHARDLINE_TEST_S3_ENDPOINT"), get("SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT"), get("SHARDLINE_TEST_REDSHIFT_PG")) {
            (Some(s3_endpoint), Some(data_api_endpoint), Some(postgres)) => Some(RedshiftEnv { s3_endpoint, data_api_endpoint, postgres }),
            _ => {
                let message = "SHARDLINE_TEST_S3_ENDPOINT / SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT / SHARDLINE_TEST_REDSHIFT_PG not set (run scripts/test)";
                if running_in_ci() {
                    panic!("{message}");
                }
                eprintln!("skipped: {message}");
                None
            }
        }
    }

    /// A session on the `dev` database.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached.
    pub async fn postgres(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.postgres, tokio_postgres::NoTls).await.context("connect to the emulator's PostgreSQL")?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The `[sink]` keys (type included) loading into `table` through
    /// `bucket`, on cluster `cluster`.
    pub fn sink_toml(&self, table: &str, bucket: &str, cluster: &str) -> String {
        format!(
            "type = \"redshift\"\ntable = \"{table}\"\ndatabase = \"dev\"\ncluster_identifier = \"{cluster}\"\ndb_user = \"shardline\"\n\
             staging_bucket = \"{bucket}\"\niam_role = \"arn:aws:iam::123456789012:role/shardline-copy\"\nregion = \"us-east-1\"\n\
             endpoint = \"{}\"\ns3_endpoint = \"{}\"\ns3_force_path_style = true\npoll_interval = \"100ms\"\n",
            self.data_api_endpoint, self.s3_endpoint
        )
    }
}

/// The directory holding `libshardline_sink_redshift.so`:
/// `$SHARDLINE_TEST_PLUGIN_DIR`, else `<target>/debug`. `None` (after
/// printing why) when the library is not there.
///
/// # Panics
/// When the library is missing and `CI=true`.
pub fn plugin_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SHARDLINE_TEST_PLUGIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
        }
        .join("debug"),
    };
    let file = format!("{}shardline_sink_redshift{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    if dir.join(&file).is_file() {
        return Some(dir);
    }
    let message = format!("{file} not found in {} (run scripts/test, or cargo build -p shardline-sink-redshift)", dir.display());
    if running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// `(id, count)` of every row of `table`'s `id` column, and the total.
///
/// # Errors
/// When the query fails.
pub async fn id_counts(client: &tokio_postgres::Client, table: &str) -> anyhow::Result<(std::collections::BTreeMap<String, i64>, i64)> {
    let rows = client.query(&format!("SELECT id, COUNT(*) FROM {table} GROUP BY id"), &[]).await.with_context(|| format!("select from {table}"))?;
    let counts: std::collections::BTreeMap<String, i64> = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect();
    let total = counts.values().sum();
    Ok((counts, total))
}

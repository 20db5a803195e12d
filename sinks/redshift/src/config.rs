//! The `[sink]` table of `type = "redshift"`: keys, defaults, and the
//! checks `shardline validate` makes without I/O.

use serde::Deserialize;
use shardline_plugin_sdk::{ConfigKey, ConfigProblem, HumanDuration, PluginInfo};

/// How the staged files are read by COPY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFormat {
    /// One JSON object per record: `FORMAT AS JSON 'auto'` (or `jsonpaths`).
    #[default]
    Json,
    /// Each record is a CSV line: `CSV` (with `delimiter`).
    Csv,
    /// Each record is a delimited text line: `DELIMITER` (default `|`).
    Delimited,
}

/// Compression of the staged files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (`GZIP` in the COPY). The default.
    #[default]
    Gzip,
    /// Uncompressed.
    None,
}

/// `[sink]` with `type = "redshift"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Target table, `table` or `schema.table`. Required.
    pub table: String,
    /// Column list of the COPY. Default: none (every column, by JSON key or position).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Database name. Required.
    pub database: String,
    /// Provisioned cluster; exactly one of this and `workgroup_name`.
    pub cluster_identifier: Option<String>,
    /// Redshift Serverless workgroup; exactly one of this and `cluster_identifier`.
    pub workgroup_name: Option<String>,
    /// Database user (temporary credentials, provisioned clusters). One of this and `secret_arn` with a cluster.
    pub db_user: Option<String>,
    /// Secrets Manager secret holding the database credentials.
    pub secret_arn: Option<String>,
    /// Bucket the batches are staged in. Required.
    pub staging_bucket: String,
    /// Key prefix of staged files and manifests. Default `"shardline/"`.
    #[serde(default = "default_staging_prefix")]
    pub staging_prefix: String,
    /// `json` (default), `csv` or `delimited`.
    #[serde(default)]
    pub format: CopyFormat,
    /// With `format = "json"`: an `s3://` JSONPaths file. Default: `'auto'`.
    pub jsonpaths: Option<String>,
    /// Field delimiter for `csv` (default `,`) and `delimited` (default `|`).
    pub delimiter: Option<String>,
    /// Further COPY options appended as written, e.g. `"TIMEFORMAT 'auto' TRUNCATECOLUMNS"`. Default none.
    #[serde(default)]
    pub copy_options: String,
    /// IAM role ARN Redshift assumes to read the staging bucket. Default: the sink's own session credentials.
    pub iam_role: Option<String>,
    /// Table recording loaded manifests (created if missing). Default `"shardline_loads"`.
    #[serde(default = "default_loads_table")]
    pub loads_table: String,
    /// AWS region. Default: environment/profile, else us-east-1.
    pub region: Option<String>,
    /// Redshift Data API endpoint override. Default: the regional endpoint.
    pub endpoint: Option<String>,
    /// S3 endpoint override for staging. Default: the regional endpoint.
    pub s3_endpoint: Option<String>,
    /// Path-style S3 requests (S3-compatible stores). Default false.
    #[serde(default)]
    pub s3_force_path_style: bool,
    /// Named AWS profile. Default: the standard credential chain.
    pub profile: Option<String>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Longest wait for one COPY transaction. Default `"15m"`.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: HumanDuration,
    /// Longest pause between DescribeStatement polls (starts at 20ms, doubles). Default `"1s"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How long an unavailable cluster is retried before a batch is given up. Default `"1h"`.
    #[serde(default = "default_retry_window")]
    pub retry_window: HumanDuration,
}

fn default_staging_prefix() -> String {
    "shardline/".to_owned()
}
fn default_loads_table() -> String {
    "shardline_loads".to_owned()
}
fn default_statement_timeout() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_retry_window() -> HumanDuration {
    HumanDuration::from_secs(3600)
}

/// The plugin's description: every key with its default and unit.
pub fn describe() -> PluginInfo {
    PluginInfo::new("redshift", env!("CARGO_PKG_VERSION"))
        .description("loads each batch into Amazon Redshift with COPY from a gzip file staged in S3, through the Redshift Data API; each batch loaded once")
        .key(ConfigKey::required("table", "target table, `table` or `schema.table`"))
        .key(ConfigKey::required("database", "database name"))
        .key(ConfigKey::required("staging_bucket", "S3 bucket the batches and COPY manifests are staged in"))
        .key(ConfigKey::optional("cluster_identifier", "provisioned cluster; exactly one of this and workgroup_name"))
        .key(ConfigKey::optional("workgroup_name", "Redshift Serverless workgroup; exactly one of this and cluster_identifier"))
        .key(ConfigKey::optional("db_user", "database user (temporary credentials); with a cluster, one of db_user and secret_arn"))
        .key(ConfigKey::optional("secret_arn", "Secrets Manager secret with the database credentials"))
        .key(ConfigKey::optional("columns", "COPY column list; default: none (all columns)"))
        .key(ConfigKey::optional("staging_prefix", "key prefix of staged files; default \"shardline/\""))
        .key(ConfigKey::optional("format", "json (default, FORMAT AS JSON), csv or delimited"))
        .key(ConfigKey::optional("jsonpaths", "s3:// JSONPaths file for format json; default 'auto'"))
        .key(ConfigKey::optional("delimiter", "one character; default \",\" for csv, \"|\" for delimited"))
        .key(ConfigKey::optional("copy_options", "further COPY options, appended as written; default none"))
        .key(ConfigKey::optional("iam_role", "IAM role ARN for COPY; default: the sink's session credentials"))
        .key(ConfigKey::optional("loads_table", "table of loaded manifests, created if missing; default \"shardline_loads\""))
        .key(ConfigKey::optional("compression", "gzip (default) or none"))
        .key(ConfigKey::optional("region", "AWS region; default: environment, else us-east-1"))
        .key(ConfigKey::optional("endpoint", "Redshift Data API endpoint override; default: regional"))
        .key(ConfigKey::optional("s3_endpoint", "S3 endpoint override; default: regional"))
        .key(ConfigKey::optional("s3_force_path_style", "path-style S3 requests; default false"))
        .key(ConfigKey::optional("profile", "AWS profile; default: the standard chain"))
        .key(ConfigKey::optional("statement_timeout", "longest wait for one COPY transaction; default \"15m\""))
        .key(ConfigKey::optional("poll_interval", "longest pause between DescribeStatement polls; default \"1s\""))
        .key(ConfigKey::optional("retry_window", "how long an unavailable cluster is retried before the batch is given up (errors/ manifest, dead-lettered); default \"1h\""))
}

/// Whether `name` is `ident` or `schema.ident` with plain identifiers.
pub fn is_identifier(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            let mut chars = p.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

fn safe_literal(text: &str) -> bool {
    !text.contains('\'') && !text.contains('\\')
}

/// Checks a config without I/O.
///
/// # Errors
/// Every problem found, naming its key.
pub fn validate(c: &Config) -> Result<(), Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: &str| problems.push(ConfigProblem::key(key, message));
    if !is_identifier(&c.table) {
        problem("table", "must be `table` or `schema.table` with letters, digits, _ and $ (not starting with a digit)");
    }
    if c.columns.iter().any(|col| !is_identifier(col) || col.contains('.')) {
        problem("columns", "each column must be a plain identifier");
    }
    if c.database.trim().is_empty() || !safe_literal(&c.database) {
        problem("database", "must be a database name");
    }
    match (&c.cluster_identifier, &c.workgroup_name) {
        (Some(_), Some(_)) => problem("workgroup_name", "set either cluster_identifier or workgroup_name, not both"),
        (None, None) => problem("cluster_identifier", "set cluster_identifier (provisioned) or workgroup_name (serverless)"),
        (Some(_), None) => match (&c.db_user, &c.secret_arn) {
            (None, None) => problem("db_user", "a cluster needs db_user or secret_arn"),
            (Some(_), Some(_)) => problem("secret_arn", "set either db_user or secret_arn, not both"),
            _ => {}
        },
        (None, Some(_)) if c.db_user.is_some() => problem("db_user", "not used with workgroup_name (use secret_arn or the caller's IAM identity)"),
        _ => {}
    }
    if c.staging_bucket.is_empty() || c.staging_bucket.contains('/') || !safe_literal(&c.staging_bucket) {
        problem("staging_bucket", "must be a bucket name (no `/`, quotes or backslashes)");
    }
    if c.staging_prefix.starts_with('/') || !safe_literal(&c.staging_prefix) {
        problem("staging_prefix", "must not start with `/` nor hold quotes or backslashes");
    }
    if let Some(paths) = &c.jsonpaths {
        if c.format != CopyFormat::Json {
            problem("jsonpaths", "only with format = \"json\"");
        } else if !paths.starts_with("s3://") || !safe_literal(paths) {
            problem("jsonpaths", "must be an s3:// URL of a JSONPaths file");
        }
    }
    if let Some(d) = &c.delimiter {
        if c.format == CopyFormat::Json {
            problem("delimiter", "not used with format = \"json\"");
        } else if d.chars().count() != 1 || !safe_literal(d) || d == "\n" {
            problem("delimiter", "must be one character (not a quote, backslash or newline)");
        }
    }
    if let Some(role) = &c.iam_role {
        if !role.starts_with("arn:") || !safe_literal(role) {
            problem("iam_role", "must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)");
        }
    }
    if !is_identifier(&c.loads_table) {
        problem("loads_table", "must be `table` or `schema.table` with letters, digits, _ and $");
    }
    if c.statement_timeout.get().is_zero() {
        problem("statement_timeout", "must be more than 0s");
    }
    if c.poll_interval.get() < std::time::Duration::from_millis(10) || c.poll_interval.get() > c.statement_timeout.get() {
        problem("poll_interval", "must be at least 10ms and at most statement_timeout");
    }
    if c.retry_window.get().is_zero() {
        problem("retry_window", "must be more than 0s");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<Config, serde_json::Error> {
        let text = format!(r#"{{"table":"public.events","database":"dev","cluster_identifier":"c","db_user":"u","staging_bucket":"b"{extra}}}"#);
        serde_json::from_str(&text)
    }

    fn keys(c: &Config) -> Vec<String> {
        validate(c).err().unwrap_or_default().into_iter().filter_map(|p| p.key).collect()
    }

    #[test]
    fn defaults_and_a_good_config() {
        let c = config("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(validate(&c), Ok(()));
        assert_eq!(c.staging_prefix, "shardline/");
        assert_eq!(c.loads_table, "shardline_loads");
        assert_eq!(c.retry_window.get(), std::time::Duration::from_secs(3600));
        assert_eq!((c.format, c.compression), (CopyFormat::Json, Compression::Gzip));
    }

    #[test]
    fn bad_values_name_their_key() {
        let check = |extra: &str, key: &str| {
            let c = config(extra).unwrap_or_else(|e| panic!("{extra}: {e}"));
            assert!(keys(&c).contains(&key.to_owned()), "{extra}: {:?}", keys(&c));
        };
        check(r#","workgroup_name":"w""#, "workgroup_name");
        check(r#","secret_arn":"arn:x""#, "secret_arn");
        check(r#","jsonpaths":"http://x""#, "jsonpaths");
        check(r#","format":"csv","delimiter":"ab""#, "delimiter");
        check(r#","delimiter":",""#, "delimiter");
        check(r#","iam_role":"role'--""#, "iam_role");
        check(r#","columns":["a b"]"#, "columns");
        check(r#","loads_table":"x;drop""#, "loads_table");
        check(r#","poll_interval":"1ms""#, "poll_interval");
        check(r#","retry_window":"0s""#, "retry_window");
        let mut c = config("").unwrap_or_else(|e| panic!("{e}"));
        c.table = "1abc".into();
        assert_eq!(keys(&c), ["table"]);
        assert!(config(r#","tabel":"x""#).is_err());
    }

    #[test]
    fn every_key_is_described() {
        let info = describe();
        let described: Vec<&str> = info.config_keys.iter().map(|k| k.name.as_str()).collect();
        let all = config(r#","columns":[],"staging_prefix":"p/","format":"json","copy_options":"","loads_table":"l","region":"r","endpoint":"e","s3_endpoint":"s","s3_force_path_style":true,"profile":"p","compression":"none","statement_timeout":"1m","poll_interval":"1s","retry_window":"1h""#);
        assert!(all.is_ok(), "{all:?}");
        for key in ["table", "columns", "database", "cluster_identifier", "workgroup_name", "db_user", "secret_arn", "staging_bucket", "staging_prefix", "format", "jsonpaths", "delimiter", "copy_options", "iam_role", "loads_table", "region", "endpoint", "s3_endpoint", "s3_force_path_style", "profile", "compression", "statement_timeout", "poll_interval", "retry_window"] {
            assert!(described.contains(&key), "{key} is not described");
        }
    }
}

//! The SQL the sink runs: the COPY of a staged manifest, and the loads
//! table that makes each manifest load once.
//!
//! Names (table, columns, loads table) are plain identifiers checked by
//! `validate`; values (URLs, role, credentials) are string literals quoted
//! by [`literal`].

use crate::config::{Compression, Config, CopyFormat};

/// COPY's authorisation to read the staging bucket.
#[derive(Clone, PartialEq, Eq)]
pub enum CopyCredentials {
    /// `IAM_ROLE 'arn'`.
    IamRole(String),
    /// The sink's own (session) credentials.
    Keys {
        /// Access key id.
        access_key_id: String,
        /// Secret key.
        secret_access_key: String,
        /// Session token, for temporary credentials.
        session_token: Option<String>,
    },
}

impl std::fmt::Debug for CopyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyCredentials::IamRole(role) => write!(f, "IamRole({role})"),
            CopyCredentials::Keys { access_key_id, .. } => write!(f, "Keys({access_key_id}, ***)"),
        }
    }
}

/// `text` as a SQL string literal: quotes doubled, backslashes doubled
/// (Redshift reads `\` in literals as an escape).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The COPY of the manifest at `manifest_url` into the configured table.
pub fn copy_statement(config: &Config, manifest_url: &str, credentials: &CopyCredentials) -> String {
    let mut sql = format!("COPY {}", config.table);
    if !config.columns.is_empty() {
        sql.push_str(&format!(" ({})", config.columns.join(", ")));
    }
    sql.push_str(&format!(" FROM {}", literal(manifest_url)));
    match credentials {
        CopyCredentials::IamRole(role) => sql.push_str(&format!(" IAM_ROLE {}", literal(role))),
        CopyCredentials::Keys { access_key_id, secret_access_key, session_token } => {
            sql.push_str(&format!(" ACCESS_KEY_ID {} SECRET_ACCESS_KEY {}", literal(access_key_id), literal(secret_access_key)));
            if let Some(token) = session_token {
                sql.push_str(&format!(" SESSION_TOKEN {}", literal(token)));
            }
        }
    }
    match config.format {
        CopyFormat::Json => {
            let paths = config.jsonpaths.as_deref().unwrap_or("auto");
            sql.push_str(&format!(" FORMAT AS JSON {}", literal(paths)));
        }
        CopyFormat::Csv => {
            sql.push_str(" FORMAT AS CSV");
            if let Some(d) = &config.delimiter {
                sql.push_str(&format!(" DELIMITER {}", literal(d)));
            }
        }
        CopyFormat::Delimited => {
            let d = config.delimiter.as_deref().unwrap_or("|");
            sql.push_str(&format!(" DELIMITER {}", literal(d)));
        }
    }
    if config.compression == Compression::Gzip {
        sql.push_str(" GZIP");
    }
    sql.push_str(" MANIFEST");
    if !config.copy_options.trim().is_empty() {
        sql.push(' ');
        sql.push_str(config.copy_options.trim());
    }
    sql
}

/// Creates the loads table when missing: one row per loaded manifest,
/// with the shard and the range of positions it held.
pub fn create_loads_table(loads_table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {loads_table} (manifest VARCHAR(1024) PRIMARY KEY, loaded_at TIMESTAMP, \
         shard VARCHAR(512), first_position VARCHAR(200), last_position VARCHAR(200))"
    )
}

/// A run of records of one shard: `shard` names the pipeline, stream and
/// shard; positions are [`crate::staging::sortable_position`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `pipeline/stream/shard_id`.
    pub shard: String,
    /// First position.
    pub first: String,
    /// Last position.
    pub last: String,
}

/// The loaded ranges of `range.shard` that overlap `range`.
pub fn loaded_ranges(loads_table: &str, range: &Range) -> String {
    format!(
        "SELECT first_position, last_position FROM {loads_table} WHERE shard = {} AND last_position >= {} AND first_position <= {}",
        literal(&range.shard),
        literal(&range.first),
        literal(&range.last)
    )
}

/// Finds a manifest among the loaded ones (one row when loaded).
pub fn loaded_check(loads_table: &str, manifest_url: &str) -> String {
    format!("SELECT manifest FROM {loads_table} WHERE manifest = {}", literal(manifest_url))
}

/// The transaction that loads a run once: COPY, then record the manifest
/// and its range under a table lock, then a guard that fails (casting the
/// URL to an integer) when another recorded load overlaps the range, which
/// rolls the whole transaction, COPY included, back. Redshift does not
/// enforce primary keys, so the guard is what refuses a second load there;
/// on PostgreSQL the primary key already refuses a duplicate manifest.
pub fn load_transaction(config: &Config, manifest_url: &str, range: &Range, credentials: &CopyCredentials) -> Vec<String> {
    let loads = &config.loads_table;
    let url = literal(manifest_url);
    let (shard, first, last) = (literal(&range.shard), literal(&range.first), literal(&range.last));
    vec![
        copy_statement(config, manifest_url, credentials),
        format!("LOCK {loads}"),
        format!("INSERT INTO {loads} (manifest, loaded_at, shard, first_position, last_position) VALUES ({url}, GETDATE(), {shard}, {first}, {last})"),
        format!(
            "SELECT CAST(MIN(manifest) AS INTEGER) FROM {loads} WHERE shard = {shard} AND last_position >= {first} AND first_position <= {last} HAVING COUNT(*) > 1"
        ),
    ]
}

/// The first `stl_load_errors` row of a COPY (by its query id).
pub fn load_error_query(query_id: i64) -> String {
    format!(
        "SELECT TRIM(filename), line_number, TRIM(colname), TRIM(raw_field_value), err_code, TRIM(err_reason) \
         FROM stl_load_errors WHERE query = {query_id} ORDER BY line_number LIMIT 1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(r#"{{"table":"public.events","database":"dev","cluster_identifier":"c","db_user":"u","staging_bucket":"b"{extra}}}"#);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn literals_double_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), "'a\\\\b'");
    }

    #[test]
    fn json_copy_with_a_role() {
        let c = config(r#","columns":["id","name"],"copy_options":"TIMEFORMAT 'auto'""#);
        let sql = copy_statement(&c, "s3://b/p/x.manifest", &CopyCredentials::IamRole("arn:aws:iam::1:role/r".into()));
        assert_eq!(sql, "COPY public.events (id, name) FROM 's3://b/p/x.manifest' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS JSON 'auto' GZIP MANIFEST TIMEFORMAT 'auto'");
    }

    #[test]
    fn csv_and_delimited_copies_with_session_credentials() {
        let keys = CopyCredentials::Keys { access_key_id: "AK".into(), secret_access_key: "S'K".into(), session_token: Some("T".into()) };
        let c = config(r#","format":"csv","delimiter":";","compression":"none""#);
        assert_eq!(
            copy_statement(&c, "s3://b/m", &keys),
            "COPY public.events FROM 's3://b/m' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'S''K' SESSION_TOKEN 'T' FORMAT AS CSV DELIMITER ';' MANIFEST"
        );
        let c = config(r#","format":"delimited""#);
        assert!(copy_statement(&c, "s3://b/m", &CopyCredentials::IamRole("r".into())).ends_with("DELIMITER '|' GZIP MANIFEST"));
        let c = config(r#","jsonpaths":"s3://b/paths.json""#);
        assert!(copy_statement(&c, "s3://b/m", &CopyCredentials::IamRole("r".into())).contains("FORMAT AS JSON 's3://b/paths.json'"));
        assert!(!format!("{keys:?}").contains("S'K"));
    }

    #[test]
    fn the_load_transaction_records_the_manifest_and_range() {
        let c = config(r#","loads_table":"etl.loads""#);
        let range = Range { shard: "p/s/shardId-1".into(), first: "0011.010".into(), last: "0019.010".into() };
        let sqls = load_transaction(&c, "s3://b/it's.manifest", &range, &CopyCredentials::IamRole("r".into()));
        assert_eq!(sqls.len(), 4);
        assert!(sqls[0].starts_with("COPY public.events FROM 's3://b/it''s.manifest'"));
        assert_eq!(sqls[1], "LOCK etl.loads");
        assert_eq!(
            sqls[2],
            "INSERT INTO etl.loads (manifest, loaded_at, shard, first_position, last_position) VALUES ('s3://b/it''s.manifest', GETDATE(), 'p/s/shardId-1', '0011.010', '0019.010')"
        );
        assert!(sqls[3].contains("HAVING COUNT(*) > 1") && sqls[3].contains("last_position >= '0011.010' AND first_position <= '0019.010'"));
        assert_eq!(loaded_check("etl.loads", "s3://b/m"), "SELECT manifest FROM etl.loads WHERE manifest = 's3://b/m'");
        assert!(loaded_ranges("l", &range).ends_with("WHERE shard = 'p/s/shardId-1' AND last_position >= '0011.010' AND first_position <= '0019.010'"));
        assert!(create_loads_table("l").contains("manifest VARCHAR(1024) PRIMARY KEY, loaded_at TIMESTAMP"));
    }
}

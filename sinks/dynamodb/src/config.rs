//! The `[sink]` table of `type = "dynamodb"`: its keys, their defaults,
//! the description `shardline plugins` prints, and the checks
//! `shardline validate` runs (no I/O).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use shardline_plugin_sdk::{ConfigKey, ConfigProblem, HumanDuration, PluginInfo};

use crate::mapping::Mapping;

/// `[sink]` with `type = "dynamodb"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The table items are written to. Required; it must exist (the sink
    /// reads its key schema with `DescribeTable`).
    pub table: String,
    /// AWS region. Default: the environment/profile, then `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (VPC endpoint, emulator), e.g.
    /// `http://127.0.0.1:8000`. Default: the regional endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named profile of the shared AWS config files. Default: the
    /// standard credential chain.
    #[serde(default)]
    pub profile: Option<String>,
    /// Record field → attribute name. Default: none.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Top-level record fields to keep (names as in the record, before
    /// `rename`); others are dropped. Default: keep every field.
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    /// Top-level record fields whose string values are base64 and are
    /// stored as binary (`B`). Default: none.
    #[serde(default)]
    pub binary_fields: Vec<String>,
    /// An object with this single key and a base64 string value,
    /// `{"$binary": "AAEC"}`, is stored as binary (`B`), at any depth;
    /// `""` turns the convention off. Default `"$binary"`.
    #[serde(default = "default_binary_marker")]
    pub binary_marker: String,
    /// Add `kinesis_shard_id` (S), `kinesis_sequence_number` (S) and
    /// `kinesis_sub_sequence_number` (N) to every item. Default `false`.
    #[serde(default)]
    pub add_metadata: bool,
    /// How long a batch keeps retrying `UnprocessedItems` and throttled or
    /// failed (5xx) requests before answering the records still unwritten
    /// as retriable to the engine. Default `"30s"`.
    #[serde(default = "default_unprocessed_retry_timeout")]
    pub unprocessed_retry_timeout: HumanDuration,
    /// First back-off of those retries, doubled per attempt (with jitter).
    /// Default `"50ms"`.
    #[serde(default = "default_initial_backoff")]
    pub unprocessed_retry_initial_backoff: HumanDuration,
    /// Longest back-off of those retries. Default `"5s"`.
    #[serde(default = "default_max_backoff")]
    pub unprocessed_retry_max_backoff: HumanDuration,
    /// Timeout of one HTTP attempt of a DynamoDB call. Default `"10s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// `BatchWriteItem` requests in flight per batch (1 to 64); with
    /// `fence_on_sequence`, `PutItem` requests. Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Write each item with `PutItem` on the condition that the stored
    /// item's Kinesis position (in `fence_attribute`) is older than the
    /// record's, so replays and zombie workers never put back an older
    /// version. Default `false`.
    #[serde(default)]
    pub fence_on_sequence: bool,
    /// The attribute holding an item's Kinesis position when
    /// `fence_on_sequence` is on (`<56-digit sequence>.<20-digit
    /// sub-sequence>`, S). Default `"_kinesis_position"`.
    #[serde(default = "default_fence_attribute")]
    pub fence_attribute: String,
}

fn default_fence_attribute() -> String {
    "_kinesis_position".to_owned()
}

fn default_binary_marker() -> String {
    "$binary".to_owned()
}

fn default_unprocessed_retry_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_initial_backoff() -> HumanDuration {
    HumanDuration::from_millis(50)
}

fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_concurrency() -> usize {
    4
}

/// Most `BatchWriteItem` requests a batch may have in flight.
pub const MAX_CONCURRENCY: usize = 64;

/// The plugin's description.
pub fn describe() -> PluginInfo {
    PluginInfo::new("dynamodb", env!("CARGO_PKG_VERSION"))
        .description("JSON records as DynamoDB items, written with BatchWriteItem (25 per request)")
        .key(ConfigKey::required("table", "the DynamoDB table (must exist; its key schema is read with DescribeTable)"))
        .key(ConfigKey::optional("region", "AWS region; default: the environment/profile, then us-east-1"))
        .key(ConfigKey::optional("endpoint", "endpoint override, e.g. \"http://127.0.0.1:8000\"; default: the regional endpoint"))
        .key(ConfigKey::optional("profile", "named profile of the shared AWS config files; default: the standard credential chain"))
        .key(ConfigKey::optional("rename", "table of record field = attribute name; default: none"))
        .key(ConfigKey::optional("attributes", "list of top-level record fields to keep (before rename); default: all"))
        .key(ConfigKey::optional("binary_fields", "list of top-level fields whose base64 strings are stored as binary (B); default: none"))
        .key(ConfigKey::optional("binary_marker", "{\"<marker>\": \"<base64>\"} objects are stored as binary (B); \"\" turns it off; default \"$binary\""))
        .key(ConfigKey::optional("add_metadata", "add kinesis_shard_id, kinesis_sequence_number (S) and kinesis_sub_sequence_number (N); default false"))
        .key(ConfigKey::optional(
            "unprocessed_retry_timeout",
            "how long UnprocessedItems and throttled/5xx requests are retried before the records are answered retriable; default \"30s\"",
        ))
        .key(ConfigKey::optional("unprocessed_retry_initial_backoff", "first back-off of those retries, doubled per attempt with jitter; default \"50ms\""))
        .key(ConfigKey::optional("unprocessed_retry_max_backoff", "longest back-off of those retries; default \"5s\""))
        .key(ConfigKey::optional("request_timeout", "timeout of one HTTP attempt of a DynamoDB call; default \"10s\""))
        .key(ConfigKey::optional("concurrency", "BatchWriteItem requests in flight per batch (PutItem with fence_on_sequence), 1 to 64; default 4"))
        .key(ConfigKey::optional(
            "fence_on_sequence",
            "conditional PutItem per item: never overwrite an item holding a newer Kinesis position; default false",
        ))
        .key(ConfigKey::optional("fence_attribute", "attribute holding the item's Kinesis position with fence_on_sequence; default \"_kinesis_position\""))
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Config {
    /// Checks the config without I/O.
    ///
    /// # Errors
    /// Every problem found, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(ConfigProblem::key(key, message));
        if !valid_table_name(&self.table) {
            problem("table", format!("`{}` is not a DynamoDB table name: 3 to 255 characters of a-z, A-Z, 0-9, `_`, `-`, `.`", self.table));
        }
        if self.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            problem("region", "must not be empty".to_owned());
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) || endpoint.len() <= "https://".len() {
                problem("endpoint", format!("`{endpoint}` is not an http:// or https:// URL"));
            }
        }
        if self.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
            problem("profile", "must not be empty".to_owned());
        }
        let mut targets: HashMap<&str, &str> = HashMap::new();
        for (field, attribute) in &self.rename {
            if field.is_empty() || attribute.is_empty() {
                problem("rename", "field and attribute names must not be empty".to_owned());
            } else if let Some(other) = targets.insert(attribute, field) {
                problem("rename", format!("fields `{other}` and `{field}` are both renamed to `{attribute}`"));
            }
        }
        if let Some(keep) = &self.attributes {
            if keep.is_empty() {
                problem("attributes", "must name at least one field (leave it out to keep every field)".to_owned());
            }
            if keep.iter().any(String::is_empty) {
                problem("attributes", "field names must not be empty".to_owned());
            }
        }
        if self.binary_fields.iter().any(String::is_empty) {
            problem("binary_fields", "field names must not be empty".to_owned());
        }
        for (key, value) in [
            ("unprocessed_retry_timeout", self.unprocessed_retry_timeout),
            ("unprocessed_retry_initial_backoff", self.unprocessed_retry_initial_backoff),
            ("unprocessed_retry_max_backoff", self.unprocessed_retry_max_backoff),
            ("request_timeout", self.request_timeout),
        ] {
            if value.get().is_zero() {
                problem(key, "must be more than 0s".to_owned());
            }
        }
        if self.unprocessed_retry_initial_backoff.get() > self.unprocessed_retry_max_backoff.get() {
            problem("unprocessed_retry_initial_backoff", "must not be longer than unprocessed_retry_max_backoff".to_owned());
        }
        if self.fence_attribute.is_empty() {
            problem("fence_attribute", "must not be empty".to_owned());
        } else if self.fence_on_sequence && (self.rename.values().any(|a| *a == self.fence_attribute) || self.add_metadata && crate::mapping::METADATA_ATTRIBUTES.contains(&self.fence_attribute.as_str())) {
            problem("fence_attribute", format!("`{}` is also written from the record (rename or add_metadata)", self.fence_attribute));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            problem("concurrency", format!("must be between 1 and {MAX_CONCURRENCY}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The record → item mapping these keys describe.
    pub fn mapping(&self) -> Mapping {
        Mapping {
            rename: self.rename.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            attributes: self.attributes.as_ref().map(|keep| keep.iter().cloned().collect::<HashSet<_>>()),
            binary_fields: self.binary_fields.iter().cloned().collect(),
            binary_marker: (!self.binary_marker.is_empty()).then(|| self.binary_marker.clone()),
            add_metadata: self.add_metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Config, serde_json::Error> {
        serde_json::from_value(json)
    }

    fn problem_keys(json: serde_json::Value) -> Vec<String> {
        let config = parse(json).expect("parses");
        config.validate().err().unwrap_or_default().into_iter().filter_map(|p| p.key).collect()
    }

    #[test]
    fn defaults() {
        let config = parse(serde_json::json!({ "table": "orders" })).expect("parses");
        assert!(config.validate().is_ok());
        assert_eq!(config.unprocessed_retry_timeout, HumanDuration::from_secs(30));
        assert_eq!(config.binary_marker, "$binary");
        assert_eq!(config.concurrency, 4);
        assert!(!config.add_metadata);
        assert!(config.mapping().attributes.is_none());
        assert!(!config.fence_on_sequence);
        assert_eq!(config.fence_attribute, "_kinesis_position");
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        assert!(parse(serde_json::json!({ "table": "orders", "tabel": "x" })).is_err());
        assert!(parse(serde_json::json!({ "region": "eu-west-1" })).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(problem_keys(serde_json::json!({ "table": "a b" })), ["table"]);
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "endpoint": "localhost:8000" })), ["endpoint"]);
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "rename": { "a": "x", "b": "x" } })), ["rename"]);
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "attributes": [] })), ["attributes"]);
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "concurrency": 0 })), ["concurrency"]);
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "fence_attribute": "" })), ["fence_attribute"]);
        assert_eq!(
            problem_keys(serde_json::json!({ "table": "ok-table", "fence_on_sequence": true, "rename": { "v": "_kinesis_position" } })),
            ["fence_attribute"]
        );
        assert_eq!(problem_keys(serde_json::json!({ "table": "ok-table", "unprocessed_retry_timeout": "0s" })), ["unprocessed_retry_timeout"]);
        assert_eq!(
            problem_keys(serde_json::json!({ "table": "ok-table", "unprocessed_retry_initial_backoff": "10s", "unprocessed_retry_max_backoff": "1s" })),
            ["unprocessed_retry_initial_backoff"]
        );
    }

    #[test]
    fn every_config_key_is_described() {
        let described: HashSet<String> = describe().config_keys.into_iter().map(|k| k.name).collect();
        let config = parse(serde_json::json!({ "table": "orders" })).expect("parses");
        let fields = serde_json::to_value(SerializableKeys::from(&config)).expect("json");
        let fields: HashSet<String> = fields.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(described, fields);
    }

    /// Every field of [`Config`], to compare with [`describe`].
    #[derive(serde::Serialize)]
    struct SerializableKeys {
        table: (),
        region: (),
        endpoint: (),
        profile: (),
        rename: (),
        attributes: (),
        binary_fields: (),
        binary_marker: (),
        add_metadata: (),
        unprocessed_retry_timeout: (),
        unprocessed_retry_initial_backoff: (),
        unprocessed_retry_max_backoff: (),
        request_timeout: (),
        concurrency: (),
        fence_on_sequence: (),
        fence_attribute: (),
    }

    impl From<&Config> for SerializableKeys {
        fn from(c: &Config) -> Self {
            // Destructured so a new field fails to compile until listed.
            let Config {
                table: _,
                region: _,
                endpoint: _,
                profile: _,
                rename: _,
                attributes: _,
                binary_fields: _,
                binary_marker: _,
                add_metadata: _,
                unprocessed_retry_timeout: _,
                unprocessed_retry_initial_backoff: _,
                unprocessed_retry_max_backoff: _,
                request_timeout: _,
                concurrency: _,
                fence_on_sequence: _,
                fence_attribute: _,
            } = c;
            SerializableKeys {
                table: (),
                region: (),
                endpoint: (),
                profile: (),
                rename: (),
                attributes: (),
                binary_fields: (),
                binary_marker: (),
                add_metadata: (),
                unprocessed_retry_timeout: (),
                unprocessed_retry_initial_backoff: (),
                unprocessed_retry_max_backoff: (),
                request_timeout: (),
                concurrency: (),
                fence_on_sequence: (),
                fence_attribute: (),
            }
        }
    }
}

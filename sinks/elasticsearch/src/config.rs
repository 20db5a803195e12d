//! The `[sink]` table of `type = "elasticsearch"` (or `"opensearch"`), its
//! defaults, the keys `shardline plugins` lists, and a `validate` that does
//! no I/O.

use serde::Deserialize;
use shardline_plugin_sdk::{ByteSize, ConfigKey, ConfigProblem, HumanDuration, PluginInfo};

use crate::index::IndexTemplate;

/// `[sink]` with `type = "elasticsearch"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the cluster, `http(s)://host[:port][/path]`. Required.
    pub endpoint: String,
    /// Index name template, e.g. `"clicks-{yyyy.MM.dd}"` (see
    /// [`IndexTemplate`]). Required.
    pub index: String,
    /// Dotted path of a JSON field holding the time that picks the index
    /// (RFC 3339 string or epoch milliseconds). Default: the record's
    /// Kinesis arrival time.
    #[serde(default)]
    pub time_field: Option<String>,
    /// Dotted path of a JSON field holding the document `_id` (string or
    /// number). Default: `{stream}-{shard_id}-{sequence_number}-{sub_sequence_number}`.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Bulk action: `index` (create or replace) or `create` (only create;
    /// a document already there counts as delivered). Default `index`.
    #[serde(default)]
    pub op_type: OpType,
    /// Most documents in one `_bulk` request. Default 1000.
    #[serde(default = "default_bulk_max_actions")]
    pub bulk_max_actions: usize,
    /// Most bytes (uncompressed NDJSON) in one `_bulk` request. Default `"5MiB"`.
    #[serde(default = "default_bulk_max_bytes")]
    pub bulk_max_bytes: ByteSize,
    /// Request body compression: `gzip` or `none`. Default `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Time limit of one HTTP request. Default `"60s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Authentication; default none.
    #[serde(default)]
    pub auth: Option<Auth>,
}

/// The bulk action per document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    /// Create or replace the document with that `_id`.
    #[default]
    Index,
    /// Create it; a 409 (already there) counts as delivered.
    Create,
}

impl OpType {
    /// The action's name in the bulk body.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Index => "index",
            OpType::Create => "create",
        }
    }
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// `Content-Encoding: gzip`.
    #[default]
    Gzip,
    /// Plain NDJSON.
    None,
}

/// `[sink.auth]`, chosen by `strategy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password (use `${VAR}` to take it from the environment).
        password: String,
    },
    /// An Elasticsearch API key: the base64 `encoded` value the create-API-key
    /// call returns (sent as `Authorization: ApiKey <api_key>`).
    ApiKey {
        /// The encoded key.
        api_key: String,
    },
    /// AWS SigV4 for Amazon OpenSearch Service; credentials from the
    /// standard AWS chain.
    Aws {
        /// Region; default: the environment/profile, else us-east-1.
        #[serde(default)]
        region: Option<String>,
        /// `es` (managed domains, default) or `aoss` (serverless).
        #[serde(default = "default_aws_service")]
        service: String,
        /// Named profile; default: the standard chain.
        #[serde(default)]
        profile: Option<String>,
    },
}

fn default_bulk_max_actions() -> usize {
    1000
}

fn default_bulk_max_bytes() -> ByteSize {
    ByteSize(5 << 20)
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_aws_service() -> String {
    "es".to_owned()
}

/// The keys `shardline plugins` lists, with defaults and units.
pub fn describe_keys(info: PluginInfo) -> PluginInfo {
    info.key(ConfigKey::required("endpoint", "cluster URL, http(s)://host[:port][/path]"))
        .key(ConfigKey::required(
            "index",
            "index name template; one {...} date pattern of yyyy MM dd HH (UTC) or xxxx ww (ISO week) rotates it, e.g. \"clicks-{yyyy.MM.dd}\"",
        ))
        .key(ConfigKey::optional("time_field", "dotted JSON field with the time that picks the index (RFC 3339 or epoch ms); default: the Kinesis arrival time"))
        .key(ConfigKey::optional("id_field", "dotted JSON field with the document _id; default \"{stream}-{shard_id}-{sequence_number}-{sub_sequence_number}\""))
        .key(ConfigKey::optional("op_type", "index (default; create or replace) | create (a document already there counts as delivered)"))
        .key(ConfigKey::optional("bulk_max_actions", "most documents per _bulk request; default 1000"))
        .key(ConfigKey::optional("bulk_max_bytes", "most uncompressed bytes per _bulk request; default \"5MiB\""))
        .key(ConfigKey::optional("compression", "request bodies: gzip (default) | none"))
        .key(ConfigKey::optional("request_timeout", "time limit of one HTTP request; default \"60s\""))
        .key(ConfigKey::optional(
            "auth",
            "table: strategy = \"basic\" (user, password) | \"api_key\" (api_key) | \"aws\" (SigV4; region, service = \"es\" (default) or \"aoss\", profile); default none",
        ))
}

/// The endpoint split into what requests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`, as written.
    pub authority: String,
    /// Path prefix without a trailing `/` (empty for none).
    pub path: String,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/path]`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = text.parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err(format!("{text:?} must start with http:// or https://")),
        };
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{text:?} needs a host (and no user:password@; use [sink.auth])"));
        }
        if uri.query().is_some() {
            return Err(format!("{text:?} must not have a query string"));
        }
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint { scheme, authority, path })
    }

    /// The URL of `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}://{}{}{}", self.scheme, self.authority, self.path, path_and_query)
    }

    /// The base URL, for messages.
    pub fn base(&self) -> String {
        self.url("")
    }
}

/// Checks a config without I/O.
///
/// # Errors
/// Every problem, each naming its key.
pub fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    if let Err(message) = Endpoint::parse(&config.endpoint) {
        problems.push(ConfigProblem::key("endpoint", message));
    }
    if let Err(message) = IndexTemplate::parse(&config.index) {
        problems.push(ConfigProblem::key("index", format!("{:?} {message}", config.index)));
    }
    for (key, field) in [("time_field", &config.time_field), ("id_field", &config.id_field)] {
        if let Some(path) = field {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                problems.push(ConfigProblem::key(key, format!("{path:?} is not a dotted field path such as \"event.time\"")));
            }
        }
    }
    if config.bulk_max_actions == 0 {
        problems.push(ConfigProblem::key("bulk_max_actions", "must be at least 1"));
    }
    if config.bulk_max_bytes.bytes() < 1024 {
        problems.push(ConfigProblem::key("bulk_max_bytes", "must be at least 1KiB"));
    }
    if config.request_timeout.get().is_zero() {
        problems.push(ConfigProblem::key("request_timeout", "must be longer than 0s"));
    }
    match &config.auth {
        Some(Auth::Basic { user, .. }) if user.is_empty() => problems.push(ConfigProblem::key("auth.user", "must not be empty")),
        Some(Auth::ApiKey { api_key }) if api_key.trim().is_empty() => {
            problems.push(ConfigProblem::key("auth.api_key", "must not be empty"))
        }
        Some(Auth::Aws { service, .. }) if service != "es" && service != "aoss" => problems.push(ConfigProblem::key(
            "auth.service",
            format!("{service:?} is not a SigV4 service of OpenSearch: use \"es\" (managed domains) or \"aoss\" (serverless)"),
        )),
        _ => {}
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

    fn parse(text: &str) -> Result<Config, String> {
        let value: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        serde_json::from_value(serde_json::to_value(value).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }

    fn problems(text: &str) -> Vec<String> {
        match validate(&parse(text).expect("parses")) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key.unwrap_or_default()).collect(),
        }
    }

    #[test]
    fn defaults_and_a_full_config() {
        let c = parse("endpoint = \"http://127.0.0.1:9200\"\nindex = \"clicks\"").expect("minimal");
        assert_eq!((c.op_type, c.compression, c.bulk_max_actions, c.bulk_max_bytes.bytes()), (OpType::Index, Compression::Gzip, 1000, 5 << 20));
        assert_eq!(c.request_timeout.get(), std::time::Duration::from_secs(60));
        assert!(c.auth.is_none() && c.id_field.is_none() && c.time_field.is_none());
        let c = parse(
            "endpoint = \"https://search.example.com/es/\"\nindex = \"clicks-{xxxx.ww}\"\ntime_field = \"event.time\"\nid_field = \"id\"\n\
             op_type = \"create\"\nbulk_max_actions = 50\nbulk_max_bytes = \"1MiB\"\ncompression = \"none\"\nrequest_timeout = \"5s\"\n\
             [auth]\nstrategy = \"aws\"\nregion = \"eu-west-1\"\nservice = \"aoss\"",
        )
        .expect("full");
        assert!(validate(&c).is_ok());
        assert!(matches!(c.auth, Some(Auth::Aws { ref service, .. }) if service == "aoss"));
        let e = Endpoint::parse(&c.endpoint).expect("endpoint");
        assert_eq!(e.url("/_bulk"), "https://search.example.com/es/_bulk");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        assert!(parse("endpoint = \"http://h\"\nindex = \"i\"\nindx = 1").expect_err("unknown").contains("indx"));
        assert!(parse("endpoint = \"http://h\"\nindex = \"i\"\n[auth]\nstrategy = \"basic\"\nuser = \"u\"\npassword = \"p\"\nusr = 1")
            .expect_err("unknown in auth")
            .contains("usr"));
        assert!(parse("endpoint = \"http://h\"\nindex = \"i\"\n[auth]\nstrategy = \"kerberos\"").expect_err("strategy").contains("kerberos"));
        assert!(parse("endpoint = \"http://h\"\nindex = \"i\"\nop_type = \"upsert\"").expect_err("op_type").contains("upsert"));
    }

    #[test]
    fn validate_names_each_bad_key() {
        assert!(problems("endpoint = \"http://127.0.0.1:9200\"\nindex = \"clicks-{yyyy.MM.dd}\"").is_empty());
        assert_eq!(problems("endpoint = \"ftp://h\"\nindex = \"i\""), ["endpoint"]);
        assert_eq!(problems("endpoint = \"http://h?x=1\"\nindex = \"i\""), ["endpoint"]);
        assert_eq!(problems("endpoint = \"http://h\"\nindex = \"Clicks\""), ["index"]);
        assert_eq!(problems("endpoint = \"http://h\"\nindex = \"i\"\nid_field = \"a..b\"\ntime_field = \"\""), ["time_field", "id_field"]);
        assert_eq!(problems("endpoint = \"http://h\"\nindex = \"i\"\nbulk_max_actions = 0\nbulk_max_bytes = 10"), ["bulk_max_actions", "bulk_max_bytes"]);
        assert_eq!(problems("endpoint = \"http://h\"\nindex = \"i\"\n[auth]\nstrategy = \"aws\"\nservice = \"s3\""), ["auth.service"]);
        assert_eq!(problems("endpoint = \"http://h\"\nindex = \"i\"\n[auth]\nstrategy = \"api_key\"\napi_key = \"\""), ["auth.api_key"]);
    }
}

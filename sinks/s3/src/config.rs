//! The `[sink]` table of `type = "s3"`: every key with its default and
//! unit, and [`Config::validate`], which checks it without any I/O.

use serde::Deserialize;
use shardline_plugin_sdk::{ByteSize, ConfigProblem, HumanDuration};

use crate::encode::{Compression, Encoding};
use crate::parquet::{ParquetConfig, Schema};
use crate::template::{KeyTemplate, TimeZoneSpec};

/// The default object key template (the extension is appended, see
/// [`Config::extension`]).
pub const DEFAULT_KEY: &str = "{stream}/{yyyy}/{MM}/{dd}/{HH}/{shard_id}-{first_seq}-{first_subseq}-{last_seq}-{last_subseq}";

/// S3's smallest part (all but the last part of a multipart upload).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// S3's largest single PutObject body.
pub const MAX_PUT_SIZE: u64 = 5 << 30;

/// `[sink]` with `type = "s3"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bucket name. Required.
    pub bucket: String,
    /// Object key template (see the crate docs for placeholders). Default
    /// [`DEFAULT_KEY`].
    #[serde(default = "default_key")]
    pub key: String,
    /// Appended to every key; `None` (the default) appends the encoding's
    /// and compression's extension (`.ndjson.gz`, `.csv.zst`, `.raw`,
    /// `.parquet`); `""` appends nothing.
    #[serde(default)]
    pub extension: Option<String>,
    /// Region. Default: the environment or profile, then `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (S3-compatible stores, VPC endpoints). Default: none.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named profile of the shared AWS config files. Default: none.
    #[serde(default)]
    pub profile: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), for S3-compatible stores.
    /// Default `false` (virtual-hosted style).
    #[serde(default)]
    pub force_path_style: bool,
    /// `when_supported` (default: the SDK sends CRC32 checksums, streamed
    /// bodies as aws-chunked) or `when_required` (only where S3 requires
    /// one; for S3-compatible stores that mishandle checksum trailers).
    #[serde(default)]
    pub checksum_calculation: ChecksumCalculation,
    /// Record encoding: `ndjson` (default), `csv`, `raw` or `parquet`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `[sink.parquet]`: the columns of `encoding = "parquet"` (`schema`,
    /// `required`). Required with Parquet, refused otherwise. Default: none.
    #[serde(default)]
    pub parquet: Option<ParquetConfig>,
    /// CSV columns: dotted paths into each JSON object (`user.id`).
    /// Required with `encoding = "csv"`.
    #[serde(default)]
    pub csv_fields: Vec<String>,
    /// Write the column names as the first line of each CSV object.
    /// Default `true` (CSV only).
    #[serde(default)]
    pub csv_header: Option<bool>,
    /// Written after every record with `encoding = "raw"`. Default `"\n"`
    /// (raw only).
    #[serde(default)]
    pub raw_delimiter: Option<String>,
    /// `none`, `gzip` (the default, except with Parquet) or `zstd`; with
    /// `encoding = "parquet"` the column codec: `snappy` (the default
    /// there), `zstd`, `gzip` or `none`. A name, checked by `validate`
    /// (so that a wrong one points at its line); use
    /// [`Config::compression`].
    #[serde(default, rename = "compression")]
    pub compression_setting: Option<String>,
    /// Compression level: gzip 0-9 (default 5), zstd 1-19 (default 3);
    /// none for snappy.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Time zone of the key's time parts: `UTC` (default), a fixed offset
    /// (`+02:00`, `-0530`) or an IANA name (`Europe/Paris`, read from the
    /// system tz database when the sink starts).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Most objects (distinct `{field.*}` partitions) one batch may write.
    /// Records of further partitions are rejected (dead-lettered). Default 100.
    #[serde(default = "default_max_partitions")]
    pub max_partitions: usize,
    /// Objects larger than this (after compression) go up as multipart
    /// uploads. Default `"16MiB"`; at least `multipart_part_size`.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: ByteSize,
    /// Part size of multipart uploads. Default `"8MiB"`, 5MiB to 5GiB.
    #[serde(default = "default_part_size")]
    pub multipart_part_size: ByteSize,
    /// Uploads (objects, or parts of one object) in flight per batch.
    /// Default 4.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_uploads: usize,
    /// Attempts the AWS SDK makes per request (its own back-off for
    /// throttling and 5xx) before the sink answers retriable and the
    /// pipeline's `[delivery]` retries take over. Default 3; 1 = no SDK retry.
    #[serde(default = "default_attempts")]
    pub request_max_attempts: u32,
    /// Time limit of one request attempt. Default `"60s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Set `Content-Encoding: gzip|zstd` on compressed objects. Default
    /// `true`; not for Parquet (its compression is inside the file).
    #[serde(default)]
    pub content_encoding: Option<bool>,
}

/// When the SDK computes request checksums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumCalculation {
    /// On every request that supports one (the SDK's default).
    #[default]
    WhenSupported,
    /// Only when the operation requires one.
    WhenRequired,
}

fn default_key() -> String {
    DEFAULT_KEY.to_owned()
}
fn default_time_zone() -> String {
    "UTC".to_owned()
}
fn default_max_partitions() -> usize {
    100
}
fn default_multipart_threshold() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_part_size() -> ByteSize {
    ByteSize(8 << 20)
}
fn default_concurrency() -> usize {
    4
}
fn default_attempts() -> u32 {
    3
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

impl Config {
    /// The parsed key template.
    ///
    /// # Errors
    /// The template's problem, as `validate` reports it.
    pub fn key_template(&self) -> Result<KeyTemplate, String> {
        KeyTemplate::parse(&self.key)
    }

    /// The extension appended to keys (Parquet files carry their codec
    /// inside: `.parquet` whatever the compression).
    pub fn extension(&self) -> String {
        match &self.extension {
            Some(extension) => extension.clone(),
            None if self.encoding == Encoding::Parquet => self.encoding.extension().to_owned(),
            None => format!("{}{}", self.encoding.extension(), self.compression().extension()),
        }
    }

    /// The compression: as configured, else the encoding's default
    /// (`snappy` for Parquet, `gzip` otherwise; also for a name `validate`
    /// refuses).
    pub fn compression(&self) -> Compression {
        self.compression_setting.as_deref().and_then(|name| Compression::parse(name).ok()).unwrap_or_else(|| self.encoding.default_compression())
    }

    /// Write a CSV header line (default true).
    pub fn csv_header(&self) -> bool {
        self.csv_header.unwrap_or(true)
    }

    /// The raw delimiter (default `"\n"`).
    pub fn raw_delimiter(&self) -> &str {
        self.raw_delimiter.as_deref().unwrap_or("\n")
    }

    /// The `Content-Encoding` of objects: the compression's, unless
    /// `content_encoding = false` or Parquet.
    pub fn content_encoding(&self) -> Option<&'static str> {
        match self.encoding {
            Encoding::Parquet => None,
            _ if self.content_encoding == Some(false) => None,
            _ => self.compression().content_encoding(),
        }
    }

    /// The checked Parquet schema, with `encoding = "parquet"`.
    ///
    /// # Errors
    /// The problems `validate` reports about `[sink.parquet]`, as
    /// `(key, message)`.
    pub fn parquet_schema(&self) -> Result<Schema, Vec<(String, String)>> {
        match &self.parquet {
            Some(parquet) => Schema::from_config(parquet),
            None => Err(vec![("encoding".to_owned(), NO_PARQUET_TABLE.to_owned())]),
        }
    }

    fn encoding_problems(&self, problem: &mut impl FnMut(&str, String)) {
        let encoding = self.encoding;
        let compression = self.compression();
        if let Some(name) = self.compression_setting.as_deref() {
            if Compression::parse(name).is_err() {
                let known = if encoding == Encoding::Parquet {
                    "with encoding = \"parquet\" the column codecs are \"snappy\" (default), \"zstd\", \"gzip\" and \"none\""
                } else {
                    "the compressions are \"none\", \"gzip\" (default) and \"zstd\""
                };
                problem("compression", format!("unknown compression `{name}`: {known}"));
            }
        }
        if encoding == Encoding::Parquet {
            if self.parquet.is_some() {
                if let Err(list) = self.parquet_schema() {
                    for (key, message) in list {
                        problem(&key, message);
                    }
                }
            } else {
                problem("encoding", NO_PARQUET_TABLE.to_owned());
            }
            let only = |key: &str, what: &str| (key.to_owned(), format!("is for {what}, not encoding = \"parquet\""));
            let mut misplaced = Vec::new();
            if !self.csv_fields.is_empty() {
                misplaced.push(only("csv_fields", "encoding = \"csv\""));
            }
            if self.csv_header.is_some() {
                misplaced.push(only("csv_header", "encoding = \"csv\""));
            }
            if self.raw_delimiter.is_some() {
                misplaced.push(only("raw_delimiter", "encoding = \"raw\""));
            }
            if self.content_encoding.is_some() {
                misplaced.push(("content_encoding".to_owned(), "has no meaning with encoding = \"parquet\": the codec is inside the file, objects have no Content-Encoding".to_owned()));
            }
            for (key, message) in misplaced {
                problem(&key, message);
            }
        } else {
            if self.parquet.is_some() {
                problem("parquet", format!("[sink.parquet] is only used with encoding = \"parquet\", not {:?}", encoding_name(encoding)));
            }
            if compression == Compression::Snappy {
                problem("compression", "\"snappy\" is a Parquet column codec (encoding = \"parquet\"); objects are compressed with \"none\", \"gzip\" or \"zstd\"".to_owned());
            }
        }
    }

    /// Checks every key without I/O; every problem names its key.
    ///
    /// # Errors
    /// The problems found.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(ConfigProblem::key(key, message));
        if let Err(message) = validate_bucket(&self.bucket) {
            problem("bucket", message);
        }
        if let Err(message) = self.key_template() {
            problem("key", message);
        }
        if self.extension().contains(['{', '}']) {
            problem("extension", "must not contain `{` or `}`".to_owned());
        }
        self.encoding_problems(&mut problem);
        if self.encoding == Encoding::Csv && self.csv_fields.is_empty() {
            problem("csv_fields", "must name at least one field with encoding = \"csv\"".to_owned());
        }
        if self.csv_fields.iter().any(|f| f.is_empty() || f.split('.').any(str::is_empty)) {
            problem("csv_fields", "field paths must be non-empty dotted names such as `user.id`".to_owned());
        }
        if let Some(level) = self.compression_level {
            if let Err(message) = self.compression().check_level(level) {
                problem("compression_level", message);
            }
        }
        if let Err(message) = TimeZoneSpec::parse(&self.time_zone) {
            problem("time_zone", message);
        }
        if self.max_partitions == 0 {
            problem("max_partitions", "must be at least 1".to_owned());
        }
        let part = self.multipart_part_size.bytes();
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part) {
            problem("multipart_part_size", format!("must be between 5MiB and 5GiB (S3's part limits), not {}", self.multipart_part_size));
        }
        let threshold = self.multipart_threshold.bytes();
        if threshold < part.max(MIN_PART_SIZE) || threshold > MAX_PUT_SIZE {
            problem(
                "multipart_threshold",
                format!("must be at least multipart_part_size ({}) and at most 5GiB, not {}", self.multipart_part_size, self.multipart_threshold),
            );
        }
        if self.max_concurrent_uploads == 0 {
            problem("max_concurrent_uploads", "must be at least 1".to_owned());
        }
        if self.request_max_attempts == 0 {
            problem("request_max_attempts", "must be at least 1".to_owned());
        }
        if self.request_timeout.get().is_zero() {
            problem("request_timeout", "must be longer than 0s".to_owned());
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                problem("endpoint", format!("must be an http:// or https:// URL, not `{endpoint}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

const NO_PARQUET_TABLE: &str =
    "encoding = \"parquet\" needs a [sink.parquet] table with `schema`, e.g. schema = { user = \"string\", amount = \"double\" }";

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Ndjson => "ndjson",
        Encoding::Csv => "csv",
        Encoding::Raw => "raw",
        Encoding::Parquet => "parquet",
    }
}

/// S3's bucket naming rules (3-63 characters of `a-z0-9.-`, starting and
/// ending with a letter or digit).
fn validate_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric()) && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(format!("`{bucket}` is not a valid bucket name (3-63 characters: a-z, 0-9, `.` and `-`, starting and ending with a letter or digit)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        serde_json::from_str(text).expect("config parses")
    }

    fn problem_keys(config: &Config) -> Vec<String> {
        config.validate().err().unwrap_or_default().into_iter().filter_map(|p| p.key).collect()
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"bucket": "my-bucket"}"#);
        assert_eq!(c.key, DEFAULT_KEY);
        assert_eq!(c.extension(), ".ndjson.gz");
        assert_eq!((c.multipart_threshold.bytes(), c.multipart_part_size.bytes()), (16 << 20, 8 << 20));
        assert_eq!(c.max_partitions, 100);
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }

    #[test]
    fn unknown_keys_and_variants_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"bucket": "b-1", "buckt": 1}"#).is_err());
        let found = problems(&parse(r#"{"bucket": "b-1", "compression": "lz4"}"#));
        assert_eq!(found[0].0, "compression");
        assert!(found[0].1.contains("unknown compression `lz4`") && found[0].1.contains("\"zstd\""), "{found:?}");
        let found = problems(&parse(r#"{"bucket": "b-1", "encoding": "parquet", "compression": "brotli", "parquet": {"schema": {"a": "bool"}}}"#));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("`brotli`") && found[0].1.contains("\"snappy\" (default)"), "{found:?}");
    }

    #[test]
    fn validate_names_every_bad_key() {
        let c = parse(
            r#"{"bucket": "Bad_Bucket", "key": "{stream}/{nope}", "encoding": "csv", "compression": "gzip",
                "compression_level": 12, "time_zone": "+25:00", "max_partitions": 0,
                "multipart_part_size": "1MiB", "multipart_threshold": "1MiB", "max_concurrent_uploads": 0,
                "request_max_attempts": 0, "request_timeout": "0s", "endpoint": "localhost:9000"}"#,
        );
        assert_eq!(
            problem_keys(&c),
            [
                "bucket",
                "key",
                "csv_fields",
                "compression_level",
                "time_zone",
                "max_partitions",
                "multipart_part_size",
                "multipart_threshold",
                "max_concurrent_uploads",
                "request_max_attempts",
                "request_timeout",
                "endpoint"
            ]
        );
        let c = parse(r#"{"bucket": "b-1", "multipart_part_size": "8MiB", "multipart_threshold": "6MiB"}"#);
        assert_eq!(problem_keys(&c), ["multipart_threshold"]);
        let c = parse(r#"{"bucket": "b-1", "compression": "zstd", "compression_level": 19, "time_zone": "Europe/Paris"}"#);
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }

    fn problems(config: &Config) -> Vec<(String, String)> {
        config.validate().err().unwrap_or_default().into_iter().map(|p| (p.key.unwrap_or_default(), p.message)).collect()
    }

    #[test]
    fn parquet_defaults_to_snappy_and_a_parquet_extension_without_content_encoding() {
        let c = parse(r#"{"bucket": "b-1", "encoding": "parquet", "parquet": {"schema": {"user": "string", "geo.country": "string"}, "required": ["user"]}}"#);
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert_eq!((c.compression(), c.extension(), c.content_encoding()), (Compression::Snappy, ".parquet".to_owned(), None));
        let schema = c.parquet_schema().expect("schema");
        assert_eq!(schema.columns.len(), 2);
        let c = parse(r#"{"bucket": "b-1", "encoding": "parquet", "compression": "zstd", "compression_level": 5, "parquet": {"schema": {"a": "int64"}}}"#);
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert_eq!((c.compression(), c.extension(), c.content_encoding()), (Compression::Zstd, ".parquet".to_owned(), None));
        // The other encodings keep gzip as their default.
        let c = parse(r#"{"bucket": "b-1", "encoding": "csv", "csv_fields": ["a"]}"#);
        assert_eq!((c.compression(), c.extension(), c.content_encoding()), (Compression::Gzip, ".csv.gz".to_owned(), Some("gzip")));
    }

    #[test]
    fn parquet_settings_and_the_others_do_not_mix() {
        let c = parse(r#"{"bucket": "b-1", "encoding": "parquet"}"#);
        assert_eq!(problem_keys(&c), ["encoding"]);
        let c = parse(
            r#"{"bucket": "b-1", "encoding": "parquet", "parquet": {"schema": {"a": "int"}, "required": ["b"]},
                "csv_fields": ["a"], "csv_header": true, "raw_delimiter": ",", "content_encoding": true, "compression": "snappy", "compression_level": 1}"#,
        );
        let found = problems(&c);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["parquet.schema.a", "parquet.required[0]", "csv_fields", "csv_header", "raw_delimiter", "content_encoding", "compression_level"]);
        assert!(found[0].1.contains("unknown column type `int`"), "{found:?}");
        let c = parse(r#"{"bucket": "b-1", "encoding": "ndjson", "compression": "snappy", "parquet": {"schema": {"a": "string"}}}"#);
        let found = problems(&c);
        assert_eq!(found.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["parquet", "compression"]);
        assert!(found[1].1.contains("Parquet column codec"), "{found:?}");
        let c = parse(r#"{"bucket": "b-1", "encoding": "parquet", "parquet": {"schema": {}}}"#);
        assert_eq!(problem_keys(&c), ["parquet.schema"]);
        assert!(serde_json::from_str::<Config>(r#"{"bucket": "b-1", "parquet": {"schema": {}, "colums": []}}"#).is_err(), "unknown keys in [sink.parquet]");
    }
}

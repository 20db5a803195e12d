//! Loading a pipeline file and reporting every problem with its place.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{Located, Locator};
use super::model::{InitialPosition, LeaseStoreKind, PipelineConfig};

/// One thing wrong with a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `buffer.max_records` (empty for syntax errors).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Where, when it could be found.
    pub location: Option<Located>,
}

/// A pipeline file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read pipeline file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid pipeline.
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Everything found wrong, in file order.
        problems: Vec<Problem>,
    },
}

fn render(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let at = p.location.unwrap_or(Located { line: 1, column: 1 });
        out.push_str(&format!("{}:{}: ", file.display(), at));
        if !p.path.is_empty() {
            out.push_str(&format!("`{}`: ", p.path));
        }
        out.push_str(&p.message);
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(f, "{at}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Reads and checks a pipeline file.
///
/// # Errors
/// [`ConfigError::Read`] when the file cannot be read,
/// [`ConfigError::Invalid`] with every problem found otherwise.
pub fn load_file(file: &Path) -> Result<PipelineConfig, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })?;
    load_str(&text, file)
}

/// Parses and checks pipeline text; `file` is only used in messages.
///
/// # Errors
/// [`ConfigError::Invalid`] with every problem found.
pub fn load_str(text: &str, file: &Path) -> Result<PipelineConfig, ConfigError> {
    let original = Locator::new(text);
    let text = super::interpolate::interpolate(text, |name| std::env::var(name).ok()).map_err(|errors| ConfigError::Invalid {
        file: file.to_owned(),
        problems: errors
            .into_iter()
            .map(|e| Problem { path: String::new(), message: e.message, location: Some(original.position(e.offset)) })
            .collect(),
    })?;
    let text = text.as_str();
    let locator = Locator::new(text);
    let config: PipelineConfig = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let location = e.span().map(|s| locator.position(s.start));
            let problem = Problem { path: String::new(), message: e.message().trim().to_owned(), location };
            return Err(ConfigError::Invalid { file: file.to_owned(), problems: vec![problem] });
        }
    };
    let mut config = config;
    config.normalize();
    let mut problems = config.check();
    if problems.is_empty() {
        return Ok(config);
    }
    for p in &mut problems {
        p.location = locator.find(&p.path);
    }
    problems.sort_by_key(|p| p.location.map(|l| (l.line, l.column)).unwrap_or((0, 0)));
    Err(ConfigError::Invalid { file: file.to_owned(), problems })
}

/// Names of the sinks compiled into the binary.
/// `dashboard` is accepted everywhere but only `shardline quickstart` runs it.
pub const BUILT_IN_SINKS: &[&str] = &["stdout", "file", "dashboard"];

impl PipelineConfig {
    /// Treats optional strings left empty (typically `"${VAR:-}"` with the
    /// variable unset) as not given, so one file serves deployments with and
    /// without an endpoint override.
    pub fn normalize(&mut self) {
        fn clear(value: &mut Option<String>) {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        clear(&mut self.source.region);
        clear(&mut self.source.endpoint);
        clear(&mut self.source.profile);
        clear(&mut self.source.timestamp);
        clear(&mut self.source.consumer_name);
        clear(&mut self.leases.table);
        clear(&mut self.leases.region);
        clear(&mut self.leases.endpoint);
        clear(&mut self.leases.profile);
    }

    /// Semantic checks that need no network: ranges, references, and the
    /// sink's and transforms' own validation. Returns every problem found.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut add = |path: &str, message: String| {
            problems.push(Problem { path: path.to_owned(), message, location: None });
        };
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            add("name", format!("{:?} is not a valid pipeline name: use letters, digits, '-', '_' and '.'", self.name));
        }
        let source = &self.source;
        if source.stream.is_empty() || source.stream.len() > 128 {
            add("source.stream", "must be 1 to 128 characters".to_owned());
        }
        // local-kinesis: `endpoint = "embedded"` runs the Kinesis API in-process
        if let Some(endpoint) = source.endpoint.as_ref().filter(|e| e.as_str() != shardline_local_kinesis::EMBEDDED_ENDPOINT) {
            if let Some(m) = endpoint_problem(endpoint) {
                add("source.endpoint", m);
            }
        }
        match (source.initial_position, &source.timestamp) {
            (InitialPosition::AtTimestamp, None) => {
                add("source.initial_position", "`at_timestamp` needs `source.timestamp` (RFC 3339, e.g. \"2026-11-01T00:00:00Z\")".to_owned())
            }
            (InitialPosition::AtTimestamp, Some(t)) => {
                if humantime::parse_rfc3339_weak(t).is_err() {
                    add("source.timestamp", format!("{t:?} is not an RFC 3339 time such as \"2026-11-01T00:00:00Z\""));
                }
            }
            (_, Some(_)) => add("source.timestamp", "only used with `initial_position = \"at_timestamp\"`".to_owned()),
            _ => {}
        }
        if !(1..=10_000).contains(&source.max_records) {
            add("source.max_records", format!("{} is out of range: GetRecords takes 1 to 10000", source.max_records));
        }
        if source.idle_interval.get().is_zero() {
            add("source.idle_interval", "must be greater than zero".to_owned());
        }
        if source.shard_sync_interval.get() < std::time::Duration::from_secs(1) {
            add("source.shard_sync_interval", "must be at least 1s".to_owned());
        }
        timeout_problems("source", source.request_timeout.get(), source.attempt_timeout.get(), &mut add);
        let leases = &self.leases;
        timeout_problems("leases", leases.request_timeout.get(), leases.attempt_timeout.get(), &mut add);
        let table = self.lease_table();
        if leases.store == LeaseStoreKind::Dynamodb
            && (table.len() < 3 || table.len() > 255 || !table.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            add("leases.table", format!("{table:?} is not a valid DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ - .)"));
        }
        if let Some(endpoint) = &leases.endpoint {
            if let Some(m) = endpoint_problem(endpoint) {
                add("leases.endpoint", m);
            }
        }
        if leases.store == LeaseStoreKind::Embedded && (leases.endpoint.is_some() || leases.region.is_some()) {
            add("leases.store", "`endpoint`/`region` are for `store = \"dynamodb\"`; the embedded store keeps leases in `state_dir`".to_owned());
        }
        if leases.failover_time.get() < std::time::Duration::from_millis(300) {
            add("leases.failover_time", "must be at least 300ms".to_owned());
        }
        if leases.cleanup_interval.get() < std::time::Duration::from_secs(1) {
            add("leases.cleanup_interval", "must be at least 1s".to_owned());
        }
        if leases.max_leases_per_worker == Some(0) {
            add("leases.max_leases_per_worker", "must be at least 1".to_owned());
        }
        if leases.max_leases_to_steal_at_once == 0 {
            add("leases.max_leases_to_steal_at_once", "must be at least 1".to_owned());
        }
        if let Err(list) = self.buffer.validate() {
            for (key, message) in list {
                add(&format!("buffer.{key}"), message);
            }
        }
        if let Err(list) = self.delivery.validate() {
            for (key, message) in list {
                add(&format!("delivery.{key}"), message);
            }
        }
        for (i, transform) in self.transforms.iter().enumerate() {
            match transform.get("type").and_then(|v| v.as_str()) {
                None => add(&format!("transforms[{i}]"), "missing `type` (a string naming the transform)".to_owned()),
                Some(kind) => {
                    let mut rest = transform.clone();
                    rest.remove("type");
                    if let Err(e) = shardline_transforms::validate(kind, &rest) {
                        // Point at the offending option (`condition`, `pattern`…) when named.
                        let key = e.key().filter(|k| transform.contains_key(*k)).unwrap_or("type");
                        add(&format!("transforms[{i}].{key}"), format!("transform `{kind}`: {e}"));
                    }
                }
            }
        }
        for (path, message) in crate::testing::check(self) {
            add(&path, message);
        }
        if let Err((key, message)) = crate::sink::validate(&self.sink) {
            add(&format!("sink{}", key.map(|k| format!(".{k}")).unwrap_or_default()), message);
        }
        problems
    }
}

/// `<section>.request_timeout` and `<section>.attempt_timeout`: both set,
/// and one attempt fits in the call.
fn timeout_problems(section: &str, request: std::time::Duration, attempt: std::time::Duration, add: &mut impl FnMut(&str, String)) {
    if attempt.is_zero() {
        add(&format!("{section}.attempt_timeout"), "must be greater than zero".to_owned());
    }
    if request.is_zero() {
        add(&format!("{section}.request_timeout"), "must be greater than zero".to_owned());
    } else if request < attempt {
        add(&format!("{section}.request_timeout"), format!("must be at least `attempt_timeout` ({attempt:?}): one attempt has to fit in the call"));
    }
}

fn endpoint_problem(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => None,
        _ => Some(format!("{endpoint:?} is not an http:// or https:// URL")),
    }
}

#[cfg(test)]
mod tests;

//! What a plugin says about itself and about a config: [`PluginInfo`],
//! [`ConfigKey`], [`ConfigProblem`], and what the host tells `init`
//! ([`InitContext`]). `PluginInfo` and `ConfigProblem` cross the ABI as
//! JSON in exactly these shapes.

use serde::{Deserialize, Serialize};

/// A plugin's description: `shardline plugins` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The sink type the plugin provides (`type = "<name>"` in `[sink]`):
    /// `snake_case`, named after the destination.
    pub name: String,
    /// The plugin's version (usually `env!("CARGO_PKG_VERSION")`).
    pub version: String,
    /// One line about what it does.
    #[serde(default)]
    pub description: String,
    /// The keys of its `[sink]` table (besides `type`).
    #[serde(default)]
    pub config_keys: Vec<ConfigKey>,
}

impl PluginInfo {
    /// A description with a name and a version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo { name: name.into(), version: version.into(), description: String::new(), config_keys: Vec::new() }
    }

    /// Sets the one-line description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Adds a config key.
    #[must_use]
    pub fn key(mut self, key: ConfigKey) -> Self {
        self.config_keys.push(key);
        self
    }
}

/// One key of a plugin's `[sink]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKey {
    /// The key, `snake_case`.
    pub name: String,
    /// True when the config is invalid without it.
    #[serde(default)]
    pub required: bool,
    /// What it means, with its default and unit.
    #[serde(default)]
    pub description: String,
}

impl ConfigKey {
    /// A key the config must have.
    pub fn required(name: impl Into<String>, description: impl Into<String>) -> Self {
        ConfigKey { name: name.into(), required: true, description: description.into() }
    }

    /// A key with a default.
    pub fn optional(name: impl Into<String>, description: impl Into<String>) -> Self {
        ConfigKey { name: name.into(), required: false, description: description.into() }
    }
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The key at fault (`bucket`, or a dotted path such as `batch.max_bytes`),
    /// when there is one; `shardline validate` points at its line as
    /// `sink.<key>`.
    pub key: Option<String>,
    /// What is wrong, e.g. "must be at least 1".
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem { key: Some(key.into()), message: message.into() }
    }

    /// A problem with the config as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        ConfigProblem { key: None, message: message.into() }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "`{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What the host tells [`SinkPlugin::init`](crate::SinkPlugin::init).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitContext {
    /// The name of the pipeline this instance delivers for (use it in
    /// object names, logs and metrics).
    pub pipeline: String,
}

impl InitContext {
    /// A context for `pipeline` (for tests that call `init` directly).
    pub fn new(pipeline: impl Into<String>) -> Self {
        InitContext { pipeline: pipeline.into() }
    }
}

/// Parses a config from JSON text; a serde error becomes a problem naming
/// the key when the message names one.
pub(crate) fn parse_config<C: serde::de::DeserializeOwned>(json: &[u8]) -> Result<C, ConfigProblem> {
    serde_json::from_slice(json).map_err(|e| {
        // serde_json's "at line L column C" is about the JSON the host made,
        // not the user's TOML file: drop it.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_owned(),
            None => message,
        };
        ConfigProblem { key: offending_key(&message), message }
    })
}

/// The key named by serde messages such as "unknown field `pth`, expected
/// ..." or "missing field `path`".
pub(crate) fn offending_key(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                return Some(rest[..end].to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        path: String,
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn parse_errors_name_the_key_without_json_positions() {
        let p = parse_config::<Cfg>(br#"{"path": "x", "pth": 1}"#).expect_err("unknown key");
        assert_eq!(p.key.as_deref(), Some("pth"));
        assert!(!p.message.contains("line"), "{}", p.message);
        let p = parse_config::<Cfg>(br#"{"n": 1}"#).expect_err("missing key");
        assert_eq!(p.key.as_deref(), Some("path"));
        let p = parse_config::<Cfg>(br#"{"path": "x", "n": "many"}"#).expect_err("bad type");
        assert!(p.message.contains("invalid type"), "{}", p.message);
        assert!(parse_config::<Cfg>(br#"{"path": "x"}"#).is_ok());
    }
}

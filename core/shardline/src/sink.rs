//! Choosing and building the sink a pipeline names in `[sink] type`.
//!
//! The built-in sinks (`stdout`, `file`, and `dashboard`, which only
//! `shardline quickstart` can run) are compiled in; the plugin host
//! adds the others (S3, Redshift, DynamoDB, Elasticsearch) from shared
//! libraries. The binary loads the plugins once, at start, with
//! [`load_plugins`]; until then (and in library use) only the built-in
//! sinks exist.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use shardline_api::Sink;
use shardline_pipeline::sinks::{FileSinkConfig, StdoutSinkConfig};
use shardline_plugin_host::{LoadedPlugin, PluginHost};

use crate::config::BUILT_IN_SINKS;
use crate::quickstart::sink::DashboardSinkConfig;

/// Why a sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    /// `[sink]` has no string `type`.
    #[error("`[sink]` needs `type`, one of: {}", available_types())]
    MissingType,
    /// No built-in sink or plugin provides the type.
    #[error("unknown sink type `{kind}`: available sink types are {} (no sink plugin provides `{kind}`: {plugins})", available_types())]
    UnknownType {
        /// The type asked for.
        kind: String,
        /// The plugins found and the directories searched.
        plugins: String,
    },
    /// The sink's keys are wrong.
    #[error("sink `{kind}`: {message}")]
    Config {
        /// The sink type.
        kind: String,
        /// What is wrong.
        message: String,
    },
}

/// Checks `[sink]` without I/O. On error returns the offending key (when
/// one can be named) and a message.
pub fn validate(table: &toml::Table) -> Result<(), (Option<String>, String)> {
    let kind = match table.get("type") {
        Some(toml::Value::String(s)) => s.as_str(),
        Some(_) => return Err((Some("type".into()), "must be a string".into())),
        None => return Err((None, SinkBuildError::MissingType.to_string())),
    };
    let rest = without_type(table);
    let result = match kind {
        "stdout" => StdoutSinkConfig::deserialize(rest).map(|_| ()),
        "dashboard" => match DashboardSinkConfig::deserialize(rest) {
            Ok(cfg) => return cfg.validate().map_err(|(key, message)| (Some(key), format!("sink `dashboard`: {message}"))),
            Err(e) => Err(e),
        },
        "file" => match FileSinkConfig::deserialize(rest) {
            Ok(cfg) => {
                return cfg.validate().map_err(|problems| {
                    let (key, message) = problems.into_iter().next().unwrap_or_default();
                    (Some(key), format!("sink `file`: {message}"))
                })
            }
            Err(e) => Err(e),
        },
        other => {
            let Some(plugin) = plugin(other) else {
                return Err((Some("type".into()), unknown_type(other).to_string()));
            };
            return plugin.validate(&plugin_config(table)).map_err(|problems| {
                let first = problems.into_iter().next().unwrap_or_else(|| shardline_plugin_host::ConfigProblem::general("invalid"));
                (first.key, format!("sink `{other}`: {}", first.message))
            });
        }
    };
    result.map_err(|e| {
        let message = e.to_string();
        (offending_key(&message), format!("sink `{kind}`: {}", message.trim()))
    })
}

/// Builds the sink `[sink]` describes.
///
/// # Errors
/// [`SinkBuildError`] naming the type or key at fault.
pub fn build(table: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, SinkBuildError> {
    let kind = table.get("type").and_then(|v| v.as_str()).ok_or(SinkBuildError::MissingType)?;
    let config_error = |message: String| SinkBuildError::Config { kind: kind.to_owned(), message };
    let rest = without_type(table);
    match kind {
        "stdout" => {
            let cfg = StdoutSinkConfig::deserialize(rest).map_err(|e| config_error(e.to_string()))?;
            shardline_pipeline::sinks::build_stdout_sink(&cfg, pipeline).map_err(|e| config_error(e.to_string()))
        }
        "dashboard" => {
            let cfg = DashboardSinkConfig::deserialize(rest).map_err(|e| config_error(e.to_string()))?;
            crate::quickstart::sink::build(&cfg).map_err(config_error)
        }
        "file" => {
            let cfg = FileSinkConfig::deserialize(rest).map_err(|e| config_error(e.to_string()))?;
            shardline_pipeline::sinks::build_file_sink(&cfg, pipeline).map_err(|e| config_error(e.to_string()))
        }
        other => match plugin(other) {
            Some(plugin) => Ok(Arc::new(plugin.build_sink(plugin_config(table), pipeline))),
            None => Err(unknown_type(other)),
        },
    }
}

static PLUGINS: OnceLock<PluginHost> = OnceLock::new();

/// The plugin directories searched: `configured` (from `--plugin-dir` or
/// `SHARDLINE_PLUGIN_DIR`) first, then `plugins/` next to the binary and
/// `/usr/lib/shardline/plugins` (the container image's directory).
pub fn plugin_dirs(configured: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = configured.iter().filter(|d| !d.as_os_str().is_empty()).cloned().collect();
    dirs.extend(shardline_plugin_host::default_plugin_dirs());
    dirs
}

/// Loads the sink plugins in [`plugin_dirs`]`(configured)` (once per
/// process; later calls return the first result) and makes their sink types
/// available to [`validate`] and [`build`].
pub fn load_plugins(configured: &[PathBuf]) -> &'static PluginHost {
    PLUGINS.get_or_init(|| {
        // SAFETY: the plugin directories are the operator's configuration,
        // like the binary itself: they must hold only trusted Shardline
        // plugins (see the README's "Plugins" section).
        unsafe { PluginHost::discover(&plugin_dirs(configured)) }
    })
}

/// The plugin providing sink type `kind`, once [`load_plugins`] ran.
fn plugin(kind: &str) -> Option<&'static Arc<LoadedPlugin>> {
    PLUGINS.get().and_then(|host| host.find(kind))
}

fn available_types() -> String {
    let mut types: Vec<&str> = BUILT_IN_SINKS.to_vec();
    if let Some(host) = PLUGINS.get() {
        types.extend(host.plugins().iter().map(|p| p.name()));
    }
    types.join(", ")
}

fn unknown_type(kind: &str) -> SinkBuildError {
    let plugins = match PLUGINS.get() {
        Some(host) if !host.errors().is_empty() => {
            format!("{}; {} libraries refused, see `shardline plugins`", host.summary(), host.errors().len())
        }
        Some(host) => host.summary(),
        None => "plugins not loaded".to_owned(),
    };
    SinkBuildError::UnknownType { kind: kind.to_owned(), plugins }
}

/// A plugin's config: the `[sink]` table without `type`, as JSON.
fn plugin_config(table: &toml::Table) -> serde_json::Value {
    // A TOML table always converts (datetimes become objects).
    serde_json::to_value(without_type(table)).unwrap_or_default()
}

/// What `shardline plugins` prints: built-in types, directories searched,
/// plugins found (with their keys), libraries refused.
pub fn plugins_report(host: &PluginHost) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "built-in sink types: {}", BUILT_IN_SINKS.join(", "));
    let _ = writeln!(out, "plugin directories (in search order):");
    for dir in host.searched() {
        let _ = writeln!(out, "  {}{}", dir.path.display(), if dir.exists { "" } else { " (missing)" });
    }
    if host.plugins().is_empty() {
        let _ = writeln!(out, "plugins: none found");
    } else {
        let _ = writeln!(out, "plugins:");
    }
    for plugin in host.plugins() {
        let info = plugin.info();
        let _ = writeln!(out, "  {} {} ({})", info.name, info.version, plugin.path().display());
        if plugin.abi_version() < shardline_plugin_host::ABI_VERSION {
            let _ = writeln!(
                out,
                "    built for plugin ABI version {}: loaded without batch fences and without its own metrics; rebuild it with the current shardline-plugin-sdk",
                plugin.abi_version()
            );
        }
        if !info.description.is_empty() {
            let _ = writeln!(out, "    {}", info.description);
        }
        for key in &info.config_keys {
            let required = if key.required { " (required)" } else { "" };
            let _ = writeln!(out, "    {}{required}: {}", key.name, key.description);
        }
    }
    for (plugin, used) in host.shadowed() {
        let _ = writeln!(out, "  ignored: {} provides `{}` too; {} is used", plugin.path().display(), plugin.name(), used.display());
    }
    if !host.errors().is_empty() {
        let _ = writeln!(out, "refused:");
        for error in host.errors() {
            let _ = writeln!(out, "  {error}");
        }
    }
    out
}

fn without_type(table: &toml::Table) -> toml::Value {
    let mut rest = table.clone();
    rest.remove("type");
    toml::Value::Table(rest)
}

/// Pulls the key out of serde messages such as "unknown field `pth`, expected
/// ..." or "missing field `path`".
pub(crate) fn offending_key(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "invalid value for `", "for key `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                return Some(rest[..end].to_owned());
            }
        }
    }
    None
}

//! Finding plugins: every shared library in the plugin directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::LoadError;
use crate::library::LoadedPlugin;

/// The container image's plugin directory.
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/shardline/plugins";

/// The directories searched after the configured ones: `plugins/` next to
/// the running binary, `../lib/shardline/plugins` relative to it (an
/// installed tree), then [`SYSTEM_PLUGIN_DIR`].
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(bin_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)) {
        dirs.push(bin_dir.join("plugins"));
        // An installed tree (`<prefix>/bin/shardline` with
        // `<prefix>/lib/shardline/plugins`), wherever the prefix is: the
        // container image's `/usr`, a tarball unpacked anywhere.
        if let Some(prefix) = bin_dir.parent() {
            let relative = prefix.join("lib/shardline/plugins");
            if relative != Path::new(SYSTEM_PLUGIN_DIR) {
                dirs.push(relative);
            }
        }
    }
    dirs.push(PathBuf::from(SYSTEM_PLUGIN_DIR));
    dirs
}

/// One directory that was searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchedDir {
    /// The directory.
    pub path: PathBuf,
    /// False when it does not exist (not an error: defaults often do not).
    pub exists: bool,
}

/// The plugins found in the plugin directories.
#[derive(Debug, Default)]
pub struct PluginHost {
    plugins: Vec<Arc<LoadedPlugin>>,
    searched: Vec<SearchedDir>,
    errors: Vec<LoadError>,
    shadowed: Vec<(Arc<LoadedPlugin>, PathBuf)>,
}

fn is_library(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

impl PluginHost {
    /// A host without plugins.
    pub fn empty() -> Self {
        PluginHost::default()
    }

    /// Loads every shared library (`*.so`, `*.dylib` on macOS) in `dirs`, in
    /// order (files sorted by name). Missing directories are noted, not
    /// errors; libraries that cannot be used are kept as
    /// [`errors`](Self::errors). When two plugins provide the same sink
    /// type the first one found wins.
    ///
    /// # Safety
    /// Loading runs the libraries' code: the directories must hold only
    /// trusted Shardline plugins (see [`LoadedPlugin::load`]).
    pub unsafe fn discover(dirs: &[PathBuf]) -> Self {
        let mut host = PluginHost::default();
        let mut seen = HashSet::new();
        for dir in dirs {
            if !seen.insert(dir.clone()) {
                continue;
            }
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(_) => {
                    host.searched.push(SearchedDir { path: dir.clone(), exists: false });
                    continue;
                }
            };
            host.searched.push(SearchedDir { path: dir.clone(), exists: true });
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_library(p)).collect();
            files.sort();
            for file in files {
                // SAFETY: the caller trusts the directories' libraries.
                match unsafe { LoadedPlugin::load(&file) } {
                    Ok(plugin) => host.add(Arc::new(plugin)),
                    Err(e) => {
                        tracing::warn!(error = %e, "plugin refused");
                        host.errors.push(e);
                    }
                }
            }
        }
        host
    }

    /// Adds a loaded plugin (one loaded by hand, or linked into a test);
    /// ignored, and noted as shadowed, when its sink type is taken.
    pub fn add(&mut self, plugin: Arc<LoadedPlugin>) {
        if let Some(first) = self.find(plugin.name()) {
            tracing::warn!(plugin = %plugin.name(), used = %first.path().display(), ignored = %plugin.path().display(),
                "two plugins provide the same sink type; the first one found is used");
            let path = first.path().to_owned();
            self.shadowed.push((plugin, path));
            return;
        }
        tracing::debug!(plugin = %plugin.name(), version = %plugin.info().version, path = %plugin.path().display(), "plugin loaded");
        self.plugins.push(plugin);
    }

    /// The plugin providing sink type `name`.
    pub fn find(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Every usable plugin, in discovery order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// The directories searched, in order.
    pub fn searched(&self) -> &[SearchedDir] {
        &self.searched
    }

    /// Libraries that were refused.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// Plugins ignored because an earlier one provides the same sink type,
    /// each with the path of the one used.
    pub fn shadowed(&self) -> &[(Arc<LoadedPlugin>, PathBuf)] {
        &self.shadowed
    }

    /// A one-line summary for "unknown sink type" messages: the plugin
    /// types found and the directories searched.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.plugins.iter().map(|p| p.name()).collect();
        let found = if names.is_empty() { "no plugins found".to_owned() } else { format!("plugins found: {}", names.join(", ")) };
        let dirs: Vec<String> = self
            .searched
            .iter()
            .map(|d| if d.exists { d.path.display().to_string() } else { format!("{} (missing)", d.path.display()) })
            .collect();
        let searched = if dirs.is_empty() { "no plugin directories searched".to_owned() } else { format!("searched {}", dirs.join(", ")) };
        format!("{found}; {searched}")
    }
}

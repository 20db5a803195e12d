//! Why a library could not be used as a plugin.

use std::path::PathBuf;

/// A library that was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The dynamic loader could not open it.
    #[error("{}: cannot load the library: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// It does not export the plugin entry symbol.
    #[error("{}: not a shardline sink plugin (no `{symbol}` symbol)", path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// The entry function returned no table.
    #[error("{}: the plugin's entry function returned no table (it panicked describing itself)", path.display())]
    NoTable {
        /// The file.
        path: PathBuf,
    },
    /// Built for an ABI version this host does not load.
    #[error("{}: plugin ABI version {found} is not supported: this shardline loads ABI versions {oldest} to {expected}; rebuild the plugin with a shardline-plugin-sdk for ABI version {expected}", path.display())]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// The host's ABI version.
        expected: u32,
        /// The oldest ABI version the host still loads.
        oldest: u32,
    },
    /// The table is smaller than this ABI version's.
    #[error("{}: plugin table is {found} bytes, ABI version {abi_version} needs at least {expected}; the plugin is corrupt or built for another ABI", path.display())]
    TableTooSmall {
        /// The file.
        path: PathBuf,
        /// The ABI version both claim.
        abi_version: u32,
        /// The plugin's `table_size`.
        found: u32,
        /// The host's table size.
        expected: u32,
    },
    /// A function pointer is null, or the name or version is not UTF-8.
    #[error("{}: invalid plugin table: {problem}", path.display())]
    InvalidTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `describe` failed or answered something unreadable.
    #[error("{}: plugin `{name}` cannot describe itself: {message}", path.display())]
    Describe {
        /// The file.
        path: PathBuf,
        /// The name in its table.
        name: String,
        /// What went wrong.
        message: String,
    },
}

//! One loaded plugin: its checked table, its description, and the
//! synchronous calls (`describe`, `validate`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shardline_plugin_abi::{
    v1, ByteSlice, Completion, EntryFn, InitContext, OwnedBuffer, SendFn, SinkPluginTable, TableHeader, ABI_VERSION,
    CALL_OK, ENTRY_SYMBOL, OLDEST_SUPPORTED_ABI_VERSION, TABLE_SIZE,
};
use shardline_plugin_sdk::{ConfigProblem, PluginInfo};

use crate::error::LoadError;
use crate::sink::PluginSink;

type HandleFn = unsafe extern "C" fn(handle: *mut std::ffi::c_void, completion: Completion);

/// The table's function pointers, all checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct Functions {
    pub(crate) describe: unsafe extern "C" fn(out: *mut OwnedBuffer) -> i32,
    pub(crate) validate: unsafe extern "C" fn(config: ByteSlice, out: *mut OwnedBuffer) -> i32,
    pub(crate) init: unsafe extern "C" fn(
        config: ByteSlice,
        context: *const InitContext,
        out_handle: *mut *mut std::ffi::c_void,
        out_error_kind: *mut u32,
        out_error: *mut OwnedBuffer,
    ) -> i32,
    pub(crate) healthcheck: HandleFn,
    pub(crate) send: Send,
    pub(crate) flush: HandleFn,
    pub(crate) close: HandleFn,
    pub(crate) destroy: unsafe extern "C" fn(handle: *mut std::ffi::c_void),
    pub(crate) free_buffer: unsafe extern "C" fn(buffer: OwnedBuffer),
}

/// `send` as the plugin's ABI version has it.
#[derive(Clone, Copy)]
pub(crate) enum Send {
    /// Version 2: with the batch's fence.
    Fenced(SendFn),
    /// Version 1: no fence.
    V1(v1::SendFn),
}

/// A plugin whose table passed the ABI checks. Cheap to share (`Arc`);
/// lives as long as the process (its library is never unloaded).
pub struct LoadedPlugin {
    path: PathBuf,
    info: PluginInfo,
    abi_version: u32,
    pub(crate) fns: Functions,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("info", &self.info).finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Loads the shared library at `path` and checks its table. The library
    /// is never unloaded, even when it is refused.
    ///
    /// # Errors
    /// A [`LoadError`] naming `path`: not loadable, not a plugin, another
    /// ABI version, an invalid table or description.
    ///
    /// # Safety
    /// Loading a library runs its initialisers, and calling its entry
    /// function runs its code: `path` must be a trusted library that, if it
    /// exports [`ENTRY_SYMBOL`], implements it as [`EntryFn`] and keeps the
    /// ABI's contract.
    pub unsafe fn load(path: &Path) -> Result<Self, LoadError> {
        // SAFETY: the caller trusts the library's initialisers.
        let library = unsafe { libloading::Library::new(path) }.map_err(|source| LoadError::Open { path: path.to_owned(), source })?;
        // Never unloaded: the plugin's code, statics and threads may outlive
        // every handle (a runtime shutting down in the background).
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // SAFETY: the caller guarantees the symbol, if present, is an EntryFn.
        let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) }
            .map_err(|_| LoadError::NotAPlugin { path: path.to_owned(), symbol: "shardline_sink_plugin" })?;
        // SAFETY: as above; the entry function takes no arguments.
        let table = unsafe { entry() };
        // SAFETY: a non-null result points to a table that lives as long as
        // the (never unloaded) library.
        unsafe { Self::from_raw_table(table, path) }
    }

    /// [`from_table`](Self::from_table) for a version 1 table (tests of the
    /// host's handling of old plugins).
    ///
    /// # Errors
    /// As [`from_table`](Self::from_table).
    ///
    /// # Safety
    /// As [`from_table`](Self::from_table).
    pub unsafe fn from_v1_table(table: &'static v1::SinkPluginTable, origin: &Path) -> Result<Self, LoadError> {
        // SAFETY: a reference to a whole version 1 table; the reader looks
        // at the header first and reads only that layout.
        unsafe { Self::from_raw_table((table as *const v1::SinkPluginTable).cast::<SinkPluginTable>(), origin) }
    }

    /// Checks a table that is already in the process (a plugin linked into a
    /// test, see `shardline_plugin_sdk::testing::table`); `origin` names it
    /// in messages.
    ///
    /// # Errors
    /// As [`load`](Self::load), but never [`LoadError::Open`] or
    /// [`LoadError::NotAPlugin`].
    ///
    /// # Safety
    /// The table's functions must keep the ABI's contract.
    pub unsafe fn from_table(table: &'static SinkPluginTable, origin: &Path) -> Result<Self, LoadError> {
        // SAFETY: a reference is a valid pointer to a whole table.
        unsafe { Self::from_raw_table(table, origin) }
    }

    /// # Safety
    /// `table` is null or points to at least a [`TableHeader`], and to
    /// `table_size` readable bytes, valid for the life of the process.
    unsafe fn from_raw_table(table: *const SinkPluginTable, path: &Path) -> Result<Self, LoadError> {
        if table.is_null() {
            return Err(LoadError::NoTable { path: path.to_owned() });
        }
        // The header's layout is the same in every ABI version, so it can be
        // read before the version is known.
        // SAFETY: the caller guarantees a readable header.
        let header = unsafe { table.cast::<TableHeader>().read() };
        let expected_size = match header.abi_version {
            ABI_VERSION => TABLE_SIZE,
            v1::ABI_VERSION => v1::TABLE_SIZE,
            found => {
                return Err(LoadError::AbiMismatch {
                    path: path.to_owned(),
                    found,
                    expected: ABI_VERSION,
                    oldest: OLDEST_SUPPORTED_ABI_VERSION,
                })
            }
        };
        if header.table_size < expected_size {
            return Err(LoadError::TableTooSmall {
                path: path.to_owned(),
                abi_version: header.abi_version,
                found: header.table_size,
                expected: expected_size,
            });
        }
        let invalid = |problem: String| LoadError::InvalidTable { path: path.to_owned(), problem };
        let missing = |name: &str| invalid(format!("function `{name}` is null"));
        let (table, send) = if header.abi_version == ABI_VERSION {
            // SAFETY: `table_size` bytes are readable and cover our table.
            let table = unsafe { table.read() };
            (table, Send::Fenced(table.send.ok_or_else(|| missing("send"))?))
        } else {
            // SAFETY: as above, for the version 1 layout.
            let old = unsafe { table.cast::<v1::SinkPluginTable>().read() };
            tracing::warn!(path = %path.display(), abi_version = header.abi_version, current = ABI_VERSION,
                "plugin built for an older ABI version: loaded without batch fences and without its own metrics; rebuild it with the current shardline-plugin-sdk");
            // Only `send` differs in type between the versions.
            let table = SinkPluginTable {
                abi_version: old.abi_version,
                table_size: old.table_size,
                name: old.name,
                version: old.version,
                describe: old.describe,
                validate: old.validate,
                init: old.init,
                healthcheck: old.healthcheck,
                send: None,
                flush: old.flush,
                close: old.close,
                destroy: old.destroy,
                free_buffer: old.free_buffer,
            };
            (table, Send::V1(old.send.ok_or_else(|| missing("send"))?))
        };
        let fns = Functions {
            describe: table.describe.ok_or_else(|| missing("describe"))?,
            validate: table.validate.ok_or_else(|| missing("validate"))?,
            init: table.init.ok_or_else(|| missing("init"))?,
            healthcheck: table.healthcheck.ok_or_else(|| missing("healthcheck"))?,
            send,
            flush: table.flush.ok_or_else(|| missing("flush"))?,
            close: table.close.ok_or_else(|| missing("close"))?,
            destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
            free_buffer: table.free_buffer.ok_or_else(|| missing("free_buffer"))?,
        };
        // SAFETY: name and version are static in the plugin.
        let name = std::str::from_utf8(unsafe { table.name.as_bytes() })
            .map_err(|_| invalid("the name is not UTF-8".to_owned()))?
            .to_owned();
        if name.is_empty() {
            return Err(invalid("the name is empty".to_owned()));
        }
        let mut plugin =
            LoadedPlugin { path: path.to_owned(), info: PluginInfo::new(name.clone(), ""), abi_version: header.abi_version, fns };
        let mut out = OwnedBuffer::EMPTY;
        // SAFETY: `out` is a valid buffer slot.
        let code = unsafe { (fns.describe)(&mut out) };
        let bytes = plugin.take_buffer(out);
        let describe_error = |message: String| LoadError::Describe { path: path.to_owned(), name: name.clone(), message };
        if code != CALL_OK {
            return Err(describe_error(String::from_utf8_lossy(&bytes).into_owned()));
        }
        let info: PluginInfo = serde_json::from_slice(&bytes).map_err(|e| describe_error(format!("invalid description: {e}")))?;
        if info.name != name {
            return Err(describe_error(format!("describes itself as `{}` but its table says `{name}`", info.name)));
        }
        plugin.info = info;
        Ok(plugin)
    }

    /// Copies a plugin-allocated buffer and gives it back to the plugin.
    pub(crate) fn take_buffer(&self, buffer: OwnedBuffer) -> Vec<u8> {
        let bytes = if buffer.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the plugin filled `len` bytes at `ptr`, valid until freed.
            unsafe { ByteSlice { ptr: buffer.ptr, len: buffer.len }.as_bytes() }.to_vec()
        };
        // SAFETY: the buffer came from this plugin and is freed once, here.
        unsafe { (self.fns.free_buffer)(buffer) };
        bytes
    }

    /// The library file (or the origin given to [`from_table`](Self::from_table)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Name (the sink type it provides), version and config keys.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The ABI version the plugin was built for: [`ABI_VERSION`], or 1 for
    /// a plugin loaded without fences and metrics.
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// The sink type this plugin provides.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Checks a `[sink]` config (without `type`) without I/O: parsing with
    /// the plugin's config type (unknown keys are errors) and its own
    /// checks.
    ///
    /// # Errors
    /// Every problem found, each naming its key when it has one.
    pub fn validate(&self, config: &serde_json::Value) -> Result<(), Vec<ConfigProblem>> {
        let json = serde_json::to_vec(config).map_err(|e| vec![ConfigProblem::general(format!("cannot encode the config: {e}"))])?;
        let mut out = OwnedBuffer::EMPTY;
        // SAFETY: the config is valid for the call and `out` is a valid slot.
        let code = unsafe { (self.fns.validate)(ByteSlice::new(&json), &mut out) };
        let bytes = self.take_buffer(out);
        if code != CALL_OK {
            let message = String::from_utf8_lossy(&bytes);
            return Err(vec![ConfigProblem::general(format!("plugin `{}` could not check the config: {message}", self.name()))]);
        }
        let problems: Vec<ConfigProblem> = serde_json::from_slice(&bytes).map_err(|e| {
            vec![ConfigProblem::general(format!("plugin `{}` answered unreadable problems: {e}", self.name()))]
        })?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// An adapter delivering through this plugin for `pipeline`. Does no
    /// I/O: the plugin instance is made by the first call (usually the
    /// pipeline's healthcheck).
    pub fn build_sink(self: &Arc<Self>, config: serde_json::Value, pipeline: &str) -> PluginSink {
        PluginSink::new(self.clone(), config, pipeline)
    }
}

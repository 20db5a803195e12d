//! The C ABI between the Shardline host and sink plugins (ABI version 2).
//!
//! A sink plugin is a shared library (`cdylib`) that exports one function,
//! [`ENTRY_SYMBOL`] (`shardline_sink_plugin`), of type [`EntryFn`]. It
//! returns a pointer to a [`SinkPluginTable`]: the ABI version, the table's
//! size and function pointers. Only plain C types, byte slices and opaque
//! handles cross the boundary; no Rust type (no `String`, `Vec`, trait
//! object, tokio runtime) does, because Rust has no stable ABI and the host
//! and the plugin may be built by different compilers with different
//! allocators. Plugin authors do not use this crate directly: the
//! `shardline-plugin-sdk` crate implements it behind a safe async trait.
//!
//! # Versioning
//! The first two fields of the table, `abi_version: u32` and
//! `table_size: u32`, keep their place in every version. Within a version,
//! fields may only be added at the end of the table: the host reads fields
//! only up to the `table_size` the plugin reports and refuses a table
//! smaller than the one it was built for. Any other change (a field removed,
//! moved or retyped, a meaning changed) bumps [`ABI_VERSION`]. Structs the
//! host passes in ([`InitContext`], [`FfiBatchFence`], [`HostMetrics`])
//! start with their `struct_size` and only grow at the end.
//!
//! The host loads tables of [`ABI_VERSION`] and of every version from
//! [`OLDEST_SUPPORTED_ABI_VERSION`] on (their layouts are in [`v1`]), and
//! refuses others with a message naming the file and both versions.
//!
//! ## Version 2 (this one), compared with version 1
//! - `send` takes the batch's fence ([`FfiBatchFence`]: shard id and the
//!   lease counter held at send time) as its second argument.
//! - [`InitContext`] ends with `metrics`, a table of host callbacks
//!   ([`HostMetrics`]) through which the plugin's own counters, gauges and
//!   histograms reach the host's `/metrics`.
//!
//! A version 1 plugin still loads (the host logs a warning): it gets no
//! fence and its metrics stay inside the library.
//!
//! # Calls and threads
//! `describe`, `validate` and `destroy` are synchronous and do no I/O.
//! `init` is synchronous and may block (it creates the plugin's tokio
//! runtime and runs the plugin's async `init` on it); the host calls it from
//! a blocking thread. `healthcheck`, `send`, `flush` and `close` return at
//! once and report their outcome later through a [`Completion`]: the plugin
//! runs the work on its own runtime and calls the completion exactly once,
//! from any thread. No host thread waits on the plugin's I/O.
//!
//! # Deadlines
//! The host may stop waiting for an asynchronous call before its completion
//! comes: Shardline abandons a call after `[delivery] call_timeout` and
//! retries it (a `send` may be made again with the same records while the
//! abandoned one still runs). The plugin keeps the right, and the duty, to
//! call the abandoned call's completion exactly once, whenever it finishes:
//! the host keeps the context and the record array alive until then,
//! ignores the late result and frees them. A plugin should therefore write
//! idempotently and bound its own calls below the host's deadline.
//!
//! # Memory
//! - Everything the host passes in (config text, [`InitContext`], the
//!   record array and the bytes it points to) is owned by the host. Config
//!   and context are valid for the duration of the call; the record array of
//!   `send` stays valid until the plugin calls the completion.
//! - A [`CallResult`] passed to a completion, and everything it points to,
//!   is owned by the plugin and valid only during the completion call: the
//!   host copies what it keeps.
//! - An [`OwnedBuffer`] filled by `describe`, `validate` or `init` (on
//!   error) is allocated by the plugin and must be given back to the
//!   plugin's `free_buffer`, exactly once.
//! - The handle returned by `init` is owned by the host until it calls
//!   `destroy`, after which it must not be used. The library itself is
//!   never unloaded.
#![warn(missing_docs)]

use std::ffi::c_void;

pub mod metrics;
pub mod v1;

pub use metrics::{FfiLabel, HostMetrics};

/// The ABI version this crate describes.
pub const ABI_VERSION: u32 = 2;

/// The oldest ABI version a host built from this crate still loads.
pub const OLDEST_SUPPORTED_ABI_VERSION: u32 = 1;

/// Name of the function every plugin exports (NUL-terminated for `dlsym`).
/// It does not change between ABI versions: the version is in the table.
pub const ENTRY_SYMBOL: &[u8] = b"shardline_sink_plugin\0";

/// The type of [`ENTRY_SYMBOL`]. Returns the plugin's table (valid for the
/// life of the process), or null when the plugin cannot describe itself.
pub type EntryFn = unsafe extern "C" fn() -> *const SinkPluginTable;

/// Return value of synchronous calls: success.
pub const CALL_OK: i32 = 0;
/// Return value of synchronous calls: the call failed; its error output
/// was filled.
pub const CALL_ERROR: i32 = 1;

/// Error kind: trying again may succeed.
pub const ERROR_RETRIABLE: u32 = 1;
/// Error kind: trying again gives the same answer.
pub const ERROR_PERMANENT: u32 = 2;

/// Record status: stored by the destination.
pub const STATUS_DELIVERED: u32 = 0;
/// Record status: not stored this time; send again (after `backoff_ms`
/// when `has_backoff` is 1).
pub const STATUS_RETRIABLE: u32 = 1;
/// Record status: never storable; dead-letter it with `reason`.
pub const STATUS_REJECTED: u32 = 2;

/// Borrowed bytes: `len` bytes at `ptr`. `ptr` may be null only when
/// `len` is 0; for optional fields a null `ptr` means "absent".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ByteSlice {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl ByteSlice {
    /// The absent/empty slice (null pointer).
    pub const NULL: ByteSlice = ByteSlice { ptr: std::ptr::null(), len: 0 };

    /// Borrows `bytes` (the caller keeps them alive while the slice is used).
    pub fn new(bytes: &[u8]) -> Self {
        ByteSlice { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// True when `ptr` is null (an absent optional field).
    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }

    /// The bytes, empty for a null slice.
    ///
    /// # Safety
    /// A non-null `ptr` must point to `len` initialised bytes that stay
    /// valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` valid bytes at `ptr` for 'a.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// A buffer allocated by the plugin and handed to the host, which gives it
/// back to the table's `free_buffer` exactly once. `cap` is the plugin's
/// own bookkeeping; the host must not read or change it.
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuffer {
    /// First byte (null for the empty buffer).
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocation size, for the plugin's `free_buffer`.
    pub cap: usize,
}

impl OwnedBuffer {
    /// The empty buffer, which needs no freeing (freeing it is harmless).
    pub const EMPTY: OwnedBuffer = OwnedBuffer { ptr: std::ptr::null_mut(), len: 0, cap: 0 };
}

/// A whole-call error as a completion reports it (borrowed).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallError {
    /// [`ERROR_RETRIABLE`] or [`ERROR_PERMANENT`].
    pub kind: u32,
    /// UTF-8 message.
    pub message: ByteSlice,
}

/// One record of a `send` batch. Text fields are UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiRecord {
    /// The record's body (JSON payloads serialised compactly).
    pub data: ByteSlice,
    /// Stream name.
    pub stream: ByteSlice,
    /// Shard id.
    pub shard_id: ByteSlice,
    /// Sequence number, decimal digits.
    pub sequence_number: ByteSlice,
    /// Index inside a KPL aggregate; 0 when not aggregated.
    pub sub_sequence_number: u64,
    /// Partition key.
    pub partition_key: ByteSlice,
    /// Explicit hash key; null `ptr` when the producer set none.
    pub explicit_hash_key: ByteSlice,
    /// Approximate arrival time, milliseconds since the Unix epoch.
    pub arrival_time_millis: i64,
    /// Event time set by a transform, milliseconds since the Unix epoch;
    /// meaningful only when `has_event_time` is 1.
    pub event_time_millis: i64,
    /// 1 when `event_time_millis` is set, else 0.
    pub has_event_time: u8,
    /// 1 when the record was taken out of a KPL aggregate, else 0.
    pub aggregated: u8,
}

/// The fencing facts of a `send` batch (borrowed: valid until the call's
/// completion, like the records). Text fields are UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiBatchFence {
    /// `size_of::<FfiBatchFence>()` as the host built it; fields are only
    /// added at the end.
    pub struct_size: u32,
    /// The shard every record of the batch comes from.
    pub shard_id: ByteSlice,
    /// The lease's `leaseCounter` when the batch was sent; 0 when it was
    /// sent without a lease.
    pub lease_counter: u64,
}

/// What became of one record (borrowed, inside a [`CallResult`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiRecordStatus {
    /// [`STATUS_DELIVERED`], [`STATUS_RETRIABLE`] or [`STATUS_REJECTED`].
    pub code: u32,
    /// 1 when `backoff_ms` holds a back-off hint (retriable only).
    pub has_backoff: u8,
    /// The destination's back-off hint in milliseconds.
    pub backoff_ms: u64,
    /// Why (retriable and rejected), UTF-8; empty for delivered.
    pub reason: ByteSlice,
}

/// The outcome of an asynchronous call, passed to its [`Completion`].
/// Borrowed: valid only during the completion call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallResult {
    /// [`CALL_OK`] or [`CALL_ERROR`].
    pub code: i32,
    /// The error when `code` is [`CALL_ERROR`].
    pub error: CallError,
    /// `send` only: one status per record, in batch order.
    pub statuses: *const FfiRecordStatus,
    /// `send` only: number of statuses.
    pub statuses_len: usize,
}

/// The completion callback: called exactly once per asynchronous call, from
/// any thread, with the call's `context` and its result. It must not block.
pub type CompletionFn = unsafe extern "C" fn(context: *mut c_void, result: *const CallResult);

/// Where an asynchronous call reports its outcome.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Called once with `context`.
    pub callback: CompletionFn,
    /// Host-owned state for `callback`; opaque to the plugin.
    pub context: *mut c_void,
}

/// Severity of a log line a plugin forwards to the host.
pub const LOG_ERROR: u32 = 1;
/// Warning.
pub const LOG_WARN: u32 = 2;
/// Information.
pub const LOG_INFO: u32 = 3;
/// Debugging detail.
pub const LOG_DEBUG: u32 = 4;
/// Tracing detail.
pub const LOG_TRACE: u32 = 5;

/// Host function that logs one line for the plugin: level, target (module
/// path) and message, UTF-8, borrowed for the call. Callable from any
/// thread, non-blocking.
pub type LogFn = unsafe extern "C" fn(level: u32, target: ByteSlice, message: ByteSlice);

/// What the host tells `init` (borrowed for the call).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InitContext {
    /// `size_of::<InitContext>()` as the host built it; fields are only
    /// added at the end.
    pub struct_size: u32,
    /// The pipeline's name, UTF-8.
    pub pipeline: ByteSlice,
    /// Where the plugin sends its log lines; `None` to drop them.
    pub log: Option<LogFn>,
    /// The most detailed level the host logs: 0 = off, else one of
    /// [`LOG_ERROR`]..=[`LOG_TRACE`]. The plugin need not forward more.
    pub max_level: u32,
    /// Version 2: where the plugin records its metrics; null for none. The
    /// table is valid for the call; the plugin copies it, and its
    /// functions stay callable for the life of the process.
    pub metrics: *const HostMetrics,
}

/// The type of [`SinkPluginTable::send`] (version 2).
pub type SendFn =
    unsafe extern "C" fn(handle: *mut c_void, fence: *const FfiBatchFence, records: *const FfiRecord, len: usize, completion: Completion);

/// The plugin's table, returned by [`ENTRY_SYMBOL`]. Every function pointer
/// must be set (the host refuses a table with a null one).
///
/// Config text is JSON: the `[sink]` table of the pipeline file without
/// `type`, converted from TOML to a JSON object by the host.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SinkPluginTable {
    /// [`ABI_VERSION`] the plugin was built for. Never moves.
    pub abi_version: u32,
    /// `size_of::<SinkPluginTable>()` as the plugin built it. Never moves.
    pub table_size: u32,
    /// The sink type the plugin provides (`type = "<name>"`), UTF-8,
    /// static.
    pub name: ByteSlice,
    /// The plugin's version, UTF-8, static.
    pub version: ByteSlice,
    /// Writes the plugin's description as JSON (`{"name", "version",
    /// "description", "config_keys": [{"name", "required", "description"}]}`)
    /// into `out`. Returns [`CALL_OK`], else [`CALL_ERROR`] with a UTF-8
    /// message in `out`.
    pub describe: Option<unsafe extern "C" fn(out: *mut OwnedBuffer) -> i32>,
    /// Checks a config (JSON) without I/O. Writes a JSON array of problems
    /// (`[{"key": "bucket" | null, "message": "..."}]`, empty when valid)
    /// into `out` and returns [`CALL_OK`]; [`CALL_ERROR`] with a message in
    /// `out` when the check itself failed (a panic).
    pub validate: Option<unsafe extern "C" fn(config: ByteSlice, out: *mut OwnedBuffer) -> i32>,
    /// Creates an instance (its own runtime) from a config (JSON) and runs
    /// the plugin's async init to completion; may block. On [`CALL_OK`]
    /// `out_handle` holds the instance; on [`CALL_ERROR`] `out_error_kind`
    /// holds [`ERROR_RETRIABLE`] or [`ERROR_PERMANENT`] and `out_error` a
    /// message.
    pub init: Option<
        unsafe extern "C" fn(
            config: ByteSlice,
            context: *const InitContext,
            out_handle: *mut *mut c_void,
            out_error_kind: *mut u32,
            out_error: *mut OwnedBuffer,
        ) -> i32,
    >,
    /// Checks the destination; answers through `completion`.
    pub healthcheck: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    /// Sends `len` records; answers through `completion` with one status
    /// per record. `fence` (null when the batch has none) and `records`
    /// stay valid until `completion` is called.
    pub send: Option<SendFn>,
    /// Makes acknowledged records durable; answers through `completion`.
    pub flush: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    /// Releases the destination's resources; answers through `completion`.
    /// No call but `destroy` follows.
    pub close: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    /// Frees the instance and stops its runtime without waiting. Calls
    /// still running are abandoned: their completions may never be called.
    pub destroy: Option<unsafe extern "C" fn(handle: *mut c_void)>,
    /// Frees a buffer the plugin allocated.
    pub free_buffer: Option<unsafe extern "C" fn(buffer: OwnedBuffer)>,
}

/// Size of [`SinkPluginTable`] in this version, as written in `table_size`.
pub const TABLE_SIZE: u32 = std::mem::size_of::<SinkPluginTable>() as u32;

/// The fixed prefix of every table version: what a host reads before it
/// knows the version.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableHeader {
    /// See [`SinkPluginTable::abi_version`].
    pub abi_version: u32,
    /// See [`SinkPluginTable::table_size`].
    pub table_size: u32,
}

/// A table pointer the plugin may share across threads: the table is
/// immutable and lives as long as the process.
#[derive(Debug, Clone, Copy)]
pub struct StaticTable(pub &'static SinkPluginTable);

// SAFETY: a table is never written after the entry function returned it,
// and its pointers only reference immutable static data and functions.
unsafe impl Send for StaticTable {}
// SAFETY: as above.
unsafe impl Sync for StaticTable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_the_prefix_of_the_table() {
        assert_eq!(std::mem::offset_of!(SinkPluginTable, abi_version), std::mem::offset_of!(TableHeader, abi_version));
        assert_eq!(std::mem::offset_of!(SinkPluginTable, table_size), std::mem::offset_of!(TableHeader, table_size));
        assert_eq!(std::mem::size_of::<TableHeader>(), 8);
    }

    #[test]
    fn optional_function_pointers_are_pointer_sized() {
        assert_eq!(std::mem::size_of::<Option<unsafe extern "C" fn(*mut c_void)>>(), std::mem::size_of::<usize>());
        assert_eq!(TABLE_SIZE as usize, 8 + 2 * std::mem::size_of::<ByteSlice>() + 9 * std::mem::size_of::<usize>());
        // Only `send`'s type changed from version 1: the layouts match.
        assert_eq!(TABLE_SIZE, v1::TABLE_SIZE);
        assert_eq!(std::mem::offset_of!(SinkPluginTable, send), std::mem::offset_of!(v1::SinkPluginTable, send));
        assert_eq!(std::mem::offset_of!(InitContext, max_level), std::mem::offset_of!(v1::InitContext, max_level));
        assert!(std::mem::size_of::<InitContext>() > std::mem::size_of::<v1::InitContext>());
    }

    #[test]
    fn null_slices_read_as_empty() {
        // SAFETY: null slices never dereference their pointer.
        assert!(unsafe { ByteSlice::NULL.as_bytes() }.is_empty());
        let text = b"abc";
        // SAFETY: `text` outlives the read.
        assert_eq!(unsafe { ByteSlice::new(text).as_bytes() }, b"abc");
    }
}

//! ABI version 1, as far as it differs from version 2: the table (whose
//! `send` takes no fence) and the init context (without `metrics`). A host
//! reads a version 1 plugin's table with these types; everything else
//! (records, statuses, completions, buffers) is the same in both versions.

use std::ffi::c_void;

use crate::{ByteSlice, Completion, FfiRecord, LogFn, OwnedBuffer};

/// ABI version 1.
pub const ABI_VERSION: u32 = 1;

/// The type of [`SinkPluginTable::send`] in version 1: no fence.
pub type SendFn = unsafe extern "C" fn(
    handle: *mut c_void,
    records: *const FfiRecord,
    len: usize,
    completion: Completion,
);

/// The version 1 init context: [`crate::InitContext`] without `metrics`.
/// A version 2 host passes its own (longer) context to a version 1
/// plugin, which reads only these fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InitContext {
    /// As in version 2.
    pub struct_size: u32,
    /// As in version 2.
    pub pipeline: ByteSlice,
    /// As in version 2.
    pub log: Option<LogFn>,
    /// As in version 2.
    pub max_level: u32,
}

/// The version 1 table: the same fields as [`crate::SinkPluginTable`],
/// but `send` has the version 1 type.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // the fields mean what they mean in version 2
pub struct SinkPluginTable {
    pub abi_version: u32,
    pub table_size: u32,
    pub name: ByteSlice,
    pub version: ByteSlice,
    pub describe: Option<unsafe extern "C" fn(out: *mut OwnedBuffer) -> i32>,
    pub validate: Option<unsafe extern "C" fn(config: ByteSlice, out: *mut OwnedBuffer) -> i32>,
    pub init: Option<
        unsafe extern "C" fn(
            config: ByteSlice,
            context: *const crate::InitContext,
            out_handle: *mut *mut c_void,
            out_error_kind: *mut u32,
            out_error: *mut OwnedBuffer,
        ) -> i32,
    >,
    pub healthcheck: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    pub send: Option<SendFn>,
    pub flush: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    pub close: Option<unsafe extern "C" fn(handle: *mut c_void, completion: Completion)>,
    pub destroy: Option<unsafe extern "C" fn(handle: *mut c_void)>,
    pub free_buffer: Option<unsafe extern "C" fn(buffer: OwnedBuffer)>,
}

/// Size of the version 1 table.
pub const TABLE_SIZE: u32 = std::mem::size_of::<SinkPluginTable>() as u32;

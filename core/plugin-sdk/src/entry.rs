//! The `extern "C"` functions behind a plugin's table, generic over the
//! [`SinkPlugin`]. Every one catches panics; none lets one unwind into the
//! host.
//!
//! An instance (the handle given to the host) owns the plugin value and its
//! tokio runtime. Asynchronous calls spawn a task on that runtime and
//! answer through the host's completion; a [`Completer`] guarantees the
//! completion is called exactly once, with an error when the task panicked
//! or was dropped (runtime shut down) before answering.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use shardline_api::{RecordStatus, SinkError};
use shardline_plugin_abi::{
    ByteSlice, Completion, FfiBatchFence, FfiRecord, InitContext as FfiInitContext, OwnedBuffer, SinkPluginTable, StaticTable,
    ABI_VERSION, CALL_ERROR, CALL_OK, TABLE_SIZE,
};

use crate::convert::{copy_fence, copy_records, error_kind_code, free_buffer, into_buffer, panic_message, with_call_result};
use crate::info::{parse_config, ConfigProblem, InitContext};
use crate::SinkPlugin;

/// The table a plugin exports, made on first use (see
/// [`export_sink_plugin!`](crate::export_sink_plugin)).
pub struct TableCell(OnceLock<Option<StaticTable>>);

impl TableCell {
    /// An empty cell (for a `static`).
    pub const fn new() -> Self {
        TableCell(OnceLock::new())
    }

    /// The table for `P`, or null when `P::describe` panicked.
    pub fn get<P: SinkPlugin>(&self) -> *const SinkPluginTable {
        let table = self.0.get_or_init(|| {
            catch_unwind(|| build_table::<P>()).ok().map(|table| StaticTable(Box::leak(Box::new(table))))
        });
        match table {
            Some(StaticTable(t)) => *t as *const SinkPluginTable,
            None => std::ptr::null(),
        }
    }
}

impl Default for TableCell {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds `P`'s table; name and version strings are leaked (they live as
/// long as the library, which is never unloaded).
pub(crate) fn build_table<P: SinkPlugin>() -> SinkPluginTable {
    let info = P::describe();
    let name: &'static str = Box::leak(info.name.into_boxed_str());
    let version: &'static str = Box::leak(info.version.into_boxed_str());
    SinkPluginTable {
        abi_version: ABI_VERSION,
        table_size: TABLE_SIZE,
        name: ByteSlice::new(name.as_bytes()),
        version: ByteSlice::new(version.as_bytes()),
        describe: Some(describe::<P>),
        validate: Some(validate::<P>),
        init: Some(init::<P>),
        healthcheck: Some(healthcheck::<P>),
        send: Some(send::<P>),
        flush: Some(flush::<P>),
        close: Some(close::<P>),
        destroy: Some(destroy::<P>),
        free_buffer: Some(free),
    }
}

/// An initialised plugin: what the host's handle points to.
struct Instance<P> {
    plugin: Arc<P>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Writes `bytes` to `out` when `out` is not null.
///
/// # Safety
/// `out` is null or valid for a write.
unsafe fn write_out(out: *mut OwnedBuffer, bytes: Vec<u8>) {
    if !out.is_null() {
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { out.write(into_buffer(bytes)) };
    }
}

/// # Safety
/// `out` is null or valid for a write.
unsafe extern "C" fn describe<P: SinkPlugin>(out: *mut OwnedBuffer) -> i32 {
    let result = catch_unwind(|| serde_json::to_vec(&P::describe()).map_err(|e| e.to_string()));
    let (code, bytes) = match result {
        Ok(Ok(json)) => (CALL_OK, json),
        Ok(Err(e)) => (CALL_ERROR, format!("cannot encode the description: {e}").into_bytes()),
        Err(panic) => (CALL_ERROR, format!("plugin panicked in describe: {}", panic_message(&*panic)).into_bytes()),
    };
    // SAFETY: forwarded from the caller.
    unsafe { write_out(out, bytes) };
    code
}

fn check_config<P: SinkPlugin>(json: &[u8]) -> Result<P::Config, Vec<ConfigProblem>> {
    let config: P::Config = parse_config(json).map_err(|p| vec![p])?;
    P::validate(&config)?;
    Ok(config)
}

/// # Safety
/// `config` is valid for the call; `out` is null or valid for a write.
unsafe extern "C" fn validate<P: SinkPlugin>(config: ByteSlice, out: *mut OwnedBuffer) -> i32 {
    let result = catch_unwind(|| {
        // SAFETY: the host keeps the config valid for the call.
        let json = unsafe { config.as_bytes() };
        let problems = match check_config::<P>(json) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
        serde_json::to_vec(&problems).map_err(|e| e.to_string())
    });
    let (code, bytes) = match result {
        Ok(Ok(json)) => (CALL_OK, json),
        Ok(Err(e)) => (CALL_ERROR, format!("cannot encode the problems: {e}").into_bytes()),
        Err(panic) => (CALL_ERROR, format!("plugin panicked in validate: {}", panic_message(&*panic)).into_bytes()),
    };
    // SAFETY: forwarded from the caller.
    unsafe { write_out(out, bytes) };
    code
}

/// # Safety
/// `config` and `context` are valid for the call; the out pointers are
/// null or valid for a write.
unsafe extern "C" fn init<P: SinkPlugin>(
    config: ByteSlice,
    context: *const FfiInitContext,
    out_handle: *mut *mut c_void,
    out_error_kind: *mut u32,
    out_error: *mut OwnedBuffer,
) -> i32 {
    let result = catch_unwind(|| {
        // SAFETY: the host keeps config and context valid for the call.
        let (json, context) = unsafe { (config.as_bytes(), context.as_ref()) };
        init_instance::<P>(json, context)
    });
    let failure = match result {
        Ok(Ok(instance)) => {
            if out_handle.is_null() {
                return CALL_ERROR;
            }
            // SAFETY: checked non-null; the caller guarantees it is writable.
            unsafe { out_handle.write(Box::into_raw(Box::new(instance)).cast::<c_void>()) };
            return CALL_OK;
        }
        Ok(Err(e)) => e,
        Err(panic) => SinkError::permanent(format!("plugin panicked in init: {}", panic_message(&*panic))),
    };
    if !out_error_kind.is_null() {
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { out_error_kind.write(error_kind_code(failure.kind)) };
    }
    // SAFETY: forwarded from the caller.
    unsafe { write_out(out_error, failure.message.into_bytes()) };
    CALL_ERROR
}

fn init_instance<P: SinkPlugin>(json: &[u8], context: Option<&FfiInitContext>) -> Result<Instance<P>, SinkError> {
    let config = check_config::<P>(json).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        SinkError::permanent(format!("invalid config: {}", text.join("; ")))
    })?;
    let mut pipeline = String::new();
    if let Some(context) = context {
        // SAFETY: the host keeps the context's slices valid for the call.
        pipeline = String::from_utf8_lossy(unsafe { context.pipeline.as_bytes() }).into_owned();
        crate::log::install(context);
        crate::metrics::install(context);
    }
    let name = P::describe().name;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(P::WORKER_THREADS.max(1))
        .thread_name(format!("plugin-{name}"))
        .enable_all()
        .build()
        .map_err(|e| SinkError::retriable(format!("plugin {name}: cannot start its tokio runtime: {e}")))?;
    // The host calls `init` from a thread of its own (a blocking-pool
    // thread), never from inside this runtime, so blocking here is allowed.
    match runtime.block_on(P::init(config, InitContext { pipeline })) {
        Ok(plugin) => Ok(Instance { plugin: Arc::new(plugin), runtime: Some(runtime) }),
        Err(e) => {
            runtime.shutdown_background();
            Err(e)
        }
    }
}

/// Calls the host's completion exactly once: with [`finish`](Self::finish),
/// or on drop with a permanent error (the call's task panicked before
/// answering or was dropped by a runtime shutdown).
struct Completer(Option<Completion>);

// SAFETY: the ABI requires the completion to be callable from any thread
// (its context is the host's and is only handed back to its callback).
unsafe impl Send for Completer {}

impl Completer {
    fn finish(mut self, outcome: &Result<Vec<RecordStatus>, SinkError>) {
        if let Some(completion) = self.0.take() {
            with_call_result(outcome, |result| {
                // SAFETY: the callback and context come from the host, which
                // keeps them valid until this single call; `result` is valid
                // for the duration of the call.
                unsafe { (completion.callback)(completion.context, result) }
            });
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if self.0.is_some() {
            let outcome = Err(SinkError::permanent("plugin call ended without an answer (its runtime shut down)"));
            Completer(self.0.take()).finish(&outcome);
        }
    }
}

/// The batch pointers (fence, records), sendable to the runtime: the host
/// keeps them valid until the completion is called.
struct Batch(*const FfiBatchFence, *const FfiRecord, usize);

// SAFETY: the records are only read, and the host guarantees they stay
// valid (and unchanged) until the completion is called.
unsafe impl Send for Batch {}

/// Spawns `call` on the instance's runtime and answers `completion` with
/// its outcome (an error when it panics).
///
/// # Safety
/// `handle` is a live handle made by `init::<P>`.
unsafe fn spawn_call<P, F, Fut>(handle: *mut c_void, completion: Completion, what: &'static str, call: F)
where
    P: SinkPlugin,
    F: FnOnce(Arc<P>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<RecordStatus>, SinkError>> + Send + 'static,
{
    let completer = Completer(Some(completion));
    // A panic here drops `completer`, which answers with an error.
    let _ = catch_unwind(AssertUnwindSafe(move || {
        // SAFETY: the caller guarantees a live handle made by `init::<P>`.
        let Some(instance) = (unsafe { handle.cast::<Instance<P>>().as_ref() }) else {
            completer.finish(&Err(SinkError::permanent(format!("{what}: null plugin handle"))));
            return;
        };
        let Some(runtime) = instance.runtime.as_ref() else {
            completer.finish(&Err(SinkError::permanent(format!("{what}: plugin instance is destroyed"))));
            return;
        };
        let plugin = instance.plugin.clone();
        runtime.spawn(async move {
            let outcome = match AssertUnwindSafe(call(plugin)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => Err(SinkError::permanent(format!("plugin panicked in {what}: {}", panic_message(&*panic)))),
            };
            completer.finish(&outcome);
        });
    }));
}

/// # Safety
/// `handle` is a live handle made by this plugin's `init`.
unsafe extern "C" fn healthcheck<P: SinkPlugin>(handle: *mut c_void, completion: Completion) {
    // SAFETY: forwarded from the caller.
    unsafe { spawn_call::<P, _, _>(handle, completion, "healthcheck", |p| async move { p.healthcheck().await.map(|()| Vec::new()) }) }
}

/// # Safety
/// `handle` is a live handle made by this plugin's `init`; `fence` is null
/// or valid, and `records` points to `len` records, until `completion` is
/// called.
unsafe extern "C" fn send<P: SinkPlugin>(
    handle: *mut c_void,
    fence: *const FfiBatchFence,
    records: *const FfiRecord,
    len: usize,
    completion: Completion,
) {
    let batch = Batch(fence, records, len);
    let call = move |p: Arc<P>| async move {
        let batch = batch;
        // SAFETY: the host keeps the batch valid until the completion,
        // which is called only after this future finished.
        let (fence, records) = unsafe { (copy_fence(batch.0)?, copy_records(batch.1, batch.2)?) };
        p.send_fenced(fence.as_ref(), &records).await
    };
    // SAFETY: forwarded from the caller.
    unsafe { spawn_call::<P, _, _>(handle, completion, "send", call) }
}

/// # Safety
/// `handle` is a live handle made by this plugin's `init`.
unsafe extern "C" fn flush<P: SinkPlugin>(handle: *mut c_void, completion: Completion) {
    // SAFETY: forwarded from the caller.
    unsafe { spawn_call::<P, _, _>(handle, completion, "flush", |p| async move { p.flush().await.map(|()| Vec::new()) }) }
}

/// # Safety
/// `handle` is a live handle made by this plugin's `init`.
unsafe extern "C" fn close<P: SinkPlugin>(handle: *mut c_void, completion: Completion) {
    // SAFETY: forwarded from the caller.
    unsafe { spawn_call::<P, _, _>(handle, completion, "close", |p| async move { p.close().await.map(|()| Vec::new()) }) }
}

/// # Safety
/// `handle` is null or a live handle made by this plugin's `init`, not used
/// again afterwards.
unsafe extern "C" fn destroy<P: SinkPlugin>(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        // SAFETY: the caller hands back ownership of a handle from `init::<P>`.
        let mut instance = unsafe { Box::from_raw(handle.cast::<Instance<P>>()) };
        if let Some(runtime) = instance.runtime.take() {
            // Not waiting: the host may call this from async code.
            runtime.shutdown_background();
        }
    });
}

/// # Safety
/// `buffer` was filled by this plugin and is not used again.
unsafe extern "C" fn free(buffer: OwnedBuffer) {
    // SAFETY: forwarded from the caller.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { free_buffer(buffer) }));
}

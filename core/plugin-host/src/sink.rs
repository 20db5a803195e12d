//! [`PluginSink`]: a loaded plugin as a [`shardline_api::Sink`].
//!
//! Each asynchronous call boxes a [`CallState`] (the oneshot sender and, for
//! `send`, the batch in C form) and hands it to the plugin as the
//! completion's context. The plugin calls [`on_complete`] exactly once; it
//! copies the result, fulfils the channel and frees the state, and with it
//! the batch. The host future only awaits the channel, so dropping it (the
//! call is cancelled, e.g. abandoned after `[delivery] call_timeout`) never
//! frees memory the plugin still reads, and a completion that comes after
//! that is ignored: it finds the receiver gone, counts itself in
//! `shardline_plugin_late_completions_total` and frees the state. Nothing
//! is acknowledged twice, because only the value the host future returns
//! reaches the engine.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::{BatchFence, ErrorKind, Record, RecordMeta, RecordStatus, Sink, SinkError};
use shardline_plugin_abi::{
    ByteSlice, CallResult, Completion, FfiBatchFence, FfiRecord, InitContext, OwnedBuffer, CALL_OK, ERROR_PERMANENT, ERROR_RETRIABLE,
    LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN, STATUS_DELIVERED, STATUS_REJECTED, STATUS_RETRIABLE,
};
use tokio::sync::{oneshot, OnceCell};

use crate::library::{LoadedPlugin, Send as SendFn};
use crate::metrics::HOST_METRICS;

/// A plugin instance's handle, destroyed when dropped. The SDK's handles
/// are `Send + Sync` (the plugin value is `Sync`, its runtime is
/// thread-safe); the ABI requires it of every plugin.
///
/// Owning the handle also makes `init` cancel safe: when the future that
/// waits for it is dropped (the first call abandoned after its deadline),
/// the blocking task's result is dropped and the instance destroyed,
/// instead of leaking with its runtime.
struct Handle {
    ptr: *mut c_void,
    destroy: unsafe extern "C" fn(handle: *mut c_void),
}

// SAFETY: see above; the handle is only passed back to the plugin.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// Delivers through a loaded plugin. Made by [`LoadedPlugin::build_sink`].
///
/// The plugin instance (and its runtime) is created by the first call,
/// usually the pipeline's healthcheck, on tokio's blocking pool; a failed
/// init is tried again by the next call. The instance is destroyed when the
/// sink is dropped.
///
/// # Cancel safety
/// Every call is cancel safe: dropping its future (the engine abandons a
/// call after `[delivery] call_timeout`) leaves the call running in the
/// plugin with everything it reads, and its late answer is ignored.
pub struct PluginSink {
    plugin: Arc<LoadedPlugin>,
    config: Arc<Vec<u8>>,
    pipeline: Arc<str>,
    instance: OnceCell<Handle>,
}

impl std::fmt::Debug for PluginSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSink").field("plugin", &self.plugin.name()).field("pipeline", &self.pipeline).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Call {
    Healthcheck,
    Send,
    Flush,
    Close,
}

impl Call {
    fn as_str(self) -> &'static str {
        match self {
            Call::Healthcheck => "healthcheck",
            Call::Send => "send",
            Call::Flush => "flush",
            Call::Close => "close",
        }
    }
}

type Outcome = Result<Vec<RecordStatus>, SinkError>;

/// What a completion's context points to.
struct CallState {
    reply: oneshot::Sender<Outcome>,
    /// For the log line and metric of a late completion.
    plugin: Arc<LoadedPlugin>,
    call: Call,
    _batch: Option<FfiBatch>,
}

/// A batch in C form and the data its pointers point into.
struct FfiBatch {
    records: Vec<FfiRecord>,
    /// Boxed so its address survives moves of the batch; its `shard_id`
    /// points into `_fence_shard`.
    fence: Option<Box<FfiBatchFence>>,
    _fence_shard: Option<Arc<str>>,
    _data: Vec<Bytes>,
    _metas: Vec<Arc<RecordMeta>>,
}

// SAFETY: the raw pointers in `records` point into `_data` and `_metas`,
// which the batch owns and which are immutable.
unsafe impl Send for FfiBatch {}

fn millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

impl FfiBatch {
    fn new(batch: &[Record], fence: Option<&BatchFence>) -> Self {
        let data: Vec<Bytes> = batch.iter().map(|r| r.payload.to_bytes()).collect();
        let metas: Vec<Arc<RecordMeta>> = batch.iter().map(|r| r.meta.clone()).collect();
        // The pointers point into heap data owned by `data` and `metas`
        // (Bytes and Arc contents never move).
        let records = batch
            .iter()
            .zip(&data)
            .zip(&metas)
            .map(|((record, data), meta)| FfiRecord {
                data: ByteSlice::new(data),
                stream: ByteSlice::new(meta.stream.as_bytes()),
                shard_id: ByteSlice::new(meta.shard_id.as_bytes()),
                sequence_number: ByteSlice::new(meta.sequence_number.as_str().as_bytes()),
                sub_sequence_number: meta.sub_sequence_number,
                partition_key: ByteSlice::new(meta.partition_key.as_bytes()),
                explicit_hash_key: meta.explicit_hash_key.as_deref().map_or(ByteSlice::NULL, |k| ByteSlice::new(k.as_bytes())),
                arrival_time_millis: millis(meta.arrival_time),
                event_time_millis: record.event_time.map_or(0, millis),
                has_event_time: u8::from(record.event_time.is_some()),
                aggregated: u8::from(meta.aggregated),
            })
            .collect();
        let shard = fence.map(|f| f.shard_id.clone());
        let fence = fence.zip(shard.as_ref()).map(|(f, shard)| {
            Box::new(FfiBatchFence {
                struct_size: std::mem::size_of::<FfiBatchFence>() as u32,
                shard_id: ByteSlice::new(shard.as_bytes()),
                lease_counter: f.lease_counter,
            })
        });
        FfiBatch { records, fence, _fence_shard: shard, _data: data, _metas: metas }
    }
}

/// The completion callback the host gives every asynchronous call.
///
/// # Safety
/// `context` is a `CallState` boxed by [`PluginSink::start`], passed here
/// once; `result` is null or valid for the call.
unsafe extern "C" fn on_complete(context: *mut c_void, result: *const CallResult) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if context.is_null() {
            return;
        }
        // SAFETY: `context` is the box `start` leaked for this call, whose
        // one owner is the plugin until it hands it back here, exactly once
        // (the ABI's rule; the SDK's `Completer` keeps it even when the
        // call panics). The host future holds only the receiver, so the
        // box is not freed anywhere else, however long the plugin takes
        // and whether or not the host still waits.
        let state = unsafe { Box::from_raw(context.cast::<CallState>()) };
        // SAFETY: the plugin keeps `result` valid for this call.
        let outcome = match unsafe { result.as_ref() } {
            // SAFETY: as above, and what it points to.
            Some(result) => unsafe { copy_outcome(result) },
            None => Err(SinkError::permanent("the plugin answered without a result")),
        };
        let CallState { reply, plugin, call, _batch } = *state;
        // The receiver is gone when the host stopped waiting (the call was
        // abandoned after call_timeout, or cancelled): the answer is
        // dropped, and with it the batch the plugin no longer reads.
        if let Err(outcome) = reply.send(outcome) {
            metrics::counter!("shardline_plugin_late_completions_total", "plugin" => plugin.name().to_owned(), "call" => call.as_str())
                .increment(1);
            tracing::debug!(plugin = %plugin.name(), call = call.as_str(), outcome = outcome_label(&outcome),
                "plugin answered a call the host no longer waits for; ignored");
        }
    }));
}

fn text(slice: ByteSlice) -> String {
    // SAFETY: callers pass slices the plugin keeps valid for the completion.
    String::from_utf8_lossy(unsafe { slice.as_bytes() }).into_owned()
}

/// # Safety
/// `result` and what it points to are valid for the call.
unsafe fn copy_outcome(result: &CallResult) -> Outcome {
    if result.code != CALL_OK {
        let kind = if result.error.kind == ERROR_RETRIABLE { ErrorKind::Retriable } else { ErrorKind::Permanent };
        return Err(SinkError { kind, message: text(result.error.message) });
    }
    if result.statuses.is_null() || result.statuses_len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the plugin passes `statuses_len` statuses, valid for the call.
    let statuses = unsafe { std::slice::from_raw_parts(result.statuses, result.statuses_len) };
    Ok(statuses
        .iter()
        .map(|s| match s.code {
            STATUS_DELIVERED => RecordStatus::Delivered,
            STATUS_RETRIABLE => RecordStatus::Retriable {
                reason: text(s.reason),
                backoff: (s.has_backoff != 0).then(|| Duration::from_millis(s.backoff_ms)),
            },
            STATUS_REJECTED => RecordStatus::Rejected { reason: text(s.reason) },
            other => RecordStatus::Rejected { reason: format!("the plugin answered an unknown status code {other}: {}", text(s.reason)) },
        })
        .collect())
}

/// Logs a line on the plugin's behalf (the `log` of [`InitContext`]).
///
/// # Safety
/// `target` and `message` are valid for the call.
unsafe extern "C" fn host_log(level: u32, target: ByteSlice, message: ByteSlice) {
    let _ = catch_unwind(|| {
        let (target, message) = (text(target), text(message));
        macro_rules! emit {
            ($target:literal) => {
                match level {
                    LOG_ERROR => tracing::error!(target: $target, plugin = %target, "{message}"),
                    LOG_WARN => tracing::warn!(target: $target, plugin = %target, "{message}"),
                    LOG_INFO => tracing::info!(target: $target, plugin = %target, "{message}"),
                    LOG_DEBUG => tracing::debug!(target: $target, plugin = %target, "{message}"),
                    _ => tracing::trace!(target: $target, plugin = %target, "{message}"),
                }
            };
        }
        // The AWS SDK's own lines inside a plugin (aws_config,
        // aws_smithy_*) get a target of their own, so that the host's
        // filter keeps them as quiet as the host's own SDK lines.
        if target.starts_with("aws_") {
            emit!("shardline::plugin::aws");
        } else {
            emit!("shardline::plugin");
        }
    });
}

fn host_max_level() -> u32 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => LOG_ERROR,
        LevelFilter::WARN => LOG_WARN,
        LevelFilter::INFO => LOG_INFO,
        LevelFilter::DEBUG => LOG_DEBUG,
        _ => LOG_TRACE,
    }
}

fn outcome_label<T>(result: &Result<T, SinkError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) if e.kind.is_retriable() => "retriable",
        Err(_) => "permanent",
    }
}

impl PluginSink {
    pub(crate) fn new(plugin: Arc<LoadedPlugin>, config: serde_json::Value, pipeline: &str) -> Self {
        // A `serde_json::Value` always serialises.
        let config = serde_json::to_vec(&config).unwrap_or_else(|_| b"{}".to_vec());
        // Plugins linked into this image share its `metrics`: they need no
        // bridge (and must not install one).
        shardline_plugin_sdk::__private::mark_host_image();
        PluginSink { plugin, config: Arc::new(config), pipeline: Arc::from(pipeline), instance: OnceCell::new() }
    }

    /// The plugin this sink delivers through.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    fn record_call<T>(&self, call: &'static str, started: Instant, result: &Result<T, SinkError>) {
        let plugin = self.plugin.name().to_owned();
        metrics::counter!("shardline_plugin_calls_total", "plugin" => plugin.clone(), "call" => call, "outcome" => outcome_label(result))
            .increment(1);
        metrics::histogram!("shardline_plugin_call_duration_seconds", "plugin" => plugin, "call" => call)
            .record(started.elapsed().as_secs_f64());
    }

    fn with_context(&self, e: SinkError) -> SinkError {
        SinkError { kind: e.kind, message: format!("sink plugin `{}`: {}", self.plugin.name(), e.message) }
    }

    async fn handle(&self) -> Result<&Handle, SinkError> {
        self.instance.get_or_try_init(|| self.init()).await
    }

    async fn init(&self) -> Result<Handle, SinkError> {
        let started = Instant::now();
        let plugin = self.plugin.clone();
        let config = self.config.clone();
        let pipeline = self.pipeline.clone();
        let max_level = host_max_level();
        let joined = tokio::task::spawn_blocking(move || {
            let context = InitContext {
                struct_size: std::mem::size_of::<InitContext>() as u32,
                pipeline: ByteSlice::new(pipeline.as_bytes()),
                log: Some(host_log),
                max_level,
                metrics: &HOST_METRICS,
            };
            let mut handle: *mut c_void = std::ptr::null_mut();
            let mut kind = ERROR_PERMANENT;
            let mut message = OwnedBuffer::EMPTY;
            // SAFETY: every pointer is valid for the call; config and
            // context outlive it.
            let code = unsafe { (plugin.fns.init)(ByteSlice::new(&config), &context, &mut handle, &mut kind, &mut message) };
            let message = plugin.take_buffer(message);
            if code == CALL_OK && !handle.is_null() {
                Ok(Handle { ptr: handle, destroy: plugin.fns.destroy })
            } else {
                let kind = if kind == ERROR_RETRIABLE { ErrorKind::Retriable } else { ErrorKind::Permanent };
                let message = String::from_utf8_lossy(&message).into_owned();
                Err(SinkError { kind, message: format!("init failed: {message}") })
            }
        })
        .await;
        let result = match joined {
            Ok(result) => result,
            Err(e) => Err(SinkError::permanent(format!("init task failed: {e}"))),
        };
        self.record_call("init", started, &result);
        result.map_err(|e| self.with_context(e))
    }

    /// Starts an asynchronous call; the receiver gets its outcome.
    fn start(&self, handle: &Handle, call: Call, batch: Option<FfiBatch>) -> oneshot::Receiver<Outcome> {
        let (reply, receiver) = oneshot::channel();
        let (records, len) = batch.as_ref().map_or((std::ptr::null(), 0), |b| (b.records.as_ptr(), b.records.len()));
        let fence: *const FfiBatchFence = batch.as_ref().and_then(|b| b.fence.as_deref()).map_or(std::ptr::null(), |f| f as *const _);
        let state = Box::into_raw(Box::new(CallState { reply, plugin: self.plugin.clone(), call, _batch: batch }));
        let completion = Completion { callback: on_complete, context: state.cast::<c_void>() };
        let fns = &self.plugin.fns;
        // SAFETY: the handle is live (destroyed only on drop); the records
        // live in `state`, which only `on_complete` frees. From here the
        // plugin owns `state`: the host keeps no pointer to it, only the
        // receiver.
        unsafe {
            match call {
                Call::Healthcheck => (fns.healthcheck)(handle.ptr, completion),
                Call::Send => match fns.send {
                    SendFn::Fenced(send) => send(handle.ptr, fence, records, len, completion),
                    SendFn::V1(send) => send(handle.ptr, records, len, completion),
                },
                Call::Flush => (fns.flush)(handle.ptr, completion),
                Call::Close => (fns.close)(handle.ptr, completion),
            }
        }
        receiver
    }

    async fn call(&self, call: Call, batch: Option<FfiBatch>) -> Outcome {
        let handle = self.handle().await?;
        let started = Instant::now();
        let receiver = self.start(handle, call, batch);
        let abandoned = AbandonedCall { plugin: &self.plugin, call, armed: true };
        let result = match receiver.await {
            Ok(outcome) => outcome,
            Err(_) => Err(SinkError::permanent(format!("{} ended without an answer", call.as_str()))),
        };
        abandoned.disarm();
        self.record_call(call.as_str(), started, &result);
        result.map_err(|e| self.with_context(e))
    }
}

#[async_trait]
impl Sink for PluginSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.call(Call::Healthcheck, None).await.map(|_| ())
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.call(Call::Send, Some(FfiBatch::new(batch, None))).await
    }

    async fn send_fenced(&self, fence: &BatchFence, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.call(Call::Send, Some(FfiBatch::new(batch, Some(fence)))).await
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.call(Call::Flush, None).await.map(|_| ())
    }

    async fn close(&self) -> Result<(), SinkError> {
        if self.instance.get().is_none() {
            return Ok(());
        }
        self.call(Call::Close, None).await.map(|_| ())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from this plugin's init and is not used
        // again (its owner, the sink, is gone, or never got it); destroy
        // does not block. Calls still running in the plugin keep their
        // state until their completion, which may never come (then the
        // state leaks; nothing is freed under the plugin).
        unsafe { (self.destroy)(self.ptr) };
    }
}

/// Counts a call whose host future was dropped before the plugin answered
/// (`outcome="abandoned"`), e.g. after `[delivery] call_timeout`.
struct AbandonedCall<'a> {
    plugin: &'a LoadedPlugin,
    call: Call,
    armed: bool,
}

impl AbandonedCall<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonedCall<'_> {
    fn drop(&mut self) {
        if self.armed {
            metrics::counter!("shardline_plugin_calls_total", "plugin" => self.plugin.name().to_owned(), "call" => self.call.as_str(), "outcome" => "abandoned")
                .increment(1);
        }
    }
}

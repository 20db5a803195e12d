//! Conversions between the C ABI types and the SDK's Rust types, on the
//! plugin side: records in, statuses and buffers out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use shardline_api::{BatchFence, ErrorKind, Record, RecordMeta, RecordStatus, SequenceNumber, SinkError};
use shardline_plugin_abi::{
    ByteSlice, CallError, CallResult, FfiBatchFence, FfiRecord, FfiRecordStatus, OwnedBuffer, CALL_ERROR, CALL_OK, ERROR_PERMANENT,
    ERROR_RETRIABLE, STATUS_DELIVERED, STATUS_REJECTED, STATUS_RETRIABLE,
};

/// Hands `bytes` to the host as a plugin-owned buffer (freed by
/// [`free_buffer`]).
pub(crate) fn into_buffer(bytes: Vec<u8>) -> OwnedBuffer {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    OwnedBuffer { ptr: bytes.as_mut_ptr(), len: bytes.len(), cap: bytes.capacity() }
}

/// Frees a buffer made by [`into_buffer`].
///
/// # Safety
/// `buffer` must come from [`into_buffer`] (in this library) and not have
/// been freed before.
pub(crate) unsafe fn free_buffer(buffer: OwnedBuffer) {
    if !buffer.ptr.is_null() {
        // SAFETY: ptr/len/cap are those of a Vec<u8> leaked by `into_buffer`.
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
    }
}

pub(crate) fn error_kind_code(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::Retriable => ERROR_RETRIABLE,
        ErrorKind::Permanent => ERROR_PERMANENT,
    }
}

fn text(slice: ByteSlice, field: &str) -> Result<String, SinkError> {
    // SAFETY: the host keeps the batch valid until the completion is called,
    // which happens after this conversion (see `entry::send`).
    let bytes = unsafe { slice.as_bytes() };
    String::from_utf8(bytes.to_vec()).map_err(|_| SinkError::permanent(format!("record field `{field}` is not UTF-8")))
}

fn time(millis: i64) -> SystemTime {
    if millis >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}

/// Copies the host's fence (null: none).
///
/// # Safety
/// `fence` is null or points to a valid fence whose first `struct_size`
/// bytes are readable, for the duration of the call.
pub(crate) unsafe fn copy_fence(fence: *const FfiBatchFence) -> Result<Option<BatchFence>, SinkError> {
    if fence.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees a readable head.
    let size = unsafe { std::ptr::addr_of!((*fence).struct_size).read() } as usize;
    if size < std::mem::size_of::<FfiBatchFence>() {
        return Err(SinkError::permanent(format!("batch fence of {size} bytes is shorter than ABI version 2's")));
    }
    // SAFETY: the whole struct is readable (checked above).
    let fence = unsafe { fence.read() };
    let shard_id = text(fence.shard_id, "fence.shard_id")?;
    Ok(Some(BatchFence { shard_id: Arc::from(shard_id), lease_counter: fence.lease_counter }))
}

/// Copies the host's batch into owned records.
///
/// # Safety
/// `records` must point to `len` valid [`FfiRecord`]s whose slices are
/// valid for the duration of the call.
pub(crate) unsafe fn copy_records(records: *const FfiRecord, len: usize) -> Result<Vec<Record>, SinkError> {
    if len == 0 || records.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: the caller guarantees `len` records at `records`.
    let ffi = unsafe { std::slice::from_raw_parts(records, len) };
    let mut out = Vec::with_capacity(len);
    // A batch is one shard: share the stream and shard id strings.
    let mut stream: Arc<str> = Arc::from("");
    let mut shard_id: Arc<str> = Arc::from("");
    for r in ffi {
        let this_stream = text(r.stream, "stream")?;
        if *stream != *this_stream {
            stream = Arc::from(this_stream);
        }
        let this_shard = text(r.shard_id, "shard_id")?;
        if *shard_id != *this_shard {
            shard_id = Arc::from(this_shard);
        }
        let sequence = text(r.sequence_number, "sequence_number")?;
        let sequence_number = SequenceNumber::parse(&sequence)
            .map_err(|e| SinkError::permanent(format!("record sequence number {sequence:?}: {e}")))?;
        let explicit_hash_key =
            if r.explicit_hash_key.is_null() { None } else { Some(text(r.explicit_hash_key, "explicit_hash_key")?) };
        let meta = RecordMeta {
            stream: stream.clone(),
            shard_id: shard_id.clone(),
            sequence_number,
            sub_sequence_number: r.sub_sequence_number,
            partition_key: text(r.partition_key, "partition_key")?,
            explicit_hash_key,
            arrival_time: time(r.arrival_time_millis),
            aggregated: r.aggregated != 0,
        };
        // SAFETY: as for the text fields.
        let data = Bytes::copy_from_slice(unsafe { r.data.as_bytes() });
        let mut record = Record::new(data, Arc::new(meta));
        if r.has_event_time != 0 {
            record.event_time = Some(time(r.event_time_millis));
        }
        out.push(record);
    }
    Ok(out)
}

/// Calls `f` with the C view of an outcome; the view borrows `outcome`, so
/// it is valid exactly for the duration of `f`.
pub(crate) fn with_call_result<R>(outcome: &Result<Vec<RecordStatus>, SinkError>, f: impl FnOnce(&CallResult) -> R) -> R {
    match outcome {
        Ok(statuses) => {
            let ffi: Vec<FfiRecordStatus> = statuses.iter().map(status_to_ffi).collect();
            let result = CallResult {
                code: CALL_OK,
                error: CallError { kind: 0, message: ByteSlice::NULL },
                statuses: if ffi.is_empty() { std::ptr::null() } else { ffi.as_ptr() },
                statuses_len: ffi.len(),
            };
            f(&result)
        }
        Err(e) => {
            let result = CallResult {
                code: CALL_ERROR,
                error: CallError { kind: error_kind_code(e.kind), message: ByteSlice::new(e.message.as_bytes()) },
                statuses: std::ptr::null(),
                statuses_len: 0,
            };
            f(&result)
        }
    }
}

fn status_to_ffi(status: &RecordStatus) -> FfiRecordStatus {
    match status {
        RecordStatus::Delivered => {
            FfiRecordStatus { code: STATUS_DELIVERED, has_backoff: 0, backoff_ms: 0, reason: ByteSlice::NULL }
        }
        RecordStatus::Retriable { reason, backoff } => FfiRecordStatus {
            code: STATUS_RETRIABLE,
            has_backoff: u8::from(backoff.is_some()),
            backoff_ms: backoff.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            reason: ByteSlice::new(reason.as_bytes()),
        },
        RecordStatus::Rejected { reason } => {
            FfiRecordStatus { code: STATUS_REJECTED, has_backoff: 0, backoff_ms: 0, reason: ByteSlice::new(reason.as_bytes()) }
        }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

//! The server's state: streams, their shards and shard logs, and how it is
//! persisted.
//!
//! Locking: the stream map is read for every call and written only by
//! CreateStream/DeleteStream. A stream's [`StreamState`] is read-locked by
//! puts (so a reshard cannot close a shard under a put) and write-locked by
//! reshards and retention changes. Each shard's log has its own mutex, held
//! only to append frames or plan a read. The metadata cache has one mutex,
//! always taken last, so saves never wait for a stream lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{ApiError, LocalKinesisError, ACCOUNT_ID};
use crate::sequence::{SequenceNumber, ENDING_INDEX};
use crate::storage::log::ShardLog;
use crate::storage::{DataDir, Metadata, ShardMeta, StreamMeta};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `shardId-000000000007`.
pub(crate) fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The index in `shardId-000000000007`, also accepting the bare number.
pub(crate) fn parse_shard_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("shardId-").unwrap_or(id);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Locks a mutex, recovering from poisoning (a panicked holder leaves the
/// log consistent: frames are committed to the index only after a write).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// One shard.
pub(crate) struct Shard {
    pub index: u32,
    pub id: String,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub start: u128,
    pub end: u128,
    pub created_ms: u64,
    /// 0 while open; set with the stream write-locked and the log locked.
    closed_ms: AtomicU64,
    pub log: Mutex<ShardLog>,
}

impl Shard {
    pub(crate) fn new(meta: &ShardMeta, log: ShardLog) -> Shard {
        Shard {
            index: meta.index,
            id: shard_id(meta.index),
            parent: meta.parent,
            adjacent_parent: meta.adjacent_parent,
            start: meta.starting_hash_key.parse().unwrap_or(0),
            end: meta.ending_hash_key.parse().unwrap_or(u128::MAX),
            created_ms: meta.created_ms,
            closed_ms: AtomicU64::new(meta.closed_ms.unwrap_or(0)),
            log: Mutex::new(log),
        }
    }

    pub(crate) fn closed_ms(&self) -> Option<u64> {
        Some(self.closed_ms.load(Ordering::Acquire)).filter(|&ms| ms != 0)
    }

    pub(crate) fn close(&self, ms: u64) {
        self.closed_ms.store(ms.max(1), Ordering::Release);
    }

    /// Undoes [`Shard::close`] (a reshard that could not be saved).
    pub(crate) fn reopen(&self) {
        self.closed_ms.store(0, Ordering::Release);
    }

    pub(crate) fn meta(&self) -> ShardMeta {
        ShardMeta {
            index: self.index,
            parent: self.parent,
            adjacent_parent: self.adjacent_parent,
            starting_hash_key: self.start.to_string(),
            ending_hash_key: self.end.to_string(),
            created_ms: self.created_ms,
            closed_ms: self.closed_ms(),
        }
    }

    /// The sequence number of record `index` that arrived at `arrival_ms`.
    pub(crate) fn sequence_number(&self, index: u64, arrival_ms: u64) -> String {
        SequenceNumber { shard_created_secs: self.created_ms / 1000, shard_index: self.index, index, arrival_secs: arrival_ms / 1000 }
            .to_decimal()
    }

    pub(crate) fn starting_sequence_number(&self) -> String {
        self.sequence_number(0, self.created_ms)
    }

    pub(crate) fn ending_sequence_number(&self) -> Option<String> {
        self.closed_ms().map(|ms| self.sequence_number(ENDING_INDEX, ms))
    }
}

/// The mutable part of a stream.
pub(crate) struct StreamState {
    pub retention_ms: u64,
    pub mode: String,
    /// All shards; `shards[i].index == i`.
    pub shards: Vec<Arc<Shard>>,
}

impl StreamState {
    /// Open shards, by starting hash key.
    pub(crate) fn open_shards(&self) -> Vec<&Arc<Shard>> {
        let mut open: Vec<&Arc<Shard>> = self.shards.iter().filter(|s| s.closed_ms().is_none()).collect();
        open.sort_by_key(|s| s.start);
        open
    }

    pub(crate) fn shard(&self, index: u32) -> Option<&Arc<Shard>> {
        self.shards.get(index as usize)
    }
}

/// One stream.
pub(crate) struct Stream {
    pub name: String,
    pub created_ms: u64,
    pub arn: String,
    pub state: RwLock<StreamState>,
}

impl Stream {
    pub(crate) fn meta(&self, state: &StreamState) -> StreamMeta {
        StreamMeta {
            name: self.name.clone(),
            created_ms: self.created_ms,
            retention_ms: state.retention_ms,
            mode: state.mode.clone(),
            shards: state.shards.iter().map(|s| s.meta()).collect(),
        }
    }
}

/// All streams and where they are stored.
pub(crate) struct Server {
    pub region: String,
    pub default_retention_ms: u64,
    pub data: DataDir,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    metadata: Mutex<BTreeMap<String, StreamMeta>>,
}

impl Server {
    /// Loads the data directory: metadata, then every shard's log.
    pub(crate) fn load(data: DataDir, region: String, default_retention_ms: u64) -> Result<Server, LocalKinesisError> {
        let metadata = data.load()?;
        data.remove_orphans(&metadata);
        let now = now_ms();
        let mut streams = BTreeMap::new();
        let mut cache = BTreeMap::new();
        for meta in metadata.streams {
            let cutoff = now.saturating_sub(meta.retention_ms);
            let mut shards = Vec::with_capacity(meta.shards.len());
            for shard in &meta.shards {
                let log = ShardLog::open(&data.shard_dir(&meta.name, meta.created_ms, &shard_id(shard.index)), cutoff)?;
                shards.push(Arc::new(Shard::new(shard, log)));
            }
            let records: usize = shards.iter().map(|s| lock(&s.log).entries().len()).sum();
            tracing::info!(stream = %meta.name, shards = shards.len(), records, "loaded stream");
            let stream = Stream {
                name: meta.name.clone(),
                created_ms: meta.created_ms,
                arn: arn(&region, &meta.name),
                state: RwLock::new(StreamState { retention_ms: meta.retention_ms, mode: meta.mode.clone(), shards }),
            };
            streams.insert(meta.name.clone(), Arc::new(stream));
            cache.insert(meta.name.clone(), meta);
        }
        Ok(Server { region, default_retention_ms, data, streams: RwLock::new(streams), metadata: Mutex::new(cache) })
    }

    /// The stream named `name`.
    pub(crate) fn stream(&self, name: &str) -> Result<Arc<Stream>, ApiError> {
        read(&self.streams).get(name).cloned().ok_or_else(|| ApiError::stream_not_found(name))
    }

    /// All streams, by name.
    pub(crate) fn streams(&self) -> Vec<Arc<Stream>> {
        read(&self.streams).values().cloned().collect()
    }

    /// Writes the stream map (create/delete) under its lock.
    pub(crate) fn streams_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Stream>>> {
        write(&self.streams)
    }

    /// Records `stream`'s new metadata (or its removal) and saves the file.
    pub(crate) fn persist(&self, name: &str, meta: Option<StreamMeta>) -> Result<(), LocalKinesisError> {
        let mut cache = lock(&self.metadata);
        let previous = match meta {
            Some(meta) => cache.insert(name.to_owned(), meta),
            None => cache.remove(name),
        };
        let metadata = Metadata { version: 1, streams: cache.values().cloned().collect() };
        if let Err(e) = self.data.save(&metadata) {
            match previous {
                Some(previous) => cache.insert(name.to_owned(), previous),
                None => cache.remove(name),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Drops records older than each stream's retention and syncs logs.
    pub(crate) fn maintain(&self) {
        let now = now_ms();
        for stream in self.streams() {
            let state = read(&stream.state);
            let cutoff = now.saturating_sub(state.retention_ms);
            for shard in &state.shards {
                let mut log = lock(&shard.log);
                let dropped = log.trim(cutoff);
                if dropped > 0 {
                    tracing::debug!(stream = %stream.name, shard_id = %shard.id, dropped, "trimmed records past retention");
                }
                if let Err(e) = log.sync() {
                    tracing::warn!(stream = %stream.name, shard_id = %shard.id, error = %e, "cannot sync a shard log");
                }
            }
        }
    }
}

/// `arn:aws:kinesis:<region>:000000000000:stream/<name>`.
pub(crate) fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{ACCOUNT_ID}:stream/{name}")
}

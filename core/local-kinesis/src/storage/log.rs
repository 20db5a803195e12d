//! The append-only record log of one shard.
//!
//! A shard's directory holds segment files named after the counter of
//! their first record (`00000000000000000000.log`), rolled at
//! [`SEGMENT_BYTES`]. Each record is one frame:
//!
//! ```text
//! u32 LE body length | u32 LE CRC-32 of the body | body:
//!   u64 LE record counter | u64 LE arrival (epoch ms) | u16 LE key length | key | data
//! ```
//!
//! Frames are written with one positioned write per `PutRecords` and
//! shard, after the previous frames, so a crash can only leave a torn last
//! frame; [`ShardLog::open`] drops everything from the first frame whose
//! length or checksum is wrong. Memory holds an index of the retained
//! records (counter, position, arrival time: 24 bytes each); data is read
//! back with positioned reads, served by the page cache for recent records.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::LocalKinesisError;

/// Size at which a segment is closed and a new one started.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const FRAME_HEADER: usize = 8;
const BODY_HEADER: usize = 18;

/// One retained record in the in-memory index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Per-shard record counter (the sequence number's index).
    pub index: u64,
    /// Logical position of the frame across segments.
    pub pos: u64,
    /// Arrival time, epoch milliseconds.
    pub arrival_ms: u64,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub index: u64,
    pub arrival_ms: u64,
    pub partition_key: String,
    pub data: Bytes,
}

struct Segment {
    base_pos: u64,
    len: u64,
    path: PathBuf,
    file: Arc<File>,
}

/// Byte ranges to read for a `GetRecords` call, planned under the shard's
/// lock and read outside it.
pub(crate) struct ReadPlan {
    pieces: Vec<(Arc<File>, u64, usize)>,
    /// Records the plan covers.
    pub count: usize,
}

/// The log of one shard: its segments and the index of retained records.
pub(crate) struct ShardLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    entries: VecDeque<Entry>,
    end_pos: u64,
    next_index: u64,
    last_arrival_ms: u64,
    unsynced: bool,
}

fn segment_path(dir: &Path, base_index: u64) -> PathBuf {
    dir.join(format!("{base_index:020}.log"))
}

fn open_segment(path: &Path) -> Result<File, LocalKinesisError> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(LocalKinesisError::io("open", path))
}

impl ShardLog {
    /// Creates an empty log in `dir` (created if missing).
    pub(crate) fn create(dir: &Path) -> Result<ShardLog, LocalKinesisError> {
        std::fs::create_dir_all(dir).map_err(LocalKinesisError::io("create directory", dir))?;
        let mut log = ShardLog {
            dir: dir.to_owned(),
            segments: Vec::new(),
            entries: VecDeque::new(),
            end_pos: 0,
            next_index: 0,
            last_arrival_ms: 0,
            unsynced: false,
        };
        log.start_segment()?;
        Ok(log)
    }

    /// Opens the log in `dir`, truncating a torn tail and skipping records
    /// that arrived before `cutoff_ms` (older than the retention period).
    pub(crate) fn open(dir: &Path, cutoff_ms: u64) -> Result<ShardLog, LocalKinesisError> {
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ShardLog::create(dir),
            Err(e) => return Err(LocalKinesisError::io("list", dir)(e)),
        };
        for item in listing {
            let path = item.map_err(LocalKinesisError::io("list", dir))?.path();
            let base = path.extension().filter(|e| *e == "log").and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
            if let Some(base) = base {
                names.push((base, path));
            }
        }
        names.sort();
        if names.is_empty() {
            return ShardLog::create(dir);
        }
        let mut log = ShardLog {
            dir: dir.to_owned(),
            segments: Vec::new(),
            entries: VecDeque::new(),
            end_pos: 0,
            next_index: 0,
            last_arrival_ms: 0,
            unsynced: false,
        };
        // a segment's name is the counter of its first record: an empty last
        // segment still tells where the counter stands
        let last_base = names.last().map_or(0, |(base, _)| *base);
        for (_, path) in names {
            let data = std::fs::read(&path).map_err(LocalKinesisError::io("read", &path))?;
            let (valid, frames) = scan(&data, log.next_index);
            for (offset, index, arrival_ms) in frames {
                log.next_index = index + 1;
                log.last_arrival_ms = log.last_arrival_ms.max(arrival_ms);
                if arrival_ms >= cutoff_ms {
                    log.entries.push_back(Entry { index, pos: log.end_pos + offset as u64, arrival_ms });
                }
            }
            let file = open_segment(&path)?;
            if valid < data.len() {
                tracing::warn!(path = %path.display(), kept_bytes = valid, dropped_bytes = data.len() - valid, "truncating a torn or corrupt log tail");
                file.set_len(valid as u64).map_err(LocalKinesisError::io("truncate", &path))?;
            }
            log.segments.push(Segment { base_pos: log.end_pos, len: valid as u64, path, file: Arc::new(file) });
            log.end_pos += valid as u64;
        }
        log.next_index = log.next_index.max(last_base);
        Ok(log)
    }

    fn start_segment(&mut self) -> Result<(), LocalKinesisError> {
        if let Some(last) = self.segments.last() {
            last.file.sync_data().map_err(LocalKinesisError::io("sync", &last.path))?;
        }
        let path = segment_path(&self.dir, self.next_index);
        let file = open_segment(&path)?;
        file.set_len(0).map_err(LocalKinesisError::io("truncate", &path))?;
        if let Ok(dir) = File::open(&self.dir) {
            // makes the new file's name durable; failure only weakens durability
            let _ = dir.sync_all();
        }
        self.segments.push(Segment { base_pos: self.end_pos, len: 0, path, file: Arc::new(file) });
        Ok(())
    }

    /// Appends records (partition key, data) that arrive at `now_ms`.
    /// Returns the counter of the first one and the arrival time used
    /// (never earlier than the previous record's).
    pub(crate) fn append(&mut self, records: &[(&str, &[u8])], now_ms: u64) -> Result<(u64, u64), LocalKinesisError> {
        let arrival_ms = now_ms.max(self.last_arrival_ms);
        let first_index = self.next_index;
        if self.segments.last().is_none_or(|s| s.len >= SEGMENT_BYTES) {
            self.start_segment()?;
        }
        let size: usize = records.iter().map(|(k, d)| FRAME_HEADER + BODY_HEADER + k.len() + d.len()).sum();
        let mut buffer = Vec::with_capacity(size);
        let mut new_entries = Vec::with_capacity(records.len());
        for (i, (key, data)) in records.iter().enumerate() {
            let index = first_index + i as u64;
            new_entries.push(Entry { index, pos: self.end_pos + buffer.len() as u64, arrival_ms });
            let body_len = BODY_HEADER + key.len() + data.len();
            let start = buffer.len();
            buffer.extend_from_slice(&(body_len as u32).to_le_bytes());
            buffer.extend_from_slice(&[0; 4]);
            buffer.extend_from_slice(&index.to_le_bytes());
            buffer.extend_from_slice(&arrival_ms.to_le_bytes());
            buffer.extend_from_slice(&(key.len() as u16).to_le_bytes());
            buffer.extend_from_slice(key.as_bytes());
            buffer.extend_from_slice(data);
            let crc = crc32fast::hash(&buffer[start + FRAME_HEADER..]);
            buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let segment = self.segments.last_mut().ok_or_else(|| LocalKinesisError::Metadata {
            path: self.dir.clone(),
            message: "internal: shard log without a segment".into(),
        })?;
        if let Err(e) = segment.file.write_all_at(&buffer, segment.len) {
            // best effort: cut the partial write so the next frame follows the last good one
            let _ = segment.file.set_len(segment.len);
            return Err(LocalKinesisError::io("write", &segment.path)(e));
        }
        segment.len += buffer.len() as u64;
        self.end_pos += buffer.len() as u64;
        self.next_index += records.len() as u64;
        self.last_arrival_ms = arrival_ms;
        self.entries.extend(new_entries);
        self.unsynced = true;
        Ok((first_index, arrival_ms))
    }

    /// The counter the next record will get (`LATEST`).
    pub(crate) fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The oldest retained record's counter (`TRIM_HORIZON`).
    pub(crate) fn first_index(&self) -> u64 {
        self.entries.front().map_or(self.next_index, |e| e.index)
    }

    /// Position in the index of the first record with counter ≥ `index`.
    pub(crate) fn position_of(&self, index: u64) -> usize {
        self.entries.partition_point(|e| e.index < index)
    }

    /// The counter of the first record that arrived at or after `ms`.
    pub(crate) fn index_at_time(&self, ms: u64) -> u64 {
        let position = self.entries.partition_point(|e| e.arrival_ms < ms);
        self.entries.get(position).map_or(self.next_index, |e| e.index)
    }

    /// Retained records, in order.
    pub(crate) fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// Plans reading entries `[from, from + n)` where `n` is at most `limit`
    /// and their frames stay within `max_bytes` (at least one record).
    pub(crate) fn plan_read(&self, from: usize, limit: usize, max_bytes: usize) -> ReadPlan {
        let mut count = 0;
        let start_pos = self.entries.get(from).map_or(self.end_pos, |e| e.pos);
        let mut end_pos = start_pos;
        while count < limit {
            let Some(entry) = self.entries.get(from + count) else { break };
            let next = self.entries.get(from + count + 1).map_or(self.end_pos, |e| e.pos);
            if count > 0 && (next - start_pos) as usize > max_bytes {
                break;
            }
            debug_assert_eq!(entry.pos, end_pos);
            end_pos = next;
            count += 1;
        }
        let mut pieces = Vec::new();
        for segment in &self.segments {
            let (seg_start, seg_end) = (segment.base_pos, segment.base_pos + segment.len);
            let (lo, hi) = (start_pos.max(seg_start), end_pos.min(seg_end));
            if lo < hi {
                pieces.push((segment.file.clone(), lo - seg_start, (hi - lo) as usize));
            }
        }
        ReadPlan { pieces, count }
    }

    /// Drops records that arrived before `cutoff_ms` and deletes segments
    /// holding only dropped records (never the last one). Returns how many
    /// records were dropped.
    pub(crate) fn trim(&mut self, cutoff_ms: u64) -> usize {
        let mut dropped = 0;
        while self.entries.front().is_some_and(|e| e.arrival_ms < cutoff_ms) {
            self.entries.pop_front();
            dropped += 1;
        }
        let first_pos = self.entries.front().map_or(self.end_pos, |e| e.pos);
        while self.segments.len() > 1 && self.segments[1].base_pos <= first_pos {
            let segment = self.segments.remove(0);
            if let Err(e) = std::fs::remove_file(&segment.path) {
                tracing::warn!(path = %segment.path.display(), error = %e, "cannot delete a trimmed log segment");
            }
        }
        dropped
    }

    /// Flushes written records to disk.
    pub(crate) fn sync(&mut self) -> Result<(), LocalKinesisError> {
        if self.unsynced {
            if let Some(segment) = self.segments.last() {
                segment.file.sync_data().map_err(LocalKinesisError::io("sync", &segment.path))?;
            }
            self.unsynced = false;
        }
        Ok(())
    }
}

/// Reads the records of `plan`.
pub(crate) fn read(plan: ReadPlan) -> Result<Vec<StoredRecord>, LocalKinesisError> {
    let total: usize = plan.pieces.iter().map(|(_, _, len)| len).sum();
    let mut buffer = vec![0u8; total];
    let mut at = 0;
    for (file, offset, len) in &plan.pieces {
        file.read_exact_at(&mut buffer[at..at + len], *offset).map_err(LocalKinesisError::io("read", "shard log segment"))?;
        at += len;
    }
    let buffer = Bytes::from(buffer);
    let mut records = Vec::with_capacity(plan.count);
    let mut pos = 0;
    while pos + FRAME_HEADER + BODY_HEADER <= buffer.len() {
        let body_len = u32::from_le_bytes([buffer[pos], buffer[pos + 1], buffer[pos + 2], buffer[pos + 3]]) as usize;
        let body = pos + FRAME_HEADER;
        let end = body + body_len;
        if end > buffer.len() || body_len < BODY_HEADER {
            return Err(LocalKinesisError::Metadata { path: PathBuf::from("shard log segment"), message: format!("bad frame at {pos}") });
        }
        let u64_at = |at: usize| u64::from_le_bytes(buffer[at..at + 8].try_into().unwrap_or([0; 8]));
        let key_len = usize::from(u16::from_le_bytes([buffer[body + 16], buffer[body + 17]]));
        let key_start = body + BODY_HEADER;
        let data_start = (key_start + key_len).min(end);
        records.push(StoredRecord {
            index: u64_at(body),
            arrival_ms: u64_at(body + 8),
            partition_key: String::from_utf8_lossy(&buffer[key_start..data_start]).into_owned(),
            data: buffer.slice(data_start..end),
        });
        pos = end;
    }
    Ok(records)
}

/// Valid frames of a segment: `(valid length, [(offset, index, arrival)])`.
/// Stops at the first frame that is torn, fails its checksum or does not
/// increase the counter.
fn scan(data: &[u8], mut min_index: u64) -> (usize, Vec<(usize, u64, u64)>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos + FRAME_HEADER + BODY_HEADER <= data.len() {
        let body_len = u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let body = pos + FRAME_HEADER;
        let Some(end) = body.checked_add(body_len).filter(|&end| end <= data.len() && body_len >= BODY_HEADER) else { break };
        if crc32fast::hash(&data[body..end]) != crc {
            break;
        }
        let index = u64::from_le_bytes(data[body..body + 8].try_into().unwrap_or([0; 8]));
        let arrival_ms = u64::from_le_bytes(data[body + 8..body + 16].try_into().unwrap_or([0; 8]));
        let key_len = usize::from(u16::from_le_bytes([data[body + 16], data[body + 17]]));
        if index < min_index || BODY_HEADER + key_len > body_len {
            break;
        }
        min_index = index + 1;
        frames.push((pos, index, arrival_ms));
        pos = end;
    }
    (pos, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(log: &ShardLog) -> Vec<StoredRecord> {
        read(log.plan_read(0, usize::MAX, usize::MAX)).unwrap()
    }

    #[test]
    fn appends_reads_and_recovers_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShardLog::create(dir.path()).unwrap();
        assert_eq!(log.append(&[("a", b"one"), ("b", b"two")], 1000).unwrap(), (0, 1000));
        // the clock went back: arrival stays monotonic
        assert_eq!(log.append(&[("c", b"three")], 900).unwrap(), (2, 1000));
        let records = read_all(&log);
        assert_eq!(records.iter().map(|r| r.data.as_ref()).collect::<Vec<_>>(), vec![&b"one"[..], b"two", b"three"]);
        assert_eq!(records[2].partition_key, "c");
        log.sync().unwrap();
        drop(log);

        let segment = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let full = bytes.len();
        bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]); // a torn frame
        std::fs::write(&segment, &bytes).unwrap();
        let mut log = ShardLog::open(dir.path(), 0).unwrap();
        assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, full);
        assert_eq!(log.next_index(), 3);
        assert_eq!(log.append(&[("d", b"four")], 2000).unwrap(), (3, 2000));
        assert_eq!(read_all(&log).len(), 4);
    }

    #[test]
    fn a_corrupt_frame_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShardLog::create(dir.path()).unwrap();
        log.append(&[("a", b"one"), ("b", b"two")], 1000).unwrap();
        drop(log);
        let segment = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let log = ShardLog::open(dir.path(), 0).unwrap();
        assert_eq!(read_all(&log).len(), 1);
        assert_eq!(log.next_index(), 1);
    }

    #[test]
    fn trims_by_age_and_keeps_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShardLog::create(dir.path()).unwrap();
        log.append(&[("a", b"old")], 1000).unwrap();
        log.append(&[("b", b"new")], 5000).unwrap();
        assert_eq!(log.trim(2000), 1);
        assert_eq!(log.first_index(), 1);
        assert_eq!(read_all(&log)[0].data.as_ref(), b"new");
        assert_eq!(log.index_at_time(4000), 1);
        assert_eq!(log.index_at_time(6000), 2);
        drop(log);
        let log = ShardLog::open(dir.path(), 2000).unwrap();
        assert_eq!((log.first_index(), log.next_index()), (1, 2));
    }

    #[test]
    fn plans_reads_within_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShardLog::create(dir.path()).unwrap();
        let data = vec![7u8; 100];
        for _ in 0..10 {
            log.append(&[("k", &data)], 1).unwrap();
        }
        let plan = log.plan_read(2, 100, 300);
        assert_eq!(plan.count, 2);
        let records = read(plan).unwrap();
        assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(log.plan_read(0, 3, usize::MAX).count, 3);
        assert_eq!(log.plan_read(10, 3, usize::MAX).count, 0);
    }
}

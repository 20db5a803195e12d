//! `shardline put --follow`: tail files as the Kinesis Agent does, through
//! rotation by rename (a new file appears under the name: the old one is
//! read to its end first) and by copytruncate (the file shrinks: reading
//! starts again at 0), remembering positions in a checkpoint file so a
//! restart neither repeats nor skips lines.
//!
//! The checkpoint is written only after the lines before it were
//! acknowledged by `PutRecords`. Lines written to a file while the producer
//! was stopped and rotated away before it restarted are not read (the
//! checkpointed inode no longer has the name); the Agent has the same limit.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

use super::producer::Producer;

/// Positions of followed files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowCheckpoint {
    /// Path → position.
    pub files: BTreeMap<PathBuf, FilePosition>,
}

/// Where reading of one file stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Inode of the file that had the name.
    pub inode: u64,
    /// Byte offset after the last line sent.
    pub offset: u64,
}

impl FollowCheckpoint {
    /// Loads a checkpoint file; a missing file is an empty checkpoint.
    ///
    /// # Errors
    /// An unreadable or corrupt file, naming it.
    pub fn load(path: &Path) -> anyhow::Result<FollowCheckpoint> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("checkpoint file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FollowCheckpoint::default()),
            Err(e) => Err(anyhow::anyhow!("checkpoint file {}: {e}", path.display())),
        }
    }

    /// Writes the checkpoint crash-safely (temporary file, fsync, rename).
    ///
    /// # Errors
    /// The I/O error, naming the file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| anyhow::anyhow!("writing checkpoint file {}: {e}", path.display()))
    }
}

struct Followed {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    inode: u64,
    /// Offset of the first byte of `partial` in the file.
    offset: u64,
    partial: Vec<u8>,
}

/// Follows `paths` until `shutdown`, writing each complete line.
///
/// # Errors
/// A send that keeps failing, or the checkpoint file cannot be written.
pub async fn follow_files(producer: &mut Producer, paths: &[PathBuf], checkpoint_path: &Path, poll: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut checkpoint = FollowCheckpoint::load(checkpoint_path)?;
    let mut followed: Vec<Followed> = paths
        .iter()
        .map(|p| Followed { path: p.clone(), file: None, inode: 0, offset: 0, partial: Vec::new() })
        .collect();
    loop {
        let mut sent_any = false;
        for f in &mut followed {
            sent_any |= poll_file(producer, f, &checkpoint).await?;
        }
        if sent_any {
            producer.flush().await?;
            for f in &followed {
                if f.file.is_some() {
                    checkpoint.files.insert(f.path.clone(), FilePosition { inode: f.inode, offset: f.offset });
                }
            }
            checkpoint.save(checkpoint_path)?;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(poll) => {}
        }
    }
    producer.flush().await?;
    Ok(())
}

/// Reads what is new in one file (and handles rotation). Returns whether
/// any line was queued.
async fn poll_file(producer: &mut Producer, f: &mut Followed, checkpoint: &FollowCheckpoint) -> anyhow::Result<bool> {
    let mut sent = false;
    if f.file.is_none() {
        let Ok(meta) = tokio::fs::metadata(&f.path).await else { return Ok(false) };
        let saved = checkpoint.files.get(&f.path).copied().unwrap_or_default();
        let start = if saved.inode == meta.ino() && saved.offset <= meta.len() { saved.offset } else { 0 };
        open_at(f, meta.ino(), start).await?;
    }
    sent |= read_new_lines(producer, f).await?;
    // Rotation checks, after the current handle was read to its end.
    match tokio::fs::metadata(&f.path).await {
        Ok(meta) if meta.ino() != f.inode => {
            tracing::info!(path = %f.path.display(), "file rotated (renamed), following the new file");
            open_at(f, meta.ino(), 0).await?;
            sent |= read_new_lines(producer, f).await?;
        }
        Ok(meta) if meta.len() < f.offset + f.partial.len() as u64 => {
            tracing::info!(path = %f.path.display(), "file truncated (copytruncate), reading from the start");
            open_at(f, meta.ino(), 0).await?;
            sent |= read_new_lines(producer, f).await?;
        }
        _ => {}
    }
    Ok(sent)
}

async fn open_at(f: &mut Followed, inode: u64, offset: u64) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(&f.path).await.map_err(|e| anyhow::anyhow!("{}: {e}", f.path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    f.file = Some(file);
    f.inode = inode;
    f.offset = offset;
    f.partial.clear();
    Ok(())
}

async fn read_new_lines(producer: &mut Producer, f: &mut Followed) -> anyhow::Result<bool> {
    let Some(file) = f.file.as_mut() else { return Ok(false) };
    let mut sent = false;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk).await.map_err(|e| anyhow::anyhow!("{}: {e}", f.path.display()))?;
        if n == 0 {
            return Ok(sent);
        }
        f.partial.extend_from_slice(&chunk[..n]);
        while let Some(end) = f.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = f.partial.drain(..=end).collect();
            f.offset += line.len() as u64;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                producer.push(line).await?;
                sent = true;
            }
        }
    }
}

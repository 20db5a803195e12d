//! Size-rotated NDJSON files shared by the file sink and the file
//! dead-letter destination.
//!
//! Files are named `{pipeline}-{unix_millis}-{pid}-{n}.ndjson` (`n` counts
//! up across the process) so several worker processes can share one
//! directory; they are created with `create_new`, never overwritten. A
//! write that fails is cut back off the file so no partial line is left
//! for the retry to follow. Blocking I/O runs on tokio's blocking pool.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Process-wide file counter, so two writers never pick the same name.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
pub(crate) struct FileError {
    op: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

fn file_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError { op, path: path.to_owned(), source }
}

#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    size: u64,
    dirty: bool,
}

/// The synchronous writer.
#[derive(Debug)]
struct RollingFile {
    dir: PathBuf,
    prefix: String,
    max_bytes: u64,
    current: Option<Current>,
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .collect()
}

impl RollingFile {
    fn open_next(&mut self) -> Result<&mut Current, FileError> {
        std::fs::create_dir_all(&self.dir).map_err(file_error("create directory", &self.dir))?;
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let pid = std::process::id();
        let mut attempts = 0;
        loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{}-{millis}-{pid}-{n}.ndjson", self.prefix));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    tracing::debug!(path = %path.display(), "opened ndjson file");
                    return Ok(self.current.insert(Current { file, path, size: 0, dirty: false }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
                Err(e) => return Err(file_error("create", &path)(e)),
            }
        }
    }

    fn append(&mut self, data: &[u8]) -> Result<(), FileError> {
        if data.is_empty() {
            return Ok(());
        }
        let incoming = data.len() as u64;
        if self.current.as_ref().is_some_and(|c| c.size > 0 && c.size + incoming > self.max_bytes) {
            self.rotate()?;
        }
        let current = match self.current {
            Some(ref mut current) => current,
            None => self.open_next()?,
        };
        match current.file.write_all(data) {
            Ok(()) => {
                current.size += incoming;
                current.dirty = true;
                Ok(())
            }
            Err(source) => {
                let path = current.path.clone();
                // Cut the partial write off; if even that fails, start a new
                // file next time.
                if current.file.set_len(current.size).is_err() {
                    self.current = None;
                }
                Err(FileError { op: "write", path, source })
            }
        }
    }

    fn rotate(&mut self) -> Result<(), FileError> {
        self.sync()?;
        if let Some(old) = self.current.take() {
            tracing::debug!(path = %old.path.display(), bytes = old.size, "rotated ndjson file");
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), FileError> {
        if let Some(current) = self.current.as_mut().filter(|c| c.dirty) {
            current.file.sync_data().map_err(file_error("fsync", &current.path))?;
            current.dirty = false;
        }
        Ok(())
    }
}

/// A rotating NDJSON writer usable from async code and shared by many
/// shards (each append lands contiguously).
#[derive(Debug, Clone)]
pub(crate) struct SharedRollingFile {
    inner: Arc<Mutex<RollingFile>>,
    dir: PathBuf,
}

impl SharedRollingFile {
    /// A writer of files named after `pipeline` in `dir`, rotated once
    /// `max_bytes` would be exceeded. Does no I/O.
    pub(crate) fn new(dir: PathBuf, pipeline: &str, max_bytes: u64) -> Self {
        let writer = RollingFile { dir: dir.clone(), prefix: sanitize(pipeline), max_bytes, current: None };
        SharedRollingFile { inner: Arc::new(Mutex::new(writer)), dir }
    }

    /// The directory written to.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    async fn blocking<R: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut RollingFile) -> Result<R, FileError> + Send + 'static,
    ) -> Result<R, FileError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves a usable writer.
            let mut guard = inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| FileError { op, path: self.dir.clone(), source: std::io::Error::other(e) })?
    }

    /// Appends `data` (whole lines) to the current file.
    pub(crate) async fn append(&self, data: Vec<u8>) -> Result<(), FileError> {
        self.blocking("write to", move |w| w.append(&data)).await
    }

    /// fsyncs the current file.
    pub(crate) async fn sync(&self) -> Result<(), FileError> {
        self.blocking("fsync", |w| w.sync()).await
    }

    /// Creates the directory and checks that a file can be created in it.
    pub(crate) async fn check_writable(&self) -> Result<(), FileError> {
        self.blocking("write to", |w| {
            std::fs::create_dir_all(&w.dir).map_err(file_error("create directory", &w.dir))?;
            let probe = w.dir.join(format!(".{}-{}-probe", w.prefix, std::process::id()));
            File::create(&probe).map_err(file_error("create", &probe))?;
            std::fs::remove_file(&probe).map_err(file_error("remove", &probe))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("dir exists")
            .map(|e| {
                let path = e.expect("entry").path();
                (path.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read(&path).expect("read"))
            })
            .collect();
        // Order by the counter at the end of the name.
        out.sort_by_key(|(name, _)| {
            name.trim_end_matches(".ndjson").rsplit('-').next().and_then(|n| n.parse::<u64>().ok())
        });
        out
    }

    #[tokio::test]
    async fn rotates_before_exceeding_the_size() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("nested").join("out");
        let w = SharedRollingFile::new(dir.clone(), "my pipe/1", 10);
        w.check_writable().await.expect("writable");
        w.append(b"aaaa\n".to_vec()).await.expect("write");
        w.append(b"bbbb\n".to_vec()).await.expect("write");
        w.append(b"cccc\n".to_vec()).await.expect("write");
        w.append(b"a line longer than ten\n".to_vec()).await.expect("write");
        w.sync().await.expect("sync");
        let found = files(&dir);
        let contents: Vec<&[u8]> = found.iter().map(|(_, c)| c.as_slice()).collect();
        assert_eq!(contents, [&b"aaaa\nbbbb\n"[..], b"cccc\n", b"a line longer than ten\n"]);
        let pid = std::process::id().to_string();
        for (name, _) in &found {
            let parts: Vec<&str> = name.trim_end_matches(".ndjson").split('-').collect();
            assert_eq!(parts[0], "my pipe_1".replace(' ', "_"), "{name}");
            assert!(parts[1].parse::<u64>().is_ok_and(|ms| ms > 1_600_000_000_000), "{name}");
            assert_eq!(parts[2], pid, "{name}");
            assert!(name.ends_with(".ndjson"));
        }
    }

    #[tokio::test]
    async fn errors_name_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blocker = tmp.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").expect("write");
        let w = SharedRollingFile::new(blocker.join("sub"), "p", 10);
        let err = w.append(b"x\n".to_vec()).await.expect_err("parent is a file");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}

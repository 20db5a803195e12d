//! An exclusive lock on a state directory: a lock file in it, held with a
//! non-blocking `flock(LOCK_EX)` for the life of a [`DirLock`].
//!
//! `flock` locks belong to the open file, so a second [`DirLock::acquire`]
//! of the same file fails in another process and in the same one alike, and
//! the lock goes away with the process however it ends (no stale lock files
//! to clean up after kill -9). Callers pick the lock file name, so several
//! users of one directory tree can lock distinct parts of it (the embedded
//! Kinesis server `<state_dir>/kinesis/lock`, each embedded lease table
//! `<state_dir>/<table>.leases.lock`). On non-Unix systems the lock is a
//! no-op.
#![warn(missing_docs)]

use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// The directory or the lock file could not be created or opened
    /// (permissions, a full disk). Permanent until the operator fixes it.
    #[error("cannot open lock file {path}: {source}")]
    Open {
        /// The lock file (or the directory, when it could not be created).
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another holder (in this or another process) has the lock. Permanent
    /// while that holder runs.
    #[error("{path} is locked by another user of {dir}: {source}")]
    Held {
        /// The locked directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// Cause (`EWOULDBLOCK`).
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock on `dir/<file name>`, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    _file: File,
}

impl DirLock {
    /// Creates `dir` when missing, then opens (creating) `dir/<file_name>`
    /// and locks it without waiting.
    ///
    /// # Errors
    /// [`DirLockError::Held`] when someone else holds the lock;
    /// [`DirLockError::Open`] when the directory or file cannot be created.
    pub fn acquire(dir: &Path, file_name: &str) -> Result<DirLock, DirLockError> {
        std::fs::create_dir_all(dir).map_err(|source| DirLockError::Open {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(file_name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DirLockError::Open {
                path: path.clone(),
                source,
            })?;
        lock_exclusive(&file).map_err(|source| DirLockError::Held {
            dir: dir.to_owned(),
            path: path.clone(),
            source,
        })?;
        Ok(DirLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows for the call;
    // the lock is released when the descriptor closes (the DirLock drops).
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_of_the_same_file_fails_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = DirLock::acquire(&state, "a.lock").unwrap();
        assert_eq!(first.path(), state.join("a.lock"));
        let err = DirLock::acquire(&state, "a.lock").unwrap_err();
        assert!(
            matches!(&err, DirLockError::Held { dir, .. } if *dir == state),
            "{err}"
        );
        assert!(
            err.to_string().contains(&state.display().to_string()),
            "{err}"
        );
        let _other =
            DirLock::acquire(&state, "b.lock").expect("another file in the same directory");
        drop(first);
        DirLock::acquire(&state, "a.lock").expect("free again after the first holder dropped it");
    }
}

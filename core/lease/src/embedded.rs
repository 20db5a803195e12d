//! A lease table for a single process: leases in memory, persisted as one
//! JSON file per table, rewritten crash-safely on every mutation.
//!
//! The conditions are the same as DynamoDB's (counter and owner), checked
//! under one mutex, so the [`crate::LeaseCoordinator`] behaves the same on
//! both stores.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shardline_api::Checkpoint;
use shardline_dir_lock::{DirLock, DirLockError};
use tokio::sync::Mutex;

use crate::{Lease, LeaseError, LeaseStore};

const IN_MEMORY_TABLE: &str = "in-memory";
const FILE_VERSION: u32 = 1;

/// The embedded lease store. See the module docs.
#[derive(Debug)]
pub struct EmbeddedLeaseStore {
    table: String,
    path: Option<PathBuf>,
    leases: Mutex<BTreeMap<String, Lease>>,
    /// `state_dir/<table>.leases.lock`, held for the life of the store: a
    /// second store on the same file would overwrite this one's leases.
    _lock: Option<DirLock>,
}

impl EmbeddedLeaseStore {
    /// Opens (or starts) the table `table` stored in
    /// `state_dir/<table>.leases.json`, creating `state_dir` when missing,
    /// and locks it (`state_dir/<table>.leases.lock`, an exclusive `flock`
    /// held until the store drops) so no other store, in this process or
    /// another, uses the same table. Other tables in the same directory (and
    /// the embedded Kinesis server in `state_dir/kinesis`) are not locked.
    ///
    /// # Errors
    /// [`LeaseError::Locked`] when another store holds the table;
    /// [`LeaseError::Validation`] for a table name that is not a plain file
    /// name (letters, digits, `_`, `-`, `.`); [`LeaseError::Io`] when the
    /// directory or file cannot be read; [`LeaseError::Corrupt`] when the
    /// file holds something that is not a lease table.
    pub fn open(state_dir: &Path, table: &str) -> Result<Self, LeaseError> {
        let valid = !table.is_empty()
            && !table.starts_with('.')
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(LeaseError::Validation {
                table: table.to_owned(),
                operation: "open",
                message: "a table name may only hold letters, digits, '_', '-' and '.'".to_owned(),
                source: None,
            });
        }
        let io_err = |path: &Path, source| LeaseError::Io {
            table: table.to_owned(),
            path: path.to_owned(),
            source,
        };
        let lock = DirLock::acquire(state_dir, &format!("{table}.leases.lock")).map_err(|e| match e {
            DirLockError::Held { dir, path, source } => LeaseError::Locked {
                table: table.to_owned(),
                path: dir,
                lock_file: path,
                source,
            },
            DirLockError::Open { path, source } => io_err(&path, source),
        })?;
        let path = state_dir.join(format!("{table}.leases.json"));
        // Only after locking: the temporary files could be another
        // store's writes in flight.
        remove_stale_temp_files(state_dir, &path);
        let leases = match std::fs::read(&path) {
            Ok(bytes) => decode_file(table, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_err(&path, e)),
        };
        tracing::debug!(table = %table, path = %path.display(), leases = leases.len(), "opened embedded lease table");
        Ok(EmbeddedLeaseStore {
            table: table.to_owned(),
            path: Some(path),
            leases: Mutex::new(leases),
            _lock: Some(lock),
        })
    }

    /// The leases stored in `state_dir/<table>.leases.json`, read without
    /// taking the table's lock, for observers (`shardline status`) of a
    /// table a running process holds. Every write replaces the file whole
    /// (a rename), so the read sees one consistent state, perhaps a write
    /// behind. A missing file is an empty table.
    ///
    /// # Errors
    /// [`LeaseError::Io`] when the file cannot be read;
    /// [`LeaseError::Corrupt`] when it holds something that is not a lease
    /// table.
    pub fn read_snapshot(state_dir: &Path, table: &str) -> Result<Vec<Lease>, LeaseError> {
        let path = state_dir.join(format!("{table}.leases.json"));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(decode_file(table, &bytes)?.into_values().collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(LeaseError::Io { table: table.to_owned(), path, source }),
        }
    }

    /// A table that lives only in memory (tests, one-off runs).
    pub fn in_memory() -> Self {
        EmbeddedLeaseStore {
            table: IN_MEMORY_TABLE.to_owned(),
            path: None,
            leases: Mutex::new(BTreeMap::new()),
            _lock: None,
        }
    }

    /// The file the table is stored in; `None` for [`EmbeddedLeaseStore::in_memory`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lost(&self, lease_key: &str, reason: &str) -> LeaseError {
        LeaseError::lost(&self.table, lease_key, reason)
    }

    /// Writes `leases` to the file (if any) off the async threads.
    async fn persist(&self, leases: &BTreeMap<String, Lease>) -> Result<(), LeaseError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let bytes = encode_file(&self.table, leases);
        let table = self.table.clone();
        let result = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err((path, source))) => Err(LeaseError::Io {
                table,
                path,
                source,
            }),
            Err(join) => Err(LeaseError::Io {
                table,
                path: self.path.clone().unwrap_or_default(),
                source: std::io::Error::other(format!("writer task failed: {join}")),
            }),
        }
    }

    /// Applies `change` to the stored lease `lease_key` and persists the
    /// result; nothing changes when `change` or the write fails.
    async fn mutate<F>(&self, lease_key: &str, change: F) -> Result<Lease, LeaseError>
    where
        F: FnOnce(&Lease) -> Result<Lease, LeaseError> + Send,
    {
        let mut leases = self.leases.lock().await;
        let current = leases
            .get(lease_key)
            .ok_or_else(|| self.lost(lease_key, "lease does not exist"))?;
        let updated = change(current)?;
        let mut next = leases.clone();
        next.insert(lease_key.to_owned(), updated.clone());
        self.persist(&next).await?;
        *leases = next;
        Ok(updated)
    }

    fn check_counter(&self, current: &Lease, expected: &Lease) -> Result<(), LeaseError> {
        if current.lease_counter != expected.lease_counter {
            return Err(self.lost(&expected.lease_key, "lease counter changed"));
        }
        Ok(())
    }

    fn check_owner(&self, current: &Lease, expected: &Lease) -> Result<(), LeaseError> {
        if current.lease_owner != expected.lease_owner {
            return Err(self.lost(&expected.lease_key, "lease owner changed"));
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseStore for EmbeddedLeaseStore {
    fn table_name(&self) -> &str {
        &self.table
    }

    async fn ensure_table(&self) -> Result<(), LeaseError> {
        let leases = self.leases.lock().await;
        if let Some(path) = &self.path {
            if !path.exists() {
                self.persist(&leases).await?;
            }
        }
        Ok(())
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, LeaseError> {
        Ok(self.leases.lock().await.values().cloned().collect())
    }

    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>, LeaseError> {
        Ok(self.leases.lock().await.get(lease_key).cloned())
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let mut leases = self.leases.lock().await;
        if leases.contains_key(&lease.lease_key) {
            return Ok(false);
        }
        let mut next = leases.clone();
        next.insert(lease.lease_key.clone(), lease.clone());
        self.persist(&next).await?;
        *leases = next;
        Ok(true)
    }

    async fn renew(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        self.mutate(&expected.lease_key, |current| {
            self.check_counter(current, expected)?;
            self.check_owner(current, expected)?;
            let mut next = current.clone();
            next.lease_counter += 1;
            Ok(next)
        })
        .await
    }

    async fn take(&self, expected: &Lease, new_owner: &str) -> Result<Lease, LeaseError> {
        self.mutate(&expected.lease_key, |current| {
            self.check_counter(current, expected)?;
            let mut next = current.clone();
            next.lease_counter += 1;
            if current
                .lease_owner
                .as_deref()
                .is_some_and(|owner| owner != new_owner)
            {
                next.owner_switches_since_checkpoint += 1;
            }
            next.lease_owner = Some(new_owner.to_owned());
            Ok(next)
        })
        .await
    }

    async fn evict(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        self.mutate(&expected.lease_key, |current| {
            self.check_owner(current, expected)?;
            let mut next = current.clone();
            next.lease_counter += 1;
            next.lease_owner = None;
            Ok(next)
        })
        .await
    }

    async fn checkpoint(
        &self,
        expected: &Lease,
        checkpoint: &Checkpoint,
        transform_state: Option<&str>,
    ) -> Result<Lease, LeaseError> {
        self.mutate(&expected.lease_key, |current| {
            self.check_counter(current, expected)?;
            self.check_owner(current, expected)?;
            let mut next = current.clone();
            next.lease_counter += 1;
            next.checkpoint = checkpoint.clone();
            if let Some(state) = transform_state {
                next.transform_state = Some(state.to_owned());
            }
            next.owner_switches_since_checkpoint = 0;
            Ok(next)
        })
        .await
    }

    async fn update_child_shard_ids(
        &self,
        expected: &Lease,
        children: &[String],
    ) -> Result<Lease, LeaseError> {
        self.mutate(&expected.lease_key, |current| {
            self.check_counter(current, expected)?;
            let mut next = current.clone();
            next.lease_counter += 1;
            next.child_shard_ids = children.to_vec();
            Ok(next)
        })
        .await
    }

    async fn delete_finished_lease(&self, expected: &Lease) -> Result<(), LeaseError> {
        let mut leases = self.leases.lock().await;
        let current = leases
            .get(&expected.lease_key)
            .ok_or_else(|| self.lost(&expected.lease_key, "lease does not exist"))?;
        self.check_counter(current, expected)?;
        if !current.is_finished() {
            return Err(self.lost(&expected.lease_key, "lease is not at SHARD_END"));
        }
        let mut next = leases.clone();
        next.remove(&expected.lease_key);
        self.persist(&next).await?;
        *leases = next;
        Ok(())
    }

    async fn delete_lease(&self, lease_key: &str) -> Result<(), LeaseError> {
        let mut leases = self.leases.lock().await;
        if !leases.contains_key(lease_key) {
            return Ok(());
        }
        let mut next = leases.clone();
        next.remove(lease_key);
        self.persist(&next).await?;
        *leases = next;
        Ok(())
    }
}

/// The file layout: KCL attribute names, so the file reads like a scan of
/// the DynamoDB table.
#[derive(Serialize, Deserialize)]
struct StoredTable {
    version: u32,
    table: String,
    leases: Vec<StoredLease>,
}

#[derive(Serialize, Deserialize)]
struct StoredLease {
    #[serde(rename = "leaseKey")]
    lease_key: String,
    #[serde(
        rename = "leaseOwner",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    lease_owner: Option<String>,
    #[serde(rename = "leaseCounter", default)]
    lease_counter: u64,
    #[serde(rename = "checkpoint")]
    checkpoint: String,
    #[serde(rename = "checkpointSubSequenceNumber", default)]
    checkpoint_sub_sequence_number: u64,
    #[serde(rename = "ownerSwitchesSinceCheckpoint", default)]
    owner_switches_since_checkpoint: u64,
    #[serde(
        rename = "parentShardId",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    parent_shard_ids: Vec<String>,
    #[serde(
        rename = "childShardIds",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    child_shard_ids: Vec<String>,
    #[serde(
        rename = "startingHashKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    starting_hash_key: Option<String>,
    #[serde(
        rename = "endingHashKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    ending_hash_key: Option<String>,
    #[serde(
        rename = "shardlineTransformState",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    transform_state: Option<String>,
}

fn encode_file(table: &str, leases: &BTreeMap<String, Lease>) -> Vec<u8> {
    let stored = StoredTable {
        version: FILE_VERSION,
        table: table.to_owned(),
        leases: leases
            .values()
            .map(|l| StoredLease {
                lease_key: l.lease_key.clone(),
                lease_owner: l.lease_owner.clone(),
                lease_counter: l.lease_counter,
                checkpoint: l.checkpoint.sequence_string(),
                checkpoint_sub_sequence_number: l.checkpoint.sub_sequence(),
                owner_switches_since_checkpoint: l.owner_switches_since_checkpoint,
                parent_shard_ids: l.parent_shard_ids.clone(),
                child_shard_ids: l.child_shard_ids.clone(),
                starting_hash_key: l.starting_hash_key.clone(),
                ending_hash_key: l.ending_hash_key.clone(),
                transform_state: l.transform_state.clone(),
            })
            .collect(),
    };
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_vec_pretty(&stored).unwrap_or_default()
}

fn decode_file(table: &str, bytes: &[u8]) -> Result<BTreeMap<String, Lease>, LeaseError> {
    let corrupt = |lease_key: &str, attribute: &str, reason: String| LeaseError::Corrupt {
        table: table.to_owned(),
        lease_key: lease_key.to_owned(),
        attribute: attribute.to_owned(),
        reason,
    };
    let stored: StoredTable =
        serde_json::from_slice(bytes).map_err(|e| corrupt("?", "(file)", e.to_string()))?;
    let mut leases = BTreeMap::new();
    for s in stored.leases {
        let checkpoint = Checkpoint::from_parts(&s.checkpoint, s.checkpoint_sub_sequence_number)
            .map_err(|e| corrupt(&s.lease_key, "checkpoint", e.to_string()))?;
        let lease = Lease {
            lease_key: s.lease_key.clone(),
            lease_owner: s.lease_owner,
            lease_counter: s.lease_counter,
            checkpoint,
            owner_switches_since_checkpoint: s.owner_switches_since_checkpoint,
            parent_shard_ids: s.parent_shard_ids,
            child_shard_ids: s.child_shard_ids,
            starting_hash_key: s.starting_hash_key,
            ending_hash_key: s.ending_hash_key,
            transform_state: s.transform_state,
        };
        leases.insert(s.lease_key, lease);
    }
    Ok(leases)
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the
/// new content: temp file in the same directory, fsync, rename, fsync dir.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        "{}{}-{}",
        temp_prefix(path),
        std::process::id(),
        rand::random::<u64>()
    ));
    let write_tmp = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write_tmp() {
        let _ = std::fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((path.to_owned(), e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (dir.to_owned(), e))
}

/// Removes temp files a crash left behind (they never hold the only copy).
fn remove_stale_temp_files(dir: &Path, path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests;

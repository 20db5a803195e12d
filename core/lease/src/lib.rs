//! Shard leases and checkpoints for Shardline.
//!
//! A *lease* is one row of the lease table: which worker processes a shard
//! and how far it got (its checkpoint). The table follows the Java KCL 2.x
//! schema, so a Shardline worker and a KCL worker can read each other's
//! tables.
//!
//! - [`LeaseStore`] is the table contract; every mutating call is a
//!   conditional write on the lease counter (and owner), so two workers can
//!   never both believe they hold a lease. [`DynamoDbLeaseStore`] keeps the
//!   table in DynamoDB, [`EmbeddedLeaseStore`] in a JSON file (one process).
//! - [`sync_leases`] creates leases for newly listed shards following the
//!   KCL's rules; [`parents_finished`] tells when a child shard may start.
//! - [`LeaseCleanup`] deletes `SHARD_END` leases once every child shard
//!   is being read (the KCL's `LeaseCleanupManager`).
//! - [`LeaseCoordinator`] renews the leases this worker holds, takes expired
//!   or unowned ones, steals to balance load, and hands each acquired lease
//!   to the pipeline as a [`LeaseHandle`].
#![warn(missing_docs)]

mod cleanup;
mod coordinator;
mod dynamodb;
mod embedded;
mod error;
mod lease;
mod sync;

use async_trait::async_trait;

pub use cleanup::{cleanup_finished_leases, finished_leases_to_delete, LeaseCleanup, DEFAULT_CLEANUP_INTERVAL};
pub use coordinator::{CoordinatorConfig, LeaseCoordinator, LeaseHandle};
pub use dynamodb::DynamoDbLeaseStore;
pub use embedded::EmbeddedLeaseStore;
pub use error::LeaseError;
pub use lease::Lease;
pub use shardline_api::Checkpoint;
pub use sync::{parents_finished, sync_leases, ShardListing, Synced};

/// The lease table.
///
/// Every mutating call is conditional: it succeeds only when the stored
/// lease still has `expected.lease_counter` (and, where stated, the same
/// owner), increments the counter, and returns the lease as written. A
/// condition that does not hold is reported as [`LeaseError::Lost`].
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// The table name, for error messages and logs.
    fn table_name(&self) -> &str {
        "lease table"
    }

    /// Creates the table when it is missing and waits until it is usable.
    ///
    /// # Errors
    /// [`LeaseError::AccessDenied`] / [`LeaseError::Validation`] when the
    /// table cannot be created, [`LeaseError::Unavailable`] when the backend
    /// cannot be reached or the table does not become active in time.
    async fn ensure_table(&self) -> Result<(), LeaseError>;

    /// Every lease of the table (a consistent full scan, following pages).
    ///
    /// # Errors
    /// Backend errors; [`LeaseError::Corrupt`] for a row that cannot be read.
    async fn list_leases(&self) -> Result<Vec<Lease>, LeaseError>;

    /// The lease for `lease_key`, if any (consistent read).
    ///
    /// # Errors
    /// Backend errors; [`LeaseError::Corrupt`] for a row that cannot be read.
    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>, LeaseError>;

    /// Writes `lease` unless a lease with the same key exists; true when it
    /// was written.
    ///
    /// # Errors
    /// Backend errors.
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError>;

    /// Increments the counter. Condition: counter and owner equal `expected`'s.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails; backend errors.
    async fn renew(&self, expected: &Lease) -> Result<Lease, LeaseError>;

    /// Sets the owner to `new_owner` and increments the counter, adding one
    /// to `ownerSwitchesSinceCheckpoint` when the owner changes. Condition:
    /// counter equals `expected`'s.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails; backend errors.
    async fn take(&self, expected: &Lease, new_owner: &str) -> Result<Lease, LeaseError>;

    /// Removes the owner and increments the counter (KCL `evictLease`).
    /// Condition: owner equals `expected`'s.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails; backend errors.
    async fn evict(&self, expected: &Lease) -> Result<Lease, LeaseError>;

    /// Stores `checkpoint` (and `transform_state` when `Some`; `None` leaves
    /// the stored state as it is), resets `ownerSwitchesSinceCheckpoint` to 0
    /// and increments the counter, in one conditional write. Condition:
    /// counter and owner equal `expected`'s.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails; backend errors.
    async fn checkpoint(
        &self,
        expected: &Lease,
        checkpoint: &Checkpoint,
        transform_state: Option<&str>,
    ) -> Result<Lease, LeaseError>;

    /// Stores the child shard ids and increments the counter. Condition:
    /// counter equals `expected`'s.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails; backend errors.
    async fn update_child_shard_ids(
        &self,
        expected: &Lease,
        children: &[String],
    ) -> Result<Lease, LeaseError>;

    /// Deletes a finished lease (lease cleanup). Condition: the stored lease
    /// still has `expected.lease_counter` and is checkpointed `SHARD_END`.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the condition fails or the lease is gone;
    /// backend errors.
    async fn delete_finished_lease(&self, expected: &Lease) -> Result<(), LeaseError>;

    /// Deletes the lease (unconditionally; deleting a missing lease is fine).
    ///
    /// # Errors
    /// Backend errors.
    async fn delete_lease(&self, lease_key: &str) -> Result<(), LeaseError>;
}

//! Creating leases for the shards of a stream (the KCL's shard sync) and
//! deciding when a child shard may start.

mod plan;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use shardline_api::{Checkpoint, ShardInfo};

use crate::{Lease, LeaseError, LeaseStore};

/// Listings of a filtered `ListShards` tried before shard sync gives up on
/// the filter (the KCL's `RETRIES_FOR_COMPLETE_HASH_RANGE`).
const FILTERED_LISTING_ATTEMPTS: u32 = 3;
/// Pause between those listings (the KCL's `DELAY_BETWEEN_LIST_SHARDS_MILLIS`).
const FILTERED_LISTING_DELAY: Duration = Duration::from_secs(1);

/// Which shards [`sync_leases`] asks the stream for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardListing {
    /// Every shard, open and closed (`ListShards` without a filter).
    All,
    /// Only the shards at the initial position: `ListShards` with a
    /// `ShardFilter` of type `AT_LATEST`, `AT_TRIM_HORIZON` or
    /// `AT_TIMESTAMP`. Asked for when the lease table is empty.
    AtInitialPosition,
}

/// What [`sync_leases`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The shards it listed last.
    pub shards: Vec<ShardInfo>,
    /// How many leases it created.
    pub created: usize,
}

/// Creates missing leases following the Java KCL's shard sync and returns
/// the listing and how many leases were created. `list_shards` lists the
/// stream's shards ([`ShardListing`] says which).
///
/// - Empty table (the KCL's `EmptyLeaseTableSynchronizer`): the shards at
///   the initial position get a lease at `initial`. When that listing does
///   not cover the whole hash key space after 3 tries 1 s apart (it raced a
///   reshard), every shard is listed and the rules below apply.
/// - Otherwise (the KCL's `NonEmptyLeaseTableSynchronizer`): starting from
///   each open shard without a lease, the lineage is walked up to the first
///   leased ancestor; shards below a leased one get their lease when their
///   parent reaches `SHARD_END` (at `TRIM_HORIZON`), so a finished parent
///   whose lease was deleted is never read again. See
///   [`plan_new_leases`](plan::plan_new_leases) for the exact rules.
///
/// `initial` is `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP`. New leases are
/// unowned with counter 0 and carry the parent shard ids and hash-key
/// range; existing leases are never changed.
///
/// # Errors
/// Errors of `list_shards`, [`LeaseStore::list_leases`] and
/// [`LeaseStore::create_lease_if_absent`]; leases created before the error
/// stay (parents are created before their children).
pub async fn sync_leases<L, Fut, E>(store: &dyn LeaseStore, initial: &Checkpoint, mut list_shards: L) -> Result<Synced, E>
where
    L: FnMut(ShardListing) -> Fut,
    Fut: Future<Output = Result<Vec<ShardInfo>, E>>,
    E: From<LeaseError>,
{
    let leases = store.list_leases().await?;
    let (shards, plan) = if leases.is_empty() {
        match list_at_initial_position(store.table_name(), &mut list_shards).await? {
            Some(shards) => {
                let plan = plan::plan_for_empty_table(&shards, initial);
                (shards, plan)
            }
            None => {
                let shards = list_shards(ShardListing::All).await?;
                let plan = plan::plan_new_leases(&shards, &leases, initial);
                (shards, plan)
            }
        }
    } else {
        let shards = list_shards(ShardListing::All).await?;
        let plan = plan::plan_new_leases(&shards, &leases, initial);
        (shards, plan)
    };
    let mut created = 0;
    for lease in plan {
        if store.create_lease_if_absent(&lease).await? {
            tracing::info!(table = %store.table_name(), lease_key = %lease.lease_key, checkpoint = %lease.checkpoint, parents = ?lease.parent_shard_ids, "created lease");
            created += 1;
        }
    }
    Ok(Synced { shards, created })
}

/// The filtered listing for an empty table, or `None` when it never covered
/// the hash key space.
async fn list_at_initial_position<L, Fut, E>(table: &str, list_shards: &mut L) -> Result<Option<Vec<ShardInfo>>, E>
where
    L: FnMut(ShardListing) -> Fut,
    Fut: Future<Output = Result<Vec<ShardInfo>, E>>,
{
    for attempt in 1..=FILTERED_LISTING_ATTEMPTS {
        let shards = list_shards(ShardListing::AtInitialPosition).await?;
        if plan::covers_hash_key_space(&shards) {
            return Ok(Some(shards));
        }
        tracing::warn!(table = %table, attempt, shards = shards.len(), "shards listed at the initial position do not cover the hash key space");
        if attempt < FILTERED_LISTING_ATTEMPTS {
            tokio::time::sleep(FILTERED_LISTING_DELAY).await;
        }
    }
    tracing::warn!(table = %table, "listing every shard instead of the shards at the initial position");
    Ok(None)
}

/// True when every parent of `lease` is finished: its lease is
/// checkpointed `SHARD_END`, or it has no lease (trimmed, never created, or
/// deleted by lease cleanup once finished).
///
/// # Errors
/// Errors of [`LeaseStore::get_lease`].
pub async fn parents_finished(store: &dyn LeaseStore, lease: &Lease) -> Result<bool, LeaseError> {
    for parent in &lease.parent_shard_ids {
        if let Some(parent_lease) = store.get_lease(parent).await? {
            if !parent_lease.is_finished() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

//! Creating leases for the shards of a stream (the KCL's shard sync) and
//! deciding when a child shard may start.

use std::collections::{HashMap, HashSet};

use shardline_api::{Checkpoint, ShardInfo};

use crate::{Lease, LeaseError, LeaseStore};

/// Creates missing leases for `shards` following the KCL's rules and
/// returns how many were created.
///
/// - A shard that descends from a shard that already has a lease (a child
///   found after a reshard) starts at `TRIM_HORIZON`, open or closed, so
///   nothing written after its parent's end is skipped.
/// - Otherwise, with `initial` = `LATEST` only open shards get a lease (at
///   `LATEST`); with any other `initial` (`TRIM_HORIZON`, `AT_TIMESTAMP`)
///   every listed shard gets a lease at `initial`.
///
/// New leases are unowned with counter 0 and carry the parent shard ids and
/// hash-key range. Existing leases are never changed.
///
/// # Errors
/// Errors of [`LeaseStore::list_leases`] and
/// [`LeaseStore::create_lease_if_absent`]; leases created before the error
/// stay.
pub async fn sync_leases(
    store: &dyn LeaseStore,
    shards: &[ShardInfo],
    initial: &Checkpoint,
) -> Result<usize, LeaseError> {
    let existing: HashSet<String> = store
        .list_leases()
        .await?
        .into_iter()
        .map(|l| l.lease_key)
        .collect();
    let plan = plan_new_leases(&existing, shards, initial);
    let mut created = 0;
    for lease in plan {
        if store.create_lease_if_absent(&lease).await? {
            tracing::info!(lease_key = %lease.lease_key, checkpoint = %lease.checkpoint, "created lease");
            created += 1;
        }
    }
    Ok(created)
}

/// The leases [`sync_leases`] would create, parents before children.
pub(crate) fn plan_new_leases(
    existing: &HashSet<String>,
    shards: &[ShardInfo],
    initial: &Checkpoint,
) -> Vec<Lease> {
    let by_id: HashMap<&str, &ShardInfo> =
        shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    let mut memo = HashMap::new();
    let mut leases: Vec<(usize, Lease)> = Vec::new();
    for shard in shards {
        if existing.contains(&shard.shard_id) {
            continue;
        }
        let checkpoint = if descends_from_leased(
            &shard.shard_id,
            &by_id,
            existing,
            &mut memo,
            &mut HashSet::new(),
        ) {
            Checkpoint::TrimHorizon
        } else if matches!(initial, Checkpoint::Latest) {
            if shard.closed {
                continue;
            }
            Checkpoint::Latest
        } else {
            initial.clone()
        };
        let mut lease = Lease::new(shard.shard_id.clone(), checkpoint);
        lease.parent_shard_ids = shard.parent_shard_ids.clone();
        lease.starting_hash_key = Some(shard.starting_hash_key.clone());
        lease.ending_hash_key = Some(shard.ending_hash_key.clone());
        leases.push((depth(&shard.shard_id, &by_id, &mut HashSet::new()), lease));
    }
    leases.sort_by_key(|(depth, _)| *depth);
    leases.into_iter().map(|(_, lease)| lease).collect()
}

/// True when some ancestor of `shard_id` (through the listed shards'
/// parent links) has a lease in `existing`.
fn descends_from_leased<'a>(
    shard_id: &'a str,
    by_id: &HashMap<&'a str, &'a ShardInfo>,
    existing: &HashSet<String>,
    memo: &mut HashMap<&'a str, bool>,
    visiting: &mut HashSet<&'a str>,
) -> bool {
    if let Some(known) = memo.get(shard_id) {
        return *known;
    }
    if !visiting.insert(shard_id) {
        return false; // a cycle in the listing: stop
    }
    let parents: &'a [String] = match by_id.get(shard_id) {
        Some(shard) => &shard.parent_shard_ids,
        None => &[],
    };
    let result = parents.iter().any(|parent| {
        existing.contains(parent)
            || descends_from_leased(parent.as_str(), by_id, existing, memo, visiting)
    });
    memo.insert(shard_id, result);
    result
}

fn depth<'a>(
    shard_id: &'a str,
    by_id: &HashMap<&'a str, &'a ShardInfo>,
    visiting: &mut HashSet<&'a str>,
) -> usize {
    if !visiting.insert(shard_id) {
        return 0;
    }
    let Some(shard) = by_id.get(shard_id) else {
        return 0;
    };
    shard
        .parent_shard_ids
        .iter()
        .map(|p| 1 + depth(p.as_str(), by_id, visiting))
        .max()
        .unwrap_or(0)
}

/// True when every parent of `lease` is finished: its lease is
/// checkpointed `SHARD_END`, or it has no lease (trimmed or never created).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedLeaseStore;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.to_owned(),
            parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
            starting_hash_key: "0".to_owned(),
            ending_hash_key: "100".to_owned(),
            closed,
        }
    }

    /// p0 (closed) split into c1 (open) and c2 (closed), c2 split into d3, d4 (open).
    fn resharded() -> Vec<ShardInfo> {
        vec![
            shard("d3", &["c2"], false),
            shard("p0", &[], true),
            shard("c1", &["p0"], false),
            shard("c2", &["p0"], true),
            shard("d4", &["c2"], false),
        ]
    }

    fn checkpoints(leases: &[Lease]) -> Vec<(String, Checkpoint)> {
        leases
            .iter()
            .map(|l| (l.lease_key.clone(), l.checkpoint.clone()))
            .collect()
    }

    #[test]
    fn trim_horizon_creates_all_parents_first() {
        let plan = plan_new_leases(&HashSet::new(), &resharded(), &Checkpoint::TrimHorizon);
        let keys: Vec<&str> = plan.iter().map(|l| l.lease_key.as_str()).collect();
        assert_eq!(keys, ["p0", "c1", "c2", "d3", "d4"]);
        assert!(plan
            .iter()
            .all(|l| l.checkpoint == Checkpoint::TrimHorizon && l.lease_owner.is_none()));
        assert_eq!(plan[3].parent_shard_ids, vec!["c2".to_owned()]);
        assert_eq!(plan[3].ending_hash_key.as_deref(), Some("100"));
    }

    #[test]
    fn latest_creates_only_open_shards() {
        let plan = plan_new_leases(&HashSet::new(), &resharded(), &Checkpoint::Latest);
        assert_eq!(
            checkpoints(&plan),
            [
                ("c1".into(), Checkpoint::Latest),
                ("d3".into(), Checkpoint::Latest),
                ("d4".into(), Checkpoint::Latest)
            ]
        );
    }

    #[test]
    fn children_of_leased_shards_start_at_trim_horizon() {
        let existing: HashSet<String> = ["p0".to_owned()].into();
        for initial in [Checkpoint::Latest, Checkpoint::AtTimestamp] {
            let plan = plan_new_leases(&existing, &resharded(), &initial);
            // c2 is closed but descends from p0: created so d3/d4 do not skip it.
            assert_eq!(
                checkpoints(&plan),
                [
                    ("c1".into(), Checkpoint::TrimHorizon),
                    ("c2".into(), Checkpoint::TrimHorizon),
                    ("d3".into(), Checkpoint::TrimHorizon),
                    ("d4".into(), Checkpoint::TrimHorizon),
                ]
            );
        }
    }

    #[tokio::test]
    async fn sync_is_idempotent_and_parents_finished_follows_shard_end() {
        let store = EmbeddedLeaseStore::in_memory();
        assert_eq!(
            sync_leases(&store, &resharded(), &Checkpoint::TrimHorizon)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            sync_leases(&store, &resharded(), &Checkpoint::TrimHorizon)
                .await
                .unwrap(),
            0
        );
        let c2 = store.get_lease("c2").await.unwrap().unwrap();
        let d3 = store.get_lease("d3").await.unwrap().unwrap();
        let p0 = store.get_lease("p0").await.unwrap().unwrap();
        assert!(parents_finished(&store, &p0).await.unwrap(), "no parents");
        assert!(!parents_finished(&store, &d3).await.unwrap());
        let c2 = store.take(&c2, "w").await.unwrap();
        store.checkpoint(&c2, &Checkpoint::ShardEnd, None).await.unwrap();
        assert!(parents_finished(&store, &d3).await.unwrap());
        store.delete_lease("p0").await.unwrap();
        let c1 = store.get_lease("c1").await.unwrap().unwrap();
        assert!(
            parents_finished(&store, &c1).await.unwrap(),
            "a trimmed parent counts as finished"
        );
    }
}

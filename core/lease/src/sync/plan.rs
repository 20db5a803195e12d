//! Which leases shard sync creates: a port of the Java KCL's
//! `HierarchicalShardSyncer` (`NonEmptyLeaseTableSynchronizer`,
//! `EmptyLeaseTableSynchronizer`) plus the child leases the KCL's
//! `ShutdownTask` creates when a shard reaches its end.

use std::collections::{BTreeMap, HashMap, HashSet};

use shardline_api::{Checkpoint, ShardInfo};

use crate::Lease;

/// The leases to create for a table that already has leases, parents before
/// children:
///
/// - For every open shard without a lease (the KCL's
///   `NonEmptyLeaseTableSynchronizer`): walk up its lineage and stop at the
///   first leased ancestor. A shard that descends from a leased shard gets no
///   lease now (it is created when its parent ends, see below), but an
///   unleased parent needed to complete its hash range does. A shard that
///   descends from no leased shard gets a lease at `initial`; with
///   `TRIM_HORIZON` or `AT_TIMESTAMP` its unleased ancestors do too, with
///   `LATEST` they do not. So a finished parent whose lease was deleted is
///   never created again: its children's leases stop the walk.
/// - For every `SHARD_END` lease: each listed child without a lease gets one
///   at `TRIM_HORIZON` once every listed parent of the child has a lease (the
///   KCL's `ShutdownTask` does this at the parent's end; here any worker's
///   sync does it, so a crash between the end and the creation loses
///   nothing).
///
/// Open shards whose parent is still open (a listing that raced a reshard)
/// are left for the next sync.
pub(crate) fn plan_new_leases(shards: &[ShardInfo], leases: &[Lease], initial: &Checkpoint) -> Vec<Lease> {
    let by_id: HashMap<&str, &ShardInfo> = shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    let leased: HashSet<&str> = leases.iter().map(|l| l.lease_key.as_str()).collect();
    let inconsistent = inconsistent_shard_ids(shards, &by_id);
    let mut walk = Walk {
        by_id: &by_id,
        leased: &leased,
        initial,
        is_descendant: HashMap::new(),
        should_create: HashSet::new(),
        new_leases: BTreeMap::new(),
    };
    for shard in shards.iter().filter(|s| !s.closed) {
        let id = shard.shard_id.as_str();
        if leased.contains(id) || inconsistent.contains(id) {
            continue;
        }
        if !walk.is_descendant(id) {
            walk.new_leases.insert(id, new_lease(shard, initial.clone()));
        }
    }
    let mut planned = walk.new_leases;
    for child in children_of_finished(leases, shards, &by_id) {
        let id = child.shard_id.as_str();
        if leased.contains(id) || planned.contains_key(id) || inconsistent.contains(id) {
            continue;
        }
        let parents_leased = listed_parents(child, &by_id)
            .iter()
            .all(|p| leased.contains(p) || planned.contains_key(p));
        if parents_leased {
            planned.insert(id, new_lease(child, Checkpoint::TrimHorizon));
        }
    }
    parents_first(planned.into_values().collect(), &by_id)
}

/// The leases to create for an empty table (the KCL's
/// `EmptyLeaseTableSynchronizer`): one at `initial` for every shard of
/// `shards`, which were listed at the initial position (`ListShards` with a
/// `ShardFilter`). Closed ones get their children's leases when they end.
pub(crate) fn plan_for_empty_table(shards: &[ShardInfo], initial: &Checkpoint) -> Vec<Lease> {
    let by_id: HashMap<&str, &ShardInfo> = shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    let leases = shards.iter().map(|s| new_lease(s, initial.clone())).collect();
    parents_first(leases, &by_id)
}

/// True when `shards` cover the hash key space `0..=2^128-1` without a gap
/// or overlap (the KCL's `isHashRangeOfShardsComplete`, checked on a
/// filtered listing before it is trusted).
pub(crate) fn covers_hash_key_space(shards: &[ShardInfo]) -> bool {
    let mut ranges = Vec::with_capacity(shards.len());
    for shard in shards {
        match (shard.starting_hash_key.parse::<u128>(), shard.ending_hash_key.parse::<u128>()) {
            (Ok(start), Ok(end)) if start <= end => ranges.push((start, end)),
            _ => return false,
        }
    }
    ranges.sort_unstable();
    let Some(&(first, _)) = ranges.first() else {
        return false;
    };
    if first != 0 {
        return false;
    }
    let mut covered_to = ranges[0].1;
    for &(start, end) in &ranges[1..] {
        if covered_to == u128::MAX || start != covered_to + 1 {
            return false;
        }
        covered_to = end;
    }
    covered_to == u128::MAX
}

/// The KCL's `checkIfDescendantAndAddNewLeasesForAncestors` with its
/// memoization context.
struct Walk<'a> {
    by_id: &'a HashMap<&'a str, &'a ShardInfo>,
    leased: &'a HashSet<&'a str>,
    initial: &'a Checkpoint,
    is_descendant: HashMap<&'a str, bool>,
    should_create: HashSet<&'a str>,
    new_leases: BTreeMap<&'a str, Lease>,
}

impl<'a> Walk<'a> {
    /// True when `shard_id` has a lease or descends from a shard that has
    /// (or will get) one; adds leases for the ancestors that must be read
    /// first.
    fn is_descendant(&mut self, shard_id: &'a str) -> bool {
        if let Some(known) = self.is_descendant.get(shard_id) {
            return *known;
        }
        if self.leased.contains(shard_id) {
            // also when the shard is no longer listed (past retention): its
            // children were meant to follow it (Shardline; the KCL stops at
            // unlisted shards)
            self.is_descendant.insert(shard_id, true);
            return true;
        }
        let Some(shard) = self.by_id.get(shard_id).copied() else {
            // trimmed: not in the listing
            self.is_descendant.insert(shard_id, false);
            return false;
        };
        // a cycle in the listing ends here
        self.is_descendant.insert(shard_id, false);
        let mut descendant = false;
        {
            let mut parents = listed_parents(shard, self.by_id);
            parents.extend(shard.parent_shard_ids.iter().map(String::as_str).filter(|p| !self.by_id.contains_key(p) && self.leased.contains(p)));
            let mut descendant_parents = HashSet::new();
            for &parent in &parents {
                if self.is_descendant(parent) || self.should_create.contains(parent) {
                    descendant = true;
                    descendant_parents.insert(parent);
                }
            }
            if descendant {
                for &parent in &parents {
                    if self.leased.contains(parent) {
                        continue;
                    }
                    // Created when it was marked for creation by an earlier
                    // step (TRIM_HORIZON / AT_TIMESTAMP), or when it is the
                    // oldest unleased shard on the other side of a merge.
                    let needed = self.should_create.contains(parent) || !descendant_parents.contains(parent);
                    if needed && !self.new_leases.contains_key(parent) {
                        if let Some(parent_shard) = self.by_id.get(parent) {
                            self.new_leases.insert(parent, new_lease(parent_shard, self.initial.clone()));
                        }
                    }
                    if let Some(lease) = self.new_leases.get_mut(parent) {
                        lease.checkpoint = if descendant_parents.contains(parent) && *self.initial != Checkpoint::AtTimestamp {
                            Checkpoint::TrimHorizon
                        } else {
                            self.initial.clone()
                        };
                    }
                }
            } else if matches!(self.initial, Checkpoint::TrimHorizon | Checkpoint::AtTimestamp) {
                self.should_create.insert(shard_id);
            }
        }
        self.is_descendant.insert(shard_id, descendant);
        descendant
    }
}

/// The parents of `shard` that are in the listing (the others were trimmed).
fn listed_parents<'a>(shard: &'a ShardInfo, by_id: &HashMap<&'a str, &'a ShardInfo>) -> Vec<&'a str> {
    let mut parents: Vec<&str> = shard
        .parent_shard_ids
        .iter()
        .map(String::as_str)
        .filter(|p| by_id.contains_key(p))
        .collect();
    parents.dedup();
    parents
}

/// Open shards with an open parent: the listing raced a reshard.
fn inconsistent_shard_ids<'a>(shards: &'a [ShardInfo], by_id: &HashMap<&'a str, &'a ShardInfo>) -> HashSet<&'a str> {
    shards
        .iter()
        .filter(|s| listed_parents(s, by_id).iter().any(|p| by_id.get(p).is_some_and(|parent| !parent.closed)))
        .map(|s| s.shard_id.as_str())
        .collect()
}

/// The listed children of every `SHARD_END` lease: its `childShardIds` and
/// the listed shards that name it as a parent.
fn children_of_finished<'a>(leases: &[Lease], shards: &'a [ShardInfo], by_id: &HashMap<&'a str, &'a ShardInfo>) -> Vec<&'a ShardInfo> {
    let finished: HashSet<&str> = leases.iter().filter(|l| l.is_finished()).map(|l| l.lease_key.as_str()).collect();
    let mut children: BTreeMap<&str, &ShardInfo> = shards
        .iter()
        .filter(|s| s.parent_shard_ids.iter().any(|p| finished.contains(p.as_str())))
        .map(|s| (s.shard_id.as_str(), s))
        .collect();
    for lease in leases.iter().filter(|l| l.is_finished()) {
        for child in &lease.child_shard_ids {
            if let Some(shard) = by_id.get(child.as_str()) {
                children.insert(shard.shard_id.as_str(), shard);
            }
        }
    }
    children.into_values().collect()
}

fn new_lease(shard: &ShardInfo, checkpoint: Checkpoint) -> Lease {
    let mut lease = Lease::new(shard.shard_id.clone(), checkpoint);
    lease.parent_shard_ids = shard.parent_shard_ids.clone();
    lease.starting_hash_key = Some(shard.starting_hash_key.clone());
    lease.ending_hash_key = Some(shard.ending_hash_key.clone());
    lease
}

/// Sorts `leases` so that a shard comes after its listed ancestors (the
/// KCL sorts by starting sequence number), then by shard id: if a sync
/// stops half-way, no child has a lease its parent lacks.
fn parents_first(mut leases: Vec<Lease>, by_id: &HashMap<&str, &ShardInfo>) -> Vec<Lease> {
    leases.sort_by_cached_key(|l| (depth(&l.lease_key, by_id, &mut HashSet::new()), l.lease_key.clone()));
    leases
}

fn depth<'a>(shard_id: &'a str, by_id: &HashMap<&str, &'a ShardInfo>, visiting: &mut HashSet<&'a str>) -> usize {
    if !visiting.insert(shard_id) {
        return 0;
    }
    let Some(shard) = by_id.get(shard_id) else {
        return 0;
    };
    shard.parent_shard_ids.iter().map(|p| 1 + depth(p.as_str(), by_id, visiting)).max().unwrap_or(0)
}

//! Converting leases to and from DynamoDB items with the KCL 2.x attribute
//! names and types.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shardline_api::Checkpoint;

use crate::{Lease, LeaseError};

/// `leaseKey` (S), the table's hash key.
pub(crate) const LEASE_KEY: &str = "leaseKey";
/// `leaseOwner` (S).
pub(crate) const LEASE_OWNER: &str = "leaseOwner";
/// `leaseCounter` (N).
pub(crate) const LEASE_COUNTER: &str = "leaseCounter";
/// `checkpoint` (S): a sequence number or a sentinel.
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// `checkpointSubSequenceNumber` (N).
pub(crate) const CHECKPOINT_SUB: &str = "checkpointSubSequenceNumber";
/// `ownerSwitchesSinceCheckpoint` (N).
pub(crate) const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
/// `parentShardId` (SS).
pub(crate) const PARENT_SHARD_IDS: &str = "parentShardId";
/// `childShardIds` (SS).
pub(crate) const CHILD_SHARD_IDS: &str = "childShardIds";
/// `childShardId` (SS): the name early KCL 2.x releases wrote; read only.
const CHILD_SHARD_IDS_LEGACY: &str = "childShardId";
/// `startingHashKey` (S).
pub(crate) const STARTING_HASH_KEY: &str = "startingHashKey";
/// `endingHashKey` (S).
pub(crate) const ENDING_HASH_KEY: &str = "endingHashKey";
/// Shardline's own attribute: state of stateful transforms that goes with
/// the checkpoint. The Java KCL ignores attributes it does not know.
pub(crate) const TRANSFORM_STATE: &str = "shardlineTransformState";
/// `pendingCheckpoint` (S): KCL two-phase checkpoints; cleared by a checkpoint.
pub(crate) const PENDING_CHECKPOINT: &str = "pendingCheckpoint";
/// `pendingCheckpointSubSequenceNumber` (N).
pub(crate) const PENDING_CHECKPOINT_SUB: &str = "pendingCheckpointSubSequenceNumber";

/// A number attribute.
pub(crate) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute.
pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The full item for a new lease. Empty sets are left out (DynamoDB
/// rejects empty string sets).
pub(crate) fn to_item(lease: &Lease) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert(LEASE_KEY.to_owned(), s(&lease.lease_key));
    item.insert(LEASE_COUNTER.to_owned(), n(lease.lease_counter));
    if let Some(owner) = &lease.lease_owner {
        item.insert(LEASE_OWNER.to_owned(), s(owner));
    }
    item.insert(
        OWNER_SWITCHES.to_owned(),
        n(lease.owner_switches_since_checkpoint),
    );
    item.insert(
        CHECKPOINT.to_owned(),
        AttributeValue::S(lease.checkpoint.sequence_string()),
    );
    item.insert(
        CHECKPOINT_SUB.to_owned(),
        n(lease.checkpoint.sub_sequence()),
    );
    if !lease.parent_shard_ids.is_empty() {
        item.insert(
            PARENT_SHARD_IDS.to_owned(),
            AttributeValue::Ss(lease.parent_shard_ids.clone()),
        );
    }
    if !lease.child_shard_ids.is_empty() {
        item.insert(
            CHILD_SHARD_IDS.to_owned(),
            AttributeValue::Ss(lease.child_shard_ids.clone()),
        );
    }
    if let Some(key) = &lease.starting_hash_key {
        item.insert(STARTING_HASH_KEY.to_owned(), s(key));
    }
    if let Some(key) = &lease.ending_hash_key {
        item.insert(ENDING_HASH_KEY.to_owned(), s(key));
    }
    if let Some(state) = &lease.transform_state {
        item.insert(TRANSFORM_STATE.to_owned(), s(state));
    }
    item
}

/// Reads an item written by Shardline or the Java KCL. Unknown attributes
/// are ignored; missing optional ones take their defaults.
///
/// # Errors
/// [`LeaseError::Corrupt`] when `leaseKey` or `checkpoint` is missing or an
/// attribute has the wrong type or an unparsable value.
pub(crate) fn from_item(
    table: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Lease, LeaseError> {
    let reader = ItemReader {
        table,
        lease_key: "?",
        item,
    };
    let lease_key = reader
        .string(LEASE_KEY)?
        .ok_or_else(|| reader.corrupt(LEASE_KEY, "missing"))?;
    let reader = ItemReader {
        table,
        lease_key: &lease_key,
        item,
    };
    let sequence = reader
        .string(CHECKPOINT)?
        .ok_or_else(|| reader.corrupt(CHECKPOINT, "missing"))?;
    let sub_sequence = reader.number(CHECKPOINT_SUB)?.unwrap_or(0);
    let checkpoint = Checkpoint::from_parts(&sequence, sub_sequence)
        .map_err(|e| reader.corrupt(CHECKPOINT, &e.to_string()))?;
    let child_shard_ids = match reader.string_set(CHILD_SHARD_IDS)? {
        Some(ids) => ids,
        None => reader
            .string_set(CHILD_SHARD_IDS_LEGACY)?
            .unwrap_or_default(),
    };
    Ok(Lease {
        lease_owner: reader.string(LEASE_OWNER)?,
        lease_counter: reader.number(LEASE_COUNTER)?.unwrap_or(0),
        checkpoint,
        owner_switches_since_checkpoint: reader.number(OWNER_SWITCHES)?.unwrap_or(0),
        parent_shard_ids: reader.string_set(PARENT_SHARD_IDS)?.unwrap_or_default(),
        child_shard_ids,
        starting_hash_key: reader.string(STARTING_HASH_KEY)?,
        ending_hash_key: reader.string(ENDING_HASH_KEY)?,
        transform_state: reader.string(TRANSFORM_STATE)?,
        lease_key,
    })
}

struct ItemReader<'a> {
    table: &'a str,
    lease_key: &'a str,
    item: &'a HashMap<String, AttributeValue>,
}

impl ItemReader<'_> {
    fn corrupt(&self, attribute: &str, reason: &str) -> LeaseError {
        LeaseError::Corrupt {
            table: self.table.to_owned(),
            lease_key: self.lease_key.to_owned(),
            attribute: attribute.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn string(&self, name: &str) -> Result<Option<String>, LeaseError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.corrupt(
                name,
                &format!("expected a string (S), found {}", type_name(other)),
            )),
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, LeaseError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                self.corrupt(
                    name,
                    &format!("expected a non-negative integer, found {v:?}"),
                )
            }),
            Some(other) => Err(self.corrupt(
                name,
                &format!("expected a number (N), found {}", type_name(other)),
            )),
        }
    }

    fn string_set(&self, name: &str) -> Result<Option<Vec<String>>, LeaseError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Ss(v)) => {
                let mut ids = v.clone();
                ids.sort();
                Ok(Some(ids))
            }
            Some(AttributeValue::S(v)) => Ok(Some(vec![v.clone()])),
            Some(other) => Err(self.corrupt(
                name,
                &format!("expected a string set (SS), found {}", type_name(other)),
            )),
        }
    }
}

fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::N(_) => "N",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::S(_) => "S",
        AttributeValue::Ss(_) => "SS",
        _ => "an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_api::{Position, SequenceNumber};

    #[test]
    fn round_trips_with_kcl_names() {
        let mut lease = Lease::new(
            "shardId-000000000001",
            Checkpoint::At(Position::new(SequenceNumber::parse("4959").unwrap(), 3)),
        );
        lease.lease_owner = Some("w1".into());
        lease.lease_counter = 7;
        lease.parent_shard_ids = vec!["shardId-000000000000".into()];
        lease.starting_hash_key = Some("0".into());
        lease.ending_hash_key = Some("340282366920938463463374607431768211455".into());
        let item = to_item(&lease);
        assert_eq!(item.get("leaseKey"), Some(&s("shardId-000000000001")));
        assert_eq!(item.get("leaseCounter"), Some(&n(7)));
        assert_eq!(item.get("checkpoint"), Some(&s("4959")));
        assert_eq!(item.get("checkpointSubSequenceNumber"), Some(&n(3)));
        assert_eq!(
            item.get("parentShardId"),
            Some(&AttributeValue::Ss(vec!["shardId-000000000000".into()]))
        );
        assert!(
            !item.contains_key("childShardIds"),
            "empty sets are omitted"
        );
        assert_eq!(from_item("t", &item).unwrap(), lease);
    }

    #[test]
    fn reads_kcl_item_with_extras_and_missing_optionals() {
        let mut item = HashMap::new();
        item.insert("leaseKey".to_owned(), s("shardId-1"));
        item.insert("checkpoint".to_owned(), s("TRIM_HORIZON"));
        item.insert("pendingCheckpoint".to_owned(), s("123"));
        item.insert(
            "childShardId".to_owned(),
            AttributeValue::Ss(vec!["b".into(), "a".into()]),
        );
        let lease = from_item("t", &item).unwrap();
        assert_eq!(lease.lease_counter, 0);
        assert_eq!(lease.lease_owner, None);
        assert_eq!(lease.checkpoint, Checkpoint::TrimHorizon);
        assert_eq!(lease.child_shard_ids, vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn rejects_corrupt_items() {
        let mut item = HashMap::new();
        item.insert("leaseKey".to_owned(), s("shardId-1"));
        let err = from_item("t", &item).unwrap_err();
        assert!(
            matches!(err, LeaseError::Corrupt { ref attribute, .. } if attribute == "checkpoint"),
            "{err}"
        );
        item.insert("checkpoint".to_owned(), s("not-a-number"));
        assert!(from_item("t", &item).is_err());
        item.insert("checkpoint".to_owned(), s("LATEST"));
        item.insert("leaseCounter".to_owned(), s("1"));
        let err = from_item("t", &item).unwrap_err();
        assert!(
            matches!(err, LeaseError::Corrupt { ref attribute, .. } if attribute == "leaseCounter"),
            "{err}"
        );
    }
}

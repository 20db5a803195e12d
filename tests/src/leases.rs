//! Raw reads of the KCL lease table the workers share.
//!
//! The attribute names are the KCL 2.x ones, read here by name on purpose:
//! the tests check that the table stays compatible with Java KCL workers.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

/// One item of the lease table.
#[derive(Debug, Clone)]
pub struct Lease {
    /// `leaseKey` (S): the shard id.
    pub lease_key: String,
    /// `leaseOwner` (S): the worker id holding it; `None` when the
    /// attribute is absent or NULL (a released lease).
    pub lease_owner: Option<String>,
    /// `leaseCounter` (N).
    pub lease_counter: Option<u64>,
    /// `checkpoint` (S): a sequence number or `TRIM_HORIZON`, `LATEST`,
    /// `SHARD_END`...
    pub checkpoint: Option<String>,
    /// `checkpointSubSequenceNumber` (N).
    pub checkpoint_sub_sequence_number: Option<u64>,
    /// `ownerSwitchesSinceCheckpoint` (N).
    pub owner_switches_since_checkpoint: Option<u64>,
    /// `parentShardId` (SS).
    pub parent_shard_ids: Vec<String>,
    /// The whole item.
    pub raw: HashMap<String, AttributeValue>,
}

impl Lease {
    fn from_item(item: HashMap<String, AttributeValue>) -> anyhow::Result<Lease> {
        let s = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(AttributeValue::Null(_)) | None => Ok(None),
            Some(other) => anyhow::bail!("{name} is not a string attribute: {other:?}"),
        };
        let n = |name: &str| match item.get(name) {
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map(Some)
                .with_context(|| format!("{name} = {v:?}")),
            Some(AttributeValue::Null(_)) | None => Ok(None),
            Some(other) => anyhow::bail!("{name} is not a number attribute: {other:?}"),
        };
        let parent_shard_ids = match item.get("parentShardId") {
            Some(AttributeValue::Ss(v)) => v.clone(),
            Some(AttributeValue::Null(_)) | None => Vec::new(),
            Some(other) => anyhow::bail!("parentShardId is not a string set: {other:?}"),
        };
        Ok(Lease {
            lease_key: s("leaseKey")?.context("item without leaseKey")?,
            lease_owner: s("leaseOwner")?,
            lease_counter: n("leaseCounter")?,
            checkpoint: s("checkpoint")?,
            checkpoint_sub_sequence_number: n("checkpointSubSequenceNumber")?,
            owner_switches_since_checkpoint: n("ownerSwitchesSinceCheckpoint")?,
            parent_shard_ids,
            raw: item,
        })
    }

    /// One line per lease (owner, counter, checkpoint), keyed by shard, for
    /// assertion messages.
    pub fn summary(leases: &[Lease]) -> std::collections::BTreeMap<String, String> {
        leases
            .iter()
            .map(|l| {
                let checkpoint =
                    format!("{:?}/{:?}", l.checkpoint, l.checkpoint_sub_sequence_number);
                let line = format!(
                    "owner={:?} counter={:?} checkpoint={checkpoint} parents={:?}",
                    l.lease_owner, l.lease_counter, l.parent_shard_ids
                );
                (l.lease_key.clone(), line)
            })
            .collect()
    }

    /// `(checkpoint, checkpointSubSequenceNumber)` for
    /// [`crate::cmp_checkpoint`], if checkpointed.
    pub fn checkpoint_position(&self) -> Option<(&str, u64)> {
        self.checkpoint
            .as_deref()
            .map(|c| (c, self.checkpoint_sub_sequence_number.unwrap_or(0)))
    }
}

/// A lease table on the DynamoDB emulator.
#[derive(Clone)]
pub struct LeaseTable {
    /// The SDK client.
    pub client: Client,
    /// Table name.
    pub table: String,
}

impl LeaseTable {
    /// The table `table` on the DynamoDB emulator at `endpoint` (it need not
    /// exist yet: the workers create it).
    pub fn new(endpoint: &str, table: &str) -> LeaseTable {
        LeaseTable {
            client: Client::new(&shardline_aws::emulator_sdk_config(endpoint)),
            table: table.to_owned(),
        }
    }

    /// Every lease, sorted by `leaseKey`; empty while the table does not
    /// exist.
    ///
    /// # Errors
    /// On a scan error other than a missing table, or a malformed item.
    pub async fn scan(&self) -> anyhow::Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = match self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("Scan {}", self.table))),
            };
            for item in page.items() {
                leases.push(Lease::from_item(item.clone())?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
        Ok(leases)
    }

    /// The lease of `shard_id` (a consistent `GetItem`), if it exists.
    ///
    /// # Errors
    /// On a DynamoDB error other than a missing table, or a malformed item.
    pub async fn get(&self, shard_id: &str) -> anyhow::Result<Option<Lease>> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("leaseKey", AttributeValue::S(shard_id.to_owned()))
            .consistent_read(true)
            .send()
            .await;
        match answer {
            Ok(out) => out.item().cloned().map(Lease::from_item).transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => {
                Err(anyhow::Error::new(e).context(format!("GetItem {} {shard_id}", self.table)))
            }
        }
    }

    /// Number of leases each owner holds.
    ///
    /// # Errors
    /// As [`LeaseTable::scan`].
    pub async fn owner_counts(&self) -> anyhow::Result<HashMap<String, usize>> {
        let mut counts = HashMap::new();
        for lease in self.scan().await? {
            if let Some(owner) = lease.lease_owner {
                *counts.entry(owner).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

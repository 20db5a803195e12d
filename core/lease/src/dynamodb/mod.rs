//! The lease table in DynamoDB, readable and writable by Java KCL 2.x
//! workers (same attribute names and conditional writes).

mod classify;
mod item;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use shardline_api::Checkpoint;

use crate::{Lease, LeaseError, LeaseStore};
use classify::classify;
use item::{n, s};

/// How long [`LeaseStore::ensure_table`] waits for a table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// The DynamoDB lease store.
#[derive(Debug, Clone)]
pub struct DynamoDbLeaseStore {
    client: Client,
    table: String,
}

/// One conditional `UpdateItem`: expressions plus the names and values
/// they use (DynamoDB rejects unused ones).
struct Update<'a> {
    operation: &'static str,
    lease_key: &'a str,
    update: String,
    condition: String,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl<'a> Update<'a> {
    /// An update of an existing lease (never creates one).
    fn new(operation: &'static str, lease_key: &'a str) -> Self {
        Update {
            operation,
            lease_key,
            update: String::new(),
            condition: "attribute_exists(#key)".to_owned(),
            names: vec![("#key", item::LEASE_KEY)],
            values: Vec::new(),
        }
    }

    fn name(mut self, placeholder: &'static str, attribute: &'static str) -> Self {
        self.names.push((placeholder, attribute));
        self
    }

    fn value(mut self, placeholder: &'static str, value: AttributeValue) -> Self {
        self.values.push((placeholder, value));
        self
    }

    /// Adds `leaseCounter = :expected_counter` to the condition.
    fn counter_is(self, expected: &Lease) -> Self {
        let update = self
            .name("#counter", item::LEASE_COUNTER)
            .value(":expected_counter", n(expected.lease_counter));
        update.and_condition("#counter = :expected_counter")
    }

    /// Adds `leaseOwner = :expected_owner` (or that it is absent) to the condition.
    fn owner_is(self, expected: &Lease) -> Self {
        let update = self.name("#owner", item::LEASE_OWNER);
        match &expected.lease_owner {
            Some(owner) => update
                .value(":expected_owner", s(owner))
                .and_condition("#owner = :expected_owner"),
            None => update.and_condition("attribute_not_exists(#owner)"),
        }
    }

    fn and_condition(mut self, clause: &str) -> Self {
        if !self.condition.is_empty() {
            self.condition.push_str(" AND ");
        }
        self.condition.push_str(clause);
        self
    }

    fn expression(mut self, update: impl Into<String>) -> Self {
        self.update = update.into();
        self
    }
}

impl DynamoDbLeaseStore {
    /// A store for `table`, reached through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbLeaseStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(lease_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(item::LEASE_KEY.to_owned(), s(lease_key))])
    }

    async fn table_status(&self) -> Result<Option<TableStatus>, LeaseError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().and_then(|t| t.table_status()).cloned()),
            Err(err) => match classify(err, &self.table, "describe_table", None) {
                LeaseError::TableMissing { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn create_table(&self) -> Result<(), LeaseError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| LeaseError::Validation {
            table: self.table.clone(),
            operation: "create_table",
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
        let key = KeySchemaElement::builder()
            .attribute_name(item::LEASE_KEY)
            .key_type(KeyType::Hash)
            .build()
            .map_err(invalid)?;
        let attribute = AttributeDefinition::builder()
            .attribute_name(item::LEASE_KEY)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(invalid)?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .key_schema(key)
            .attribute_definitions(attribute)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(table = %self.table, "created lease table");
                Ok(())
            }
            // Another worker created it at the same time.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify(err, &self.table, "create_table", None)),
        }
    }

    async fn update(&self, update: Update<'_>) -> Result<Lease, LeaseError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(update.lease_key)))
            .update_expression(update.update)
            .condition_expression(update.condition)
            .return_values(ReturnValue::AllNew);
        for (placeholder, name) in update.names {
            request = request.expression_attribute_names(placeholder, name);
        }
        for (placeholder, value) in update.values {
            request = request.expression_attribute_values(placeholder, value);
        }
        let out = request
            .send()
            .await
            .map_err(|err| classify(err, &self.table, update.operation, Some(update.lease_key)))?;
        let attributes = out.attributes().ok_or_else(|| LeaseError::Corrupt {
            table: self.table.clone(),
            lease_key: update.lease_key.to_owned(),
            attribute: "(item)".to_owned(),
            reason: format!("{} returned no attributes", update.operation),
        })?;
        item::from_item(&self.table, attributes)
    }
}

#[async_trait]
impl LeaseStore for DynamoDbLeaseStore {
    fn table_name(&self) -> &str {
        &self.table
    }

    async fn ensure_table(&self) -> Result<(), LeaseError> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        let mut delay = Duration::from_millis(50);
        let mut created = false;
        loop {
            match self.table_status().await? {
                Some(TableStatus::Active) => return Ok(()),
                None if !created => {
                    self.create_table().await?;
                    created = true;
                    continue;
                }
                status => {
                    tracing::debug!(table = %self.table, status = ?status, "waiting for lease table to become active")
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let message = format!(
                    "table did not become ACTIVE within {}s",
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                );
                return Err(LeaseError::Unavailable {
                    table: self.table.clone(),
                    operation: "ensure_table",
                    source: message.clone().into(),
                    message,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|err| classify(err, &self.table, "list_leases", None))?;
            for item in out.items() {
                leases.push(item::from_item(&self.table, item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
        Ok(leases)
    }

    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>, LeaseError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(lease_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify(err, &self.table, "get_lease", Some(lease_key)))?;
        out.item()
            .map(|item| item::from_item(&self.table, item))
            .transpose()
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::to_item(lease)))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", item::LEASE_KEY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match classify(
                err,
                &self.table,
                "create_lease_if_absent",
                Some(&lease.lease_key),
            ) {
                LeaseError::Lost { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn renew(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        let update = Update::new("renew", &expected.lease_key)
            .counter_is(expected)
            .owner_is(expected)
            .value(":new_counter", n(expected.lease_counter + 1))
            .expression("SET #counter = :new_counter");
        self.update(update).await
    }

    async fn take(&self, expected: &Lease, new_owner: &str) -> Result<Lease, LeaseError> {
        let mut update = Update::new("take", &expected.lease_key)
            .counter_is(expected)
            .name("#owner", item::LEASE_OWNER)
            .value(":new_owner", s(new_owner))
            .value(":new_counter", n(expected.lease_counter + 1));
        let owner_changes = expected
            .lease_owner
            .as_deref()
            .is_some_and(|owner| owner != new_owner);
        update = if owner_changes {
            update
                .name("#switches", item::OWNER_SWITCHES)
                .value(":one", n(1))
                .expression("SET #owner = :new_owner, #counter = :new_counter ADD #switches :one")
        } else {
            update.expression("SET #owner = :new_owner, #counter = :new_counter")
        };
        self.update(update).await
    }

    async fn evict(&self, expected: &Lease) -> Result<Lease, LeaseError> {
        // The condition is on the owner only (KCL evictLease), so the counter
        // is incremented in place rather than set from a possibly stale copy.
        let update = Update::new("evict", &expected.lease_key)
            .owner_is(expected)
            .name("#counter", item::LEASE_COUNTER)
            .value(":one", n(1))
            .expression("REMOVE #owner ADD #counter :one");
        self.update(update).await
    }

    async fn checkpoint(
        &self,
        expected: &Lease,
        checkpoint: &Checkpoint,
        transform_state: Option<&str>,
    ) -> Result<Lease, LeaseError> {
        let update = Update::new("checkpoint", &expected.lease_key)
            .counter_is(expected)
            .owner_is(expected)
            .name("#checkpoint", item::CHECKPOINT)
            .name("#sub", item::CHECKPOINT_SUB)
            .name("#switches", item::OWNER_SWITCHES)
            .name("#pending", item::PENDING_CHECKPOINT)
            .name("#pending_sub", item::PENDING_CHECKPOINT_SUB)
            .value(":new_counter", n(expected.lease_counter + 1))
            .value(":checkpoint", AttributeValue::S(checkpoint.sequence_string()))
            .value(":sub", n(checkpoint.sub_sequence()))
            .value(":zero", n(0));
        let update = match transform_state {
            Some(state) => update
                .name("#state", item::TRANSFORM_STATE)
                .value(":state", AttributeValue::S(state.to_owned()))
                .expression(
                    "SET #counter = :new_counter, #checkpoint = :checkpoint, #sub = :sub, #switches = :zero, #state = :state \
                     REMOVE #pending, #pending_sub",
                ),
            None => update.expression(
                "SET #counter = :new_counter, #checkpoint = :checkpoint, #sub = :sub, #switches = :zero \
                 REMOVE #pending, #pending_sub",
            ),
        };
        self.update(update).await
    }

    async fn update_child_shard_ids(
        &self,
        expected: &Lease,
        children: &[String],
    ) -> Result<Lease, LeaseError> {
        let update = Update::new("update_child_shard_ids", &expected.lease_key)
            .counter_is(expected)
            .name("#children", item::CHILD_SHARD_IDS)
            .value(":new_counter", n(expected.lease_counter + 1));
        let update = if children.is_empty() {
            update.expression("SET #counter = :new_counter REMOVE #children")
        } else {
            let mut unique = children.to_vec();
            unique.sort();
            unique.dedup();
            update
                .value(":children", AttributeValue::Ss(unique))
                .expression("SET #counter = :new_counter, #children = :children")
        };
        self.update(update).await
    }

    async fn delete_finished_lease(&self, expected: &Lease) -> Result<(), LeaseError> {
        let key = &expected.lease_key;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#counter = :expected_counter AND #checkpoint = :shard_end")
            .expression_attribute_names("#counter", item::LEASE_COUNTER)
            .expression_attribute_names("#checkpoint", item::CHECKPOINT)
            .expression_attribute_values(":expected_counter", n(expected.lease_counter))
            .expression_attribute_values(":shard_end", s(&Checkpoint::ShardEnd.sequence_string()))
            .send()
            .await
            .map_err(|err| classify(err, &self.table, "delete_finished_lease", Some(key)))?;
        Ok(())
    }

    async fn delete_lease(&self, lease_key: &str) -> Result<(), LeaseError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(lease_key)))
            .send()
            .await
            .map_err(|err| classify(err, &self.table, "delete_lease", Some(lease_key)))?;
        Ok(())
    }
}

//! Sequence-fenced writes (`fence_on_sequence = true`).
//!
//! Every item carries its record's Kinesis position in `fence_attribute`
//! (default `_kinesis_position`) as a string whose order is the numeric
//! order of positions: the sequence number zero-padded to 56 digits, a
//! `.`, and the sub-sequence number zero-padded to 20 digits. Each item is
//! written with `PutItem` under the condition
//! `attribute_not_exists(#p) OR #p < :pos`, so a write can only move an
//! item forward: a replay from `TRIM_HORIZON`, a batch sent again, or a
//! zombie worker that lost its lease and still sends an old batch can never
//! put back an older version of the same key.
//!
//! `BatchWriteItem` takes no conditions, so a fenced batch is written item
//! by item, with up to `concurrency` `PutItem` calls in flight.
//!
//! A refused condition (`ConditionalCheckFailedException`) means the table
//! already holds this position or a newer one: the record is answered
//! **delivered** (there is nothing left to write) and counted in
//! `shardline_dynamodb_fenced_total{table}`. Throttling, 5xx and timeouts
//! are answered retriable (the engine retries the record); an item
//! DynamoDB refuses is rejected with its reason.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt as _;
use shardline_plugin_sdk::{Record, RecordStatus};

use crate::batch::Entry;
use crate::error::{classify, DynamoError};
use crate::writer::{Answers, Writer};

/// Digits of a zero-padded sequence number (Kinesis sequence numbers have
/// at most 56).
pub const SEQUENCE_DIGITS: usize = 56;

/// The DynamoDB error code of a refused condition.
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

/// The fence value of a record: `<56-digit sequence>.<20-digit sub-sequence>`,
/// or `None` when the sequence number has more than 56 digits (not a
/// Kinesis sequence number).
pub fn position(record: &Record) -> Option<String> {
    let sequence = record.meta.sequence_number.as_str();
    (sequence.len() <= SEQUENCE_DIGITS).then(|| {
        format!(
            "{sequence:0>SEQUENCE_DIGITS$}.{:020}",
            record.meta.sub_sequence_number
        )
    })
}

impl Writer {
    /// Writes `entries` with conditional `PutItem`s, `attribute` holding
    /// each record's position (added to the item here), and answers every
    /// entry.
    ///
    /// # Errors
    /// A table-level [`DynamoError`] (missing table, access denied).
    pub async fn write_fenced(
        &self,
        entries: Vec<Entry>,
        batch: &[Record],
        attribute: &str,
    ) -> Result<Answers, DynamoError> {
        let mut answers = Vec::with_capacity(entries.len());
        let mut ready = Vec::with_capacity(entries.len());
        for mut entry in entries {
            match batch.get(entry.record).and_then(position) {
                Some(pos) => {
                    entry.item.insert(attribute.to_owned(), AttributeValue::S(pos.clone()));
                    ready.push((entry, pos));
                }
                None => answers.push((
                    entry.record,
                    RecordStatus::Rejected {
                        reason: format!("the sequence number has more than {SEQUENCE_DIGITS} digits: it cannot be fenced (fence_on_sequence)"),
                    },
                )),
            }
        }
        let mut results = futures::stream::iter(ready)
            .map(|(entry, pos)| self.put_fenced(entry, attribute, pos))
            .buffer_unordered(self.concurrency.max(1));
        while let Some(result) = results.next().await {
            answers.push(result?);
        }
        Ok(answers)
    }

    async fn put_fenced(
        &self,
        entry: Entry,
        attribute: &str,
        pos: String,
    ) -> Result<(usize, RecordStatus), DynamoError> {
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry.item))
            .condition_expression("attribute_not_exists(#p) OR #p < :pos")
            .expression_attribute_names("#p", attribute)
            .expression_attribute_values(":pos", AttributeValue::S(pos.clone()))
            .send()
            .await;
        let status = match outcome {
            Ok(_) => RecordStatus::Delivered,
            Err(e) => match classify(e, &self.table, "PutItem") {
                DynamoError::Refused { code, .. } if code == CONDITION_FAILED => {
                    metrics::counter!("shardline_dynamodb_fenced_total", "table" => self.table.clone()).increment(1);
                    tracing::debug!(table = %self.table, position = %pos, "item already at this position or newer; write fenced off");
                    RecordStatus::Delivered
                }
                DynamoError::Refused { code, message, .. } => RecordStatus::Rejected {
                    reason: format!("DynamoDB refused the item: {code}: {message}"),
                },
                e if e.is_table_level() => return Err(e),
                e => RecordStatus::Retriable {
                    reason: e.to_string(),
                    backoff: None,
                },
            },
        };
        Ok((entry.record, status))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shardline_plugin_sdk::{RecordMeta, SequenceNumber};

    use super::*;

    fn record(sequence: &str, sub: u64) -> Record {
        let meta = RecordMeta {
            stream: Arc::from("s"),
            shard_id: Arc::from("shardId-000000000000"),
            sequence_number: SequenceNumber::parse(sequence).expect("digits"),
            sub_sequence_number: sub,
            partition_key: "pk".into(),
            explicit_hash_key: None,
            arrival_time: std::time::SystemTime::UNIX_EPOCH,
            aggregated: false,
        };
        Record {
            payload: shardline_plugin_sdk::Payload::Bytes(b"{}".to_vec().into()),
            meta: Arc::new(meta),
            event_time: None,
        }
    }

    #[test]
    fn string_order_is_numeric_order() {
        let positions = [
            ("9", 0),
            ("10", 0),
            ("10", 1),
            ("10", 12),
            ("99", 0),
            (
                "49590338271490256608559692538361571095921575989136588898",
                3,
            ),
        ];
        let texts: Vec<String> = positions
            .iter()
            .map(|(s, sub)| position(&record(s, *sub)).expect("fits"))
            .collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        assert_eq!(texts[0], format!("{}9.{}", "0".repeat(55), "0".repeat(20)));
        assert!(texts.iter().all(|t| t.len() == 56 + 1 + 20));
        assert_eq!(position(&record(&"1".repeat(57), 0)), None);
    }
}

//! Planning one batch: which records are written to which object, and
//! which are rejected with what reason. Pure CPU work (JSON validation,
//! encoding, compression, Parquet files), run on a blocking thread by the
//! sink.
//!
//! Records are grouped by their `{field.*}` partition values in order of
//! first appearance; each group becomes one object whose key names the
//! group's first and last positions and its oldest arrival time, so the
//! same records always map to the same key. A batch may open at most
//! `max_partitions` groups: records of further partitions are rejected
//! (dead-lettered with the reason) rather than retried, because a retry
//! would meet the same limit; raise `max_partitions` or use a coarser field.

use std::collections::HashMap;

use bytes::Bytes;
use shardline_plugin_sdk::Record;

use crate::encode::{EncodeError, Encoder};
use crate::parquet::Cell;
use crate::template::{KeyParts, KeyTemplate, Zone};
use crate::upload::Object;

/// S3's longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// What the planner needs from the sink.
#[derive(Debug)]
pub struct Planner {
    /// The key template.
    pub template: KeyTemplate,
    /// The time zone of the key's time parts.
    pub zone: Zone,
    /// Appended to keys.
    pub extension: String,
    /// Row and body encoding.
    pub encoder: Encoder,
    /// The pipeline name (`{pipeline}`).
    pub pipeline: String,
    /// Most objects per batch.
    pub max_partitions: usize,
    /// `Content-Type` of the objects.
    pub content_type: &'static str,
    /// `Content-Encoding` of the objects.
    pub content_encoding: Option<&'static str>,
}

/// The plan of one batch.
#[derive(Debug)]
pub struct Plan {
    /// Per record: `Some(reason)` when it is rejected.
    pub rejected: Vec<Option<String>>,
    /// The objects to write, each with the batch indices of its records.
    pub objects: Vec<(Object, Vec<usize>)>,
}

struct Group {
    partition: Vec<String>,
    members: Vec<usize>,
    rows: Vec<Bytes>,
    /// Parquet rows (with `encoding = "parquet"`, instead of `rows`).
    cells: Vec<Vec<Cell>>,
    bytes: usize,
}

impl Planner {
    /// Plans `batch` (records of one shard, in shard order).
    ///
    /// # Errors
    /// When compression fails (an internal error).
    pub fn plan(&self, batch: &[Record]) -> Result<Plan, EncodeError> {
        let mut rejected: Vec<Option<String>> = vec![None; batch.len()];
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        let want_value = self.template.has_fields();
        for (i, record) in batch.iter().enumerate() {
            let row = match self.encoder.row(record, want_value) {
                Ok(row) => row,
                Err(reason) => {
                    rejected[i] = Some(reason);
                    continue;
                }
            };
            let partition = match row.value.as_ref().map(|v| self.template.partition_values(v)) {
                None => Vec::new(),
                Some(Ok(values)) => values,
                Some(Err(reason)) => {
                    rejected[i] = Some(reason);
                    continue;
                }
            };
            let group = match index.get(&partition) {
                Some(&g) => g,
                None if groups.len() >= self.max_partitions => {
                    rejected[i] = Some(format!(
                        "the batch already has max_partitions ({}) partitions; this record's partition {:?} was not opened",
                        self.max_partitions, partition
                    ));
                    continue;
                }
                None => {
                    index.insert(partition.clone(), groups.len());
                    groups.push(Group { partition, members: Vec::new(), rows: Vec::new(), cells: Vec::new(), bytes: 0 });
                    groups.len() - 1
                }
            };
            let group = &mut groups[group];
            group.members.push(i);
            if self.encoder.parquet_writer().is_some() {
                group.cells.push(row.cells);
            } else {
                group.bytes += row.bytes.len() + 1;
                group.rows.push(row.bytes);
            }
        }
        let mut objects = Vec::with_capacity(groups.len());
        for group in groups {
            let key = self.key(batch, &group);
            if key.len() > MAX_KEY_BYTES {
                let reason = format!("object key is {} bytes, S3 allows {MAX_KEY_BYTES}: {key:.200}...", key.len());
                for &i in &group.members {
                    rejected[i] = Some(reason.clone());
                }
                continue;
            }
            let body = match self.encoder.parquet_writer() {
                Some(_) => self.encoder.parquet_body(&group.cells)?,
                None => self.encoder.body(&group.rows, group.bytes)?,
            };
            let object = Object { key, body, content_type: self.content_type, content_encoding: self.content_encoding };
            objects.push((object, group.members));
        }
        Ok(Plan { rejected, objects })
    }

    fn key(&self, batch: &[Record], group: &Group) -> String {
        // Groups are never empty; the fallbacks only keep this total.
        let first = group.members.first().map(|&i| &batch[i].meta);
        let last = group.members.last().map(|&i| &batch[i].meta);
        let oldest = group.members.iter().map(|&i| batch[i].meta.arrival_time).min().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let parts = KeyParts {
            pipeline: &self.pipeline,
            stream: first.map(|m| &*m.stream).unwrap_or_default(),
            shard_id: first.map(|m| &*m.shard_id).unwrap_or_default(),
            first_seq: first.map(|m| m.sequence_number.as_str()).unwrap_or_default(),
            first_subseq: first.map(|m| m.sub_sequence_number).unwrap_or_default(),
            last_seq: last.map(|m| m.sequence_number.as_str()).unwrap_or_default(),
            last_subseq: last.map(|m| m.sub_sequence_number).unwrap_or_default(),
            time: self.zone.civil(oldest),
        };
        self.template.render(&parts, &group.partition, &self.extension)
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
pub(crate) mod tests;

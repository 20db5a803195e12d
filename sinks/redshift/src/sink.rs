//! One batch's way into Redshift: stage the file and its manifest, skip it
//! when the loads table has it, run the load transaction, and turn the
//! outcome into per-record statuses (a bad row rejected and the rest loaded
//! again without it; an unavailable cluster retried within `retry_window`,
//! then given up with an `errors/` manifest).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use shardline_plugin_sdk::{Record, RecordStatus, SinkError};

use crate::config::Config;
use crate::service::{put_object, DataApi, RedshiftError};
use crate::sql::{self, CopyCredentials, Range};
use crate::staging::{self, StagedFile, StagedKeys};

/// How many bad rows one call rejects one by one before rejecting the rest
/// of the batch with the last error.
pub const MAX_BAD_ROWS_PER_BATCH: usize = 10;

/// What the sink needs to load batches.
pub struct Loader {
    /// Settings.
    pub config: Config,
    /// The pipeline name (in staged keys).
    pub pipeline: String,
    /// Data API runner.
    pub data: DataApi,
    /// Staging client.
    pub s3: aws_sdk_s3::Client,
    /// When each batch (by manifest key) first failed retriably.
    pub first_failures: Mutex<HashMap<String, Instant>>,
    /// The loads table exists.
    pub loads_table_ready: tokio::sync::OnceCell<()>,
}

/// The result of one load attempt.
enum Attempt {
    /// Loaded now or before.
    Loaded,
    /// Record `index` (of the attempt's records) was refused; reason.
    BadRow(usize, String),
    /// The data was refused with no row to blame; reason.
    BadData(String),
    /// The cluster, network or statement failed; retry later.
    Retry(RedshiftError),
}

impl Loader {
    /// Creates the loads table once.
    ///
    /// # Errors
    /// The Data API failure.
    pub async fn ensure_loads_table(&self) -> Result<(), RedshiftError> {
        self.loads_table_ready
            .get_or_try_init(|| async {
                self.data.execute(&sql::create_loads_table(&self.config.loads_table)).await?;
                Ok::<(), RedshiftError>(())
            })
            .await
            .map(|_| ())
    }

    async fn already_loaded(&self, manifest_url: &str) -> Result<bool, RedshiftError> {
        let finished = self.data.execute(&sql::loaded_check(&self.config.loads_table, manifest_url)).await?;
        Ok(!self.data.rows(&finished).await?.is_empty())
    }

    /// Loaded ranges overlapping `range`, as (first, last) sortable positions.
    async fn loaded_ranges(&self, range: &Range) -> Result<Vec<(String, String)>, RedshiftError> {
        let finished = self.data.execute(&sql::loaded_ranges(&self.config.loads_table, range)).await?;
        let rows = self.data.rows(&finished).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match (row.first().cloned().flatten(), row.get(1).cloned().flatten()) {
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            })
            .collect())
    }

    async fn load_error_details(&self, query_id: Option<i64>) -> Option<(u64, String)> {
        let finished = self.data.execute(&sql::load_error_query(query_id?)).await.ok()?;
        let rows = self.data.rows(&finished).await.ok()?;
        let row = rows.into_iter().next()?;
        let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let line: u64 = text(1).parse().ok()?;
        let details = format!("stl_load_errors: line {line}, column '{}', value '{}', code {}: {}", text(2), text(3), text(4), text(5));
        Some((line, details))
    }

    fn shard_key(&self, record: &Record) -> String {
        format!("{}/{}/{}", self.pipeline, record.meta.stream, record.meta.shard_id)
    }

    fn keys(&self, run: &[&Record]) -> StagedKeys {
        let shard_id = run.first().map(|r| r.meta.shard_id.to_string()).unwrap_or_default();
        staging::keys(&self.config.staging_prefix, &self.pipeline, &shard_id, run, self.config.format, self.config.compression)
    }

    async fn stage(&self, keys: &StagedKeys, lines: &[&Vec<u8>]) -> Result<StagedFile, RedshiftError> {
        let bucket = &self.config.staging_bucket;
        let lines: Vec<Vec<u8>> = lines.iter().map(|l| (*l).clone()).collect();
        let file = staging::encode(&lines, self.config.compression)
            .map_err(|e| RedshiftError::Staging { url: staging::url(bucket, &keys.data), message: e.to_string(), retriable: true })?;
        let manifest = staging::manifest(&[(staging::url(bucket, &keys.data), file.body.len() as u64)]);
        put_object(&self.s3, bucket, &keys.data, file.body.clone(), "application/octet-stream").await?;
        put_object(&self.s3, bucket, &keys.manifest, manifest, "application/json").await?;
        Ok(file)
    }

    /// Stages a run of consecutive records and loads it once.
    async fn attempt(&self, run: &[&Record], lines: &[&Vec<u8>], keys: &StagedKeys, credentials: &CopyCredentials) -> Attempt {
        let file = match self.stage(keys, lines).await {
            Ok(file) => file,
            Err(e) => return Attempt::Retry(e),
        };
        let manifest_url = staging::url(&self.config.staging_bucket, &keys.manifest);
        let (Some(first), Some(last)) = (run.first(), run.last()) else { return Attempt::Loaded };
        let range = Range { shard: self.shard_key(first), first: staging::sortable_position(first), last: staging::sortable_position(last) };
        let e = match self.data.batch(sql::load_transaction(&self.config, &manifest_url, &range, credentials)).await {
            Ok(_) => {
                tracing::debug!(manifest = %manifest_url, records = run.len(), "run loaded");
                return Attempt::Loaded;
            }
            Err(e) => e,
        };
        // Rolled back because another load of it committed first: loaded.
        if matches!(e, RedshiftError::Statement { .. }) && self.already_loaded(&manifest_url).await.unwrap_or(false) {
            return Attempt::Loaded;
        }
        if !e.is_load_error() {
            return Attempt::Retry(e);
        }
        let query_id = match &e {
            RedshiftError::Statement { query_id, .. } => *query_id,
            _ => None,
        };
        match self.load_error_details(query_id).await {
            Some((line, details)) => match file.record_at_line(line) {
                Some(index) => Attempt::BadRow(index, format!("{e}; {details}")),
                None => Attempt::BadData(format!("{e}; {details}")),
            },
            None => Attempt::BadData(e.to_string()),
        }
    }

    /// Loads a batch (records of one shard, in order): one status per record.
    ///
    /// Records already inside a loaded range of the loads table are
    /// delivered without loading; the others are loaded in runs of
    /// consecutive records (a rejected record splits a run), each run one
    /// manifest and one transaction.
    ///
    /// # Errors
    /// A permanent [`SinkError`] for failures retrying cannot fix
    /// (validation, access denied); retriable ones come back as
    /// per-record `Retriable` statuses.
    pub async fn send(&self, batch: &[Record], credentials: &CopyCredentials) -> Result<Vec<RecordStatus>, SinkError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(Vec::new()) };
        let mut statuses: Vec<Option<RecordStatus>> = vec![None; batch.len()];
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            match staging::line(record, self.config.format) {
                Ok(line) => lines.push(line),
                Err(reason) => {
                    lines.push(Vec::new());
                    statuses[i] = Some(RecordStatus::Rejected { reason });
                }
            }
        }
        let whole = Range { shard: self.shard_key(first), first: staging::sortable_position(first), last: staging::sortable_position(last) };
        let loaded = match self.ensure_loads_table().await {
            Ok(()) => self.loaded_ranges(&whole).await,
            Err(e) => Err(e),
        };
        match loaded {
            Ok(ranges) => {
                let mut skipped = 0;
                for (i, record) in batch.iter().enumerate() {
                    let p = staging::sortable_position(record);
                    if statuses[i].is_none() && ranges.iter().any(|(f, l)| *f <= p && p <= *l) {
                        statuses[i] = Some(RecordStatus::Delivered);
                        skipped += 1;
                    }
                }
                if skipped > 0 {
                    tracing::info!(shard_id = %first.meta.shard_id, records = skipped, "records already loaded, skipped");
                }
            }
            Err(e) if !e.is_retriable() => return Err(SinkError::permanent(e.to_string())),
            Err(e) => {
                for run in runs(&statuses) {
                    let records: Vec<&Record> = run.clone().map(|i| &batch[i]).collect();
                    let keys = self.keys(&records);
                    let status = self.retry_or_give_up(&keys, &e, Some(run.clone().map(|i| &lines[i]).collect())).await?;
                    for i in run {
                        statuses[i] = Some(status.clone());
                    }
                }
            }
        }
        let mut bad_rows = 0;
        while let Some(run) = runs(&statuses).into_iter().next() {
            let records: Vec<&Record> = run.clone().map(|i| &batch[i]).collect();
            let run_lines: Vec<&Vec<u8>> = run.clone().map(|i| &lines[i]).collect();
            let keys = self.keys(&records);
            match self.attempt(&records, &run_lines, &keys, credentials).await {
                Attempt::Loaded => {
                    self.forget(&keys.manifest);
                    run.for_each(|i| statuses[i] = Some(RecordStatus::Delivered));
                }
                Attempt::BadRow(index, reason) if bad_rows < MAX_BAD_ROWS_PER_BATCH => {
                    bad_rows += 1;
                    let i = run.start + index;
                    tracing::warn!(shard_id = %batch[i].meta.shard_id, sequence_number = %batch[i].meta.sequence_number.as_str(), reason = %reason, "record rejected by COPY");
                    statuses[i] = Some(RecordStatus::Rejected { reason });
                }
                Attempt::BadRow(_, reason) | Attempt::BadData(reason) => {
                    tracing::warn!(records = run.len(), reason = %reason, "run rejected by COPY");
                    run.for_each(|i| statuses[i] = Some(RecordStatus::Rejected { reason: reason.clone() }));
                }
                Attempt::Retry(e) if !e.is_retriable() => return Err(SinkError::permanent(e.to_string())),
                Attempt::Retry(e) => {
                    let status = self.retry_or_give_up(&keys, &e, None).await?;
                    run.for_each(|i| statuses[i] = Some(status.clone()));
                }
            }
        }
        Ok(statuses.into_iter().map(|s| s.unwrap_or(RecordStatus::Delivered)).collect())
    }

    fn forget(&self, manifest_key: &str) {
        if let Ok(mut map) = self.first_failures.lock() {
            map.remove(manifest_key);
        }
    }

    /// Retriable until `retry_window` after the run's first failure; then
    /// its files are staged (when `unstaged` lines are given) and listed in
    /// a manifest under `errors/`, and the records rejected.
    async fn retry_or_give_up(&self, keys: &StagedKeys, error: &RedshiftError, unstaged: Option<Vec<&Vec<u8>>>) -> Result<RecordStatus, SinkError> {
        let first = self.first_failures.lock().map(|mut m| *m.entry(keys.manifest.clone()).or_insert_with(Instant::now)).unwrap_or_else(|_| Instant::now());
        if first.elapsed() < self.config.retry_window.get() {
            tracing::warn!(manifest = %keys.manifest, error = %error, "load failed, will retry");
            return Ok(RecordStatus::Retriable { reason: error.to_string(), backoff: None });
        }
        let bucket = &self.config.staging_bucket;
        let size = match unstaged {
            Some(lines) => self.stage(keys, &lines).await.map_err(|e| SinkError::retriable(e.to_string()))?.body.len() as u64,
            None => 0,
        };
        let manifest = staging::manifest(&[(staging::url(bucket, &keys.data), size)]);
        put_object(&self.s3, bucket, &keys.errors_manifest, manifest, "application/json").await.map_err(|e| SinkError::retriable(e.to_string()))?;
        self.forget(&keys.manifest);
        let errors_url = staging::url(bucket, &keys.errors_manifest);
        tracing::error!(errors_manifest = %errors_url, error = %error, "retry window over, batch given up");
        Ok(RecordStatus::Rejected {
            reason: format!("not loaded within retry_window {}: {error}; staged files listed in {errors_url} for a backfill", self.config.retry_window),
        })
    }
}

/// Maximal runs of consecutive records without a status yet.
fn runs(statuses: &[Option<RecordStatus>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, status) in statuses.iter().enumerate() {
        match (status.is_none(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..statuses.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_records_with_a_status() {
        let d = Some(RecordStatus::Delivered);
        assert_eq!(runs(&[None, None, d.clone(), None, d.clone(), d.clone(), None]), vec![0..2, 3..4, 6..7]);
        assert_eq!(runs(&[d.clone(), d]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(runs(&[None, None]), vec![0..2]);
    }
}

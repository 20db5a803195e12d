//! Metric names and the labels every shard reader attaches to them.

/// Counter: user records handed to the caller.
pub const RECORDS_RECEIVED: &str = "shardline_records_received_total";
/// Counter: raw bytes of the Kinesis records read.
pub const BYTES_RECEIVED: &str = "shardline_bytes_received_total";
/// Counter: retries of Kinesis calls, by `reason`.
pub const SOURCE_RETRIES: &str = "shardline_source_retries_total";
/// Gauge: `MillisBehindLatest` of the last response.
pub const MILLIS_BEHIND_LATEST: &str = "shardline_millis_behind_latest";
/// Counter: `GetRecords` calls sent.
pub const GET_RECORDS_CALLS: &str = "shardline_get_records_total";
/// Counter: `GetRecords` calls sent and dropped before their response
/// arrived (each still costs one of the shard's five calls a second).
pub const GET_RECORDS_ABANDONED: &str = "shardline_get_records_abandoned_total";
/// Counter: KPL user records dropped because an aggregate held a user
/// record outside the shard's hash-key range (KCL behaviour after resharding).
pub const KPL_RECORDS_SKIPPED: &str = "shardline_kpl_records_skipped_total";

/// `pipeline`, `stream` and `shard_id` labels of one shard reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardLabels {
    pub pipeline: String,
    pub stream: String,
    pub shard_id: String,
}

impl ShardLabels {
    pub(crate) fn records_received(&self, n: usize) {
        metrics::counter!(RECORDS_RECEIVED, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .increment(n as u64);
    }

    pub(crate) fn bytes_received(&self, n: usize) {
        metrics::counter!(BYTES_RECEIVED, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .increment(n as u64);
    }

    pub(crate) fn retry(&self, reason: &'static str) {
        metrics::counter!(SOURCE_RETRIES, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone(), "reason" => reason)
            .increment(1);
    }

    pub(crate) fn get_records_call(&self) {
        metrics::counter!(GET_RECORDS_CALLS, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .increment(1);
    }

    pub(crate) fn get_records_abandoned(&self) {
        metrics::counter!(GET_RECORDS_ABANDONED, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .increment(1);
    }

    pub(crate) fn millis_behind_latest(&self, millis: i64) {
        metrics::gauge!(MILLIS_BEHIND_LATEST, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .set(millis as f64);
    }

    pub(crate) fn kpl_records_skipped(&self, n: usize) {
        metrics::counter!(KPL_RECORDS_SKIPPED, "pipeline" => self.pipeline.clone(), "stream" => self.stream.clone(), "shard_id" => self.shard_id.clone())
            .increment(n as u64);
    }
}

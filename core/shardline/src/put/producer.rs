//! Batching, aggregation, rate limiting and retries of `PutRecords`.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_aws::AwsConnection;

use super::aggregate::Aggregator;

/// Kinesis' limit for one record (data plus partition key).
pub const MAX_RECORD_BYTES: usize = 1 << 20;
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 5 << 20;

/// How each record's partition key is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKey {
    /// A random key per record (spreads records over all shards).
    Random,
    /// The same key for every record.
    Fixed(String),
    /// The value of a top-level JSON field (random when absent).
    Field(String),
}

impl std::str::FromStr for PartitionKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "random" => Ok(PartitionKey::Random),
            Some(("fixed", v)) if !v.is_empty() && v.len() <= 256 => Ok(PartitionKey::Fixed(v.to_owned())),
            Some(("field", v)) if !v.is_empty() => Ok(PartitionKey::Field(v.to_owned())),
            _ => Err(format!("{s:?}: expected random, fixed:KEY (1 to 256 characters) or field:NAME")),
        }
    }
}

/// What to write and where.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Stream name.
    pub stream: String,
    /// Region and endpoint.
    pub connection: AwsConnection,
    /// Partition key choice.
    pub partition_key: PartitionKey,
    /// Create the stream with this many shards if it does not exist.
    pub create_shards: Option<i32>,
    /// KPL-aggregate user records bound for the same shard, up to this many
    /// bytes per aggregate; `None` writes one Kinesis record per line.
    pub aggregate_max_bytes: Option<usize>,
    /// Most user records per second; `None` is as fast as the stream takes.
    pub rate: Option<f64>,
    /// Print a progress line on stderr.
    pub progress: bool,
}

/// Writes records to one stream.
pub struct Producer {
    client: aws_sdk_kinesis::Client,
    options: ProducerOptions,
    endpoint: String,
    aggregator: Option<Aggregator>,
    batch: Vec<PutRecordsRequestEntry>,
    batch_user_records: u64,
    batch_bytes: usize,
    written: u64,
    pushed: u64,
    started: Instant,
    last_progress: Instant,
}

impl Producer {
    /// Connects (and creates the stream when asked).
    ///
    /// # Errors
    /// The service's refusal, naming the stream and endpoint.
    pub async fn connect(options: ProducerOptions) -> anyhow::Result<Producer> {
        let client = aws_sdk_kinesis::Client::new(&shardline_aws::load_sdk_config(&options.connection).await);
        Producer::with_client(client, options).await
    }

    /// Like [`Producer::connect`] with a client made by the caller (e.g. for
    /// the in-process stream, with its test credentials); `options.connection`
    /// only names the endpoint in messages.
    ///
    /// # Errors
    /// As [`Producer::connect`].
    pub async fn with_client(client: aws_sdk_kinesis::Client, options: ProducerOptions) -> anyhow::Result<Producer> {
        let endpoint = options.connection.endpoint.clone().unwrap_or_else(|| "the regional endpoint".to_owned());
        if let Some(shards) = options.create_shards {
            ensure_stream(&client, &options.stream, shards, &endpoint).await?;
        }
        let aggregator = match options.aggregate_max_bytes {
            Some(max) => Some(Aggregator::new(&client, &options.stream, max, &endpoint).await?),
            None => None,
        };
        let now = Instant::now();
        Ok(Producer {
            client,
            options,
            endpoint,
            aggregator,
            batch: Vec::new(),
            batch_user_records: 0,
            batch_bytes: 0,
            written: 0,
            pushed: 0,
            started: now,
            last_progress: now,
        })
    }

    /// User records acknowledged by the stream so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Queues one record; sends when a batch is full.
    ///
    /// # Errors
    /// A record over 1 MiB, or a send that keeps failing.
    pub async fn push(&mut self, data: Vec<u8>) -> anyhow::Result<()> {
        if let Some(rate) = self.options.rate {
            let due = self.started + Duration::from_secs_f64(self.pushed as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        self.pushed += 1;
        let key = partition_key(&self.options.partition_key, &data);
        if data.len() + key.len() > MAX_RECORD_BYTES {
            anyhow::bail!("record is {} bytes with its partition key; Kinesis records are at most 1 MiB", data.len() + key.len());
        }
        let ready = match &mut self.aggregator {
            Some(aggregator) => aggregator.add(key, data),
            None => vec![Ready { partition_key: key, explicit_hash_key: None, data, user_records: 1 }],
        };
        for record in ready {
            self.enqueue(record).await?;
        }
        Ok(())
    }

    /// Sends everything queued (including partial aggregates).
    ///
    /// # Errors
    /// A send that keeps failing.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        let ready = self.aggregator.as_mut().map(|a| a.drain()).unwrap_or_default();
        for record in ready {
            self.enqueue(record).await?;
        }
        self.send_batch().await?;
        if self.options.progress {
            eprint!("\r{}", self.progress_line());
        }
        Ok(())
    }

    /// The final summary line.
    pub fn progress_line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!("put {} records to stream {} ({:.0} records/s)", self.written, self.options.stream, self.written as f64 / secs)
    }

    async fn enqueue(&mut self, record: Ready) -> anyhow::Result<()> {
        let size = record.data.len() + record.partition_key.len();
        if self.batch.len() == MAX_BATCH_RECORDS || self.batch_bytes + size > MAX_BATCH_BYTES {
            self.send_batch().await?;
        }
        let mut entry = PutRecordsRequestEntry::builder().data(Blob::new(record.data)).partition_key(record.partition_key);
        if let Some(hash) = record.explicit_hash_key {
            entry = entry.explicit_hash_key(hash);
        }
        self.batch.push(entry.build().map_err(|e| anyhow::anyhow!("building a record: {e}"))?);
        self.batch_bytes += size;
        self.batch_user_records += record.user_records;
        Ok(())
    }

    async fn send_batch(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.batch);
        send(&self.client, &self.options.stream, entries, &self.endpoint).await?;
        self.written += self.batch_user_records;
        self.batch_user_records = 0;
        self.batch_bytes = 0;
        if self.options.progress && self.last_progress.elapsed() >= Duration::from_millis(500) {
            self.last_progress = Instant::now();
            eprint!("\r{}", self.progress_line());
        }
        Ok(())
    }
}

/// A Kinesis record ready to be sent.
pub(super) struct Ready {
    pub(super) partition_key: String,
    pub(super) explicit_hash_key: Option<String>,
    pub(super) data: Vec<u8>,
    pub(super) user_records: u64,
}

fn partition_key(choice: &PartitionKey, data: &[u8]) -> String {
    match choice {
        PartitionKey::Fixed(k) => k.clone(),
        PartitionKey::Field(field) => serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|v| match v.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.chars().take(256).collect()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string().chars().take(256).collect()),
            })
            .unwrap_or_else(random_key),
        PartitionKey::Random => random_key(),
    }
}

fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `PutRecords` with retries of only the entries that failed (throttled or
/// internal errors), with exponential back-off.
async fn send(client: &aws_sdk_kinesis::Client, stream: &str, mut entries: Vec<PutRecordsRequestEntry>, endpoint: &str) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=20 {
        let output = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries.clone()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("PutRecords to stream {stream} at {endpoint}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
        if output.failed_record_count().unwrap_or(0) == 0 {
            return Ok(());
        }
        let mut reasons = Vec::new();
        entries = entries
            .into_iter()
            .zip(output.records())
            .filter(|(_, result)| result.error_code().is_some())
            .map(|(entry, result)| {
                reasons.push(result.error_code().unwrap_or_default().to_owned());
                entry
            })
            .collect();
        tracing::debug!(stream, attempt, failed = entries.len(), reason = ?reasons.first(), "retrying failed PutRecords entries");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    anyhow::bail!("PutRecords to stream {stream}: {} records still failing after 20 attempts", entries.len())
}

async fn ensure_stream(client: &aws_sdk_kinesis::Client, stream: &str, shards: i32, endpoint: &str) -> anyhow::Result<()> {
    let exists = client.describe_stream_summary().stream_name(stream).send().await.is_ok();
    if !exists {
        client
            .create_stream()
            .stream_name(stream)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("CreateStream {stream} at {endpoint}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
    }
    for _ in 0..600 {
        if let Ok(s) = client.describe_stream_summary().stream_name(stream).send().await {
            if s.stream_description_summary().map(|d| d.stream_status().as_str() == "ACTIVE").unwrap_or(false) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("stream {stream} at {endpoint} did not become ACTIVE within 60s")
}

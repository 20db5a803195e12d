//! `shardline put`: write lines to a stream with `PutRecords`, retrying the
//! failed part of each call. A small producer for development and demos;
//! the offline-quickstart work extends it (file tailing, KPL aggregation,
//! rate limits).

use std::io::BufRead;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_aws::AwsConnection;

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
            Some(("fixed", v)) if !v.is_empty() => Ok(PartitionKey::Fixed(v.to_owned())),
            Some(("field", v)) if !v.is_empty() => Ok(PartitionKey::Field(v.to_owned())),
            _ => Err(format!("{s:?}: expected random, fixed:KEY or field:NAME")),
        }
    }
}

/// What to write and where.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Stream name.
    pub stream: String,
    /// Region and endpoint.
    pub connection: AwsConnection,
    /// Partition key choice.
    pub partition_key: PartitionKey,
    /// Create the stream with this many shards if it does not exist.
    pub create_shards: Option<i32>,
}

/// Reads lines from `input` and writes them to the stream in batches of up
/// to 500 records / 5 MiB, retrying throttled or failed entries. Returns the
/// number of records written.
///
/// # Errors
/// A message naming the stream and endpoint when the service refuses.
pub async fn put_lines(options: &PutOptions, input: impl BufRead) -> anyhow::Result<u64> {
    let client = aws_sdk_kinesis::Client::new(&shardline_aws::load_sdk_config(&options.connection).await);
    let endpoint = options.connection.endpoint.clone().unwrap_or_else(|| "the regional endpoint".to_owned());
    if let Some(shards) = options.create_shards {
        ensure_stream(&client, &options.stream, shards, &endpoint).await?;
    }
    let mut batch: Vec<PutRecordsRequestEntry> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut written = 0u64;
    let started = std::time::Instant::now();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("reading input line {}: {e}", n + 1))?;
        if line.is_empty() {
            continue;
        }
        let key = partition_key(&options.partition_key, &line);
        let size = line.len() + key.len();
        if size > 1 << 20 {
            anyhow::bail!("input line {} is {size} bytes; Kinesis records are at most 1 MiB", n + 1);
        }
        if batch.len() == 500 || batch_bytes + size > 5 << 20 {
            written += send(&client, &options.stream, std::mem::take(&mut batch), &endpoint).await?;
            batch_bytes = 0;
            eprint!("\rput {written} records ({:.0} records/s)", written as f64 / started.elapsed().as_secs_f64().max(1e-3));
        }
        batch_bytes += size;
        batch.push(
            PutRecordsRequestEntry::builder()
                .data(Blob::new(line.into_bytes()))
                .partition_key(key)
                .build()
                .map_err(|e| anyhow::anyhow!("building a record: {e}"))?,
        );
    }
    if !batch.is_empty() {
        written += send(&client, &options.stream, batch, &endpoint).await?;
    }
    eprintln!("\rput {written} records to stream {} in {:.1?}", options.stream, started.elapsed());
    Ok(written)
}

fn partition_key(choice: &PartitionKey, line: &str) -> String {
    match choice {
        PartitionKey::Fixed(k) => k.clone(),
        PartitionKey::Field(field) => serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| match v.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
            .unwrap_or_else(random_key),
        PartitionKey::Random => random_key(),
    }
}

fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn send(client: &aws_sdk_kinesis::Client, stream: &str, mut entries: Vec<PutRecordsRequestEntry>, endpoint: &str) -> anyhow::Result<u64> {
    let total = entries.len() as u64;
    let mut delay = Duration::from_millis(100);
    for _ in 0..20 {
        let output = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries.clone()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("PutRecords to stream {stream} at {endpoint}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
        if output.failed_record_count().unwrap_or(0) == 0 {
            return Ok(total);
        }
        // Keep only the entries that failed (throttled or internal errors).
        entries = entries
            .into_iter()
            .zip(output.records())
            .filter(|(_, result)| result.error_code().is_some())
            .map(|(entry, _)| entry)
            .collect();
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
        let summary = client.describe_stream_summary().stream_name(stream).send().await;
        if let Ok(s) = summary {
            if s.stream_description_summary().map(|d| d.stream_status().as_str() == "ACTIVE").unwrap_or(false) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("stream {stream} at {endpoint} did not become ACTIVE within 60s")
}

//! `shardline put`: a producer for development, demos and log shipping.
//!
//! Lines from stdin, files, followed files (`--follow`, surviving rename and
//! copytruncate rotation, with a checkpoint file) or a generator become
//! records written with `PutRecords`, optionally KPL-aggregated
//! (`--aggregate`, readable by the Java KCL and by Shardline), at an optional
//! rate, retrying the failed part of every call, with a progress line.

mod aggregate;
mod cli;
mod follow;
mod generate;
mod producer;

pub use cli::{run, PutArgs};
pub use follow::{follow_files, FollowCheckpoint};
pub use generate::{generate, Generator};
pub use producer::{PartitionKey, Producer, ProducerOptions};

use std::io::BufRead;

/// Writes every line of `input` (empty lines skipped) and flushes. Returns
/// the number of user records written.
///
/// # Errors
/// Reading the input, or a `PutRecords` failure that persists after
/// retries (the message names the stream and endpoint).
pub async fn put_lines(producer: &mut Producer, input: impl BufRead) -> anyhow::Result<u64> {
    for (n, line) in input.split(b'\n').enumerate() {
        let mut line = line.map_err(|e| anyhow::anyhow!("reading input line {}: {e}", n + 1))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        producer.push(line).await.map_err(|e| anyhow::anyhow!("input line {}: {e:#}", n + 1))?;
    }
    producer.flush().await?;
    Ok(producer.written())
}

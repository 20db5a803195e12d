//! Conformance tests of `shardline local-kinesis` with AWS's own clients:
//! aws-sdk-kinesis (every operation, errors, limits, iterator types,
//! resharding lineage, persistence across restarts), our
//! `shardline_kinesis::KinesisSource`, and boto3 / the AWS CLI through
//! `boto3_conformance.py` (skipped with a message when Python or boto3 is
//! missing).

mod boto3;
mod errors;
mod http;
mod persistence;
mod records;
mod reshard;
mod source;
mod streams;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use shardline_local_kinesis::{start, LocalKinesis, LocalKinesisConfig};
use tokio_util::sync::CancellationToken;

/// A server on a free loopback port with its own data directory.
pub struct Server {
    pub client: Client,
    pub handle: Option<LocalKinesis>,
    pub shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Server::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Server {
        let shutdown = CancellationToken::new();
        let handle = start(LocalKinesisConfig::new(dir.path()), shutdown.clone()).await.expect("server starts");
        let client = Client::new(&shardline_aws::emulator_sdk_config(&handle.endpoint()));
        Server { client, handle: Some(handle), shutdown, dir }
    }

    pub fn endpoint(&self) -> String {
        self.handle.as_ref().map(|h| h.endpoint()).unwrap_or_default()
    }

    /// Stops the server (drained and synced) and starts a new one on the
    /// same data directory.
    pub async fn restart(mut self) -> Server {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.stopped().await;
        }
        Server::start_in(self.dir).await
    }

    /// Creates `name` with `shards` shards; it is ACTIVE at once.
    pub async fn create(&self, name: &str, shards: i32) {
        self.client.create_stream().stream_name(name).shard_count(shards).send().await.expect("CreateStream");
        let summary = self.client.describe_stream_summary().stream_name(name).send().await.expect("DescribeStreamSummary");
        assert_eq!(summary.stream_description_summary().map(|s| s.stream_status().clone()), Some(StreamStatus::Active));
    }

    pub async fn put(&self, stream: &str, key: &str, data: &[u8]) -> (String, String) {
        let out = self.client.put_record().stream_name(stream).partition_key(key).data(Blob::new(data)).send().await.expect("PutRecord");
        (out.shard_id, out.sequence_number)
    }

    pub async fn iterator(&self, stream: &str, shard: &str, kind: ShardIteratorType, sequence: Option<&str>) -> String {
        let mut request = self.client.get_shard_iterator().stream_name(stream).shard_id(shard).shard_iterator_type(kind);
        if let Some(s) = sequence {
            request = request.starting_sequence_number(s);
        }
        request.send().await.expect("GetShardIterator").shard_iterator.expect("an iterator")
    }

    /// Every record from `iterator` until an empty answer or the shard end.
    /// Returns the data and the last answer's NextShardIterator/ChildShards.
    pub async fn drain(&self, iterator: String) -> (Vec<Vec<u8>>, Option<String>, Vec<String>) {
        let mut iterator = Some(iterator);
        let mut data = Vec::new();
        while let Some(current) = iterator.clone() {
            let out = self.client.get_records().shard_iterator(current).send().await.expect("GetRecords");
            let empty = out.records().is_empty();
            data.extend(out.records().iter().map(|r| r.data().as_ref().to_vec()));
            iterator = out.next_shard_iterator().map(str::to_owned);
            let children: Vec<String> = out.child_shards().iter().map(|c| c.shard_id().to_owned()).collect();
            if iterator.is_none() || empty {
                return (data, iterator, children);
            }
        }
        (data, None, Vec::new())
    }
}

/// The exception name and HTTP status of a failed call.
pub fn failure<E: ProvideErrorMetadata + std::fmt::Debug, T: std::fmt::Debug>(result: Result<T, SdkError<E, HttpResponse>>) -> (String, u16) {
    let error = result.expect_err("the call should fail");
    let status = error.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = error.code().unwrap_or("<no code>").to_owned();
    (code, status)
}

/// Polls `condition` until true or the deadline.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Numeric order of decimal sequence numbers.
pub fn seq_less(a: &str, b: &str) -> bool {
    (a.len(), a) < (b.len(), b)
}

//! [`KinesisSource`]: the stream handle. Checks the stream, lists shards,
//! registers enhanced fan-out consumers and makes shard readers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardFilter, ShardFilterType};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use shardline_api::ShardInfo;

use crate::backoff::Backoff;
use crate::error::{from_sdk, CallContext, SourceError};
use crate::fanout::FanOutReader;
use crate::polling::PollingReader;
use crate::telemetry::SOURCE_RETRIES;
use crate::{ReadMode, ReaderOptions, ShardReader, StartPosition};

/// Attempts of a stream-level call (`ListShards`, `DescribeStreamSummary`…)
/// before a retriable error is returned to the caller.
const MAX_ATTEMPTS: u32 = 8;
/// How long [`KinesisSource::ensure_consumer`] waits for a consumer to
/// become `ACTIVE` (AWS takes up to ~30 s).
const CONSUMER_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A connected Kinesis stream. Cheap to clone; clones share the client and
/// the cache of registered consumers.
#[derive(Clone)]
pub struct KinesisSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    stream: String,
    stream_arn: String,
    endpoint: EndpointRecorder,
    /// consumer name → ARN, for consumers known to be ACTIVE. The lock is
    /// held while a consumer is registered so that shard readers starting
    /// together register it once.
    consumers: tokio::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for KinesisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSource").field("stream", &self.inner.stream).field("endpoint", &self.endpoint()).finish()
    }
}

/// Remembers the scheme and authority of the first request the client
/// sends, so that errors can name the endpoint (the SDK config does not
/// expose an endpoint override once built).
#[derive(Debug, Clone, Default)]
struct EndpointRecorder(Arc<OnceLock<String>>);

impl Intercept for EndpointRecorder {
    fn name(&self) -> &'static str {
        "ShardlineEndpointRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.get().is_none() {
            let uri = context.request().uri();
            let authority_end = uri.find("://").map_or(uri.len(), |i| uri[i + 3..].find('/').map_or(uri.len(), |j| i + 3 + j));
            let _ = self.0.set(uri[..authority_end].to_owned());
        }
        Ok(())
    }
}

impl KinesisSource {
    /// Checks that `stream` exists (`DescribeStreamSummary`) and remembers
    /// its ARN.
    ///
    /// # Errors
    /// [`SourceError::StreamNotFound`] (permanent, naming the stream and the
    /// endpoint), [`SourceError::AccessDenied`] (permanent), or the last
    /// retriable error after a few attempts.
    pub async fn connect(client: Client, stream: &str) -> Result<Self, SourceError> {
        let endpoint = EndpointRecorder::default();
        let client = Client::from_conf(client.config().to_builder().interceptor(endpoint.clone()).build());
        let source = KinesisSource {
            inner: Arc::new(Inner {
                client,
                stream: stream.to_owned(),
                stream_arn: String::new(),
                endpoint,
                consumers: tokio::sync::Mutex::new(HashMap::new()),
            }),
        };
        let summary = source
            .retry("DescribeStreamSummary", || async {
                let sent = source.inner.client.describe_stream_summary().stream_name(stream).send().await;
                // the context is taken after the call: the endpoint is known once a request was sent
                sent.map_err(|e| from_sdk(e, source.ctx("DescribeStreamSummary", None)))
            })
            .await?;
        let Some(description) = summary.stream_description_summary else {
            return Err(source.ctx("DescribeStreamSummary", None).malformed("DescribeStreamSummary answered no stream description"));
        };
        tracing::debug!(stream = %stream, stream_arn = %description.stream_arn, status = %description.stream_status, "connected to kinesis stream");
        let inner = Arc::into_inner(source.inner).ok_or_else(|| {
            // only one reference exists at this point
            SourceError::Malformed { stream: stream.to_owned(), shard_id: None, message: "internal: source shared during connect".into() }
        })?;
        Ok(KinesisSource { inner: Arc::new(Inner { stream_arn: description.stream_arn, ..inner }) })
    }

    /// Stream name.
    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// Stream ARN.
    pub fn stream_arn(&self) -> &str {
        &self.inner.stream_arn
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn endpoint(&self) -> &str {
        self.inner.endpoint.0.get().map_or("kinesis (before any request was sent)", String::as_str)
    }

    pub(crate) fn ctx<'a>(&'a self, operation: &'static str, shard_id: Option<&'a str>) -> CallContext<'a> {
        CallContext { stream: &self.inner.stream, shard_id, operation, endpoint: self.endpoint() }
    }

    /// Every shard of the stream, open and closed (`ListShards`, following
    /// `NextToken`).
    ///
    /// # Errors
    /// Permanent errors at once; retriable ones after a few attempts.
    pub async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        self.list_shards_filtered(None).await
    }

    /// The shards open at `position` (`ListShards` with a `ShardFilter` of
    /// type `AT_TRIM_HORIZON`, `AT_LATEST` or `AT_TIMESTAMP`, following
    /// `NextToken`): what the KCL lists to fill an empty lease table.
    /// [`StartPosition::After`] has no filter: every shard is listed.
    ///
    /// # Errors
    /// Permanent errors at once; retriable ones after a few attempts.
    pub async fn list_shards_at(&self, position: &StartPosition) -> Result<Vec<ShardInfo>, SourceError> {
        let filter = match position {
            StartPosition::TrimHorizon => ShardFilter::builder().r#type(ShardFilterType::AtTrimHorizon).build(),
            StartPosition::Latest => ShardFilter::builder().r#type(ShardFilterType::AtLatest).build(),
            StartPosition::AtTimestamp(t) => {
                ShardFilter::builder().r#type(ShardFilterType::AtTimestamp).timestamp(DateTime::from(*t)).build()
            }
            StartPosition::After(_) => return self.list_shards().await,
        };
        let filter = filter.map_err(|e| self.ctx("ListShards", None).malformed(format!("shard filter: {e}")))?;
        self.list_shards_filtered(Some(filter)).await
    }

    async fn list_shards_filtered(&self, filter: Option<ShardFilter>) -> Result<Vec<ShardInfo>, SourceError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let token = next_token.clone();
            let page = self
                .retry("ListShards", || {
                    let request = self.inner.client.list_shards();
                    // a NextToken request must not name the stream
                    let request = match &token {
                        Some(token) => request.next_token(token),
                        None => request.stream_name(&self.inner.stream).set_shard_filter(filter.clone()),
                    };
                    let ctx = self.ctx("ListShards", None);
                    async move { request.send().await.map_err(|e| from_sdk(e, ctx)) }
                })
                .await?;
            for shard in page.shards.unwrap_or_default() {
                let (starting_hash_key, ending_hash_key) = shard
                    .hash_key_range
                    .map(|r| (r.starting_hash_key, r.ending_hash_key))
                    .unwrap_or_default();
                shards.push(ShardInfo {
                    parent_shard_ids: shard.parent_shard_id.into_iter().chain(shard.adjacent_parent_shard_id).collect(),
                    starting_hash_key,
                    ending_hash_key,
                    closed: shard.sequence_number_range.is_some_and(|r| r.ending_sequence_number.is_some()),
                    shard_id: shard.shard_id,
                });
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(shards),
            }
        }
    }

    /// The ids of the shards whose parent is `shard_id` (from `ListShards`).
    pub(crate) async fn child_shard_ids(&self, shard_id: &str) -> Result<Vec<String>, SourceError> {
        let shards = self.list_shards().await?;
        Ok(shards.into_iter().filter(|s| s.parent_shard_ids.iter().any(|p| p == shard_id)).map(|s| s.shard_id).collect())
    }

    /// The ARN of the enhanced fan-out consumer `consumer_name`, registering
    /// it when missing and waiting until it is `ACTIVE`.
    ///
    /// # Errors
    /// Permanent errors (access denied, consumer limit…) at once;
    /// [`SourceError::Timeout`] when the consumer is not active after two
    /// minutes.
    pub async fn ensure_consumer(&self, consumer_name: &str) -> Result<String, SourceError> {
        let mut consumers = self.inner.consumers.lock().await;
        if let Some(arn) = consumers.get(consumer_name) {
            return Ok(arn.clone());
        }
        let deadline = Instant::now() + CONSUMER_ACTIVE_TIMEOUT;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        while Instant::now() < deadline {
            let ctx = self.ctx("DescribeStreamConsumer", None);
            let described = self
                .inner
                .client
                .describe_stream_consumer()
                .stream_arn(&self.inner.stream_arn)
                .consumer_name(consumer_name)
                .send()
                .await;
            match described {
                Ok(out) => {
                    if let Some(consumer) = out.consumer_description {
                        if consumer.consumer_status == ConsumerStatus::Active {
                            tracing::info!(stream = %self.inner.stream, consumer = %consumer_name, consumer_arn = %consumer.consumer_arn, "enhanced fan-out consumer active");
                            consumers.insert(consumer_name.to_owned(), consumer.consumer_arn.clone());
                            return Ok(consumer.consumer_arn);
                        }
                        tracing::debug!(consumer = %consumer_name, status = %consumer.consumer_status, "waiting for consumer to become active");
                    }
                }
                Err(e) if e.code() == Some("ResourceNotFoundException") => self.register_consumer(consumer_name).await?,
                Err(e) => {
                    let err = from_sdk(e, ctx);
                    if !err.kind().is_retriable() {
                        return Err(err);
                    }
                    self.count_retry(err.retry_reason());
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        Err(SourceError::Timeout {
            stream: self.inner.stream.clone(),
            shard_id: None,
            operation: "DescribeStreamConsumer",
            endpoint: self.endpoint().to_owned(),
        })
    }

    /// Forgets the cached ARN of `consumer_name` (when it is still
    /// `consumer_arn`), so the next [`Self::ensure_consumer`] describes it
    /// again and registers it when it was deregistered.
    pub(crate) async fn forget_consumer(&self, consumer_name: &str, consumer_arn: &str) {
        let mut consumers = self.inner.consumers.lock().await;
        if consumers.get(consumer_name).is_some_and(|arn| arn == consumer_arn) {
            consumers.remove(consumer_name);
        }
    }

    async fn register_consumer(&self, consumer_name: &str) -> Result<(), SourceError> {
        let ctx = self.ctx("RegisterStreamConsumer", None);
        let registered = self
            .inner
            .client
            .register_stream_consumer()
            .stream_arn(&self.inner.stream_arn)
            .consumer_name(consumer_name)
            .send()
            .await;
        match registered {
            Ok(_) => {
                tracing::info!(stream = %self.inner.stream, consumer = %consumer_name, "registered enhanced fan-out consumer");
                Ok(())
            }
            Err(e) => {
                let err = from_sdk(e, ctx);
                // ResourceInUse: someone else is registering it; throttling: try again
                if err.kind().is_retriable() {
                    self.count_retry(err.retry_reason());
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// A reader for `shard` starting at `start`. For
    /// [`ReadMode::FanOut`] the consumer is resolved (and registered when
    /// missing) by the reader's first `next_batch`.
    pub fn reader(&self, shard: &ShardInfo, start: StartPosition, mode: &ReadMode, options: ReaderOptions) -> Box<dyn ShardReader> {
        match mode {
            ReadMode::Polling => Box::new(PollingReader::new(self.clone(), shard, start, options)),
            ReadMode::FanOut { consumer_name } => Box::new(FanOutReader::new(self.clone(), shard, start, consumer_name.clone(), options)),
        }
    }

    fn count_retry(&self, reason: &'static str) {
        metrics::counter!(SOURCE_RETRIES, "pipeline" => "", "stream" => self.inner.stream.clone(), "shard_id" => "", "reason" => reason).increment(1);
    }

    /// Runs `call` until it succeeds, fails permanently or failed
    /// [`MAX_ATTEMPTS`] times.
    async fn retry<T, F, Fut>(&self, operation: &'static str, mut call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if err.kind().is_retriable() && backoff.attempts() + 1 < MAX_ATTEMPTS => {
                    self.count_retry(err.retry_reason());
                    let delay = backoff.next_delay();
                    tracing::warn!(stream = %self.inner.stream, operation, error = %err, delay_ms = delay.as_millis() as u64, "retrying kinesis call");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

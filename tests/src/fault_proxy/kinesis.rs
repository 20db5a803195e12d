//! A proxy in front of Kinesis that throttles a share of `GetRecords` calls
//! with the Kinesis JSON 1.1 error `ProvisionedThroughputExceededException`
//! (HTTP 400, `x-amzn-ErrorType` header, `__type` in the body) and forwards
//! everything else unchanged. It counts GetRecords calls, throttled ones and
//! abandoned ones (the client closed the connection before the answer), and
//! logs every `GetShardIterator` (time, shard), which is when a worker
//! starts reading a shard.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;

use super::{serve, Answer, Buffered, Forwarder, InFlight, Server};

const TARGET_PREFIX: &str = "Kinesis_20131202.";

#[derive(Default)]
struct State {
    throttle_every: AtomicU32,
    get_records_latency_ms: AtomicU64,
    get_records: AtomicU64,
    throttled: AtomicU64,
    other_calls: AtomicU64,
    abandoned: Arc<Mutex<Vec<SystemTime>>>,
    iterators: Mutex<Vec<(SystemTime, String)>>,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct KinesisProxyStats {
    /// GetRecords calls received (throttled ones included).
    pub get_records: u64,
    /// GetRecords answered with `ProvisionedThroughputExceededException`.
    pub throttled: u64,
    /// When each abandoned GetRecords was dropped by its client.
    pub abandoned: Vec<SystemTime>,
    /// `(time, shard id)` of every GetShardIterator call, in arrival order.
    pub iterators: Vec<(SystemTime, String)>,
    /// Calls other than GetRecords.
    pub other_calls: u64,
}

/// The running proxy; point the workers' `source.endpoint` at
/// [`KinesisProxy::endpoint`].
pub struct KinesisProxy {
    state: Arc<State>,
    server: Server,
}

impl KinesisProxy {
    /// Starts a proxy forwarding to `upstream` (kinesis-mock's plain
    /// endpoint), with no faults.
    ///
    /// # Errors
    /// When it cannot bind or `upstream` is not a URL.
    pub async fn start(upstream: &str) -> anyhow::Result<KinesisProxy> {
        let state = Arc::new(State::default());
        let forwarder = Forwarder::new(upstream)?;
        let server = serve({
            let state = state.clone();
            move |request| handle(state.clone(), forwarder.clone(), request)
        })
        .await?;
        Ok(KinesisProxy { state, server })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Throttle every `n`-th GetRecords call (counted over the proxy's
    /// life, so the share is exact and the run repeatable); 0 turns it off.
    pub fn throttle_every(&self, n: u32) {
        self.state.throttle_every.store(n, Ordering::SeqCst);
    }

    /// Delay before forwarding each GetRecords, like a real service's
    /// latency (kinesis-mock answers in a few milliseconds).
    pub fn set_get_records_latency(&self, latency: Duration) {
        self.state.get_records_latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// The counters so far.
    pub fn stats(&self) -> KinesisProxyStats {
        KinesisProxyStats {
            get_records: self.state.get_records.load(Ordering::SeqCst),
            throttled: self.state.throttled.load(Ordering::SeqCst),
            abandoned: self.state.abandoned.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            iterators: self.state.iterators.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            other_calls: self.state.other_calls.load(Ordering::SeqCst),
        }
    }
}

async fn handle(state: Arc<State>, forwarder: Forwarder, request: Buffered) -> Answer {
    let operation = request
        .parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
        .to_owned();
    match operation.as_str() {
        "GetRecords" => {
            let guard = InFlight::new(state.abandoned.clone());
            let call = state.get_records.fetch_add(1, Ordering::SeqCst) + 1;
            let every = u64::from(state.throttle_every.load(Ordering::SeqCst));
            if every > 0 && call.is_multiple_of(every) {
                state.throttled.fetch_add(1, Ordering::SeqCst);
                guard.answered();
                return throughput_exceeded();
            }
            let latency = state.get_records_latency_ms.load(Ordering::SeqCst);
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            let answer = forwarder.forward(&request).await;
            guard.answered();
            answer
        }
        other => {
            state.other_calls.fetch_add(1, Ordering::SeqCst);
            if other == "GetShardIterator" {
                let shard = serde_json::from_slice::<serde_json::Value>(&request.body)
                    .ok()
                    .and_then(|v| v.get("ShardId").and_then(|s| s.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                state.iterators.lock().unwrap_or_else(|e| e.into_inner()).push((SystemTime::now(), shard));
            }
            forwarder.forward(&request).await
        }
    }
}

/// Kinesis's answer to a shard read over its limits (JSON 1.1 protocol).
fn throughput_exceeded() -> Answer {
    let body = serde_json::json!({
        "__type": "ProvisionedThroughputExceededException",
        "message": "Rate exceeded for shard in stream under account 000000000000.",
    });
    hyper::Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", "ProvisionedThroughputExceededException:")
        .header("x-amzn-requestid", format!("fault-proxy-{}", rand::random::<u64>()))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| super::plain(500, "fault proxy: cannot build the throttling answer".into()))
}

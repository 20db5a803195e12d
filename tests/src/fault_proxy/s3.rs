//! A proxy in front of S3 (moto) for sink outages and throttling. Faults
//! apply to writes (`PUT`): [`S3Fault::SlowDownEvery`] and
//! [`S3Fault::Refuse`] answer S3's documented `503 SlowDown` XML error;
//! [`S3Fault::Hang`] reads the request and never answers (the client's
//! timeout has to end it). Every object write that the store accepted is
//! logged in order ([`S3Put`]: time, key, body as sent), so a test sees each
//! delivery, overwrites included, and in which order they completed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;

use super::{serve, Answer, Buffered, Forwarder, InFlight, Server};

/// The proxy's fault mode for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Fault {
    /// Forward everything.
    Pass,
    /// Refuse every `n`-th write with `503 SlowDown` (throttling).
    SlowDownEvery(u64),
    /// Refuse every write with `503 SlowDown` (an outage S3 reports).
    Refuse,
    /// Read every write and never answer (a hung connection).
    Hang,
}

/// One object write the store accepted.
#[derive(Debug, Clone)]
pub struct S3Put {
    /// When the store's answer arrived at the proxy.
    pub at: SystemTime,
    /// Object key (without the bucket).
    pub key: String,
    /// `Content-Encoding` of the request.
    pub content_encoding: Option<String>,
    /// The body as sent.
    pub body: Bytes,
}

struct State {
    fault: Mutex<S3Fault>,
    writes: AtomicU64,
    requests: AtomicU64,
    refused: AtomicU64,
    hung: AtomicU64,
    abandoned: Arc<Mutex<Vec<SystemTime>>>,
    puts: Mutex<Vec<S3Put>>,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct S3ProxyStats {
    /// Requests of any kind.
    pub requests: u64,
    /// Writes answered `503 SlowDown`.
    pub refused: u64,
    /// Writes held without an answer.
    pub hung: u64,
    /// Requests whose client went away before the answer (hung ones
    /// included).
    pub abandoned: u64,
    /// Object writes the store accepted, in completion order.
    pub puts: Vec<S3Put>,
}

/// The running proxy; point the sink's `endpoint` at [`S3Proxy::endpoint`]
/// (path-style).
pub struct S3Proxy {
    state: Arc<State>,
    server: Server,
}

impl S3Proxy {
    /// Starts a proxy forwarding to `upstream`, with no faults.
    ///
    /// # Errors
    /// When it cannot bind or `upstream` is not a URL.
    pub async fn start(upstream: &str) -> anyhow::Result<S3Proxy> {
        let state = Arc::new(State {
            fault: Mutex::new(S3Fault::Pass),
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            abandoned: Arc::new(Mutex::new(Vec::new())),
            puts: Mutex::new(Vec::new()),
        });
        let forwarder = Forwarder::new(upstream)?;
        let server = serve({
            let state = state.clone();
            move |request| handle(state.clone(), forwarder.clone(), request)
        })
        .await?;
        Ok(S3Proxy { state, server })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Switches the fault mode (requests already hung stay hung).
    pub fn set_fault(&self, fault: S3Fault) {
        *self.state.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The counters and the write log so far.
    pub fn stats(&self) -> S3ProxyStats {
        S3ProxyStats {
            requests: self.state.requests.load(Ordering::SeqCst),
            refused: self.state.refused.load(Ordering::SeqCst),
            hung: self.state.hung.load(Ordering::SeqCst),
            abandoned: self.state.abandoned.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
            puts: self.state.puts.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

async fn handle(state: Arc<State>, forwarder: Forwarder, request: Buffered) -> Answer {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight::new(state.abandoned.clone());
    let path = request.parts.uri.path().to_owned();
    if request.parts.method == hyper::Method::PUT {
        let write = state.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = *state.fault.lock().unwrap_or_else(|e| e.into_inner());
        let refuse = match fault {
            S3Fault::Pass => false,
            S3Fault::SlowDownEvery(n) => n > 0 && write.is_multiple_of(n),
            S3Fault::Refuse => true,
            S3Fault::Hang => {
                state.hung.fetch_add(1, Ordering::SeqCst);
                // Never answers; the guard records the client giving up.
                std::future::pending::<()>().await;
                false
            }
        };
        if refuse {
            state.refused.fetch_add(1, Ordering::SeqCst);
            guard.answered();
            return slow_down(&path);
        }
    }
    let answer = forwarder.forward(&request).await;
    // PutObject, not UploadPart (`?partNumber=..&uploadId=..`); the SDK adds `?x-id=PutObject`.
    let query = request.parts.uri.query().unwrap_or_default();
    let plain_put_object = request.parts.method == hyper::Method::PUT && !query.contains("uploadId=") && !query.contains("partNumber=");
    if plain_put_object && answer.status().is_success() {
        // `/bucket/key...`
        let key = path.trim_start_matches('/').split_once('/').map(|(_, k)| k.to_owned()).unwrap_or_default();
        let content_encoding = request.parts.headers.get("content-encoding").and_then(|v| v.to_str().ok()).map(str::to_owned);
        state.puts.lock().unwrap_or_else(|e| e.into_inner()).push(S3Put { at: SystemTime::now(), key, content_encoding, body: request.body.clone() });
    }
    guard.answered();
    answer
}

/// S3's `503 SlowDown` (REST error response, XML body).
fn slow_down(resource: &str) -> Answer {
    let request_id = format!("{:016X}", rand::random::<u64>());
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>{resource}</Resource><RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
    );
    hyper::Response::builder()
        .status(503)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", request_id)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| super::plain(500, "fault proxy: cannot build the SlowDown answer".into()))
}

//! **Fault injection** for the runtime tests: an HTTP proxy in front of the
//! embedded Kinesis server that answers in Kinesis's documented error format
//! (awsJson1.1, "Common Errors": status 400 with
//! `{"__type": "ResourceNotFoundException", "message": ...}`).
//!
//! - `vanish(shard_id)`: `GetShardIterator` for that shard, and `GetRecords`
//!   with an iterator the proxy saw issued for it, answer
//!   `ResourceNotFoundException`, as for a shard past retention;
//! - `delay_get_records`: holds every `GetRecords` that long before
//!   forwarding it (a slow call, so that it is in flight when the caller's
//!   other work happens);
//! - `throttle_get_records`: answers every `GetRecords` with
//!   `ProvisionedThroughputExceededException` and notes when.
//!
//! It counts `GetRecords` calls received and the ones whose client went away
//! before the answer (abandoned mid-flight).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    vanished: HashSet<String>,
    delay_get_records: Duration,
    throttle_get_records: bool,
    /// iterator → shard id, from the answers that passed through.
    iterators: HashMap<String, String>,
}

/// Counts of `GetRecords` calls.
#[derive(Default)]
pub(crate) struct Seen {
    pub get_records: AtomicU64,
    pub get_records_abandoned: AtomicU64,
    pub resource_not_found: AtomicU64,
    /// When each throttled `GetRecords` arrived.
    pub throttled: Mutex<Vec<std::time::Instant>>,
}

/// The proxy; it runs on its own thread until the process ends.
pub(crate) struct KinesisProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    pub seen: Arc<Seen>,
}

impl KinesisProxy {
    pub(crate) fn start(upstream: SocketAddr) -> KinesisProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State::default()));
        let seen = Arc::new(Seen::default());
        let (st, se) = (state.clone(), seen.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (st, se) = (st.clone(), se.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| handle(request, upstream, st.clone(), se.clone()));
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
        });
        KinesisProxy { endpoint, state, seen }
    }

    /// From now on the shard is gone.
    pub(crate) fn vanish(&self, shard_id: &str) {
        self.state.lock().expect("state").vanished.insert(shard_id.to_owned());
    }

    pub(crate) fn delay_get_records(&self, delay: Duration) {
        self.state.lock().expect("state").delay_get_records = delay;
    }

    pub(crate) fn throttle_get_records(&self, on: bool) {
        self.state.lock().expect("state").throttle_get_records = on;
    }
}

/// Counts a `GetRecords` whose handler was dropped before it answered
/// (hyper drops it when the client closes the connection).
struct InFlight(Arc<Seen>, bool);

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.1 {
            self.0.get_records_abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let operation = target.rsplit('.').next().unwrap_or("").to_owned();
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let shard = match operation.as_str() {
        "GetShardIterator" => document["ShardId"].as_str().map(str::to_owned),
        "GetRecords" => document["ShardIterator"].as_str().and_then(|it| state.lock().expect("state").iterators.get(it).cloned()),
        _ => None,
    };
    let (vanished, delay, throttled) = {
        let state = state.lock().expect("state");
        (shard.as_ref().is_some_and(|s| state.vanished.contains(s)), state.delay_get_records, state.throttle_get_records && operation == "GetRecords")
    };
    if throttled {
        seen.throttled.lock().expect("throttled").push(std::time::Instant::now());
        return Ok(error("ProvisionedThroughputExceededException", "Rate exceeded for shard in stream under account 000000000000."));
    }
    let mut in_flight = None;
    if operation == "GetRecords" {
        seen.get_records.fetch_add(1, Ordering::SeqCst);
        in_flight = Some(InFlight(seen.clone(), false));
        tokio::time::sleep(delay).await;
    }
    if vanished {
        seen.resource_not_found.fetch_add(1, Ordering::SeqCst);
        if let Some(call) = &mut in_flight {
            call.1 = true;
        }
        let message = format!("Shard {} in stream under account 000000000000 does not exist", shard.unwrap_or_default());
        return Ok(error("ResourceNotFoundException", &message));
    }
    let response = forward(parts, body, upstream).await?;
    if let Some(call) = &mut in_flight {
        call.1 = true;
    }
    // Remember which shard the iterators answered belong to.
    if let (Some(shard), Ok(answer)) = (shard, serde_json::from_slice::<Value>(response.body_bytes())) {
        let next = answer.get("ShardIterator").or_else(|| answer.get("NextShardIterator")).and_then(Value::as_str);
        if let Some(next) = next {
            state.lock().expect("state").iterators.insert(next.to_owned(), shard);
        }
    }
    Ok(response.into_response())
}

/// An error answer in Kinesis's format (awsJson1.1, status 400).
fn error(code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "__type": code, "message": message }).to_string();
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "injected-by-the-test-proxy")
        .body(Full::new(Bytes::from(body)))
        .expect("a response")
}

struct Forwarded {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Forwarded {
    fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut out = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            out = out.header(name, value);
        }
        out.body(Full::new(self.body)).expect("a response")
    }
}

async fn forward(parts: hyper::http::request::Parts, body: Bytes, upstream: SocketAddr) -> Result<Forwarded, hyper::Error> {
    let stream = tokio::net::TcpStream::connect(upstream).await.expect("reach the kinesis server");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(parts.method).uri(parts.uri);
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let response = sender.send_request(request.body(Full::new(body)).expect("a request")).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Forwarded { status: parts.status, headers: parts.headers, body })
}

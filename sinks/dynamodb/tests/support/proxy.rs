//! **Fault injection.** A small HTTP proxy in front of dynalite that makes
//! DynamoDB answers neither dynalite nor moto ever give: `UnprocessedItems`
//! in `BatchWriteItem` responses, throttling errors, and unavailability.
//!
//! Everything it returns follows DynamoDB's documented wire format
//! (awsJson1.0, API reference "BatchWriteItem" and "Common Errors"):
//! - `UnprocessedItems`: the proxy forwards only some of a request's
//!   `PutRequest`s to dynalite (so the others are really not written) and
//!   answers `{"UnprocessedItems": {"<table>": [<the WriteRequests it held
//!   back, exactly as sent>]}}` with status 200;
//! - throttling: status 400 with `{"__type":
//!   "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
//!   "message": ...}`;
//! - unavailable: status 503 with a `ServiceUnavailableException` body.
//!
//! Requests it does not touch pass through unchanged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// What to inject; change it at any time.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer every request 503.
    pub unavailable: bool,
    /// Answer this many more `BatchWriteItem` calls with
    /// `ProvisionedThroughputExceededException`.
    pub throttle_batch_writes: u32,
    /// Hold back every second item (at least one) of this many more
    /// `BatchWriteItem` calls and list them in `UnprocessedItems`.
    pub unprocess_batch_writes: u32,
    /// Hold back every item of every `BatchWriteItem` call.
    pub unprocess_everything: bool,
}

/// The proxy: its endpoint, the faults, and what it saw.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    faults: Arc<Mutex<Faults>>,
    seen: Arc<Seen>,
}

/// Counts of what passed through.
#[derive(Default)]
pub struct Seen {
    /// `BatchWriteItem` calls received.
    pub batch_writes: AtomicU32,
    /// `PutItem` calls received.
    pub put_items: AtomicU32,
    /// Items held back as unprocessed, in total.
    pub unprocessed_items: AtomicU32,
    /// Calls answered with an injected error.
    pub injected_errors: AtomicU32,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on its own thread
    /// and runtime (it outlives any test runtime).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").trim_end_matches('/').parse().expect("upstream is http://ip:port");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let seen = Arc::new(Seen::default());
        let (f, s) = (faults.clone(), seen.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (f, s) = (f.clone(), s.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| handle(request, upstream, f.clone(), s.clone()));
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
        });
        Proxy { endpoint, faults, seen }
    }

    /// Changes the faults.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("faults"));
    }

    /// What passed through.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "injected-by-the-test-proxy")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    respond(status, json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message }))
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let is_batch_write = target.ends_with(".BatchWriteItem");
    if is_batch_write {
        seen.batch_writes.fetch_add(1, Ordering::SeqCst);
    }
    if target.ends_with(".PutItem") {
        seen.put_items.fetch_add(1, Ordering::SeqCst);
    }
    // Decide under the lock, act after it.
    let (unavailable, throttle, unprocess) = {
        let mut f = faults.lock().expect("faults");
        let throttle = is_batch_write && f.throttle_batch_writes > 0;
        if throttle {
            f.throttle_batch_writes -= 1;
        }
        let unprocess = is_batch_write && !throttle && (f.unprocess_everything || f.unprocess_batch_writes > 0);
        if unprocess && !f.unprocess_everything {
            f.unprocess_batch_writes -= 1;
        }
        (f.unavailable, throttle, unprocess)
    };
    if unavailable {
        seen.injected_errors.fetch_add(1, Ordering::SeqCst);
        return Ok(error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", "injected by the test proxy: service unavailable"));
    }
    if throttle {
        seen.injected_errors.fetch_add(1, Ordering::SeqCst);
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        ));
    }
    if !unprocess {
        return forward(parts, body, upstream).await;
    }
    // Split every table's requests: keep the even positions, hold back the
    // odd ones (or all, or the single one).
    let all = unprocess_everything(&faults);
    let mut document: Value = serde_json::from_slice(&body).expect("a BatchWriteItem body is JSON");
    let mut held_back = serde_json::Map::new();
    if let Some(tables) = document.get_mut("RequestItems").and_then(Value::as_object_mut) {
        for (table, requests) in tables.iter_mut() {
            let list = requests.as_array().cloned().unwrap_or_default();
            let (mut keep, mut hold) = (Vec::new(), Vec::new());
            for (i, request) in list.into_iter().enumerate() {
                if all || i % 2 == 1 { hold.push(request) } else { keep.push(request) }
            }
            if hold.is_empty() {
                hold.extend(keep.pop());
            }
            seen.unprocessed_items.fetch_add(hold.len() as u32, Ordering::SeqCst);
            held_back.insert(table.clone(), Value::Array(hold));
            *requests = Value::Array(keep);
        }
        tables.retain(|_, requests| requests.as_array().is_some_and(|l| !l.is_empty()));
    }
    let nothing_left = !matches!(document.get("RequestItems").and_then(Value::as_object), Some(tables) if !tables.is_empty());
    let mut answer = if nothing_left {
        json!({})
    } else {
        let response = forward(parts, Bytes::from(document.to_string()), upstream).await?;
        if response.status() != StatusCode::OK {
            return Ok(response);
        }
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        serde_json::from_slice(&bytes).expect("dynalite answers JSON")
    };
    answer["UnprocessedItems"] = Value::Object(held_back);
    Ok(respond(StatusCode::OK, answer))
}

fn unprocess_everything(faults: &Mutex<Faults>) -> bool {
    faults.lock().expect("faults").unprocess_everything
}

async fn forward(parts: hyper::http::request::Parts, body: Bytes, upstream: SocketAddr) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let stream = match tokio::net::TcpStream::connect(upstream).await {
        Ok(stream) => stream,
        Err(e) => return Ok(error(StatusCode::BAD_GATEWAY, "ProxyError", &format!("cannot reach dynalite: {e}"))),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(parts.method).uri(parts.uri);
    for (name, value) in &parts.headers {
        if name != hyper::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let request = request.header(hyper::header::CONTENT_LENGTH, body.len()).body(Full::new(body)).expect("a request");
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut out = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        // The body may be rewritten: drop what describes the old one.
        if name != hyper::header::CONTENT_LENGTH && name.as_str() != "x-amz-crc32" {
            out = out.header(name, value);
        }
    }
    Ok(out.body(Full::new(body)).expect("a response"))
}

//! What the S3 sink's integration tests share: the plugin through the host
//! (its C table, in process), test credentials, and a fault-injecting HTTP
//! proxy in front of moto.
//!
//! **Fault injection.** moto never throttles and never fails with a 5xx,
//! so [`FaultProxy`] stands between the sink and moto: it forwards every
//! request unchanged, except that while a [`Fault`] is armed it answers
//! matching requests itself with the fault's status and an error body in
//! S3's documented REST error format
//! (`<Error><Code>SlowDown</Code><Message>...</Message><RequestId>...</RequestId></Error>`,
//! as in "Error responses" of the Amazon S3 API reference), which the AWS
//! SDK parses exactly as it parses S3's own.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use shardline_plugin_host::LoadedPlugin;
use shardline_sink_s3::S3Sink;

/// The `s3` plugin through the host's C ABI, from its table linked into
/// the test (the same code the cdylib exports).
pub fn plugin() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            // SAFETY: the table comes from the SDK's own macro machinery.
            let loaded = unsafe { LoadedPlugin::from_table(shardline_plugin_sdk::testing::table::<S3Sink>(), Path::new("<s3 in process>")) };
            Arc::new(loaded.unwrap_or_else(|e| panic!("the s3 plugin table is refused: {e}")))
        })
        .clone()
}

/// The plugin reads credentials from the standard chain: give it test ones
/// (moto accepts any) and keep it away from instance metadata.
pub fn test_credentials() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for (name, value) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")] {
            std::env::set_var(name, value);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

/// A runtime for the proxies, alive for the whole test process (the
/// conformance suite makes and drops a runtime per check).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| panic!("proxy runtime: {e}"))
    })
}

/// An S3 error to answer instead of forwarding.
#[derive(Debug, Clone)]
pub struct Fault {
    /// How many matching requests get it; `None`: all of them until cleared.
    pub remaining: Option<u32>,
    /// HTTP status.
    pub status: u16,
    /// S3 error code.
    pub code: &'static str,
    /// S3 error message.
    pub message: &'static str,
    /// Only requests whose `METHOD /path?query` contains this.
    pub matching: Option<&'static str>,
}

impl Fault {
    /// `503 SlowDown` for the next `n` requests.
    pub fn slow_down(n: u32) -> Fault {
        Fault { remaining: Some(n), status: 503, code: "SlowDown", message: "Please reduce your request rate.", matching: None }
    }

    /// `500 InternalError` for the next `n` requests.
    pub fn internal_error(n: u32) -> Fault {
        Fault { remaining: Some(n), status: 500, code: "InternalError", message: "We encountered an internal error. Please try again.", matching: None }
    }

    /// `403 AccessDenied` until cleared.
    pub fn access_denied() -> Fault {
        Fault { remaining: None, status: 403, code: "AccessDenied", message: "Access Denied", matching: None }
    }

    /// Until cleared.
    pub fn always(mut self) -> Fault {
        self.remaining = None;
        self
    }

    /// Only for requests whose `METHOD /path?query` contains `text`.
    pub fn matching(mut self, text: &'static str) -> Fault {
        self.matching = Some(text);
        self
    }
}

struct State {
    upstream: SocketAddr,
    fault: Mutex<Option<Fault>>,
    requests: AtomicU32,
    injected: AtomicU32,
    seen: Mutex<Vec<String>>,
}

/// A forwarding HTTP/1.1 proxy on 127.0.0.1 that injects [`Fault`]s.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: use as the sink's `endpoint`.
    pub endpoint: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let authority = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream: SocketAddr = authority.parse().unwrap_or_else(|e| panic!("upstream {authority}: {e}"));
        let state = Arc::new(State { upstream, fault: Mutex::new(None), requests: AtomicU32::new(0), injected: AtomicU32::new(0), seen: Mutex::default() });
        // Bound here (callers may be inside another runtime), served on the proxies' runtime.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let endpoint = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let accept_state = state.clone();
        runtime().spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            while let Ok((stream, _)) = listener.accept().await {
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FaultProxy { endpoint, state }
    }

    /// Arms `fault` (replacing any armed one).
    pub fn inject(&self, fault: Fault) {
        *self.state.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault);
    }

    /// Disarms: every request is forwarded.
    pub fn clear(&self) {
        *self.state.fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Faults answered so far.
    pub fn injected(&self) -> u32 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u32 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// `METHOD /path?query` of every request so far.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The fault to answer `line` with, if one is armed and matches.
fn take_fault(state: &State, line: &str) -> Option<Fault> {
    let mut armed = state.fault.lock().unwrap_or_else(|e| e.into_inner());
    let fault = armed.as_mut()?;
    if fault.matching.is_some_and(|m| !line.contains(m)) {
        return None;
    }
    let answer = fault.clone();
    match &mut fault.remaining {
        None => {}
        Some(0) => return None,
        Some(n) => *n -= 1,
    }
    Some(answer)
}

async fn handle(state: Arc<State>, request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let line = format!("{} {}", request.method(), request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.seen.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
    let (parts, body) = request.into_parts();
    // Read the whole request first, as S3 does before answering.
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if let Some(fault) = take_fault(&state, &line) {
        let n = state.injected.fetch_add(1, Ordering::SeqCst) + 1;
        let xml = if parts.method == hyper::Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>FAULT{n:08}</RequestId><HostId>fault-injection-proxy</HostId></Error>",
                fault.code, fault.message
            ))
        };
        let response = Response::builder()
            .status(fault.status)
            .header("content-type", "application/xml")
            .header("x-amz-request-id", format!("FAULT{n:08}"))
            .body(Full::new(xml));
        return Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    Ok(forward(&state, parts, body).await.unwrap_or_else(|e| {
        let mut response = Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
        *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        response
    }))
}

async fn forward(state: &State, parts: hyper::http::request::Parts, body: Bytes) -> Result<Response<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(state.upstream).await.map_err(|e| format!("connect {}: {e}", state.upstream))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender.send_request(Request::from_parts(parts, Full::new(body))).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Record `i` of shard `shardId-000000000001` with `payload`, arrived now.
pub fn record(i: u64, payload: impl Into<Bytes>) -> shardline_api::Record {
    let meta = shardline_api::RecordMeta {
        stream: Arc::from("faults"),
        shard_id: Arc::from("shardId-000000000001"),
        sequence_number: shardline_api::SequenceNumber::parse(&format!("49590338271490256608559692538361571095921575989136{:06}", i)).unwrap_or_else(|e| panic!("{e}")),
        sub_sequence_number: 0,
        partition_key: format!("pk-{i}"),
        explicit_hash_key: None,
        arrival_time: std::time::SystemTime::now(),
        aggregated: false,
    };
    shardline_api::Record::new(payload.into(), Arc::new(meta))
}

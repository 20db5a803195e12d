//! Fault-injecting HTTP proxies of the test's own, in front of the
//! emulators: [`KinesisProxy`] (GetRecords throttling, abandoned-call
//! counting) and [`S3Proxy`] (`503 SlowDown`, hung connections, a log of
//! every object written). Plain hyper 1 HTTP/1.1 servers on 127.0.0.1
//! ephemeral ports; the fault mode is switched at run time by the test.
//!
//! Both answer faults in the service's documented error format, so the
//! code under test sees what production sees, and both count from the
//! outside what a client did: a request whose connection the client closed
//! before the answer was ready is *abandoned* (hyper drops the request's
//! future when it reads EOF mid-request; a guard's `Drop` records it).

mod kinesis;
mod s3;

pub use kinesis::{KinesisProxy, KinesisProxyStats};
pub use s3::{S3Fault, S3Proxy, S3ProxyStats, S3Put};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

/// A request with its body read.
pub(crate) struct Buffered {
    pub parts: hyper::http::request::Parts,
    pub body: Bytes,
}

/// The answer a handler gives.
pub(crate) type Answer = Response<Full<Bytes>>;

/// A running proxy's listener; stops accepting when dropped.
pub(crate) struct Server {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 on `127.0.0.1:0`, each request (body read) handed to
/// `handler`.
pub(crate) async fn serve<H, F>(handler: H) -> anyhow::Result<Server>
where
    H: Fn(Buffered) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let answer = match body.collect().await {
                            Ok(body) => handler(Buffered { parts, body: body.to_bytes() }).await,
                            Err(e) => plain(400, format!("reading the request body: {e}")),
                        };
                        Ok::<_, Infallible>(answer)
                    }
                });
                // Default `half_close(false)`: EOF from the client mid-request
                // closes the connection and drops the handler's future.
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(Server { address, task })
}

/// Forwards requests unchanged to one upstream endpoint.
#[derive(Clone)]
pub(crate) struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: hyper::Uri,
}

impl Forwarder {
    pub fn new(upstream: &str) -> anyhow::Result<Forwarder> {
        Ok(Forwarder {
            client: Client::builder(TokioExecutor::new()).build_http(),
            upstream: upstream.parse().with_context(|| format!("upstream {upstream:?}"))?,
        })
    }

    /// The upstream's answer, or a 502 saying why there is none.
    pub async fn forward(&self, request: &Buffered) -> Answer {
        let path = request.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let authority = self.upstream.authority().map(|a| a.as_str()).unwrap_or_default();
        let mut builder = Request::builder().method(request.parts.method.clone()).uri(format!("http://{authority}{path}"));
        for (name, value) in &request.parts.headers {
            if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
                builder = builder.header(name, value);
            }
        }
        let Ok(upstream_request) = builder.body(Full::new(request.body.clone())) else {
            return plain(502, "fault proxy: cannot build the upstream request".into());
        };
        let response = match self.client.request(upstream_request).await {
            Ok(response) => response,
            Err(e) => return plain(502, format!("fault proxy: upstream: {e}")),
        };
        let (parts, body) = response.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return plain(502, format!("fault proxy: upstream body: {e}")),
        };
        let mut answer = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
                answer = answer.header(name, value);
            }
        }
        answer.body(Full::new(body)).unwrap_or_else(|_| plain(502, "fault proxy: bad upstream answer".into()))
    }
}

/// A `text/plain` answer (the proxy's own trouble, never a fault).
pub(crate) fn plain(status: u16, text: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    answer
}

/// Records, when dropped before [`InFlight::answered`], that the client
/// abandoned the request.
pub(crate) struct InFlight {
    abandoned: Arc<Mutex<Vec<SystemTime>>>,
    answered: bool,
}

impl InFlight {
    pub fn new(abandoned: Arc<Mutex<Vec<SystemTime>>>) -> InFlight {
        InFlight { abandoned, answered: false }
    }

    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.answered {
            self.abandoned.lock().unwrap_or_else(|e| e.into_inner()).push(SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests;

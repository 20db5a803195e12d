//! The operations endpoint: `/metrics` (Prometheus text), `/health`
//! (liveness: the process serves requests) and `/ready` (every pipeline
//! reached its source and lease store).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Telemetry;

/// Binds `address` and serves the endpoints until `shutdown` is cancelled.
/// Returns the bound address (useful with port 0).
///
/// # Errors
/// The bind error, with the address in its message and how to choose
/// another one.
pub async fn serve(
    address: &str,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("{}", bind_error_message(address, &e)))?;
    let local = listener.local_addr()?;
    serve_routes(listener, "metrics endpoint", move |req| route(req, &telemetry), shutdown);
    Ok(local)
}

/// The one-line message for a metrics address that cannot be bound: the
/// cause, and the flag that picks another address (the usual cause is a
/// second `shardline run` on the same host, which the default port
/// 9464 cannot serve twice).
fn bind_error_message(address: &str, error: &std::io::Error) -> String {
    let holder = match error.kind() {
        std::io::ErrorKind::AddrInUse => " (another shardline on this host?)",
        _ => "",
    };
    format!(
        "cannot bind the metrics address {address}: {error}{holder}; choose another with --metrics-address HOST:PORT \
         (or SHARDLINE_METRICS_ADDRESS), or 127.0.0.1:0 for any free port"
    )
}

/// The style sheet the quickstart page and the `run --web` page share.
const SHARED_STYLE: &str = include_str!("page.css");

/// The script they share: `hms` and the polling loop.
const SHARED_SCRIPT: &str = include_str!("page.js");

/// `page` with its `/*SHARED_STYLE*/` and `/*SHARED_SCRIPT*/` placeholders
/// replaced by the shared style sheet and script.
pub(crate) fn with_shared_parts(page: &str) -> String {
    page.replacen("/*SHARED_STYLE*/", SHARED_STYLE, 1).replacen("/*SHARED_SCRIPT*/", SHARED_SCRIPT, 1)
}

/// Serves HTTP/1.1 on `listener` until `shutdown` is cancelled, answering
/// every request with `router` (a cheap, synchronous function of the
/// request). `name` labels log lines.
pub(crate) fn serve_routes<R>(listener: TcpListener, name: &'static str, router: R, shutdown: CancellationToken)
where
    R: Fn(&Request<hyper::body::Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let router = Arc::new(router);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, _) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "{name} accept failed");
                    continue;
                }
            };
            let router = router.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = router(&req);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "{name} connection ended with an error");
                }
            });
        }
    });
}

fn route(req: &Request<hyper::body::Incoming>, telemetry: &Telemetry) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", telemetry.render()),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/ready" if telemetry.is_ready() => respond(StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/ready" => respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n".to_owned()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics, /health or /ready\n".to_owned()),
    }
}

/// A response with `status`, `content_type`, `Cache-Control: no-store` and
/// `body`.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    response
}

/// `shardline healthcheck`: asks `path` of the endpoint at `address` and
/// exits 0 on HTTP 200. Plain blocking I/O with a 3 s budget: it runs as a
/// container health check, with no runtime to start.
pub fn healthcheck(address: &str, path: &str) -> std::process::ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;

    let ask = |target: SocketAddr| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.set_write_timeout(Some(Duration::from_secs(3)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.take(4096).read_to_string(&mut response)?;
        Ok(response)
    };
    let targets: Vec<SocketAddr> = match address.to_socket_addrs() {
        Ok(list) => list
            .map(|mut a| {
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                a
            })
            .collect(),
        Err(e) => {
            eprintln!("unhealthy: cannot resolve {address}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for target in targets {
        match ask(target) {
            Ok(response) if response.starts_with("HTTP/1.1 200") => {
                println!("healthy: {path} at {target}");
                return std::process::ExitCode::SUCCESS;
            }
            Ok(response) => {
                let status = response.lines().next().unwrap_or("no answer");
                eprintln!("unhealthy: {path} at {target} answered {status}");
                return std::process::ExitCode::FAILURE;
            }
            Err(e) => eprintln!("unhealthy: {path} at {target}: {e}"),
        }
    }
    std::process::ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_names_the_flag_that_picks_another() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = taken.local_addr().expect("local address").to_string();
        let error = serve(&address, Telemetry::global(), CancellationToken::new()).await.expect_err("the port is taken");
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        for part in [address.as_str(), "in use", "--metrics-address", "127.0.0.1:0"] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
    }
}

//! The quickstart's web server: the page (`/`, self-contained HTML with an
//! inline SVG chart: nothing is fetched from outside), its data
//! (`/api/dashboard`, JSON), `/metrics` and `/health`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::state::DashboardState;
use crate::http::respond;
use crate::metrics::Telemetry;

/// The page, compiled in, with the style and script it shares with `run --web`'s.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| crate::http::with_shared_parts(include_str!("page.html")));

/// Binds `address` and serves until `shutdown`. Returns the bound address.
///
/// # Errors
/// The bind error.
pub(crate) async fn serve(
    address: SocketAddr,
    state: Arc<DashboardState>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    crate::http::serve_routes(listener, "quickstart page", move |req| route(req, &state, &telemetry), shutdown);
    Ok(local)
}

fn route(req: &Request<hyper::body::Incoming>, state: &DashboardState, telemetry: &Telemetry) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE.clone()),
        "/api/dashboard" => match serde_json::to_string(&state.snapshot()) {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
        },
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", telemetry.render()),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /api/dashboard or /metrics\n".into()),
    }
}

//! `shardline run --web`: a page on a loopback address (by default) showing
//! every pipeline the process runs: each shard's owner, checkpoint, state,
//! lag and records/s (the [`crate::status`] view, from the lease table and
//! this process's metrics) and the pipeline's counters. Off by default.
//!
//! The page polls `/api/status` every second. The lease table is read at
//! most once per [`REFRESH`], and only while the page is open (a request in
//! the last [`IDLE_AFTER`]), so an unwatched page costs no reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::PipelineConfig;
use crate::http::respond;
use crate::metrics::Telemetry;
use crate::status::{build_report, LeaseReader, MetricsSource, Report};

/// How often the view is recomputed while the page is open.
pub const REFRESH: Duration = Duration::from_secs(1);

/// After this long without a request, the view stops being recomputed.
pub const IDLE_AFTER: Duration = Duration::from_secs(10);

/// The page, compiled in, with the style and script it shares with the quickstart's.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| crate::http::with_shared_parts(include_str!("page.html")));

/// The counters of a pipeline the page shows, by metric name.
const COUNTERS: [(&str, &str); 6] = [
    ("received", "shardline_records_received_total"),
    ("delivered", "shardline_records_delivered_total"),
    ("dead_lettered", "shardline_records_dead_lettered_total"),
    ("filtered", "shardline_records_filtered_total"),
    ("sink_retries", "shardline_sink_retries_total"),
    ("source_retries", "shardline_source_retries_total"),
];

/// One pipeline as the page receives it.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    /// The lease table view; `None` until it was read once.
    pub status: Option<Report>,
    /// Why the lease table could not be read last time.
    pub error: Option<String>,
    /// This process's counters for the pipeline, by name (see [`COUNTERS`]).
    pub counters: BTreeMap<&'static str, f64>,
}

/// The document served at `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// This process's worker id.
    pub worker_id: String,
    /// When it was computed, ms since the epoch.
    pub at_ms: i64,
    /// Pipeline name → its view.
    pub pipelines: BTreeMap<String, PipelineView>,
}

struct Watched {
    config: PipelineConfig,
    reader: Option<LeaseReader>,
    local: MetricsSource,
}

struct Shared {
    worker_id: String,
    view: Mutex<Option<String>>,
    last_request: Mutex<Option<Instant>>,
    wake: tokio::sync::Notify,
    watching: AtomicBool,
}

impl Shared {
    fn requested(&self) {
        *self.last_request.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if !self.watching.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn watched(&self) -> bool {
        let last = *self.last_request.lock().unwrap_or_else(|p| p.into_inner());
        let open = last.is_some_and(|at| at.elapsed() < IDLE_AFTER);
        if !open {
            self.watching.store(false, Ordering::SeqCst);
        }
        open
    }
}

/// Binds `address` and serves the page for `pipelines` until `shutdown`.
/// Returns the bound address.
///
/// # Errors
/// The bind error.
pub async fn serve(
    address: &str,
    pipelines: Vec<PipelineConfig>,
    worker_id: String,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared {
        worker_id,
        view: Mutex::new(None),
        last_request: Mutex::new(None),
        wake: tokio::sync::Notify::new(),
        watching: AtomicBool::new(false),
    });
    let watched = pipelines.into_iter().map(|config| Watched { config, reader: None, local: MetricsSource::local() }).collect();
    tokio::spawn(refresh_while_watched(watched, shared.clone(), telemetry.clone(), shutdown.clone()));
    crate::http::serve_routes(listener, "web page", move |req| route(req, &shared, &telemetry), shutdown);
    Ok(local)
}

fn route(req: &Request<hyper::body::Incoming>, shared: &Shared, telemetry: &Telemetry) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE.clone()),
        "/api/status" => {
            shared.requested();
            match shared.view.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                Some(json) => respond(StatusCode::OK, "application/json", json),
                // The first view is being computed; the page retries.
                None => respond(StatusCode::SERVICE_UNAVAILABLE, "application/json", "{\"starting\":true}".into()),
            }
        }
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", telemetry.render()),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /api/status or /metrics\n".into()),
    }
}

/// Recomputes the view every [`REFRESH`] while the page is open.
async fn refresh_while_watched(mut watched: Vec<Watched>, shared: Arc<Shared>, telemetry: Arc<Telemetry>, shutdown: CancellationToken) {
    loop {
        if shared.watched() {
            let view = compute(&mut watched, &shared.worker_id, &telemetry).await;
            // A view is plain data: serialising cannot fail.
            *shared.view.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::to_string(&view).ok();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.wake.notified() => {}
            }
            // Opened (again): a first read of the counters, so that the
            // first view has rates over the last second, not since the
            // page was last open.
            let exposition = telemetry.render();
            for w in watched.iter_mut() {
                let name = w.config.name.clone();
                w.local.record(&name, Instant::now(), Ok(exposition.clone()));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }
}

async fn compute(watched: &mut [Watched], worker_id: &str, telemetry: &Telemetry) -> View {
    let exposition = telemetry.render();
    let mut pipelines = BTreeMap::new();
    for w in watched.iter_mut() {
        let name = w.config.name.clone();
        w.local.record(&name, Instant::now(), Ok(exposition.clone()));
        let counters = counters(&name, &exposition);
        if w.reader.is_none() {
            match LeaseReader::connect(&w.config).await {
                Ok(reader) => w.reader = Some(reader),
                Err(e) => {
                    pipelines.insert(name, PipelineView { status: None, error: Some(e.to_string()), counters });
                    continue;
                }
            }
        }
        let read = match &w.reader {
            Some(reader) => reader.read().await,
            None => continue,
        };
        let view = match read {
            Ok(leases) => PipelineView {
                status: Some(build_report(&w.config, &leases, std::slice::from_ref(&w.local), SystemTime::now())),
                error: None,
                counters,
            },
            Err(e) => PipelineView { status: None, error: Some(e.to_string()), counters },
        };
        pipelines.insert(name, view);
    }
    View { worker_id: worker_id.to_owned(), at_ms: crate::quickstart::state::epoch_millis(SystemTime::now()), pipelines }
}

/// This process's totals of [`COUNTERS`] for `pipeline`.
fn counters(pipeline: &str, exposition: &str) -> BTreeMap<&'static str, f64> {
    let mut totals: BTreeMap<&'static str, f64> = COUNTERS.iter().map(|(key, _)| (*key, 0.0)).collect();
    for sample in crate::scrape::samples(exposition) {
        if sample.label("pipeline") != Some(pipeline) {
            continue;
        }
        if let Some((key, _)) = COUNTERS.iter().find(|(_, name)| *name == sample.name) {
            *totals.entry(key).or_default() += sample.value;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::counters;

    #[test]
    fn counters_sum_a_pipelines_shards_and_stages() {
        let text = "shardline_records_received_total{pipeline=\"a\",shard_id=\"s0\"} 10\n\
                    shardline_records_received_total{pipeline=\"a\",shard_id=\"s1\"} 5\n\
                    shardline_records_received_total{pipeline=\"b\",shard_id=\"s0\"} 100\n\
                    shardline_records_dead_lettered_total{pipeline=\"a\",shard_id=\"s0\",stage=\"sink\"} 2\n\
                    shardline_records_dead_lettered_total{pipeline=\"a\",shard_id=\"s0\",stage=\"transform\"} 1\n";
        let totals = counters("a", text);
        assert_eq!(totals.get("received"), Some(&15.0));
        assert_eq!(totals.get("dead_lettered"), Some(&3.0));
        assert_eq!(totals.get("delivered"), Some(&0.0), "every counter is present, 0 when not yet counted");
    }
}

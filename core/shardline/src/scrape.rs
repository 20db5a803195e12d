//! Reading the Prometheus text exposition: this process's own (the
//! quickstart page) and other workers' `/metrics` (`shardline status`).

use std::time::Duration;

/// One sample line: `name{a="b",c="d"} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Labels in the order given.
    pub labels: Vec<(&'a str, &'a str)>,
    /// Value.
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&'a str> {
        self.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// Parses a sample line; `None` for comments, blank lines and label values
/// with escapes (pipeline names and shard ids cannot hold them).
pub fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let mut parsed = Vec::new();
    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once("=\"")?;
        if value.contains('\\') {
            return None;
        }
        parsed.push((key.trim_start_matches(','), value.trim_end_matches('"')));
    }
    Some(Sample { name, labels: parsed, value })
}

/// Every sample of an exposition.
pub fn samples(exposition: &str) -> impl Iterator<Item = Sample<'_>> {
    exposition.lines().filter_map(parse_sample)
}

/// Why a `/metrics` endpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Not an `http://host:port[/path]` address.
    #[error("{url}: not an http://HOST:PORT[/PATH] address")]
    BadUrl {
        /// What was given.
        url: String,
    },
    /// No connection, or no whole answer.
    #[error("{url}: {source}")]
    Io {
        /// The address.
        url: String,
        /// Cause.
        source: std::io::Error,
    },
    /// An answer other than 200.
    #[error("{url}: answered HTTP {status}")]
    Status {
        /// The address.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// Normalises a metrics address: `HOST:PORT` and `http://HOST:PORT` mean
/// `http://HOST:PORT/metrics`.
pub fn metrics_url(address: &str) -> String {
    let with_scheme = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    let after_scheme = with_scheme.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if after_scheme.contains('/') {
        with_scheme
    } else {
        format!("{with_scheme}/metrics")
    }
}

/// GETs `url` (plain HTTP/1.1; what `/metrics` serves), within `timeout`.
///
/// # Errors
/// [`ScrapeError`] naming the address.
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, ScrapeError> {
    match tokio::time::timeout(timeout, fetch_unbounded(url)).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Io {
            url: url.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {timeout:?}")),
        }),
    }
}

async fn fetch_unbounded(url: &str) -> Result<String, ScrapeError> {
    use http_body_util::{BodyExt, Empty};
    let bad = || ScrapeError::BadUrl { url: url.to_owned() };
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, format!("/{path}")),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    let io = |source: std::io::Error| ScrapeError::Io { url: url.to_owned(), source };
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(io)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| io(std::io::Error::other(e)))?;
    tokio::spawn(async move {
        // Ends with the response; its error is the request's.
        let _ = connection.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|_| bad())?;
    let response = sender.send_request(request).await.map_err(|e| io(std::io::Error::other(e)))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(ScrapeError::Status { url: url.to_owned(), status });
    }
    let body = response.into_body().collect().await.map_err(|e| io(std::io::Error::other(e)))?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let text = "# HELP x y\n# TYPE x counter\nx_total 3\nshardline_leases_held{pipeline=\"orders\",worker_id=\"w-1\"} 2\n\nbad line\n";
        let all: Vec<Sample<'_>> = samples(text).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].name, all[0].value, all[0].labels.len()), ("x_total", 3.0, 0));
        assert_eq!(all[1].label("worker_id"), Some("w-1"));
        assert_eq!(all[1].label("pipeline"), Some("orders"));
        assert_eq!(all[1].label("shard_id"), None);
    }

    #[test]
    fn metrics_addresses_are_normalised() {
        assert_eq!(metrics_url("127.0.0.1:9464"), "http://127.0.0.1:9464/metrics");
        assert_eq!(metrics_url("http://10.0.0.5:9464"), "http://10.0.0.5:9464/metrics");
        assert_eq!(metrics_url("http://h:1/custom"), "http://h:1/custom");
    }

    #[tokio::test]
    async fn fetch_reads_this_process_endpoint_and_names_failures() {
        let telemetry = crate::metrics::Telemetry::global();
        telemetry.set_ready("scrape-test", true);
        let stop = tokio_util::sync::CancellationToken::new();
        let address = crate::http::serve("127.0.0.1:0", telemetry, stop.clone()).await.expect("serve");
        let text = fetch(&metrics_url(&address.to_string()), Duration::from_secs(5)).await.expect("fetch");
        assert!(samples(&text).any(|s| s.name == "shardline_pipeline_ready" && s.label("pipeline") == Some("scrape-test")), "{text}");
        let missing = fetch(&format!("http://{address}/nothing-here"), Duration::from_secs(5)).await.expect_err("404");
        assert!(matches!(missing, ScrapeError::Status { status: 404, .. }), "{missing}");
        stop.cancel();
        assert!(matches!(fetch("ftp://x", Duration::from_secs(1)).await, Err(ScrapeError::BadUrl { .. })));
    }
}

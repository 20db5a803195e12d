//! Synthetic record generators for demos and load tests.

use rand::Rng;

/// What `shardline put --generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// The seed demo's HTTP (resource, referrer) pairs as JSON:
    /// `{"resource": "/products", "referrer": "https://www.google.com", "ts": 1795309564.123}`.
    Referrers,
}

const RESOURCES: &[&str] = &["/", "/products", "/products/42", "/cart", "/checkout", "/help", "/about", "/blog"];
const REFERRERS: &[&str] = &[
    "https://www.google.com",
    "https://www.bing.com",
    "https://news.ycombinator.com",
    "https://twitter.com",
    "https://www.reddit.com",
    "https://www.amazon.com",
    "direct",
];

/// Makes the next record of `generator`.
pub fn generate(generator: Generator, rng: &mut impl Rng) -> Vec<u8> {
    match generator {
        Generator::Referrers => {
            // A skewed choice, so the demo's chart has a clear leader.
            let referrer = REFERRERS[skewed(rng, REFERRERS.len())];
            let resource = RESOURCES[skewed(rng, RESOURCES.len())];
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            serde_json::json!({ "resource": resource, "referrer": referrer, "ts": (ts * 1000.0).round() / 1000.0 })
                .to_string()
                .into_bytes()
        }
    }
}

fn skewed(rng: &mut impl Rng, n: usize) -> usize {
    let a = rng.gen_range(0..n);
    let b = rng.gen_range(0..n);
    a.min(b)
}

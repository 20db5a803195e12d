//! Polling for a condition with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` every 100 ms until it returns `Ok(true)`.
///
/// # Errors
/// The first error `condition` returns (a worker that died, say), or a
/// timeout error naming `what` when `timeout` passes first.
pub async fn wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if condition().await? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

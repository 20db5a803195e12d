//! The process: run every pipeline until SIGINT/SIGTERM, then drain them.

mod pipeline;
mod shard_worker;

pub use pipeline::{run_pipeline, PipelineError, RunOptions};
pub use shard_worker::{ShardExit, WorkerError};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::PipelineConfig;

/// Runs all `pipelines` until a signal (or `shutdown`) asks them to stop,
/// or one fails permanently (then the others are drained too).
///
/// # Errors
/// The first pipeline error.
pub async fn run_all(pipelines: Vec<PipelineConfig>, options: RunOptions, shutdown: CancellationToken) -> Result<(), PipelineError> {
    let mut set = JoinSet::new();
    for config in pipelines {
        let options = options.clone();
        let token = shutdown.clone();
        set.spawn(async move { run_pipeline(config, options, token).await });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "pipeline failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline task panicked; stopping the others");
                shutdown.cancel();
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM; a second signal exits
/// at once without draining.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                tracing::info!("signal received, draining (send it again to exit at once)");
                token.cancel();
            } else {
                tracing::warn!("second signal, exiting without draining");
                std::process::exit(130);
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

//! The process: run every pipeline until SIGINT/SIGTERM, then drain them.

mod pipeline;
mod shard_tasks;
mod shard_worker;
#[cfg(test)]
mod shard_worker_tests;
#[cfg(test)]
mod test_support;

pub use pipeline::{run_pipeline, PipelineError, RunOptions};
pub use shard_worker::{ShardExit, WorkerError};

use std::collections::HashMap;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{LeaseStoreKind, PipelineConfig};

/// Runs all `pipelines` until a signal (or `shutdown`) asks them to stop,
/// or one fails permanently (then the others are drained too).
///
/// # Errors
/// The first pipeline error.
pub async fn run_all(pipelines: Vec<PipelineConfig>, options: RunOptions, shutdown: CancellationToken) -> Result<(), PipelineError> {
    check_lease_tables(&pipelines)?;
    let several = pipelines.len() > 1;
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
                // The caller reports the first error; with one pipeline
                // there is nothing else to say.
                if several {
                    tracing::error!(error = %e, "pipeline failed; stopping the others");
                }
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

/// Refuses two pipelines that share a lease table: every pipeline of a
/// process uses the same worker id, so they would take and evict each
/// other's leases. Tables are the same when the store kind and the table
/// name are, and, for the embedded store, the state directory; for
/// DynamoDB, the endpoint and the region.
///
/// # Errors
/// [`PipelineError::SharedLeaseTable`] naming the table and both pipelines.
// The pipeline error is large; it is built once, at start, on the error path.
#[allow(clippy::result_large_err)]
pub fn check_lease_tables(pipelines: &[PipelineConfig]) -> Result<(), PipelineError> {
    let mut seen: HashMap<(String, String), &str> = HashMap::new();
    for config in pipelines {
        let table = config.lease_table().to_owned();
        let store = lease_store_location(config);
        if let Some(first) = seen.insert((table.clone(), store.clone()), &config.name) {
            return Err(PipelineError::SharedLeaseTable { table, store, first: first.to_owned(), second: config.name.clone() });
        }
    }
    Ok(())
}

/// Where a pipeline's lease table lives, in words (also the key that tells
/// two tables apart).
pub(crate) fn lease_store_location(config: &PipelineConfig) -> String {
    let leases = &config.leases;
    match leases.store {
        LeaseStoreKind::Embedded => {
            let dir = &leases.state_dir;
            let dir = std::fs::canonicalize(dir).or_else(|_| std::path::absolute(dir)).unwrap_or_else(|_| dir.clone());
            format!("embedded store in {}", dir.display())
        }
        LeaseStoreKind::Dynamodb => {
            let region = leases.region.as_deref().or(config.source.region.as_deref()).unwrap_or("default region");
            let endpoint = leases.endpoint.as_deref().unwrap_or("regional endpoint");
            format!("dynamodb at {endpoint}, {region}")
        }
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{check_lease_tables, run_all, RunOptions};
    use crate::config::{load_str, PipelineConfig};

    fn pipeline(name: &str, leases: &str) -> PipelineConfig {
        let text = format!(
            "name = \"{name}\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\n[leases]\n{leases}\n[sink]\ntype = \"stdout\"\n"
        );
        load_str(&text, Path::new(&format!("{name}.toml"))).expect("a valid pipeline")
    }

    #[tokio::test]
    async fn two_pipelines_sharing_a_lease_table_are_refused_at_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let leases = format!("table = \"shared\"\nstate_dir = {:?}", dir.path().display().to_string());
        let pipelines = vec![pipeline("orders", &leases), pipeline("clicks", &leases)];
        let options = RunOptions { worker_id: "w1".into(), shutdown_timeout: Duration::from_secs(1) };
        let shutdown = CancellationToken::new();
        let result = tokio::time::timeout(Duration::from_secs(10), run_all(pipelines, options, shutdown.clone())).await;
        shutdown.cancel();
        let error = result.expect("refused at once, before any pipeline starts").expect_err("refused");
        let message = error.to_string();
        for part in ["\"shared\"", "orders", "clicks", "share the lease table"] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
    }

    #[test]
    fn lease_tables_differ_by_name_directory_and_store() {
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        let dir = |d: &tempfile::TempDir| format!("state_dir = {:?}", d.path().display().to_string());
        // Default table: the pipeline name.
        assert!(check_lease_tables(&[pipeline("orders", &dir(&a)), pipeline("clicks", &dir(&a))]).is_ok());
        // Same table name, other directory.
        let same = |d: &tempfile::TempDir| format!("table = \"leases-t\"\n{}", dir(d));
        assert!(check_lease_tables(&[pipeline("orders", &same(&a)), pipeline("clicks", &same(&b))]).is_ok());
        // The same directory spelled two ways.
        let dotted = format!("table = \"leases-t\"\nstate_dir = {:?}", a.path().join(".").display().to_string());
        assert!(check_lease_tables(&[pipeline("orders", &same(&a)), pipeline("clicks", &dotted)]).is_err());
        // DynamoDB: the same table in two regions is two tables; in one, one.
        let dynamo = |region: &str| format!("store = \"dynamodb\"\ntable = \"leases-t\"\nregion = \"{region}\"");
        assert!(check_lease_tables(&[pipeline("orders", &dynamo("eu-west-1")), pipeline("clicks", &dynamo("us-east-1"))]).is_ok());
        let error = check_lease_tables(&[pipeline("orders", &dynamo("eu-west-1")), pipeline("clicks", &dynamo("eu-west-1"))]).expect_err("shared");
        assert!(error.to_string().contains("dynamodb"), "{error}");
        // Embedded and DynamoDB tables of one name are different tables.
        assert!(check_lease_tables(&[pipeline("orders", &same(&a)), pipeline("clicks", &dynamo("eu-west-1"))]).is_ok());
    }
}

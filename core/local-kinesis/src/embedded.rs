//! `endpoint = "embedded"`: one in-process server per data directory,
//! started on first use and kept for the life of the process, so several
//! pipelines (and `shardline put`) in one process share a stream. A
//! missing stream is created on first use, with the shard count of an
//! on-demand stream (4).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::protocol::Input;
use crate::state::Server;
use crate::{start, LocalKinesisConfig, LocalKinesisError};

/// The `[source] endpoint` value that asks for the in-process server.
pub const EMBEDDED_ENDPOINT: &str = "embedded";

/// Where a pipeline's embedded stream keeps its data: `kinesis/` under
/// the lease `state_dir`.
pub fn embedded_data_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("kinesis")
}

type Registry = tokio::sync::Mutex<HashMap<PathBuf, (String, Arc<Server>)>>;

fn registry() -> &'static Registry {
    static SERVERS: OnceLock<Registry> = OnceLock::new();
    SERVERS.get_or_init(|| tokio::sync::Mutex::new(HashMap::new()))
}

/// The endpoint (`http://127.0.0.1:<port>`) of the in-process server for
/// `data_dir`, starting it on the first call, and creating `stream` when
/// it does not exist. The server runs until the process exits; logs are
/// synced every second, and acknowledged records survive the process
/// being killed.
///
/// # Errors
/// As [`start`]: the data directory cannot be read or written, or another
/// process serves it ([`LocalKinesisError::Locked`]).
///
/// # Cancel safety
/// Cancel-safe: a cancelled first call starts nothing, or a server the
/// next call reuses.
pub async fn embedded_endpoint(data_dir: &Path, stream: Option<&str>) -> Result<String, LocalKinesisError> {
    std::fs::create_dir_all(data_dir).map_err(LocalKinesisError::io("create directory", data_dir))?;
    let key = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let mut servers = registry().lock().await;
    let (endpoint, server) = match servers.get(&key) {
        Some(found) => found.clone(),
        None => {
            let server = start(LocalKinesisConfig::new(&key), CancellationToken::new()).await?;
            let found = (server.endpoint(), server.state().clone());
            tracing::info!(endpoint = %found.0, data_dir = %key.display(), "started the embedded kinesis stream");
            servers.insert(key.clone(), found.clone());
            found
        }
    };
    drop(servers);
    if let Some(stream) = stream {
        let name = stream.to_owned();
        let created = tokio::task::spawn_blocking(move || {
            let request = Input::Map(vec![
                ("StreamName".to_owned(), Input::Str(name)),
                ("StreamModeDetails".to_owned(), Input::Map(vec![("StreamMode".to_owned(), Input::Str("ON_DEMAND".to_owned()))])),
            ]);
            crate::ops::dispatch(&server, "CreateStream", &request)
        })
        .await
        .map_err(|e| LocalKinesisError::Io { action: "create stream", path: key.clone(), source: std::io::Error::other(e) })?;
        match created {
            Ok(_) => tracing::info!(stream = %stream, "created the embedded stream"),
            Err(e) if e.exception == "ResourceInUseException" => {}
            Err(e) => return Err(LocalKinesisError::Io { action: "create stream", path: key, source: std::io::Error::other(e) }),
        }
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_server_per_directory_and_streams_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let first = embedded_endpoint(dir.path(), Some("s")).await.unwrap();
        let again = embedded_endpoint(dir.path(), Some("s")).await.unwrap();
        assert_eq!(first, again);
        let servers = registry().lock().await;
        let (_, server) = servers.values().find(|(e, _)| *e == first).unwrap();
        assert!(server.stream("s").is_ok());
    }
}

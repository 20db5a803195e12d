//! Pipeline files for the workers under test.

use std::path::{Path, PathBuf};

use crate::Emulators;

/// Where the pipeline keeps leases.
#[derive(Debug, Clone)]
pub enum LeaseStore {
    /// A DynamoDB lease table on the emulator.
    Dynamodb {
        /// Table name.
        table: String,
        /// DynamoDB endpoint.
        endpoint: String,
    },
    /// The embedded single-process store.
    Embedded {
        /// Its state directory.
        state_dir: PathBuf,
    },
}

/// The settings of one pipeline file; [`PipelineSpec::write`] renders it.
/// Defaults suit the tests: trim horizon, polling, short idle, buffer and
/// failover times, `parse_json`, file sink and file dead letters in the
/// test directory.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// `name`.
    pub name: String,
    /// `source.stream`.
    pub stream: String,
    /// `source.endpoint`.
    pub kinesis_endpoint: String,
    /// `source.initial_position`.
    pub initial_position: String,
    /// `source.read`: `polling` or `fan_out`.
    pub read: String,
    /// `source.idle_interval`.
    pub idle_interval: String,
    /// `source.shard_sync_interval`, if set.
    pub shard_sync_interval: Option<String>,
    /// `[leases]`.
    pub leases: LeaseStore,
    /// `leases.failover_time`.
    pub failover_time: String,
    /// `leases.checkpoint_interval`, if set.
    pub checkpoint_interval: Option<String>,
    /// `leases.release_on_shutdown`, if set.
    pub release_on_shutdown: Option<bool>,
    /// `[[transforms]]` types, in order (transforms without options).
    pub transforms: Vec<String>,
    /// `buffer.max_records`.
    pub buffer_max_records: u64,
    /// `buffer.max_bytes`.
    pub buffer_max_bytes: String,
    /// `buffer.max_age`.
    pub buffer_max_age: String,
    /// `sink.path` (file sink, envelope format).
    pub sink_dir: PathBuf,
    /// `dead_letter.path` (file dead letters).
    pub dead_letter_dir: PathBuf,
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(s).expect("strings serialise")
}

impl PipelineSpec {
    /// A pipeline reading `stream` with a fresh DynamoDB lease table, writing
    /// to `dir/out` and `dir/dead-letters`.
    pub fn new(emulators: &Emulators, stream: &str, dir: &Path) -> PipelineSpec {
        let name = crate::unique_name("e2e");
        PipelineSpec {
            stream: stream.to_owned(),
            kinesis_endpoint: emulators.kinesis_endpoint.clone(),
            initial_position: "trim_horizon".into(),
            read: "polling".into(),
            idle_interval: "200ms".into(),
            shard_sync_interval: Some("1s".into()),
            leases: LeaseStore::Dynamodb {
                table: format!("{name}-leases"),
                endpoint: emulators.dynamodb_endpoint.clone(),
            },
            failover_time: "3s".into(),
            checkpoint_interval: Some("500ms".into()),
            release_on_shutdown: None,
            transforms: vec!["parse_json".into()],
            buffer_max_records: 100,
            buffer_max_bytes: "1MiB".into(),
            buffer_max_age: "500ms".into(),
            sink_dir: dir.join("out"),
            dead_letter_dir: dir.join("dead-letters"),
            name,
        }
    }

    /// The DynamoDB lease table name.
    ///
    /// # Panics
    /// With the embedded store.
    pub fn lease_table(&self) -> &str {
        match &self.leases {
            LeaseStore::Dynamodb { table, .. } => table,
            LeaseStore::Embedded { .. } => panic!("the pipeline uses the embedded lease store"),
        }
    }

    /// The pipeline file's text.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "name = {}\n\n[source]\ntype = \"kinesis\"\n",
            quoted(&self.name)
        ));
        t.push_str(&format!(
            "stream = {}\nregion = \"us-east-1\"\n",
            quoted(&self.stream)
        ));
        t.push_str(&format!("endpoint = {}\n", quoted(&self.kinesis_endpoint)));
        t.push_str(&format!(
            "initial_position = {}\n",
            quoted(&self.initial_position)
        ));
        t.push_str(&format!("read = {}\n", quoted(&self.read)));
        t.push_str(&format!(
            "idle_interval = {}\n",
            quoted(&self.idle_interval)
        ));
        if let Some(interval) = &self.shard_sync_interval {
            t.push_str(&format!("shard_sync_interval = {}\n", quoted(interval)));
        }
        t.push_str("\n[leases]\n");
        match &self.leases {
            LeaseStore::Dynamodb { table, endpoint } => {
                t.push_str(&format!(
                    "store = \"dynamodb\"\ntable = {}\n",
                    quoted(table)
                ));
                t.push_str(&format!(
                    "endpoint = {}\nregion = \"us-east-1\"\n",
                    quoted(endpoint)
                ));
            }
            LeaseStore::Embedded { state_dir } => {
                t.push_str(&format!(
                    "store = \"embedded\"\nstate_dir = {}\n",
                    quoted(&state_dir.to_string_lossy())
                ));
            }
        }
        t.push_str(&format!(
            "failover_time = {}\n",
            quoted(&self.failover_time)
        ));
        if let Some(release) = self.release_on_shutdown {
            t.push_str(&format!("release_on_shutdown = {release}\n"));
        }
        if let Some(interval) = &self.checkpoint_interval {
            t.push_str(&format!("checkpoint_interval = {}\n", quoted(interval)));
        }
        for transform in &self.transforms {
            t.push_str(&format!("\n[[transforms]]\ntype = {}\n", quoted(transform)));
        }
        t.push_str(&format!(
            "\n[buffer]\nmax_records = {}\nmax_bytes = {}\nmax_age = {}\n",
            self.buffer_max_records,
            quoted(&self.buffer_max_bytes),
            quoted(&self.buffer_max_age)
        ));
        t.push_str(&format!(
            "\n[sink]\ntype = \"file\"\npath = {}\nformat = \"envelope\"\n",
            quoted(&self.sink_dir.to_string_lossy())
        ));
        t.push_str(&format!(
            "\n[dead_letter]\ntype = \"file\"\npath = {}\n",
            quoted(&self.dead_letter_dir.to_string_lossy())
        ));
        t
    }

    /// Writes the file as `dir/<file_name>` and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path, file_name: &str) -> PathBuf {
        let path = dir.join(file_name);
        std::fs::write(&path, self.to_toml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

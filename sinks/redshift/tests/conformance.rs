//! The `redshift` plugin passes the sink conformance suite, driven
//! through the plugin host's C ABI (the SDK's in-process table), against
//! moto S3, the Redshift Data API emulator and PostgreSQL.

mod support;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::Sink;
use shardline_plugin_host::LoadedPlugin;
use shardline_sink_conformance::{InvalidConfig, Scope, SinkUnderTest};
use shardline_sink_redshift::RedshiftSink;

const BUCKET: &str = "shardline-redshift-conformance";

struct RedshiftUnderTest {
    env: support::Env,
    plugin: Arc<LoadedPlugin>,
}

fn plugin() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let table = shardline_plugin_sdk::testing::table::<RedshiftSink>();
            // SAFETY: the table was built by the SDK for this plugin type, in this process.
            Arc::new(unsafe { LoadedPlugin::from_table(table, Path::new("in-process:redshift")) }.expect("the plugin table"))
        })
        .clone()
}

fn table_name(scope: &Scope) -> String {
    format!("conf_{}", scope.name.replace('-', "_"))
}

fn json(config: &toml::Table) -> serde_json::Value {
    serde_json::to_value(config).expect("TOML converts to JSON")
}

impl RedshiftUnderTest {
    fn base(&self, scope: &Scope) -> toml::Table {
        let text = format!(
            r#"table = "{table}"
database = "dev"
cluster_identifier = "{cluster}"
db_user = "shardline"
staging_bucket = "{BUCKET}"
staging_prefix = "conformance/{cluster}/"
iam_role = "arn:aws:iam::123456789012:role/shardline-copy"
region = "us-east-1"
endpoint = "{data}"
s3_endpoint = "{s3}"
s3_force_path_style = true
poll_interval = "50ms"
"#,
            table = table_name(scope),
            cluster = scope.name,
            data = self.env.data_api,
            s3 = self.env.s3,
        );
        text.parse().expect("TOML")
    }
}

#[async_trait]
impl SinkUnderTest for RedshiftUnderTest {
    fn sink_type(&self) -> String {
        "redshift".to_owned()
    }

    fn config(&self, scope: &Scope) -> toml::Table {
        support::pg_execute(&self.env.pg, &format!("CREATE TABLE IF NOT EXISTS {} (conformance BIGINT, scope VARCHAR(256))", table_name(scope)));
        self.base(scope)
    }

    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig> {
        let with = |key: &str, value: toml::Value| {
            let mut c = self.base(scope);
            c.insert(key.to_owned(), value);
            InvalidConfig { config: c, key: Some(key.to_owned()) }
        };
        let mut missing = self.base(scope);
        missing.remove("table");
        vec![
            InvalidConfig { config: missing, key: Some("table".into()) },
            with("tabel", "x".into()),
            with("workgroup_name", "wg".into()),
            with("delimiter", ",".into()),
            with("poll_interval", "1ms".into()),
            with("iam_role", "not-an-arn".into()),
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        self.plugin.validate(&json(config)).map_err(|problems| {
            let first = problems.into_iter().next().expect("at least one problem");
            (first.key, first.message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        Ok(Arc::new(self.plugin.build_sink(json(config), pipeline)))
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        let client = support::pg(&self.env.pg).await;
        let rows = client.query(&format!("SELECT conformance, scope FROM {}", table_name(scope)), &[]).await.expect("select");
        rows.iter()
            .map(|row| {
                let (n, s): (Option<i64>, Option<String>) = (row.get(0), row.get(1));
                Bytes::from(format!("{{\"conformance\":{},\"scope\":\"{}\"}}", n.unwrap_or(-1), s.unwrap_or_default()))
            })
            .collect()
    }

    fn rejected_payload(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"{\"conformance\":\"not a number\",\"scope\":\"bad\"}"))
    }

    async fn make_unavailable(&self, scope: &Scope) -> bool {
        support::set_available(&self.env.data_api, &scope.name, false);
        true
    }

    async fn make_available(&self, scope: &Scope) {
        support::set_available(&self.env.data_api, &scope.name, true);
    }

    fn expected_metrics(&self) -> Vec<String> {
        vec![r#"shardline_plugin_calls_total{plugin="redshift",call="send",outcome="ok"}"#.to_owned()]
    }
}

#[test]
fn the_redshift_plugin_passes_the_sink_conformance_suite() {
    let Some(env) = support::env() else { return };
    let s3 = support::s3(&env.s3);
    support::block_on(async move { support::create_bucket(&s3, BUCKET).await });
    let report = shardline_sink_conformance::run(&RedshiftUnderTest { env, plugin: plugin() });
    println!("{report}");
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
}

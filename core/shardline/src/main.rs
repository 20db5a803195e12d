//! `shardline`: run Kinesis pipelines, validate pipeline files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shardline::config::{self, ConfigError};
use shardline::runtime::{self, RunOptions};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "shardline", version, about = "Checkpointed Kinesis shard workers feeding TOML-declared pipelines")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "SHARDLINE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one or more pipelines until SIGINT/SIGTERM, then drain: flush
    /// buffers, checkpoint, release leases.
    Run {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// This worker's id in the lease table. Default: host name plus a
        /// random suffix.
        #[arg(long, env = "SHARDLINE_WORKER_ID")]
        worker_id: Option<String>,
        /// Address of the /metrics, /health and /ready endpoint.
        #[arg(long, env = "SHARDLINE_METRICS_ADDRESS", default_value = "127.0.0.1:9464")]
        metrics_address: String,
        /// Longest graceful shutdown before leases are left to expire.
        #[arg(long, env = "SHARDLINE_SHUTDOWN_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
        shutdown_timeout: Duration,
        /// Serve a page of every pipeline's shards (owner, checkpoint, lag,
        /// rate) and counters. Off by default; `--web` alone serves it on
        /// 127.0.0.1:8080.
        #[arg(long, env = "SHARDLINE_WEB_ADDRESS", value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
        web: Option<String>,
        #[command(flatten)]
        plugins: PluginDirs,
    },
    /// Show who owns which shard: one line per shard (owner, checkpoint,
    /// lease counter, parent/child state, millis behind latest, records/s)
    /// and totals per worker, from the pipeline's lease table (DynamoDB or
    /// embedded; a Java KCL fleet's table too) and the workers' /metrics.
    Status {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A worker's metrics address (HOST:PORT or http://HOST:PORT/metrics);
        /// repeatable or comma-separated. Default: try 127.0.0.1:9464.
        #[arg(long = "metrics", value_delimiter = ',')]
        metrics: Vec<String>,
        /// Print once and exit (the default when stdout is not a terminal).
        #[arg(long, conflicts_with = "watch")]
        once: bool,
        /// Refresh in place every --interval until Ctrl-C (the default in a
        /// terminal).
        #[arg(long)]
        watch: bool,
        /// JSON for scripts: one document per pipeline (and refresh).
        #[arg(long)]
        json: bool,
        /// Time between refreshes, and between the two metrics reads that
        /// give records/s.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        #[command(flatten)]
        plugins: PluginDirs,
    },
    /// Write records to a stream: lines from stdin or files, followed files
    /// (--follow), or generated demo data (--generate referrers).
    Put(shardline::put::PutArgs),
    /// Ask a running shardline's /health endpoint (for container health
    /// checks: the image has no curl). Exit status 0 when healthy.
    Healthcheck {
        /// The metrics address of the process to ask (0.0.0.0 is asked on
        /// 127.0.0.1).
        #[arg(long, env = "SHARDLINE_METRICS_ADDRESS", default_value = "127.0.0.1:9464")]
        address: String,
        /// Path to ask: /health (liveness) or /ready (readiness).
        #[arg(long, default_value = "/health")]
        path: String,
    },
    /// Check pipeline files without touching the network; reports
    /// file:line:column of every problem. Exit status 0 when all are valid.
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        plugins: PluginDirs,
    },
    /// Run the `[[tests]]` declared in pipeline files through their
    /// transforms (no network); prints a diff for each failure and
    /// `N passed, N failed`. Exit status 0 when all pass.
    Test {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        plugins: PluginDirs,
    },
    /// List the sink plugins found (name, version, config keys), the
    /// directories searched and the libraries refused.
    Plugins {
        #[command(flatten)]
        plugins: PluginDirs,
    },
    /// The demo in one command, no AWS account: an embedded stream, the
    /// referrer generator, pipelines/quickstart.toml, and a live chart of
    /// clicks per referrer on http://127.0.0.1:PORT/. Ctrl-C drains and
    /// checkpoints; running it again resumes.
    Quickstart {
        /// Port of the page on 127.0.0.1 (0: a free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where the stream's records, leases and checkpoints are kept.
        #[arg(long, env = "SHARDLINE_STATE_DIR", default_value = "./state")]
        state_dir: PathBuf,
        /// Generator records per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Do not write generated clicks; only read what the stream holds.
        #[arg(long)]
        no_generator: bool,
        /// Run this pipeline file instead of the compiled-in
        /// pipelines/quickstart.toml (it must use `endpoint = "embedded"`).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Longest graceful shutdown before leases are left to expire.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        shutdown_timeout: Duration,
    },
    /// Serve a Kinesis-compatible API on loopback (for development, tests
    /// and benchmarks) with records kept in --data-dir; prints the endpoint.
    LocalKinesis(shardline_local_kinesis::cli::LocalKinesisArgs),
}

/// Where sink plugins are looked for, before the defaults (`plugins/`
/// next to the binary, then `/usr/lib/shardline/plugins`).
#[derive(clap::Args)]
struct PluginDirs {
    /// A directory of sink plugins (repeatable; `SHARDLINE_PLUGIN_DIR` takes
    /// a colon-separated list).
    #[arg(long = "plugin-dir", env = "SHARDLINE_PLUGIN_DIR", value_delimiter = ':')]
    plugin_dirs: Vec<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Healthcheck { address, path } => shardline::http::healthcheck(&address, &path),
        Command::Validate { files, plugins } => {
            shardline::sink::load_plugins(&plugins.plugin_dirs);
            validate(&files)
        }
        Command::Test { files, plugins } => {
            shardline::sink::load_plugins(&plugins.plugin_dirs);
            test(&files)
        }
        Command::Plugins { plugins } => {
            print!("{}", shardline::sink::plugins_report(shardline::sink::load_plugins(&plugins.plugin_dirs)));
            ExitCode::SUCCESS
        }
        Command::LocalKinesis(args) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(shardline_local_kinesis::cli::run(args)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Quickstart { port, state_dir, rate, no_generator, pipeline, shutdown_timeout } => {
            if !(rate > 0.0) {
                eprintln!("error: --rate must be a positive number of records per second");
                return ExitCode::FAILURE;
            }
            let options = shardline::quickstart::QuickstartOptions {
                address: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                state_dir,
                rate,
                generator: !no_generator,
                pipeline_file: pipeline,
                run: RunOptions { worker_id: default_worker_id(), shutdown_timeout },
            };
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(quickstart(options)),
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Put(args) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(shardline::put::run(args)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Status { files, metrics, once, watch, json, interval, plugins } => {
            shardline::sink::load_plugins(&plugins.plugin_dirs);
            let configs = match load_all(&files) {
                Ok(c) => c,
                Err(code) => return code,
            };
            use std::io::IsTerminal;
            let terminal = std::io::stdout().is_terminal();
            let watch = watch || (!once && terminal);
            let options = shardline::status::StatusOptions {
                metrics,
                interval,
                watch,
                output: if json { shardline::status::Output::Json } else { shardline::status::Output::Text },
                clear_screen: watch && terminal && !json,
            };
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(status(configs, options)),
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { files, worker_id, metrics_address, shutdown_timeout, web, plugins } => {
            shardline::sink::load_plugins(&plugins.plugin_dirs);
            let configs = match load_all(&files) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let worker_id = worker_id.unwrap_or_else(default_worker_id);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(configs, worker_id, metrics_address, web, shutdown_timeout, cli.log_format))
        }
    }
}

async fn run(
    configs: Vec<config::PipelineConfig>,
    worker_id: String,
    metrics_address: String,
    web: Option<String>,
    shutdown_timeout: Duration,
    log_format: LogFormat,
) -> ExitCode {
    let shutdown = CancellationToken::new();
    runtime::cancel_on_signals(shutdown.clone());
    let telemetry = shardline::metrics::Telemetry::global();
    let server_stop = CancellationToken::new();
    match shardline::http::serve(&metrics_address, telemetry.clone(), server_stop.clone()).await {
        Ok(address) => tracing::info!(address = %address, "metrics endpoint listening"),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the metrics endpoint");
            return ExitCode::FAILURE;
        }
    }
    if let Some(address) = web {
        match shardline::web::serve(&address, configs.clone(), worker_id.clone(), telemetry.clone(), server_stop.clone()).await {
            Ok(bound) => tracing::info!(address = %bound, url = %format!("http://{bound}/"), "web page listening"),
            Err(e) => {
                eprintln!("error: cannot serve the web page on {address}: {e}; choose another with --web HOST:PORT (127.0.0.1:0 for any free port)");
                return ExitCode::FAILURE;
            }
        }
    }
    tracing::info!(worker_id = %worker_id, pipelines = configs.len(), "shardline starting");
    let result = runtime::run_all(configs, RunOptions { worker_id, shutdown_timeout }, shutdown).await;
    server_stop.cancel();
    match result {
        Ok(()) => {
            tracing::info!("shardline stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line: plain text for a person, a structured event for a
            // log pipeline.
            match log_format {
                LogFormat::Text => eprintln!("error: {e}"),
                LogFormat::Json => tracing::error!(error = %e, "shardline stopped with an error"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn status(configs: Vec<config::PipelineConfig>, options: shardline::status::StatusOptions) -> ExitCode {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    let result = shardline::status::run(configs, options, shutdown, |text| {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the output; nothing to report.
        let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    })
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn quickstart(options: shardline::quickstart::QuickstartOptions) -> ExitCode {
    let shutdown = CancellationToken::new();
    runtime::cancel_on_signals(shutdown.clone());
    let state_dir = options.state_dir.clone();
    let result = shardline::quickstart::run(options, shutdown, |address| {
        println!("Shardline quickstart: open http://{address}/ (Ctrl-C drains and stops; state in {})", state_dir.display());
    })
    .await;
    match result {
        Ok(()) => {
            println!("quickstart stopped: checkpoints saved in {}; run it again to resume", state_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Pipeline files named on the command line; a directory stands for the
/// `*.toml` files in it (sorted), as in the container's
/// `/etc/shardline/pipelines`.
fn expand(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in files {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                found.sort();
                if found.is_empty() {
                    eprintln!("warning: {} holds no *.toml pipeline file", path.display());
                }
                out.extend(found);
            }
            Err(_) => out.push(path.clone()),
        }
    }
    out
}

fn load_all(files: &[PathBuf]) -> Result<Vec<config::PipelineConfig>, ExitCode> {
    let files = expand(files);
    if files.is_empty() {
        eprintln!("error: no pipeline file given");
        return Err(ExitCode::FAILURE);
    }
    let mut configs = Vec::new();
    let mut failed = false;
    for file in &files {
        match config::load_file(file) {
            Ok(c) => configs.push(c),
            Err(e) => {
                report(&e);
                failed = true;
            }
        }
    }
    let mut names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        eprintln!("error: two pipeline files use the name {:?}; names must be unique in one process", pair[0]);
        failed = true;
    }
    if failed {
        Err(ExitCode::FAILURE)
    } else {
        Ok(configs)
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let files = expand(files);
    match load_all(&files) {
        Ok(configs) => {
            for (file, config) in files.iter().zip(&configs) {
                println!("{}: ok (pipeline {:?}, sink {:?})", file.display(), config.name, config.sink_type().unwrap_or("?"));
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn test(files: &[PathBuf]) -> ExitCode {
    let configs = match load_all(files) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (mut passed, mut failed) = (0, 0);
    for (file, config) in files.iter().zip(&configs) {
        let results = shardline::testing::run_all(config);
        if results.is_empty() {
            println!("{}: no [[tests]]", file.display());
        }
        print!("{}", shardline::testing::report(&file.display().to_string(), &results));
        passed += results.iter().filter(|r| r.passed()).count();
        failed += results.iter().filter(|r| !r.passed()).count();
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(error: &ConfigError) {
    for line in error.to_string().lines() {
        eprintln!("error: {line}");
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "shardline".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SHARDLINE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(shardline::DEFAULT_LOG_FILTER));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

//! The `shardline put` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use shardline_api::ByteSize;
use shardline_aws::AwsConnection;
use tokio_util::sync::CancellationToken;

use super::{follow_files, generate, put_lines, Generator, PartitionKey, Producer, ProducerOptions};

/// Write records to a stream: lines from stdin or files (one record per
/// line), followed files, or generated demo data.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// Stream name.
    #[arg(long)]
    pub stream: String,
    /// Endpoint override, e.g. http://127.0.0.1:4568.
    #[arg(long, env = "SHARDLINE_KINESIS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// Partition key: random, fixed:KEY or field:NAME (a top-level JSON field).
    #[arg(long, default_value = "random")]
    pub partition_key: PartitionKey,
    /// Create the stream with this many shards if it is missing.
    #[arg(long)]
    pub create_shards: Option<i32>,
    /// KPL-aggregate user records bound for the same shard (readable by the
    /// Java KCL and by Shardline).
    #[arg(long)]
    pub aggregate: bool,
    /// Largest aggregate, e.g. 50KiB (the KPL's default is 51200 bytes).
    #[arg(long, default_value = "50KiB")]
    pub aggregate_max_size: ByteSize,
    /// Most records per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Keep reading the files as they grow, through rename and copytruncate
    /// rotation, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Where --follow keeps file positions. Default: <first file>.shardline-put.json.
    #[arg(long)]
    pub checkpoint_file: Option<PathBuf>,
    /// How often --follow looks for new lines.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Write generated records instead of reading input.
    #[arg(long, value_enum)]
    pub generate: Option<Generator>,
    /// With --generate: stop after this many records (default: until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Files to read; stdin when none.
    pub files: Vec<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))
}

/// Runs `shardline put`.
pub async fn run(args: PutArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(args: PutArgs) -> anyhow::Result<()> {
    if args.follow && args.files.is_empty() {
        anyhow::bail!("--follow needs at least one file");
    }
    if args.generate.is_some() && !args.files.is_empty() {
        anyhow::bail!("--generate writes generated records; do not name files too");
    }
    if matches!(args.rate, Some(r) if !(r > 0.0)) {
        anyhow::bail!("--rate must be a positive number of records per second");
    }
    let options = ProducerOptions {
        stream: args.stream.clone(),
        connection: AwsConnection { region: args.region.clone(), endpoint: args.endpoint.clone(), ..AwsConnection::default() },
        partition_key: args.partition_key.clone(),
        create_shards: args.create_shards,
        aggregate_max_bytes: args.aggregate.then_some(args.aggregate_max_size.bytes() as usize),
        rate: args.rate,
        progress: !args.quiet,
    };
    let mut producer = Producer::connect(options).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    if let Some(generator) = args.generate {
        let mut rng = rand::thread_rng();
        let mut n = 0u64;
        while args.count.is_none_or(|c| n < c) && !shutdown.is_cancelled() {
            producer.push(generate(generator, &mut rng)).await?;
            n += 1;
        }
        producer.flush().await?;
    } else if args.follow {
        let checkpoint = args
            .checkpoint_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.shardline-put.json", args.files[0].display())));
        follow_files(&mut producer, &args.files, &checkpoint, args.poll_interval, shutdown).await?;
    } else if args.files.is_empty() {
        let stdin = std::io::stdin();
        put_lines(&mut producer, stdin.lock()).await?;
    } else {
        for file in &args.files {
            let opened = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            put_lines(&mut producer, std::io::BufReader::new(opened))
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
        }
    }
    if !args.quiet {
        eprintln!("\r{}", producer.progress_line());
    }
    Ok(())
}


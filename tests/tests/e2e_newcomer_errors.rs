//! Start-up errors a newcomer can act on, through the real binary: no AWS
//! credentials, a profile whose credential process fails, and a metrics
//! port that another process holds. Each stops the process with exit
//! status 1 and one `error:` line that names the cause and what to do, and
//! the AWS SDK's own retry and credential-chain lines stay out of the log.
//!
//! No emulator is needed: every check runs before the first AWS call
//! (the endpoints point at a closed port).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use shardline_e2e::*;

/// A pipeline with the kinesis source at a closed port and `extra` lines
/// in its `[source]` table; the lease store is embedded in `dir`.
fn pipeline(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    let text = format!(
        "name = \"newcomer\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\n{extra}\n[leases]\nstate_dir = {:?}\n[sink]\ntype = \"stdout\"\n",
        dir.join("state").display().to_string()
    );
    std::fs::write(&path, text).expect("write the pipeline");
    path
}

/// Runs `shardline run FILE` with no AWS settings from the environment
/// (no credentials, no profile, empty config files in `dir`, instance
/// metadata off), plus `env`, and waits for it to stop; fails if it is still
/// running after 60 s (a guard, not a timing claim: it stops in well under
/// a second).
fn run(bin: &Path, dir: &Path, file: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Empty config files rather than missing ones: the SDK rightly warns
    // about a configured file that does not exist.
    for name in ["aws-config", "aws-credentials"] {
        if !dir.join(name).exists() {
            std::fs::write(dir.join(name), "").expect("write an empty AWS config file");
        }
    }
    let mut command = Command::new(bin);
    command.arg("run").arg(file).args(["--worker-id", "w"]).args(args).current_dir(dir);
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "RUST_LOG",
        "SHARDLINE_LOG",
        "SHARDLINE_METRICS_ADDRESS",
    ] {
        command.env_remove(name);
    }
    command
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardline run");
    output_within(child, Duration::from_secs(60), "`shardline run`")
}

/// The one `error:` line of a run that must have failed with status 1, and
/// checks that nothing else in its log is a warning or an SDK line.
fn the_error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit status 1:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    for line in stderr.lines() {
        assert!(!line.contains("aws_config") && !line.contains("aws_smithy"), "an AWS SDK line reached the log:\n{stderr}");
        assert!(!line.contains(" WARN ") && !line.contains(" ERROR "), "a warning or a second error in the log:\n{stderr}");
    }
    errors[0].to_owned()
}

#[test]
fn no_credentials_anywhere_is_one_line_naming_what_to_set() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("newcomer-no-credentials");
    let file = pipeline(dir.path(), "");
    let output = run(&bin, dir.path(), &file, &["--metrics-address", "127.0.0.1:0"], &[]);
    let line = the_error_line(&output);
    for part in [
        "pipeline newcomer",
        "no AWS credentials found for the kinesis source",
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        "profile",
        "role",
        "Environment",
        "Ec2InstanceMetadata",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

#[test]
fn a_profile_whose_credential_process_fails_names_the_failure() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("newcomer-bad-profile");
    std::fs::write(dir.join("aws-config"), "[profile broken]\ncredential_process = false\n").expect("write the AWS config");
    let file = pipeline(dir.path(), "profile = \"broken\"");
    let output = run(&bin, dir.path(), &file, &["--metrics-address", "127.0.0.1:0"], &[]);
    let line = the_error_line(&output);
    for part in ["AWS credentials for the kinesis source could not be loaded", "external process exited"] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

#[test]
fn a_metrics_port_in_use_says_how_to_pick_another() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("newcomer-port-in-use");
    // The port another shardline would hold.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = holder.local_addr().expect("local address").to_string();
    let file = pipeline(dir.path(), "");
    let output = run(&bin, dir.path(), &file, &["--metrics-address", &address], &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit status 1:\n{stderr}");
    for part in [address.as_str(), "--metrics-address", "127.0.0.1:0", "another shardline"] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }
    drop(holder);
}

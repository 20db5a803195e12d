//! A start-up check that AWS credentials can be had, so a process without
//! them stops at once with one line that says what to do, instead of
//! retrying every call and logging the credential chain's internals.

use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError as SdkCredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_types::SdkConfig;

/// How long [`check_credentials`] waits for the credential chain by
/// default: long enough for an STS role assumption or a slow instance
/// metadata service, short enough that a process without credentials stops
/// within seconds.
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(20);

/// The providers of the standard chain, in the order it tries them.
const CHAIN: &str = "environment (AWS_ACCESS_KEY_ID), shared config and credentials files, web identity token, ECS container endpoint, EC2 instance metadata";

/// What to do about missing credentials.
const ADVICE: &str =
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile (AWS_PROFILE or `profile = ...` in the pipeline), or run with a role";

/// Why no credentials could be had. Permanent: the process cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The whole chain ran and no provider had credentials.
    #[error("no AWS credentials found for {what}: {ADVICE}; tried: {}", tried.as_deref().unwrap_or(CHAIN))]
    NotFound {
        /// What needed them, e.g. `the kinesis source`.
        what: String,
        /// The chain's own account of each provider, or of the last one,
        /// when it gave one.
        tried: Option<String>,
    },
    /// A provider was configured but failed (a bad profile, a refused role,
    /// an unreachable STS).
    #[error("AWS credentials for {what} could not be loaded: {reason}")]
    Failed {
        /// What needed them.
        what: String,
        /// The provider's reason, its causes joined on one line.
        reason: String,
        /// The SDK's error.
        #[source]
        source: SdkCredentialsError,
    },
    /// The chain did not answer in time.
    #[error("AWS credentials for {what}: the credential chain did not answer within {timeout:?} (tried: {CHAIN}); {ADVICE}")]
    TimedOut {
        /// What needed them.
        what: String,
        /// The bound.
        timeout: Duration,
    },
}

/// Resolves credentials once from `config`'s provider, within `timeout`.
/// `what` names what needs them, for the message.
///
/// A config without a credentials provider (anonymous access) passes.
///
/// # Errors
/// [`CredentialsError`], one line naming `what`, the providers tried and
/// what to set.
pub async fn check_credentials(config: &SdkConfig, what: &str, timeout: Duration) -> Result<(), CredentialsError> {
    let Some(provider) = config.credentials_provider() else { return Ok(()) };
    match tokio::time::timeout(timeout, provider.provide_credentials()).await {
        Err(_) => Err(CredentialsError::TimedOut { what: what.to_owned(), timeout }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(classify(what, error)),
    }
}

/// Tells "nothing anywhere" from "something configured failed". The
/// standard chain stops at the first provider that fails for a reason
/// other than "not configured here"; instance metadata is the last one, so
/// its failure (no metadata service, a refused token) also means that no
/// provider had credentials.
fn classify(what: &str, error: SdkCredentialsError) -> CredentialsError {
    let reason = one_line(&error);
    // The chain's summary: "no credentials found in chain. Attempted:
    // Environment: ...  Profile: ...", one provider per line.
    if let Some((_, attempted)) = reason.split_once("Attempted:") {
        return CredentialsError::NotFound { what: what.to_owned(), tried: Some(attempted.trim().trim_start_matches(';').trim().to_owned()) };
    }
    let from_instance_metadata = reason.contains("IMDS") || reason.contains("instance metadata");
    match &error {
        SdkCredentialsError::CredentialsNotLoaded(_) => CredentialsError::NotFound { what: what.to_owned(), tried: None },
        _ if from_instance_metadata => {
            CredentialsError::NotFound { what: what.to_owned(), tried: Some(format!("{CHAIN}; the last said: {reason}")) }
        }
        _ => CredentialsError::Failed { what: what.to_owned(), reason, source: error },
    }
}

/// The error's causes on one line, each once, without the SDK's generic
/// "an error occurred while loading credentials" preamble.
fn one_line(error: &SdkCredentialsError) -> String {
    const PREAMBLE: &str = "an error occurred while loading credentials";
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = next {
        // One line: the chain's summary puts each provider on a line of
        // its own.
        let text = cause.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        let text = text.trim_start_matches(PREAMBLE).trim_start_matches(':').trim();
        let text = text.trim_end_matches("Stderr:").trim_end().trim_end_matches('.').to_owned();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_credential_types::provider::error::CredentialsError as SdkCredentialsError;
    use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
    use aws_credential_types::Credentials;
    use aws_types::SdkConfig;

    use super::{check_credentials, CredentialsError};

    #[derive(Debug)]
    struct Fails(fn() -> SdkCredentialsError);

    impl ProvideCredentials for Fails {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err((self.0)()))
        }
    }

    #[derive(Debug)]
    struct Hangs;

    impl ProvideCredentials for Hangs {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(std::future::pending())
        }
    }

    fn config(provider: impl ProvideCredentials + 'static) -> SdkConfig {
        SdkConfig::builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
    }

    #[tokio::test]
    async fn credentials_found_pass() {
        let config = config(Credentials::new("a", "b", None, None, "test"));
        assert!(check_credentials(&config, "x", Duration::from_secs(1)).await.is_ok());
        assert!(check_credentials(&SdkConfig::builder().build(), "x", Duration::from_secs(1)).await.is_ok(), "anonymous");
    }

    #[tokio::test]
    async fn none_anywhere_says_what_to_set_and_what_was_tried() {
        let config = config(Fails(|| SdkCredentialsError::not_loaded("no providers in chain provided credentials")));
        let error = check_credentials(&config, "the kinesis source of pipeline \"orders\"", Duration::from_secs(1)).await.expect_err("no credentials");
        assert!(matches!(error, CredentialsError::NotFound { .. }), "{error:?}");
        let message = error.to_string();
        for part in ["no AWS credentials found for the kinesis source of pipeline \"orders\"", "AWS_ACCESS_KEY_ID", "profile", "EC2 instance metadata"] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[tokio::test]
    async fn a_refused_instance_metadata_token_is_no_credentials() {
        let config = config(Fails(|| SdkCredentialsError::provider_error("failed to load IMDS session token: request forbidden")));
        let error = check_credentials(&config, "x", Duration::from_secs(1)).await.expect_err("no credentials");
        let message = error.to_string();
        assert!(matches!(error, CredentialsError::NotFound { .. }), "{message}");
        assert!(message.contains("EC2 instance metadata; the last said: failed to load IMDS session token: request forbidden"), "{message}");
    }

    #[tokio::test]
    async fn the_chains_own_account_of_each_provider_is_kept_on_one_line() {
        let config = config(Fails(|| {
            SdkCredentialsError::provider_error(
                "no credentials found in chain. Attempted:\n  Environment: not enabled\n  Profile: profile `missing` was not defined\n",
            )
        }));
        let message = check_credentials(&config, "x", Duration::from_secs(1)).await.expect_err("no credentials").to_string();
        assert!(message.ends_with("tried: Environment: not enabled; Profile: profile `missing` was not defined"), "{message}");
    }

    #[tokio::test]
    async fn a_failing_configured_provider_keeps_its_reason() {
        let config = config(Fails(|| SdkCredentialsError::invalid_configuration("profile `prod` was not defined")));
        let error = check_credentials(&config, "x", Duration::from_secs(1)).await.expect_err("failed");
        let message = error.to_string();
        assert!(matches!(error, CredentialsError::Failed { .. }), "{message}");
        assert_eq!(message, "AWS credentials for x could not be loaded: the credentials provider was not properly configured: profile `prod` was not defined");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chain_that_never_answers_is_bounded() {
        let error = check_credentials(&config(Hangs), "x", Duration::from_secs(20)).await.expect_err("timed out");
        assert!(matches!(error, CredentialsError::TimedOut { timeout, .. } if timeout == Duration::from_secs(20)), "{error:?}");
    }
}

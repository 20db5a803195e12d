//! AWS SDK configuration shared by Shardline's source, lease store and sinks.
//!
//! Every AWS client Shardline makes goes through [`load_sdk_config`], so they
//! all use the same HTTP stack (hyper 1 + rustls with the `ring` provider; no
//! OpenSSL, no aws-lc), the standard credential chain (environment, shared
//! profile, web identity, ECS and EC2 instance metadata) and the same
//! handling of `region` and `endpoint` overrides, and every call is bounded
//! by an operation timeout and an attempt timeout ([`Timeouts`]). Their
//! errors are classified once, in [`classify`].
#![warn(missing_docs)]

pub mod classify;
mod credentials;
pub mod test_support;
mod timeouts;

pub use classify::{classify, classify_response, Reason};
pub use credentials::{check_credentials, CredentialsError, CREDENTIALS_TIMEOUT};
pub use timeouts::Timeouts;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::region::Region;
use aws_types::SdkConfig;

pub use aws_types;

/// The region used when neither the configuration nor the environment
/// names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where and how to reach an AWS service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConnection {
    /// Region; `None` uses the environment/profile, then [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Endpoint override (emulators, VPC endpoints), e.g.
    /// `http://127.0.0.1:4568`; `None` uses the service's regional endpoint.
    pub endpoint: Option<String>,
    /// Named profile from the shared config files; `None` uses the default.
    pub profile: Option<String>,
    /// Bounds of every call made with this connection.
    pub timeouts: Timeouts,
}

/// The one HTTP client type every AWS client in the process uses.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Loads an [`SdkConfig`] for `connection`.
///
/// Credentials come from the standard chain; they are resolved lazily, on
/// the first request, so this call does no network I/O beyond what the
/// region provider chain may do when no region is configured.
pub async fn load_sdk_config(connection: &AwsConnection) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(connection.timeouts.sdk_config());
    if let Some(profile) = &connection.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &connection.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &connection.endpoint {
        tracing::debug!(endpoint = %endpoint, "using endpoint override");
        loader = loader.endpoint_url(endpoint.clone());
    }
    let config = loader.load().await;
    if config.region().is_none() {
        tracing::debug!(region = DEFAULT_REGION, "no region configured, using the default");
        return config.into_builder().region(Region::new(DEFAULT_REGION)).build();
    }
    config
}

/// [`load_sdk_config`], then [`check_credentials`] within
/// [`CREDENTIALS_TIMEOUT`]: the config of a client that is about to be
/// used. `what` names what needs the credentials, for the message.
///
/// # Errors
/// [`CredentialsError`] when no credentials can be had.
pub async fn load_checked_sdk_config(connection: &AwsConnection, what: &str) -> Result<SdkConfig, CredentialsError> {
    let config = load_sdk_config(connection).await;
    check_credentials(&config, what, CREDENTIALS_TIMEOUT).await?;
    Ok(config)
}

/// Test support: an [`SdkConfig`] with static credentials for an emulator at
/// `endpoint` in `us-east-1`, with the default [`Timeouts`]. Never reads the
/// environment.
pub fn emulator_sdk_config(endpoint: &str) -> SdkConfig {
    emulator_sdk_config_with(endpoint, Timeouts::default())
}

/// [`emulator_sdk_config`] with the given `timeouts`.
pub fn emulator_sdk_config_with(endpoint: &str, timeouts: Timeouts) -> SdkConfig {
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "shardline-emulator");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(DEFAULT_REGION))
        .timeout_config(timeouts.sdk_config())
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
        .build()
}

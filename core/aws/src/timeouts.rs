//! Bounds of every AWS call: an operation timeout (the whole call, SDK
//! retries included) and an attempt timeout (one HTTP attempt), on top of
//! the connect timeout. Without the last two, a half-open connection (the
//! server accepted and never answers) holds a call forever.
//!
//! Both surface as [`aws_smithy_runtime_api::client::result::SdkError::TimeoutError`],
//! which [`crate::classify`] calls retriable. An attempt that times out is
//! retried by the SDK on a new connection while the operation timeout
//! allows.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// How long a TCP (and TLS) connection may take to open: the SDK's own
/// default (`BehaviorVersion` 2023-11-09 and later), kept explicit because
/// setting a timeout configuration replaces the SDK's.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The longest back-off of the SDK's standard retry strategy between two
/// attempts (`aws-smithy-types` `RetryConfig::standard`'s `max_backoff`).
pub const MAX_SDK_BACKOFF: Duration = Duration::from_secs(20);

/// The operation and attempt timeouts of every call on one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest a call may take, SDK retries included.
    pub operation: Duration,
    /// Longest one HTTP attempt may take, from sending the request to the
    /// end of the response.
    pub attempt: Duration,
}

impl Timeouts {
    /// Kinesis calls: 30 s per call, as the KCL's
    /// `PollingConfig.kinesisRequestTimeout`; 10 s per attempt, so a hung
    /// connection costs one attempt and the SDK retries within the call.
    pub const KINESIS: Timeouts = Timeouts { operation: Duration::from_secs(30), attempt: Duration::from_secs(10) };

    /// Lease-table (DynamoDB) calls: 60 s per call, as the KCL's
    /// `LeaseManagementConfig.dynamoDbRequestTimeout`; 5 s per attempt
    /// (half the default `failover_time`), so a checkpoint on a hung
    /// connection is retried on a new one while the lease is still held.
    pub const LEASES: Timeouts = Timeouts { operation: Duration::from_secs(60), attempt: Duration::from_secs(5) };

    /// Bounds for a client whose calls make at most `attempts` attempts of
    /// at most `attempt` each: the operation timeout leaves room for every
    /// attempt and the SDK's longest back-off ([`MAX_SDK_BACKOFF`]) between
    /// them, so it never cuts a call the attempt settings allow.
    pub fn for_attempts(attempt: Duration, attempts: u32) -> Timeouts {
        let attempts = attempts.max(1);
        let operation = attempt.saturating_mul(attempts).saturating_add(MAX_SDK_BACKOFF.saturating_mul(attempts - 1));
        Timeouts { operation, attempt }
    }

    /// The SDK's timeout configuration for these bounds.
    pub fn sdk_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(self.operation).operation_attempt_timeout(self.attempt).build()
    }
}

/// Any other AWS client (sinks, the producer): 30 s per call, 10 s per
/// attempt, as [`Timeouts::KINESIS`]. A sink with its own `request_timeout`
/// sets it on its client.
impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::KINESIS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_config_carries_all_three_bounds() {
        let config = Timeouts { operation: Duration::from_secs(7), attempt: Duration::from_secs(2) }.sdk_config();
        assert_eq!(config.operation_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(config.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(config.connect_timeout(), Some(CONNECT_TIMEOUT));
    }

    #[test]
    fn attempts_fit_in_the_operation() {
        let one = Timeouts::for_attempts(Duration::from_secs(10), 1);
        assert_eq!(one, Timeouts { operation: Duration::from_secs(10), attempt: Duration::from_secs(10) });
        let three = Timeouts::for_attempts(Duration::from_secs(60), 3);
        assert_eq!(three.operation, Duration::from_secs(3 * 60 + 2 * 20));
        assert_eq!(Timeouts::for_attempts(Duration::from_secs(5), 0), Timeouts::for_attempts(Duration::from_secs(5), 1));
    }

    #[test]
    fn the_backoff_bound_is_the_sdks() {
        assert_eq!(aws_smithy_types::retry::RetryConfig::standard().max_backoff(), MAX_SDK_BACKOFF);
    }
}

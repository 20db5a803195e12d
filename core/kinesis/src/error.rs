//! The source's error type and the classification of AWS SDK errors into
//! retriable and permanent ones: Kinesis's own codes here, the rest by the
//! shared classifier in `shardline_aws::classify`.

use std::fmt;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use shardline_api::ErrorKind;
use shardline_aws::classify::ResponseStatus;
use shardline_aws::Reason;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong reading a Kinesis stream.
///
/// Every variant names the stream and, where it applies, the shard, the
/// Kinesis operation and the endpoint. [`SourceError::kind`] says whether
/// retrying can help; the shard readers retry retriable errors themselves
/// and only return permanent ones.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The stream does not exist (at this endpoint, in this region).
    #[error("kinesis stream {stream:?} not found at {endpoint}")]
    StreamNotFound {
        /// Stream name.
        stream: String,
        /// Endpoint that was asked.
        endpoint: String,
    },
    /// A shard, consumer or other resource does not exist.
    #[error("{operation} on kinesis stream {stream:?}{}: resource not found: {message}", ShardSuffix(shard_id))]
    ResourceNotFound {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation, e.g. `GetShardIterator`.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// The credentials may not perform the operation (IAM or KMS).
    #[error("access denied: {operation} on kinesis stream {stream:?} at {endpoint}: {message}")]
    AccessDenied {
        /// Stream name.
        stream: String,
        /// Kinesis operation.
        operation: &'static str,
        /// Endpoint that was asked.
        endpoint: String,
        /// The service's message.
        message: String,
    },
    /// The request was invalid (bad sequence number, bad parameter…).
    #[error("invalid argument: {operation} on kinesis stream {stream:?}{}: {message}", ShardSuffix(shard_id))]
    InvalidArgument {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// Throughput or API rate limits (`ProvisionedThroughputExceeded`,
    /// `LimitExceeded`, `KMSThrottling`).
    #[error("throttled ({code}): {operation} on kinesis stream {stream:?}{}", ShardSuffix(shard_id))]
    Throttled {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// Error code.
        code: String,
    },
    /// The shard iterator expired (they live five minutes).
    #[error("shard iterator expired: kinesis stream {stream:?} shard {shard_id}")]
    ExpiredIterator {
        /// Stream name.
        stream: String,
        /// Shard id.
        shard_id: String,
    },
    /// The resource is busy, e.g. another subscription to the same shard
    /// and consumer, or a consumer still being created.
    #[error("resource in use: {operation} on kinesis stream {stream:?}{}: {message}", ShardSuffix(shard_id))]
    ResourceInUse {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// Any other error answered by the service; retriable for 5xx and
    /// internal failures.
    #[error("{operation} on kinesis stream {stream:?}{} at {endpoint} failed: {code}{}: {message}", ShardSuffix(shard_id), StatusSuffix(*status))]
    Service {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// Endpoint that was asked.
        endpoint: String,
        /// Error code (`InternalFailure`, `KMSDisabledException`…).
        code: String,
        /// HTTP status, when there was an HTTP response.
        status: Option<u16>,
        /// The service's message.
        message: String,
        /// Whether retrying can help.
        retriable: bool,
    },
    /// The request or the wait for a resource timed out.
    #[error("{operation} on kinesis stream {stream:?}{} at {endpoint} timed out", ShardSuffix(shard_id))]
    Timeout {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// Endpoint that was asked.
        endpoint: String,
    },
    /// The endpoint could not be reached or the connection broke.
    #[error("{operation} on kinesis stream {stream:?}{}: cannot talk to {endpoint}: {}", ShardSuffix(shard_id), ErrorChain(source.as_ref()))]
    Transport {
        /// Stream name.
        stream: String,
        /// Shard id, when the operation concerned one shard.
        shard_id: Option<String>,
        /// Kinesis operation.
        operation: &'static str,
        /// Endpoint that was asked.
        endpoint: String,
        /// The underlying I/O or HTTP error.
        source: BoxError,
    },
    /// The service answered something that cannot be used (a sequence
    /// number that is not a number, a request that cannot be built).
    #[error("malformed data from kinesis stream {stream:?}{}: {message}", ShardSuffix(shard_id))]
    Malformed {
        /// Stream name.
        stream: String,
        /// Shard id, when the data concerned one shard.
        shard_id: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl SourceError {
    /// Whether retrying can succeed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Throttled { .. }
            | SourceError::ExpiredIterator { .. }
            | SourceError::ResourceInUse { .. }
            | SourceError::Timeout { .. }
            | SourceError::Transport { .. } => ErrorKind::Retriable,
            SourceError::Service { retriable: true, .. } => ErrorKind::Retriable,
            _ => ErrorKind::Permanent,
        }
    }

    /// The `reason` label of `shardline_source_retries_total`.
    pub(crate) fn retry_reason(&self) -> &'static str {
        match self {
            SourceError::Throttled { .. } => "throttled",
            SourceError::ExpiredIterator { .. } => "expired_iterator",
            SourceError::ResourceInUse { .. } => "resource_in_use",
            SourceError::Service { .. } => "service_error",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Transport { .. } => "transport",
            _ => "other",
        }
    }
}

struct ShardSuffix<'a>(&'a Option<String>);

/// An error and its causes, `: `-separated, each cause once (transport
/// errors repeat their cause in their own message), without the `Debug`
/// dump `DisplayErrorContext` appends.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = String::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self.0);
        while let Some(error) = current {
            let text = error.to_string();
            if !text.is_empty() && !written.contains(&text) {
                if !written.is_empty() {
                    written.push_str(": ");
                }
                written.push_str(&text);
            }
            current = error.source();
        }
        f.write_str(&written)
    }
}

impl fmt::Display for ShardSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(shard) => write!(f, " shard {shard}"),
            None => Ok(()),
        }
    }
}

struct StatusSuffix(Option<u16>);

impl fmt::Display for StatusSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(status) => write!(f, " (HTTP {status})"),
            None => Ok(()),
        }
    }
}

/// What a failed call was about, for the error's context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext<'a> {
    pub stream: &'a str,
    pub shard_id: Option<&'a str>,
    pub operation: &'static str,
    pub endpoint: &'a str,
}

impl CallContext<'_> {
    pub(crate) fn malformed(&self, message: impl Into<String>) -> SourceError {
        SourceError::Malformed {
            stream: self.stream.to_owned(),
            shard_id: self.shard_id.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Converts an SDK error into a classified [`SourceError`]: Kinesis's own
/// codes here, everything generic by [`shardline_aws::classify`].
pub(crate) fn from_sdk<E, R>(err: SdkError<E, R>, ctx: CallContext<'_>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: ResponseStatus + fmt::Debug + Send + Sync + 'static,
{
    let stream = ctx.stream.to_owned();
    let shard_id = ctx.shard_id.map(str::to_owned);
    let operation = ctx.operation;
    let endpoint = ctx.endpoint.to_owned();
    let reason = shardline_aws::classify(&err);
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status_code();
            let err = service.into_err();
            classify_service(err.code().unwrap_or("Unknown"), err.message().unwrap_or(""), status, ctx)
        }
        _ if reason == Reason::Timeout => SourceError::Timeout { stream, shard_id, operation, endpoint },
        other if !reason.is_retriable() => SourceError::Malformed {
            stream,
            shard_id,
            message: format!("cannot send the {operation} request ({reason}): {}", DisplayErrorContext(&other)),
        },
        other => {
            // DispatchFailure, ResponseError (a response that could not be
            // read or parsed) and future variants: the connection is suspect.
            let source: BoxError = match other.into_source() {
                Ok(source) => source,
                Err(other) => format!("{}", DisplayErrorContext(&other)).into(),
            };
            SourceError::Transport { stream, shard_id, operation, endpoint, source }
        }
    }
}

/// Classifies an error code answered by Kinesis. Kinesis's own codes
/// first; the rest by [`shardline_aws::classify_response`].
pub(crate) fn classify_service(code: &str, message: &str, status: Option<u16>, ctx: CallContext<'_>) -> SourceError {
    let stream = ctx.stream.to_owned();
    let shard_id = ctx.shard_id.map(str::to_owned);
    let operation = ctx.operation;
    let message = message.to_owned();
    let access_denied = |stream, message| SourceError::AccessDenied { stream, operation, endpoint: ctx.endpoint.to_owned(), message };
    match code {
        "ResourceNotFoundException" if operation == "DescribeStreamSummary" => {
            SourceError::StreamNotFound { stream, endpoint: ctx.endpoint.to_owned() }
        }
        "ResourceNotFoundException" => SourceError::ResourceNotFound { stream, shard_id, operation, message },
        "KMSAccessDeniedException" => access_denied(stream, message),
        "InvalidArgumentException" | "ValidationException" | "SerializationException" => {
            SourceError::InvalidArgument { stream, shard_id, operation, message }
        }
        // KMS throttles the stream's key: as any throttling.
        "KMSThrottlingException" => SourceError::Throttled { stream, shard_id, operation, code: code.to_owned() },
        "ExpiredIteratorException" => {
            SourceError::ExpiredIterator { stream, shard_id: shard_id.unwrap_or_default() }
        }
        "ResourceInUseException" => SourceError::ResourceInUse { stream, shard_id, operation, message },
        _ => {
            let reason = shardline_aws::classify_response(status, Some(code));
            let retriable = match code {
                // ListShards' pagination token lapsed: list again.
                "ExpiredNextTokenException" => true,
                // The stream's KMS key is disabled, missing or not opted
                // in: no retry heals it, whatever the status.
                _ if code.starts_with("KMS") => false,
                _ => reason.is_retriable(),
            };
            match reason {
                Reason::Throttling => SourceError::Throttled { stream, shard_id, operation, code: code.to_owned() },
                Reason::AccessDenied | Reason::InvalidCredentials => access_denied(stream, format!("{code}: {message}")),
                _ => SourceError::Service {
                    stream,
                    shard_id,
                    operation,
                    endpoint: ctx.endpoint.to_owned(),
                    code: code.to_owned(),
                    status,
                    message,
                    retriable,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: CallContext<'static> =
        CallContext { stream: "orders", shard_id: Some("shardId-000000000001"), operation: "GetRecords", endpoint: "http://127.0.0.1:1" };

    #[test]
    fn classification() {
        let kind = |code: &str, status| classify_service(code, "m", status, CTX).kind();
        assert_eq!(kind("ProvisionedThroughputExceededException", Some(400)), ErrorKind::Retriable);
        assert_eq!(kind("LimitExceededException", Some(400)), ErrorKind::Retriable);
        assert_eq!(kind("KMSThrottlingException", Some(400)), ErrorKind::Retriable);
        assert_eq!(kind("ExpiredIteratorException", Some(400)), ErrorKind::Retriable);
        assert_eq!(kind("InternalFailure", Some(500)), ErrorKind::Retriable);
        assert_eq!(kind("SomethingNew", Some(503)), ErrorKind::Retriable);
        assert_eq!(kind("ResourceNotFoundException", Some(400)), ErrorKind::Permanent);
        assert_eq!(kind("AccessDeniedException", Some(400)), ErrorKind::Permanent);
        assert_eq!(kind("InvalidArgumentException", Some(400)), ErrorKind::Permanent);
        assert_eq!(kind("KMSDisabledException", Some(400)), ErrorKind::Permanent);
        assert_eq!(kind("SomethingNew", Some(400)), ErrorKind::Permanent);
        assert_eq!(kind("ExpiredNextTokenException", Some(400)), ErrorKind::Retriable);
        assert_eq!(kind("KMSInvalidStateException", None), ErrorKind::Permanent);
        assert_eq!(kind("InternalFailure", None), ErrorKind::Retriable);
    }

    #[test]
    fn generic_codes_follow_the_shared_classifier() {
        for code in shardline_aws::classify::THROTTLING_ERRORS {
            assert!(matches!(classify_service(code, "m", Some(400), CTX), SourceError::Throttled { .. }), "{code}");
        }
        for code in shardline_aws::classify::EXPIRED_CREDENTIAL_CODES {
            assert_eq!(classify_service(code, "m", Some(400), CTX).kind(), ErrorKind::Retriable, "{code}");
        }
        for code in shardline_aws::classify::INVALID_CREDENTIAL_CODES {
            let e = classify_service(code, "m", Some(400), CTX);
            assert!(matches!(e, SourceError::AccessDenied { .. }), "{code}: {e}");
        }
        assert!(matches!(classify_service("KMSAccessDeniedException", "m", Some(400), CTX), SourceError::AccessDenied { .. }));
    }

    #[test]
    fn failures_without_an_answer() {
        use aws_sdk_kinesis::operation::get_records::GetRecordsError;
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        type E = SdkError<GetRecordsError, HttpResponse>;
        let timeout: E = SdkError::timeout_error("slow");
        assert!(matches!(from_sdk(timeout, CTX), SourceError::Timeout { .. }));
        let reset: E = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        let reset = from_sdk(reset, CTX);
        assert!(matches!(reset, SourceError::Transport { .. }) && reset.kind() == ErrorKind::Retriable, "{reset}");
        let user: E = SdkError::dispatch_failure(ConnectorError::user("bad endpoint".into()));
        assert_eq!(from_sdk(user, CTX).kind(), ErrorKind::Permanent);
    }

    #[test]
    fn messages_carry_context() {
        let e = classify_service("ProvisionedThroughputExceededException", "slow down", Some(400), CTX);
        assert_eq!(e.to_string(), "throttled (ProvisionedThroughputExceededException): GetRecords on kinesis stream \"orders\" shard shardId-000000000001");
        let ctx = CallContext { operation: "DescribeStreamSummary", shard_id: None, ..CTX };
        let e = classify_service("ResourceNotFoundException", "gone", Some(400), ctx);
        assert_eq!(e.to_string(), "kinesis stream \"orders\" not found at http://127.0.0.1:1");
    }
}

//! The one classification of AWS SDK errors: retriable or permanent, and
//! why.
//!
//! Every crate that calls AWS (the Kinesis source, the DynamoDB lease
//! store, the S3, DynamoDB and Redshift sinks) asks [`classify`] (or
//! [`classify_response`] when it has only a status and a code) and keeps
//! only its service's own codes (`ExpiredIteratorException`,
//! `ConditionalCheckFailedException`, `KMSThrottlingException`...) to
//! itself. A crate that decides an edge differently says why beside the
//! call.
//!
//! The throttling and transient codes are the SDK's own lists
//! ([`THROTTLING_ERRORS`], [`TRANSIENT_ERRORS`] from `aws-runtime`), so a
//! code the SDK itself retries is never permanent here.
//!
//! Decided once, for every crate:
//! - **Expired credentials are retriable** ([`EXPIRED_CREDENTIAL_CODES`]:
//!   `ExpiredToken`, `ExpiredTokenException`, `RequestExpired`,
//!   `TokenRefreshRequired`, `RequestTimeTooSkewed`): the credential chain
//!   caches credentials until their expiry and loads fresh ones when they
//!   lapse (and the SDK corrects a skewed clock from the response), so the
//!   next attempt is signed anew.
//! - **Invalid credentials are permanent** ([`INVALID_CREDENTIAL_CODES`]:
//!   `InvalidClientTokenId`, `UnrecognizedClientException`,
//!   `InvalidAccessKeyId`, `SignatureDoesNotMatch`...): the key itself is
//!   unknown or the secret is wrong; refreshing gives the same key.
//! - Access denied (`AccessDenied*`, HTTP 403) is permanent.
//! - 429 is throttling; 408, the SDK's transient statuses (500, 502, 503,
//!   504) and every other 5xx are retriable.
//! - Timeouts, connection failures and unreadable responses are
//!   retriable; a request that cannot be built, or an invalid client
//!   configuration (a user dispatch failure, e.g. a malformed endpoint), is
//!   permanent.
//! - Any other 4xx is permanent (the request is wrong); an error message
//!   with no HTTP status (an event-stream error) and an unknown code is
//!   retriable: nothing says the request was wrong.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::event_stream::RawMessage;
use shardline_api::ErrorKind;

/// Throttling error codes, the SDK's own list (`aws-runtime`, used by its
/// `AwsErrorCodeClassifier`).
pub use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
/// Transient error codes, the SDK's own list (`aws-runtime`).
pub use aws_runtime::retries::classifiers::TRANSIENT_ERRORS;

/// HTTP statuses the SDK retries. Mirrors the private
/// `TRANSIENT_ERROR_STATUS_CODES` of `aws-smithy-runtime`
/// (`client/retries/classifiers.rs`, used by `HttpStatusCodeClassifier`);
/// a test pins it against that classifier.
pub const TRANSIENT_STATUS_CODES: &[u16] = &[500, 502, 503, 504];

/// Codes services answer for their own trouble (often with a 5xx, but
/// emulators and some front ends answer them with a 400).
pub const SERVICE_FAILURE_CODES: &[&str] = &[
    "InternalFailure",
    "InternalFailureException",
    "InternalError",
    "InternalServerError",
    "InternalServerErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Codes of credentials that were valid and lapsed (or a signature that
/// aged): retriable, the credential chain refreshes them.
pub const EXPIRED_CREDENTIAL_CODES: &[&str] =
    &["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired", "RequestTimeTooSkewed"];

/// Codes of credentials that are not valid at all: permanent.
pub const INVALID_CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
];

/// Codes of valid credentials that may not do what was asked: permanent.
pub const ACCESS_DENIED_CODES: &[&str] = &["AccessDenied", "AccessDeniedException"];

/// Why an error is retriable or permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A throttling code or HTTP 429 (retriable).
    Throttling,
    /// A transient code (`RequestTimeout`) or HTTP 408 (retriable).
    Transient,
    /// The service's own trouble: a 5xx or an internal-failure code
    /// (retriable).
    ServiceFailure,
    /// Credentials that lapsed (retriable: the chain refreshes them).
    ExpiredCredentials,
    /// The operation or an attempt timed out (retriable).
    Timeout,
    /// The connection failed or broke (retriable).
    Connection,
    /// A response that could not be read or parsed (retriable).
    UnreadableResponse,
    /// Unknown key or wrong secret (permanent).
    InvalidCredentials,
    /// The credentials may not do this (permanent).
    AccessDenied,
    /// The service refused the request (another 4xx; permanent).
    ClientError,
    /// The request could not be built (permanent).
    Construction,
    /// The client is configured wrongly, e.g. a malformed endpoint
    /// (permanent).
    Configuration,
}

impl Reason {
    /// A short snake_case name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Throttling => "throttling",
            Reason::Transient => "transient",
            Reason::ServiceFailure => "service_failure",
            Reason::ExpiredCredentials => "expired_credentials",
            Reason::Timeout => "timeout",
            Reason::Connection => "connection",
            Reason::UnreadableResponse => "unreadable_response",
            Reason::InvalidCredentials => "invalid_credentials",
            Reason::AccessDenied => "access_denied",
            Reason::ClientError => "client_error",
            Reason::Construction => "construction",
            Reason::Configuration => "configuration",
        }
    }

    /// Whether an error of this reason is worth retrying.
    pub fn kind(self) -> ErrorKind {
        match self {
            Reason::Throttling
            | Reason::Transient
            | Reason::ServiceFailure
            | Reason::ExpiredCredentials
            | Reason::Timeout
            | Reason::Connection
            | Reason::UnreadableResponse => ErrorKind::Retriable,
            Reason::InvalidCredentials | Reason::AccessDenied | Reason::ClientError | Reason::Construction | Reason::Configuration => {
                ErrorKind::Permanent
            }
        }
    }

    /// Whether an error of this reason is worth retrying.
    pub fn is_retriable(self) -> bool {
        self.kind().is_retriable()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP status of a raw response, when there is one (event-stream
/// messages have none).
pub trait ResponseStatus {
    /// The HTTP status code.
    fn status_code(&self) -> Option<u16>;
}

impl ResponseStatus for HttpResponse {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

impl ResponseStatus for RawMessage {
    fn status_code(&self) -> Option<u16> {
        None
    }
}

/// True for a code the SDK counts as throttling.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code)
}

/// Classifies a service's answer by its HTTP status (`None` for an
/// event-stream error) and error code. The code decides first, then the
/// status; see the module documentation for every edge.
pub fn classify_response(status: Option<u16>, code: Option<&str>) -> Reason {
    let code = code.unwrap_or("");
    let in_list = |list: &[&str]| list.contains(&code);
    if in_list(THROTTLING_ERRORS) {
        return Reason::Throttling;
    }
    if in_list(TRANSIENT_ERRORS) {
        return Reason::Transient;
    }
    if in_list(EXPIRED_CREDENTIAL_CODES) {
        return Reason::ExpiredCredentials;
    }
    if in_list(INVALID_CREDENTIAL_CODES) {
        return Reason::InvalidCredentials;
    }
    if in_list(ACCESS_DENIED_CODES) {
        return Reason::AccessDenied;
    }
    if in_list(SERVICE_FAILURE_CODES) {
        return Reason::ServiceFailure;
    }
    match status {
        Some(429) => Reason::Throttling,
        Some(408) => Reason::Transient,
        Some(403) => Reason::AccessDenied,
        Some(s) if TRANSIENT_STATUS_CODES.contains(&s) || s >= 500 => Reason::ServiceFailure,
        Some(_) => Reason::ClientError,
        None => Reason::ServiceFailure,
    }
}

/// Classifies any SDK error: a service answer by [`classify_response`],
/// and the failures without one (timeout, dispatch, unreadable response,
/// construction) by what they are.
pub fn classify<E, R>(err: &SdkError<E, R>) -> Reason
where
    E: ProvideErrorMetadata,
    R: ResponseStatus,
{
    match err {
        SdkError::ServiceError(service) => classify_response(service.raw().status_code(), service.err().code()),
        SdkError::TimeoutError(_) => Reason::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_user() => Reason::Configuration,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Reason::Timeout,
        SdkError::DispatchFailure(_) => Reason::Connection,
        SdkError::ResponseError(_) => Reason::UnreadableResponse,
        SdkError::ConstructionFailure(_) => Reason::Construction,
        // A future variant: nothing says the request was wrong.
        _ => Reason::Connection,
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;

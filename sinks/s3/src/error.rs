//! The sink's error type: every S3 failure carries the operation, bucket
//! and key, S3's error code and message, and whether retrying can help
//! ([`classify`]: throttling, 5xx and timeouts are retriable; access
//! denied, a missing bucket and other 4xx answers are permanent).

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use shardline_plugin_sdk::ErrorKind;

/// S3's own code that succeeds when tried again: a conflicting operation
/// on the same bucket or key was in progress (HTTP 409). The generic codes
/// (`SlowDown`, `InternalError`, `RequestTimeout`, `ExpiredToken`...) are
/// the shared classifier's.
const S3_RETRIABLE_CODES: &[&str] = &["OperationAborted"];

/// Whether an S3 answer (HTTP status and error code) is worth retrying:
/// [`shardline_aws::classify_response`] (codes first; then 408, 429 and
/// 5xx retriable, other statuses permanent), plus S3's own
/// `OperationAborted`.
pub fn classify(status: Option<u16>, code: Option<&str>) -> ErrorKind {
    if code.is_some_and(|c| S3_RETRIABLE_CODES.contains(&c)) {
        return ErrorKind::Retriable;
    }
    shardline_aws::classify_response(status, code).kind()
}

/// True when S3 asked to slow down (`SlowDown` and the SDK's other
/// throttling codes, 429, 503).
pub fn is_throttling(status: Option<u16>, code: Option<&str>) -> bool {
    code.is_some_and(shardline_aws::classify::is_throttling_code) || matches!(status, Some(429 | 503))
}

/// A failed S3 operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    /// S3 answered with an error.
    #[error("S3 {operation} s3://{bucket}/{key}: {code}: {message} (HTTP {status}, {kind})")]
    Service {
        /// `PutObject`, `UploadPart`, `HeadBucket`...
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key (empty for bucket operations).
        key: String,
        /// HTTP status.
        status: u16,
        /// S3's error code (`SlowDown`, `AccessDenied`, `NoSuchBucket`...).
        code: String,
        /// S3's message.
        message: String,
        /// Retriable or permanent.
        kind: ErrorKind,
    },
    /// No answer: timeout, connection failure, unreadable response.
    #[error("S3 {operation} s3://{bucket}/{key}: {message} ({kind})")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What happened.
        message: String,
        /// Retriable or permanent.
        kind: ErrorKind,
    },
}

impl S3Error {
    /// Converts an SDK error, classifying it.
    pub fn from_sdk<E>(operation: &'static str, bucket: &str, key: &str, error: SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let transport = |message: String, kind: ErrorKind| S3Error::Transport {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message,
            kind,
        };
        match &error {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let code = match (context.err().code(), status) {
                    (Some(code), _) if code != "NotFound" => code.to_owned(),
                    // HEAD answers have no body: name the usual causes.
                    (_, 404) if key.is_empty() => "NoSuchBucket".to_owned(),
                    (_, 404) => "NotFound".to_owned(),
                    (_, 403) => "AccessDenied".to_owned(),
                    (_, 301) => "PermanentRedirect".to_owned(),
                    (_, status) => format!("HTTP{status}"),
                };
                let message = match (context.err().message(), code.as_str()) {
                    (Some(message), _) => message.to_owned(),
                    (None, "NoSuchBucket") => "the bucket does not exist".to_owned(),
                    (None, "AccessDenied") => "access denied (check the credentials' IAM policy and the bucket policy)".to_owned(),
                    (None, "PermanentRedirect") => "the bucket is in another region (set `region`)".to_owned(),
                    (None, _) => "no message".to_owned(),
                };
                let kind = classify(Some(status), Some(&code));
                S3Error::Service { operation, bucket: bucket.to_owned(), key: key.to_owned(), status, code, message, kind }
            }
            _ => {
                let kind = shardline_aws::classify(&error).kind();
                let what = match &error {
                    SdkError::TimeoutError(_) => "request timed out (request_timeout)",
                    SdkError::DispatchFailure(_) => "could not send the request",
                    SdkError::ResponseError(_) => "unreadable response",
                    SdkError::ConstructionFailure(_) => "could not build the request",
                    _ => "request failed",
                };
                transport(format!("{what}: {}", DisplayErrorContext(&error)), kind)
            }
        }
    }

    /// Retriable or permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            S3Error::Service { kind, .. } | S3Error::Transport { kind, .. } => *kind,
        }
    }

    /// The back-off to suggest: 1s when S3 asked to slow down.
    pub fn backoff_hint(&self) -> Option<Duration> {
        match self {
            S3Error::Service { status, code, .. } if is_throttling(Some(*status), Some(code)) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_5xx_and_timeouts_are_retriable() {
        for (status, code) in [
            (Some(503), Some("SlowDown")),
            (Some(503), None),
            (Some(500), Some("InternalError")),
            (Some(502), None),
            (Some(400), Some("RequestTimeout")),
            (Some(429), None),
            (Some(409), Some("OperationAborted")),
            (Some(400), Some("ExpiredToken")),
            (Some(400), Some("RequestExpired")),
            (Some(400), Some("RequestTimeTooSkewed")),
            (None, None),
        ] {
            assert_eq!(classify(status, code), ErrorKind::Retriable, "{status:?} {code:?}");
        }
    }

    #[test]
    fn access_denied_missing_bucket_and_bad_requests_are_permanent() {
        for (status, code) in [
            (Some(403), Some("AccessDenied")),
            (Some(404), Some("NoSuchBucket")),
            (Some(403), Some("InvalidAccessKeyId")),
            (Some(403), Some("SignatureDoesNotMatch")),
            (Some(301), Some("PermanentRedirect")),
            (Some(400), Some("InvalidArgument")),
            (Some(400), Some("EntityTooLarge")),
        ] {
            assert_eq!(classify(status, code), ErrorKind::Permanent, "{status:?} {code:?}");
        }
    }

    #[test]
    fn slow_down_suggests_a_back_off_and_messages_name_bucket_and_key() {
        let error = S3Error::Service {
            operation: "PutObject",
            bucket: "b".into(),
            key: "k/1.ndjson".into(),
            status: 503,
            code: "SlowDown".into(),
            message: "Please reduce your request rate.".into(),
            kind: ErrorKind::Retriable,
        };
        assert_eq!(error.backoff_hint(), Some(Duration::from_secs(1)));
        assert_eq!(error.to_string(), "S3 PutObject s3://b/k/1.ndjson: SlowDown: Please reduce your request rate. (HTTP 503, retriable)");
        assert!(is_throttling(Some(429), None) && !is_throttling(Some(500), Some("InternalError")));
    }
}

//! Errors of DynamoDB calls, classified: throttling, 5xx, timeouts and
//! connection failures are retriable; a missing table or denied access is
//! permanent and names the table; anything else DynamoDB refuses (a
//! `ValidationException`, another 4xx) is a refused request, which the
//! writer answers by isolating the bad item(s).

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use shardline_plugin_sdk::{ErrorKind, SinkError};

/// Error codes DynamoDB (or its front end) uses for throttling and
/// transient trouble.
const RETRIABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
];

/// Codes meaning the credentials may not use the table.
const ACCESS_CODES: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "MissingAuthenticationTokenException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignature",
];

/// A failed DynamoDB call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamoError {
    /// The table does not exist (in this region / at this endpoint).
    #[error("DynamoDB table `{table}` not found ({operation}): {message}")]
    TableMissing {
        /// Table name.
        table: String,
        /// The API call.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// The credentials may not use the table.
    #[error("access to DynamoDB table `{table}` denied ({operation}): {message}")]
    AccessDenied {
        /// Table name.
        table: String,
        /// The API call.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// Throttled, a 5xx, a timeout or a connection failure.
    #[error("DynamoDB table `{table}` unavailable ({operation}): {code}: {message}")]
    Unavailable {
        /// Table name.
        table: String,
        /// The API call.
        operation: &'static str,
        /// The service's code (or `timeout`, `connection`), for decisions.
        code: String,
        /// The service's message.
        message: String,
    },
    /// DynamoDB refused the request itself (`ValidationException` and
    /// other 4xx): the fault is in what was sent.
    #[error("DynamoDB refused the request for table `{table}` ({operation}): {code}: {message}")]
    Refused {
        /// Table name.
        table: String,
        /// The API call.
        operation: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The table exists but cannot be written yet (still being created).
    #[error("DynamoDB table `{table}` is {status}, not ACTIVE")]
    NotActive {
        /// Table name.
        table: String,
        /// Its status.
        status: String,
    },
    /// The table description lacks what the sink needs.
    #[error("cannot use DynamoDB table `{table}`: {message}")]
    BadDescription {
        /// Table name.
        table: String,
        /// What is missing.
        message: String,
    },
}

impl DynamoError {
    /// Retriable or permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DynamoError::Unavailable { .. } | DynamoError::NotActive { .. } => ErrorKind::Retriable,
            DynamoError::TableMissing { .. }
            | DynamoError::AccessDenied { .. }
            | DynamoError::Refused { .. }
            | DynamoError::BadDescription { .. } => ErrorKind::Permanent,
        }
    }

    /// True when the whole table is unusable (a missing table, denied
    /// access): no per-item answer can help.
    pub fn is_table_level(&self) -> bool {
        matches!(self, DynamoError::TableMissing { .. } | DynamoError::AccessDenied { .. } | DynamoError::BadDescription { .. })
    }
}

impl From<DynamoError> for SinkError {
    fn from(e: DynamoError) -> SinkError {
        SinkError { kind: e.kind(), message: e.to_string() }
    }
}

/// Classifies `err` from `operation` on `table`.
pub fn classify<E>(err: SdkError<E, HttpResponse>, table: &str, operation: &'static str) -> DynamoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let table = table.to_owned();
    let (code, message, status) = match &err {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("").to_owned(),
            service.err().message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
            Some(service.raw().status().as_u16()),
        ),
        SdkError::TimeoutError(_) => ("timeout".to_owned(), DisplayErrorContext(&err).to_string(), None),
        SdkError::DispatchFailure(_) => ("connection".to_owned(), DisplayErrorContext(&err).to_string(), None),
        SdkError::ResponseError(_) => ("response".to_owned(), DisplayErrorContext(&err).to_string(), None),
        SdkError::ConstructionFailure(_) => {
            return DynamoError::Refused { table, operation, code: "construction".to_owned(), message: DisplayErrorContext(&err).to_string() };
        }
        _ => (String::new(), DisplayErrorContext(&err).to_string(), None),
    };
    classify_code(table, operation, code, message, status)
}

/// Classifies a service answer by its code and HTTP status.
pub fn classify_code(table: String, operation: &'static str, code: String, message: String, status: Option<u16>) -> DynamoError {
    if code == "ResourceNotFoundException" {
        return DynamoError::TableMissing { table, operation, message };
    }
    if ACCESS_CODES.contains(&code.as_str()) || status == Some(403) {
        return DynamoError::AccessDenied { table, operation, message: format!("{code}: {message}") };
    }
    // No status: a timeout or connection failure; 5xx and 429: transient.
    let transient_status = !matches!(status, Some(s) if s < 500 && s != 429);
    if RETRIABLE_CODES.contains(&code.as_str()) || transient_status {
        return DynamoError::Unavailable { table, operation, code, message };
    }
    DynamoError::Refused { table, operation, code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(code: &str, status: Option<u16>) -> DynamoError {
        classify_code("orders".into(), "BatchWriteItem", code.into(), "boom".into(), status)
    }

    #[test]
    fn throttling_5xx_and_timeouts_are_retriable() {
        for (code, status) in [
            ("ProvisionedThroughputExceededException", Some(400)),
            ("ThrottlingException", Some(400)),
            ("RequestLimitExceeded", Some(400)),
            ("InternalServerError", Some(500)),
            ("Whatever", Some(503)),
            ("", Some(429)),
            ("timeout", None),
            ("connection", None),
        ] {
            let e = classified(code, status);
            assert_eq!(e.kind(), ErrorKind::Retriable, "{code} {status:?}: {e}");
        }
    }

    #[test]
    fn a_missing_table_and_denied_access_are_permanent_and_name_the_table() {
        let missing = classified("ResourceNotFoundException", Some(400));
        assert!(matches!(missing, DynamoError::TableMissing { .. }));
        let denied = classified("AccessDeniedException", Some(400));
        assert!(matches!(denied, DynamoError::AccessDenied { .. }));
        for e in [missing, denied] {
            assert_eq!(e.kind(), ErrorKind::Permanent);
            assert!(e.is_table_level());
            assert!(SinkError::from(e.clone()).message.contains("`orders`"), "{e}");
        }
        let refused = classified("ValidationException", Some(400));
        assert!(matches!(&refused, DynamoError::Refused { code, .. } if code == "ValidationException"));
        assert!(!refused.is_table_level());
    }
}

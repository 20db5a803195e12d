//! Errors of DynamoDB calls, classified by the shared
//! `shardline_aws::classify` plus DynamoDB's own codes: throttling, 5xx,
//! timeouts, connection failures and expired credentials are retriable; a
//! missing table, denied access or invalid credentials are permanent and
//! name the table; anything else DynamoDB refuses (a
//! `ValidationException`, another 4xx) is a refused request, which the
//! writer answers by isolating the bad item(s).

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use shardline_aws::Reason;
use shardline_plugin_sdk::{ErrorKind, SinkError};

/// DynamoDB's own codes that clear by themselves (a concurrent
/// transaction on the item); the generic ones are the shared classifier's.
const DYNAMODB_RETRIABLE_CODES: &[&str] = &["TransactionConflictException"];

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
    let message = || DisplayErrorContext(&err).to_string();
    if let SdkError::ServiceError(service) = &err {
        let code = service.err().code().unwrap_or("").to_owned();
        let message = service.err().message().map(str::to_owned).unwrap_or_else(message);
        return classify_code(table, operation, code, message, Some(service.raw().status().as_u16()));
    }
    match shardline_aws::classify(&err) {
        Reason::Timeout => DynamoError::Unavailable { table, operation, code: "timeout".to_owned(), message: message() },
        Reason::UnreadableResponse => DynamoError::Unavailable { table, operation, code: "response".to_owned(), message: message() },
        reason if reason.is_retriable() => DynamoError::Unavailable { table, operation, code: "connection".to_owned(), message: message() },
        reason => DynamoError::Refused { table, operation, code: reason.as_str().to_owned(), message: message() },
    }
}

/// Classifies a service answer by its code and HTTP status: DynamoDB's own
/// codes here, the rest by [`shardline_aws::classify_response`].
pub fn classify_code(table: String, operation: &'static str, code: String, message: String, status: Option<u16>) -> DynamoError {
    if code == "ResourceNotFoundException" {
        return DynamoError::TableMissing { table, operation, message };
    }
    let reason = shardline_aws::classify_response(status, Some(&code));
    if matches!(reason, Reason::AccessDenied | Reason::InvalidCredentials) {
        return DynamoError::AccessDenied { table, operation, message: format!("{code}: {message}") };
    }
    if DYNAMODB_RETRIABLE_CODES.contains(&code.as_str()) || reason.is_retriable() {
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

    /// An expired session token is retriable, as in the Kinesis source and
    /// the lease store (all three use `shardline_aws::classify`). Before,
    /// the sink called it access denied and dead-lettered the records.
    #[test]
    fn expired_credentials_are_retriable_like_the_source() {
        for code in ["ExpiredTokenException", "ExpiredToken", "RequestExpired"] {
            let e = classified(code, Some(400));
            assert!(matches!(e, DynamoError::Unavailable { .. }), "{code}: {e}");
            assert!(!e.is_table_level(), "{code}");
            let shared = shardline_aws::classify_response(Some(400), Some(code)).kind();
            assert_eq!(e.kind(), shared, "{code}: the sink disagrees with the shared classifier");
        }
        for code in ["UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationTokenException"] {
            assert!(matches!(classified(code, Some(400)), DynamoError::AccessDenied { .. }), "{code}");
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

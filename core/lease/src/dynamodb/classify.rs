//! Turning SDK errors into [`LeaseError`]s: which are lost conditions,
//! which are worth retrying and which are permanent.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::LeaseError;

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
    "TransactionConflictException",
    "ResourceInUseException",
];

const ACCESS_CODES: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "MissingAuthenticationTokenException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignature",
];

/// Classifies `err` from `operation` on `table` (about `lease_key`, if any).
pub(crate) fn classify<E>(
    err: SdkError<E, HttpResponse>,
    table: &str,
    operation: &'static str,
    lease_key: Option<&str>,
) -> LeaseError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    let table = table.to_owned();
    let (code, status) = match &err {
        SdkError::ServiceError(service) => {
            (service.err().code().map(str::to_owned), Some(service.raw().status().as_u16()))
        }
        SdkError::ConstructionFailure(_) => {
            return LeaseError::Validation { table, operation, message, source: Some(Box::new(err)) };
        }
        _ => (None, None),
    };
    let code = code.as_deref().unwrap_or("");
    if code == "ConditionalCheckFailedException" {
        return LeaseError::Lost {
            table,
            lease_key: lease_key.unwrap_or("?").to_owned(),
            reason: "conditional check failed".to_owned(),
        };
    }
    if code == "ResourceNotFoundException" {
        return LeaseError::TableMissing { table, operation };
    }
    if ACCESS_CODES.contains(&code) || status == Some(403) {
        return LeaseError::AccessDenied { table, operation, message, source: Box::new(err) };
    }
    let retriable = RETRIABLE_CODES.contains(&code) || !matches!(status, Some(s) if s < 500 && s != 429);
    if retriable {
        LeaseError::Unavailable { table, operation, message, source: Box::new(err) }
    } else {
        LeaseError::Validation { table, operation, message, source: Some(Box::new(err)) }
    }
}

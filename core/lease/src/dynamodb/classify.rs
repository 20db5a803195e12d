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
        SdkError::ServiceError(service) => (
            service.err().code().map(str::to_owned),
            Some(service.raw().status().as_u16()),
        ),
        SdkError::ConstructionFailure(_) => {
            return LeaseError::Validation {
                table,
                operation,
                message,
                source: Some(Box::new(err)),
            };
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
        return LeaseError::AccessDenied {
            table,
            operation,
            message,
            source: Box::new(err),
        };
    }
    let retriable =
        RETRIABLE_CODES.contains(&code) || !matches!(status, Some(s) if s < 500 && s != 429);
    if retriable {
        LeaseError::Unavailable {
            table,
            operation,
            message,
            source: Box::new(err),
        }
    } else {
        LeaseError::Validation {
            table,
            operation,
            message,
            source: Some(Box::new(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use shardline_api::ErrorKind;

    fn service(code: &str, status: u16) -> LeaseError {
        let err =
            UpdateItemError::generic(ErrorMetadata::builder().code(code).message("boom").build());
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        classify(
            SdkError::service_error(err, raw),
            "leases",
            "renew",
            Some("shard-1"),
        )
    }

    #[test]
    fn classifies_service_errors() {
        let lost = service("ConditionalCheckFailedException", 400);
        assert!(
            matches!(&lost, LeaseError::Lost { lease_key, table, .. } if lease_key == "shard-1" && table == "leases")
        );
        assert!(matches!(
            service("ResourceNotFoundException", 400),
            LeaseError::TableMissing { .. }
        ));
        for (code, status) in [
            ("ProvisionedThroughputExceededException", 400),
            ("ThrottlingException", 400),
            ("InternalServerError", 500),
            ("Whatever", 503),
        ] {
            let err = service(code, status);
            assert!(
                matches!(err, LeaseError::Unavailable { .. }),
                "{code}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::Retriable);
        }
        let denied = service("AccessDeniedException", 400);
        assert!(
            matches!(denied, LeaseError::AccessDenied { .. }),
            "{denied}"
        );
        assert!(denied.to_string().contains("leases"), "{denied}");
        let invalid = service("ValidationException", 400);
        assert!(
            matches!(invalid, LeaseError::Validation { .. }),
            "{invalid}"
        );
        assert_eq!(invalid.kind(), ErrorKind::Permanent);
    }

    #[test]
    fn timeouts_are_retriable() {
        let err: SdkError<UpdateItemError, HttpResponse> = SdkError::timeout_error("slow");
        let err = classify(err, "leases", "renew", None);
        assert_eq!(err.kind(), ErrorKind::Retriable, "{err}");
    }
}

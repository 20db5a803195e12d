//! Turning SDK errors into [`LeaseError`]s: which are lost conditions,
//! which are worth retrying and which are permanent. The lease table's own
//! codes are decided here; everything generic (throttling, 5xx, timeouts,
//! credentials) by the shared `shardline_aws::classify`.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use shardline_aws::Reason;

use crate::LeaseError;

/// Codes of the lease table that clear by themselves: a concurrent
/// transaction, or the table being created or updated (the store creates
/// it at start and waits until it is `ACTIVE`).
const LEASE_TABLE_RETRIABLE_CODES: &[&str] = &["TransactionConflictException", "ResourceInUseException"];

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
    let code = match &err {
        SdkError::ServiceError(service) => service.err().code().unwrap_or(""),
        _ => "",
    };
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
    let reason = shardline_aws::classify(&err);
    if LEASE_TABLE_RETRIABLE_CODES.contains(&code) || reason.is_retriable() {
        return LeaseError::Unavailable {
            table,
            operation,
            message,
            source: Box::new(err),
        };
    }
    match reason {
        Reason::AccessDenied | Reason::InvalidCredentials => LeaseError::AccessDenied {
            table,
            operation,
            message,
            source: Box::new(err),
        },
        _ => LeaseError::Validation {
            table,
            operation,
            message,
            source: Some(Box::new(err)),
        },
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

    /// An expired session token is retriable, as in the Kinesis source and
    /// the DynamoDB sink (all three use `shardline_aws::classify`): the
    /// credential chain refreshes it. Before, the lease store called it
    /// access denied and the pipeline stopped.
    #[test]
    fn expired_credentials_are_retriable_like_the_source() {
        for code in ["ExpiredTokenException", "ExpiredToken", "RequestExpired"] {
            let err = service(code, 400);
            assert!(matches!(err, LeaseError::Unavailable { .. }), "{code}: {err}");
            assert_eq!(err.kind(), ErrorKind::Retriable, "{code}");
            let shared = shardline_aws::classify_response(Some(400), Some(code)).kind();
            assert_eq!(err.kind(), shared, "{code}: the lease store disagrees with the shared classifier");
        }
        for code in ["UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationTokenException"] {
            assert!(matches!(service(code, 400), LeaseError::AccessDenied { .. }), "{code}");
        }
    }

    #[test]
    fn timeouts_are_retriable() {
        let err: SdkError<UpdateItemError, HttpResponse> = SdkError::timeout_error("slow");
        let err = classify(err, "leases", "renew", None);
        assert_eq!(err.kind(), ErrorKind::Retriable, "{err}");
    }
}

use aws_smithy_runtime::client::retries::classifiers::HttpStatusCodeClassifier;
use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;

use super::*;

fn response(status: u16) -> HttpResponse {
    Response::new(StatusCode::try_from(status).expect("valid status"), SdkBody::empty())
}

fn service(code: &str, status: u16) -> SdkError<ErrorMetadata, HttpResponse> {
    SdkError::service_error(ErrorMetadata::builder().code(code).message("m").build(), response(status))
}

#[test]
fn the_sdk_lists_are_reused_not_copied() {
    // Pinned so that an SDK upgrade that drops one is noticed.
    for code in [
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    ] {
        assert!(THROTTLING_ERRORS.contains(&code), "{code}");
        assert_eq!(classify_response(Some(400), Some(code)), Reason::Throttling, "{code}");
        assert!(is_throttling_code(code));
    }
    assert_eq!(TRANSIENT_ERRORS, &["RequestTimeout", "RequestTimeoutException"]);
    for code in TRANSIENT_ERRORS {
        assert_eq!(classify_response(Some(400), Some(code)), Reason::Transient, "{code}");
    }
}

#[test]
fn transient_statuses_mirror_the_sdk_classifier() {
    let sdk = HttpStatusCodeClassifier::default();
    for status in 100..600u16 {
        let mut ctx = InterceptorContext::new(Input::doesnt_matter());
        ctx.set_response(response(status));
        let sdk_retries = sdk.classify_retry(&ctx) == RetryAction::transient_error();
        assert_eq!(TRANSIENT_STATUS_CODES.contains(&status), sdk_retries, "HTTP {status}");
        if sdk_retries {
            assert!(classify_response(Some(status), None).is_retriable(), "HTTP {status}");
        }
    }
}

#[test]
fn expired_credentials_are_retriable_and_invalid_ones_permanent() {
    for code in ["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired", "RequestTimeTooSkewed"] {
        // S3 answers 400, DynamoDB and Kinesis 400, STS 403: all the same.
        for status in [400, 403] {
            let reason = classify(&service(code, status));
            assert_eq!(reason, Reason::ExpiredCredentials, "{code} {status}");
            assert_eq!(reason.kind(), ErrorKind::Retriable);
        }
    }
    for code in [
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "InvalidToken",
    ] {
        let reason = classify(&service(code, 400));
        assert_eq!(reason, Reason::InvalidCredentials, "{code}");
        assert_eq!(reason.kind(), ErrorKind::Permanent);
    }
}

#[test]
fn statuses_decide_when_the_code_does_not() {
    let cases = [
        (Some(429), Reason::Throttling),
        (Some(408), Reason::Transient),
        (Some(500), Reason::ServiceFailure),
        (Some(501), Reason::ServiceFailure),
        (Some(503), Reason::ServiceFailure),
        (Some(403), Reason::AccessDenied),
        (Some(400), Reason::ClientError),
        (Some(404), Reason::ClientError),
        (Some(409), Reason::ClientError),
        (None, Reason::ServiceFailure),
    ];
    for (status, expected) in cases {
        assert_eq!(classify_response(status, Some("SomethingNew")), expected, "{status:?}");
        assert_eq!(classify_response(status, None), expected, "{status:?}");
    }
}

#[test]
fn codes_decide_before_statuses() {
    assert_eq!(classify_response(Some(400), Some("InternalFailure")), Reason::ServiceFailure);
    assert_eq!(classify_response(Some(400), Some("ServiceUnavailable")), Reason::ServiceFailure);
    assert_eq!(classify_response(Some(400), Some("AccessDeniedException")), Reason::AccessDenied);
    assert_eq!(classify_response(Some(503), Some("SlowDown")), Reason::Throttling);
    assert!(!Reason::AccessDenied.is_retriable() && !Reason::ClientError.is_retriable());
}

#[test]
fn failures_without_an_answer() {
    type E = SdkError<ErrorMetadata, HttpResponse>;
    let timeout: E = SdkError::timeout_error("slow");
    assert_eq!(classify(&timeout), Reason::Timeout);
    let io: E = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
    assert_eq!(classify(&io), Reason::Connection);
    let connect_timeout: E = SdkError::dispatch_failure(ConnectorError::timeout("connect".into()));
    assert_eq!(classify(&connect_timeout), Reason::Timeout);
    let other: E = SdkError::dispatch_failure(ConnectorError::other("no credentials".into(), None));
    assert_eq!(classify(&other), Reason::Connection);
    let user: E = SdkError::dispatch_failure(ConnectorError::user("bad endpoint".into()));
    assert_eq!(classify(&user), Reason::Configuration);
    let unreadable: E = SdkError::response_error("truncated", response(200));
    assert_eq!(classify(&unreadable), Reason::UnreadableResponse);
    let construction: E = SdkError::construction_failure("missing field");
    assert_eq!(classify(&construction), Reason::Construction);
    for retriable in [&timeout, &io, &connect_timeout, &other, &unreadable] {
        assert!(classify(retriable).is_retriable(), "{retriable:?}");
    }
    for permanent in [&user, &construction] {
        assert!(!classify(permanent).is_retriable(), "{permanent:?}");
    }
}

#[test]
fn event_stream_errors_have_no_status() {
    let message = RawMessage::invalid(None);
    assert_eq!(message.status_code(), None);
    let err: SdkError<ErrorMetadata, RawMessage> = SdkError::service_error(ErrorMetadata::builder().code("InternalFailure").build(), message);
    assert_eq!(classify(&err), Reason::ServiceFailure);
}

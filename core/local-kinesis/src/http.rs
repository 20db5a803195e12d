//! The HTTP/1.1 front: `POST /` with `X-Amz-Target: Kinesis_20131202.<Op>`,
//! a JSON or CBOR body, answered in the same encoding with
//! `x-amzn-RequestId` (and `x-amzn-ErrorType` on errors, status 400 or 500).
//! `GET /health` answers 200 for readiness probes. Request signatures are
//! not checked: any credentials work.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};

use crate::error::ApiError;
use crate::ops;
use crate::protocol::{Output, Protocol};
use crate::state::Server;

/// Largest request body: a 5 MiB PutRecords base64-encoded, with room.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const TARGET_PREFIX: &str = "Kinesis_20131202.";

fn respond(protocol: Protocol, status: u16, body: Vec<u8>, error: Option<&'static str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(protocol.content_type()));
    if let Ok(id) = header::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(exception) = error {
        headers.insert("x-amzn-errortype", header::HeaderValue::from_static(exception));
    }
    response
}

fn error_response(protocol: Protocol, error: &ApiError) -> Response<Full<Bytes>> {
    let body = protocol.encode(&Output::Obj(vec![("__type", Output::str(error.exception)), ("message", Output::Str(error.message.clone()))]));
    respond(protocol, error.status, body, Some(error.exception))
}

/// Answers one HTTP request.
pub(crate) async fn handle(server: Arc<Server>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    if request.method() == Method::GET && request.uri().path() == "/health" {
        return Ok(respond(Protocol::Json, 200, b"{\"status\":\"ok\"}".to_vec(), None));
    }
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(protocol) = Protocol::from_content_type(content_type.as_deref()) else {
        let error = ApiError::serialization(format!(
            "content type {:?} is not supported; use application/x-amz-json-1.1 or application/x-amz-cbor-1.1",
            content_type.unwrap_or_default()
        ));
        return Ok(error_response(Protocol::Json, &error));
    };
    if request.method() != Method::POST {
        let error = ApiError::unknown_operation(&format!("{} {}", request.method(), request.uri().path()));
        return Ok(error_response(protocol, &error));
    }
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX).map(str::to_owned) else {
        return Ok(error_response(protocol, &ApiError::unknown_operation(&target)));
    };
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let error = ApiError::serialization(format!("cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}"));
            let mut response = error_response(protocol, &error);
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };
    let op = operation.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let input = protocol.decode(&body).map_err(|e| ApiError::serialization(format!("cannot decode the request body: {e}")))?;
        ops::dispatch(&server, &op, &input).map(|output| protocol.encode(&output))
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(format!("the operation panicked: {e}"))));
    let response = match answered {
        Ok(body) => respond(protocol, 200, body, None),
        Err(error) => {
            tracing::debug!(operation = %operation, exception = error.exception, message = %error.message, "request failed");
            error_response(protocol, &error)
        }
    };
    tracing::trace!(operation = %operation, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "answered request");
    Ok(response)
}

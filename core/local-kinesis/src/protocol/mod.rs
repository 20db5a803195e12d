//! The wire documents of the Kinesis API, independent of their encoding.
//!
//! A request body (JSON `application/x-amz-json-1.1` or CBOR
//! `application/x-amz-cbor-1.1`) is decoded into an [`Input`] tree; an
//! operation answers an [`Output`] tree, encoded back in the request's
//! protocol. The two encodings differ only in blobs (base64 strings in
//! JSON, byte strings in CBOR) and timestamps (epoch seconds in JSON, tag 1
//! with epoch milliseconds in CBOR, as the AWS Java SDK writes them).

pub(crate) mod cbor;
pub(crate) mod json;

use bytes::Bytes;

/// The encoding of a request, and so of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `application/x-amz-json-1.1`.
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

impl Protocol {
    /// The protocol named by a `Content-Type` header; JSON when absent.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Option<Protocol> {
        let Some(ct) = content_type else { return Some(Protocol::Json) };
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/x-amz-cbor-1.1" => Some(Protocol::Cbor),
            "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" | "" => Some(Protocol::Json),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// Decodes a request body (an empty body is an empty structure).
    pub(crate) fn decode(self, body: &[u8]) -> Result<Input, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input::Map(Vec::new()));
        }
        match self {
            Protocol::Json => json::decode(body),
            Protocol::Cbor => cbor::decode(body),
        }
    }

    /// Encodes a response document.
    pub(crate) fn encode(self, output: &Output) -> Vec<u8> {
        match self {
            Protocol::Json => json::encode(output),
            Protocol::Cbor => cbor::encode(output),
        }
    }
}

/// A decoded request document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// A CBOR byte string.
    Bytes(Vec<u8>),
    /// A CBOR tag-1 timestamp, in epoch milliseconds.
    TimeMillis(i64),
    List(Vec<Input>),
    Map(Vec<(String, Input)>),
}

impl Input {
    /// The member `name` of a structure.
    pub(crate) fn get(&self, name: &str) -> Option<&Input> {
        match self {
            Input::Map(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v).filter(|v| **v != Input::Null),
            _ => None,
        }
    }
}

/// A response document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A blob: base64 in JSON, a byte string in CBOR.
    Bytes(Bytes),
    /// A timestamp in epoch milliseconds.
    Time(i64),
    List(Vec<Output>),
    Obj(Vec<(&'static str, Output)>),
}

impl Output {
    /// An empty structure (`{}`).
    pub(crate) fn empty() -> Output {
        Output::Obj(Vec::new())
    }

    pub(crate) fn str(s: impl Into<String>) -> Output {
        Output::Str(s.into())
    }
}

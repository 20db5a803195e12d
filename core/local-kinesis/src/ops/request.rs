//! Reading request members with the service's validation: a member of the
//! wrong type is a `SerializationException`; a missing required member or
//! one outside its model constraints (length, range, pattern) is a
//! `ValidationException` naming the member in camelCase, as the service
//! does.

use base64::Engine;

use crate::error::ApiError;
use crate::protocol::Input;
use crate::state::{Server, Stream};
use std::sync::Arc;

/// A request document with typed accessors.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    input: &'a Input,
    /// Prefix of member paths in messages (`records.1.member.` for list items).
    path: &'a str,
}

fn camel(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn type_error(name: &str, expected: &str) -> ApiError {
    ApiError::serialization(format!("member {name} is not a {expected}"))
}

impl<'a> Request<'a> {
    pub(crate) fn new(input: &'a Input) -> Request<'a> {
        Request { input, path: "" }
    }

    fn member(&self, name: &str) -> String {
        format!("{}{}", self.path, camel(name))
    }

    fn required<T>(&self, name: &str, value: Option<T>) -> Result<T, ApiError> {
        value.ok_or_else(|| ApiError::validation("null", &self.member(name), "Member must not be null"))
    }

    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.input.get(name) {
            None => Ok(None),
            Some(Input::Str(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(name, "string")),
        }
    }

    pub(crate) fn str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.required(name, self.opt_str(name)?)
    }

    /// A string member whose length must be in `min..=max`.
    pub(crate) fn opt_str_len(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>, ApiError> {
        let value = self.opt_str(name)?;
        if let Some(s) = value {
            self.check_len(name, &format!("'{s}'"), s.chars().count(), min, max)?;
        }
        Ok(value)
    }

    pub(crate) fn str_len(&self, name: &str, min: usize, max: usize) -> Result<&'a str, ApiError> {
        self.required(name, self.opt_str_len(name, min, max)?)
    }

    pub(crate) fn check_len(&self, name: &str, shown: &str, len: usize, min: usize, max: usize) -> Result<(), ApiError> {
        if len < min {
            return Err(ApiError::validation(shown, &self.member(name), &format!("Member must have length greater than or equal to {min}")));
        }
        if len > max {
            return Err(ApiError::validation(shown, &self.member(name), &format!("Member must have length less than or equal to {max}")));
        }
        Ok(())
    }

    /// A string member that must match `[a-zA-Z0-9_.-]+` (names).
    pub(crate) fn check_name(&self, name: &str, value: &str) -> Result<(), ApiError> {
        if value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
            return Ok(());
        }
        Err(ApiError::validation(&format!("'{value}'"), &self.member(name), "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"))
    }

    /// An integer member within `min..=max`.
    pub(crate) fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let value = match self.input.get(name) {
            None => return Ok(None),
            Some(Input::Int(i)) => *i,
            Some(Input::Float(f)) if f.fract() == 0.0 && f.abs() < 1e18 => *f as i128,
            Some(_) => return Err(type_error(name, "number")),
        };
        let shown = format!("'{value}'");
        if value < i128::from(min) {
            return Err(ApiError::validation(&shown, &self.member(name), &format!("Member must have value greater than or equal to {min}")));
        }
        if value > i128::from(max) {
            return Err(ApiError::validation(&shown, &self.member(name), &format!("Member must have value less than or equal to {max}")));
        }
        Ok(Some(value as i64))
    }

    /// A timestamp member, in epoch milliseconds (JSON: epoch seconds,
    /// possibly fractional; CBOR: tag 1).
    pub(crate) fn opt_timestamp_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.input.get(name) {
            None => Ok(None),
            Some(Input::Int(secs)) => Ok(Some((*secs as i64).saturating_mul(1000))),
            Some(Input::Float(secs)) => Ok(Some((secs * 1000.0).round() as i64)),
            Some(Input::TimeMillis(ms)) => Ok(Some(*ms)),
            Some(_) => Err(type_error(name, "timestamp")),
        }
    }

    /// A blob member: base64 text in JSON, a byte string in CBOR.
    pub(crate) fn blob(&self, name: &str) -> Result<Vec<u8>, ApiError> {
        match self.input.get(name) {
            None => self.required(name, None),
            Some(Input::Bytes(b)) => Ok(b.clone()),
            Some(Input::Str(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| ApiError::serialization(format!("member {name} is not valid base64: {e}"))),
            Some(_) => Err(type_error(name, "blob")),
        }
    }

    /// A list of structures; each item comes with its member path prefix.
    pub(crate) fn list(&self, name: &str) -> Result<Option<&'a [Input]>, ApiError> {
        match self.input.get(name) {
            None => Ok(None),
            Some(Input::List(items)) => Ok(Some(items)),
            Some(_) => Err(type_error(name, "list")),
        }
    }

    /// A nested structure.
    pub(crate) fn opt_struct(&self, name: &str) -> Result<Option<Request<'a>>, ApiError> {
        match self.input.get(name) {
            None => Ok(None),
            Some(input @ Input::Map(_)) => Ok(Some(Request { input, path: self.path })),
            Some(_) => Err(type_error(name, "structure")),
        }
    }

    /// An item of a list, with `prefix` (e.g. `records.1.member.`) in
    /// validation messages.
    pub(crate) fn item(input: &'a Input, prefix: &'a str) -> Result<Request<'a>, ApiError> {
        match input {
            Input::Map(_) => Ok(Request { input, path: prefix }),
            _ => Err(ApiError::serialization("list item is not a structure")),
        }
    }

    /// The stream named by `StreamName` or `StreamARN`.
    pub(crate) fn stream(&self, server: &Server) -> Result<Arc<Stream>, ApiError> {
        let name = self.stream_name(server)?;
        server.stream(&name)
    }

    /// The stream name from `StreamName` or `StreamARN` (which must agree).
    pub(crate) fn stream_name(&self, server: &Server) -> Result<String, ApiError> {
        let name = self.opt_str_len("StreamName", 1, 128)?;
        if let Some(name) = name {
            self.check_name("StreamName", name)?;
        }
        let from_arn = match self.opt_str_len("StreamARN", 1, 2048)? {
            None => None,
            Some(arn) => {
                let prefix = format!("arn:aws:kinesis:{}:{}:stream/", server.region, crate::error::ACCOUNT_ID);
                match arn.strip_prefix(&prefix) {
                    Some(stream) if !stream.is_empty() => Some(stream),
                    _ if arn.starts_with("arn:aws:kinesis:") && arn.contains(":stream/") => {
                        return Err(ApiError::not_found(format!("Stream {arn} not found in region {} account {}.", server.region, crate::error::ACCOUNT_ID)))
                    }
                    _ => return Err(ApiError::validation(&format!("'{arn}'"), "streamARN", "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")),
                }
            }
        };
        match (name, from_arn) {
            (Some(name), Some(arn_name)) if name != arn_name => {
                Err(ApiError::invalid_argument(format!("StreamName {name} and StreamARN do not name the same stream")))
            }
            (Some(name), _) => Ok(name.to_owned()),
            (None, Some(arn_name)) => Ok(arn_name.to_owned()),
            (None, None) => Err(ApiError::invalid_argument("Either StreamName or StreamARN should be provided.")),
        }
    }
}

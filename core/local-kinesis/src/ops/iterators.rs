//! GetShardIterator, and the shard iterator tokens GetRecords reads.
//!
//! An iterator is stateless: it carries the stream (name and creation
//! time, so a re-created stream does not accept an old iterator), the
//! shard, the counter of the next record to return and the time it was
//! issued (iterators expire after five minutes, as the service's do). It is
//! base64 of a version prefix, those fields and a CRC-32, so a mangled
//! token is an `InvalidArgumentException` rather than a wrong position.

use base64::Engine;

use super::request::Request;
use crate::error::ApiError;
use crate::protocol::Output;
use crate::sequence::SequenceNumber;
use crate::state::{lock, now_ms, parse_shard_id, read, Server, Shard};

/// How long an iterator stays valid.
pub(crate) const ITERATOR_TTL_MS: u64 = 300_000;
const PREFIX: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];

/// A decoded shard iterator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iterator {
    pub stream: String,
    pub stream_created_ms: u64,
    pub shard_index: u32,
    /// Counter of the next record to return.
    pub position: u64,
    pub issued_ms: u64,
}

impl Iterator {
    pub(crate) fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(48 + self.stream.len());
        bytes.extend_from_slice(&PREFIX);
        bytes.extend_from_slice(&self.stream_created_ms.to_be_bytes());
        bytes.extend_from_slice(&self.shard_index.to_be_bytes());
        bytes.extend_from_slice(&self.position.to_be_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_be_bytes());
        bytes.extend_from_slice(self.stream.as_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub(crate) fn decode(token: &str) -> Result<Iterator, ApiError> {
        let invalid = || ApiError::invalid_argument("Invalid ShardIterator.");
        let bytes = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| invalid())?;
        if bytes.len() < 36 + 1 + 4 || bytes[..8] != PREFIX {
            return Err(invalid());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(invalid());
        }
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
        Ok(Iterator {
            stream_created_ms: u64_at(8),
            shard_index: u32::from_be_bytes(body[16..20].try_into().unwrap_or([0; 4])),
            position: u64_at(20),
            issued_ms: u64_at(28),
            stream: String::from_utf8(body[36..].to_vec()).map_err(|_| invalid())?,
        })
    }

    /// Fails with `ExpiredIteratorException` when older than five minutes.
    pub(crate) fn check_fresh(&self, now_ms: u64) -> Result<(), ApiError> {
        if now_ms.saturating_sub(self.issued_ms) > ITERATOR_TTL_MS {
            return Err(ApiError::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                crate::ops::format_time(self.issued_ms),
                crate::ops::format_time(now_ms),
            )));
        }
        Ok(())
    }
}

const ITERATOR_TYPES: &str = "[AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]";

/// The record counter a `StartingSequenceNumber` names in `shard`.
fn sequence_index(sequence: &str, shard: &Shard, stream: &str) -> Result<u64, ApiError> {
    let invalid = |why: &str| {
        ApiError::invalid_argument(format!(
            "StartingSequenceNumber {sequence} used in GetShardIterator on shard {} in stream {stream} under account {} is invalid{why}.",
            shard.id,
            crate::error::ACCOUNT_ID
        ))
    };
    let parsed = SequenceNumber::parse(sequence).ok_or_else(|| invalid(""))?;
    if parsed.shard_index != shard.index {
        return Err(ApiError::invalid_argument(format!(
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            crate::state::shard_id(parsed.shard_index),
            shard.id
        )));
    }
    if parsed.shard_created_secs != (shard.created_ms / 1000) & ((1 << 36) - 1) {
        return Err(invalid(" because it did not come from this stream"));
    }
    Ok(parsed.index)
}

/// GetShardIterator.
pub(crate) fn get_shard_iterator(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let shard_id = req.str_len("ShardId", 1, 128)?;
    let kind = req.str("ShardIteratorType")?;
    if !["AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP", "TRIM_HORIZON", "LATEST"].contains(&kind) {
        return Err(ApiError::validation(&format!("'{kind}'"), "shardIteratorType", &format!("Member must satisfy enum value set: {ITERATOR_TYPES}")));
    }
    let sequence = req.opt_str("StartingSequenceNumber")?;
    if let Some(s) = sequence {
        if !s.bytes().all(|b| b.is_ascii_digit()) || s.is_empty() || (s.len() > 1 && s.starts_with('0')) || s.len() > 129 {
            return Err(ApiError::validation(&format!("'{s}'"), "startingSequenceNumber", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})"));
        }
    }
    let timestamp = req.opt_timestamp_ms("Timestamp")?;
    let not_found = || ApiError::shard_not_found(&stream.name, shard_id);
    let index = parse_shard_id(shard_id).ok_or_else(not_found)?;
    let shard = read(&stream.state).shard(index).cloned().ok_or_else(not_found)?;
    let position = match (kind, sequence) {
        ("TRIM_HORIZON" | "LATEST", Some(_)) | ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
            return Err(ApiError::invalid_argument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {} StartingSequenceNumber.",
                if sequence.is_some() { "also a" } else { "no" }
            )))
        }
        ("TRIM_HORIZON", None) => 0,
        ("LATEST", None) => lock(&shard.log).next_index(),
        ("AT_SEQUENCE_NUMBER", Some(s)) => sequence_index(s, &shard, &stream.name)?,
        ("AFTER_SEQUENCE_NUMBER", Some(s)) => sequence_index(s, &shard, &stream.name)?.saturating_add(1),
        _ => {
            let Some(ms) = timestamp else {
                return Err(ApiError::invalid_argument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.",
                ));
            };
            lock(&shard.log).index_at_time(u64::try_from(ms).unwrap_or(0))
        }
    };
    let iterator = Iterator {
        stream: stream.name.clone(),
        stream_created_ms: stream.created_ms,
        shard_index: shard.index,
        position,
        issued_ms: now_ms(),
    };
    Ok(Output::Obj(vec![("ShardIterator", Output::Str(iterator.encode()))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_reject_tampering() {
        let it = Iterator { stream: "s.1".into(), stream_created_ms: 42, shard_index: 7, position: 99, issued_ms: 1000 };
        let token = it.encode();
        assert_eq!(Iterator::decode(&token).unwrap(), it);
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(&token).unwrap();
        bytes[20] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(Iterator::decode(&tampered).unwrap_err().exception, "InvalidArgumentException");
        assert_eq!(Iterator::decode("not base64!").unwrap_err().exception, "InvalidArgumentException");
        assert!(it.check_fresh(1000 + ITERATOR_TTL_MS).is_ok());
        assert_eq!(it.check_fresh(1001 + ITERATOR_TTL_MS).unwrap_err().exception, "ExpiredIteratorException");
    }
}

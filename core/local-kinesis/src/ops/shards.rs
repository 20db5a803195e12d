//! ListShards: shard filters, `MaxResults` and `NextToken` paging.
//!
//! A closed shard stays listed until it is older than the retention period
//! (then it has no records left), as on the service. Filters:
//! `AT_LATEST` (open shards), `AT_TRIM_HORIZON` / `AT_TIMESTAMP` (the shards
//! that were open then: start from the shards without parents and replace
//! each shard closed by that time with its children), `FROM_TRIM_HORIZON`
//! (every shard with records), `FROM_TIMESTAMP` (shards not closed before
//! the time) and `AFTER_SHARD_ID`.

use std::sync::Arc;

use base64::Engine;

use super::request::Request;
use super::streams::shard_output;
use crate::error::ApiError;
use crate::protocol::Output;
use crate::state::{now_ms, parse_shard_id, read, Server, Shard, StreamState};

/// How long a `NextToken` stays valid.
const NEXT_TOKEN_TTL_MS: u64 = 300_000;
/// Most shards one call returns.
const MAX_RESULTS_CAP: usize = 1000;
const TOKEN_PREFIX: &[u8] = b"SLK1";

/// Shards not yet expired (open, or closed within the retention period).
pub(crate) fn visible_shards(state: &StreamState, now: u64) -> Vec<&Arc<Shard>> {
    let cutoff = now.saturating_sub(state.retention_ms);
    state.shards.iter().filter(|s| s.closed_ms().is_none_or(|closed| closed >= cutoff)).collect()
}

/// The shards open at `time_ms`.
fn open_at(state: &StreamState, time_ms: u64) -> Vec<&Arc<Shard>> {
    let mut frontier: Vec<&Arc<Shard>> = state.shards.iter().filter(|s| s.parent.is_none()).collect();
    loop {
        let mut next: Vec<&Arc<Shard>> = Vec::with_capacity(frontier.len());
        let mut changed = false;
        for shard in frontier {
            if shard.closed_ms().is_some_and(|closed| closed <= time_ms) {
                changed = true;
                for child in state.shards.iter().filter(|c| c.parent == Some(shard.index) || c.adjacent_parent == Some(shard.index)) {
                    if !next.iter().any(|s| s.index == child.index) {
                        next.push(child);
                    }
                }
            } else if !next.iter().any(|s| s.index == shard.index) {
                next.push(shard);
            }
        }
        frontier = next;
        if !changed {
            break;
        }
    }
    frontier.sort_by_key(|s| s.index);
    frontier
}

/// The filter of a ListShards call, as kept in its `NextToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    AfterShardId(u32),
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp(u64),
    FromTimestamp(u64),
}

impl Filter {
    fn code(self) -> (u8, u64) {
        match self {
            Filter::None => (0, 0),
            Filter::AfterShardId(i) => (1, u64::from(i)),
            Filter::AtTrimHorizon => (2, 0),
            Filter::FromTrimHorizon => (3, 0),
            Filter::AtLatest => (4, 0),
            Filter::AtTimestamp(t) => (5, t),
            Filter::FromTimestamp(t) => (6, t),
        }
    }

    fn from_code(code: u8, value: u64) -> Option<Filter> {
        Some(match code {
            0 => Filter::None,
            1 => Filter::AfterShardId(u32::try_from(value).ok()?),
            2 => Filter::AtTrimHorizon,
            3 => Filter::FromTrimHorizon,
            4 => Filter::AtLatest,
            5 => Filter::AtTimestamp(value),
            6 => Filter::FromTimestamp(value),
            _ => return None,
        })
    }

    fn parse(req: Option<Request<'_>>) -> Result<Filter, ApiError> {
        let Some(req) = req else { return Ok(Filter::None) };
        let kind = req.str("Type")?;
        let time = || -> Result<u64, ApiError> {
            let ms = req.opt_timestamp_ms("Timestamp")?;
            ms.map(|ms| ms.max(0) as u64).ok_or_else(|| ApiError::invalid_argument(format!("Timestamp must be specified for ShardFilter type {kind}.")))
        };
        Ok(match kind {
            "AFTER_SHARD_ID" => {
                let id = req.opt_str("ShardId")?.ok_or_else(|| ApiError::invalid_argument("ShardId must be specified for ShardFilter type AFTER_SHARD_ID."))?;
                Filter::AfterShardId(parse_shard_id(id).ok_or_else(|| ApiError::invalid_argument(format!("Invalid ShardId {id}.")))?)
            }
            "AT_TRIM_HORIZON" => Filter::AtTrimHorizon,
            "FROM_TRIM_HORIZON" => Filter::FromTrimHorizon,
            "AT_LATEST" => Filter::AtLatest,
            "AT_TIMESTAMP" => Filter::AtTimestamp(time()?),
            "FROM_TIMESTAMP" => Filter::FromTimestamp(time()?),
            other => {
                return Err(ApiError::validation(
                    &format!("'{other}'"),
                    "shardFilter.type",
                    "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                ))
            }
        })
    }

    fn apply(self, state: &StreamState, now: u64) -> Vec<&Arc<Shard>> {
        let visible = visible_shards(state, now);
        match self {
            Filter::None | Filter::FromTrimHorizon => visible,
            Filter::AfterShardId(after) => visible.into_iter().filter(|s| s.index > after).collect(),
            Filter::AtLatest => visible.into_iter().filter(|s| s.closed_ms().is_none()).collect(),
            Filter::AtTrimHorizon => open_at(state, now.saturating_sub(state.retention_ms)),
            Filter::AtTimestamp(t) => open_at(state, t),
            Filter::FromTimestamp(t) => visible.into_iter().filter(|s| s.closed_ms().is_none_or(|c| c > t)).collect(),
        }
    }
}

struct Token {
    stream: String,
    created_ms: u64,
    after_index: u32,
    filter: Filter,
    issued_ms: u64,
}

impl Token {
    fn encode(&self) -> String {
        let (code, value) = self.filter.code();
        let mut bytes = TOKEN_PREFIX.to_vec();
        bytes.extend_from_slice(&self.created_ms.to_be_bytes());
        bytes.extend_from_slice(&self.after_index.to_be_bytes());
        bytes.push(code);
        bytes.extend_from_slice(&value.to_be_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_be_bytes());
        bytes.extend_from_slice(self.stream.as_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn decode(text: &str) -> Option<Token> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        if bytes.len() < 4 + 29 + 4 || !bytes.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return None;
        }
        let u64_at = |at: usize| body[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        Some(Token {
            created_ms: u64_at(4)?,
            after_index: u32::from_be_bytes(body[12..16].try_into().ok()?),
            filter: Filter::from_code(body[16], u64_at(17)?)?,
            issued_ms: u64_at(25)?,
            stream: String::from_utf8(body[33..].to_vec()).ok()?,
        })
    }
}

/// ListShards.
pub(crate) fn list_shards(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let token = req.opt_str_len("NextToken", 1, 1_048_576)?;
    let max_results = req.opt_int("MaxResults", 1, 10_000)?.map_or(MAX_RESULTS_CAP, |n| (n as usize).min(MAX_RESULTS_CAP));
    let exclusive_start = req.opt_str_len("ExclusiveStartShardId", 1, 128)?;
    let now = now_ms();
    let (stream, after, filter) = match token {
        Some(token) => {
            if req.opt_str("StreamName")?.is_some() {
                return Err(ApiError::invalid_argument("NextToken and StreamName cannot be provided together."));
            }
            if exclusive_start.is_some() {
                return Err(ApiError::invalid_argument("NextToken and ExclusiveStartShardId cannot be provided together."));
            }
            let token = Token::decode(token).ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
            if now.saturating_sub(token.issued_ms) > NEXT_TOKEN_TTL_MS {
                return Err(ApiError::expired_next_token("The timestamp on the provided next token has expired."));
            }
            let stream = server.stream(&token.stream)?;
            if stream.created_ms != token.created_ms {
                return Err(ApiError::invalid_argument("Invalid NextToken: the stream was re-created."));
            }
            (stream, Some(token.after_index), token.filter)
        }
        None => {
            let stream = req.stream(server)?;
            let after = match exclusive_start {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| ApiError::invalid_argument(format!("Invalid ExclusiveStartShardId {id}.")))?),
                None => None,
            };
            if let Some(created) = req.opt_timestamp_ms("StreamCreationTimestamp")? {
                if created as u64 / 1000 != stream.created_ms / 1000 {
                    return Err(ApiError::stream_not_found(&stream.name));
                }
            }
            (stream, after, Filter::parse(req.opt_struct("ShardFilter")?)?)
        }
    };
    let state = read(&stream.state);
    let shards: Vec<&Arc<Shard>> = filter.apply(&state, now).into_iter().filter(|s| after.is_none_or(|a| s.index > a)).collect();
    let page = &shards[..shards.len().min(max_results)];
    let mut out = vec![("Shards", Output::List(page.iter().map(|s| shard_output(s)).collect()))];
    if let (true, Some(last)) = (shards.len() > max_results, page.last()) {
        let token = Token { stream: stream.name.clone(), created_ms: stream.created_ms, after_index: last.index, filter, issued_ms: now };
        out.push(("NextToken", Output::Str(token.encode())));
    }
    Ok(Output::Obj(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = Token { stream: "s".into(), created_ms: 9, after_index: 3, filter: Filter::AtTimestamp(77), issued_ms: 5 };
        let decoded = Token::decode(&token.encode()).unwrap();
        assert_eq!((decoded.stream.as_str(), decoded.created_ms, decoded.after_index, decoded.filter, decoded.issued_ms), ("s", 9, 3, Filter::AtTimestamp(77), 5));
        assert!(Token::decode("garbage").is_none());
    }
}

//! Stream management: CreateStream, DeleteStream, DescribeStream,
//! DescribeStreamSummary, ListStreams, Increase/DecreaseStreamRetentionPeriod.
//!
//! Streams become `ACTIVE` at once (the service takes seconds; clients
//! that wait for `ACTIVE` see it on their first poll).

use std::sync::{Arc, RwLock};

use base64::Engine;

use super::request::Request;
use super::shards::visible_shards;
use crate::error::ApiError;
use crate::protocol::Output;
use crate::state::{arn, now_ms, read, shard_id, write, Server, Shard, Stream, StreamState};
use crate::storage::log::ShardLog;
use crate::storage::ShardMeta;

/// Most open shards a stream may have (the service's per-account quota is
/// lower; this only stops runaway requests).
pub(crate) const SHARD_LIMIT: usize = 10_000;
/// Shards of an `ON_DEMAND` stream created without `ShardCount`.
const ON_DEMAND_SHARDS: u32 = 4;

fn stream_mode(state: &StreamState) -> Output {
    Output::Obj(vec![("StreamMode", Output::Str(state.mode.clone()))])
}

fn retention_hours(state: &StreamState) -> i64 {
    state.retention_ms.div_ceil(3_600_000) as i64
}

fn enhanced_monitoring() -> Output {
    Output::List(vec![Output::Obj(vec![("ShardLevelMetrics", Output::List(Vec::new()))])])
}

/// CreateStream.
pub(crate) fn create_stream(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let name = req.str_len("StreamName", 1, 128)?;
    req.check_name("StreamName", name)?;
    let shard_count = req.opt_int("ShardCount", 1, 100_000)?;
    let mode = match req.opt_struct("StreamModeDetails")? {
        None => "PROVISIONED".to_owned(),
        Some(details) => {
            let mode = details.str("StreamMode")?;
            if mode != "PROVISIONED" && mode != "ON_DEMAND" {
                return Err(ApiError::validation(&format!("'{mode}'"), "streamModeDetails.streamMode", "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]"));
            }
            mode.to_owned()
        }
    };
    let shard_count = match (shard_count, mode.as_str()) {
        (Some(n), _) => n as u32,
        (None, "ON_DEMAND") => ON_DEMAND_SHARDS,
        (None, _) => return Err(ApiError::validation("null", "shardCount", "Member must not be null")),
    };
    if shard_count as usize > SHARD_LIMIT {
        return Err(ApiError::limit_exceeded(format!(
            "This request would exceed the shard limit for the account {} in {}. Limit: {SHARD_LIMIT}.",
            crate::error::ACCOUNT_ID,
            server.region
        )));
    }
    let mut streams = server.streams_mut();
    if streams.contains_key(name) {
        return Err(ApiError::in_use(format!("Stream {name} under account {} already exists.", crate::error::ACCOUNT_ID)));
    }
    let mut created_ms = now_ms();
    // a re-created stream gets a new directory even within the same millisecond
    while server.data.stream_dir(name, created_ms).exists() {
        created_ms += 1;
    }
    let mut shards = Vec::with_capacity(shard_count as usize);
    for (index, (start, end)) in crate::hashkey::uniform_ranges(shard_count).into_iter().enumerate() {
        let meta = ShardMeta {
            index: index as u32,
            parent: None,
            adjacent_parent: None,
            starting_hash_key: start.to_string(),
            ending_hash_key: end.to_string(),
            created_ms,
            closed_ms: None,
        };
        let log = ShardLog::create(&server.data.shard_dir(name, created_ms, &shard_id(meta.index)))?;
        shards.push(Arc::new(Shard::new(&meta, log)));
    }
    let stream = Stream {
        name: name.to_owned(),
        created_ms,
        arn: arn(&server.region, name),
        state: RwLock::new(StreamState { retention_ms: server.default_retention_ms, mode, shards }),
    };
    let meta = stream.meta(&read(&stream.state));
    server.persist(name, Some(meta))?;
    streams.insert(name.to_owned(), Arc::new(stream));
    tracing::info!(stream = %name, shards = shard_count, "created stream");
    Ok(Output::empty())
}

/// DeleteStream: the stream disappears at once and its data is removed.
pub(crate) fn delete_stream(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let name = req.stream_name(server)?;
    let mut streams = server.streams_mut();
    let stream = streams.get(&name).cloned().ok_or_else(|| ApiError::stream_not_found(&name))?;
    server.persist(&name, None)?;
    streams.remove(&name);
    drop(streams);
    let dir = server.data.stream_dir(&stream.name, stream.created_ms);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(path = %dir.display(), error = %e, "cannot remove the data of a deleted stream");
    }
    tracing::info!(stream = %name, "deleted stream");
    Ok(Output::empty())
}

/// A shard as DescribeStream and ListShards show it.
pub(crate) fn shard_output(shard: &Shard) -> Output {
    let mut members = vec![("ShardId", Output::Str(shard.id.clone()))];
    if let Some(parent) = shard.parent {
        members.push(("ParentShardId", Output::Str(shard_id(parent))));
    }
    if let Some(adjacent) = shard.adjacent_parent {
        members.push(("AdjacentParentShardId", Output::Str(shard_id(adjacent))));
    }
    members.push(("HashKeyRange", super::hash_key_range(shard)));
    let mut range = vec![("StartingSequenceNumber", Output::Str(shard.starting_sequence_number()))];
    if let Some(ending) = shard.ending_sequence_number() {
        range.push(("EndingSequenceNumber", Output::Str(ending)));
    }
    members.push(("SequenceNumberRange", Output::Obj(range)));
    Output::Obj(members)
}

/// DescribeStream.
pub(crate) fn describe_stream(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let limit = req.opt_int("Limit", 1, 10_000)?.unwrap_or(100) as usize;
    let after = req.opt_str_len("ExclusiveStartShardId", 1, 128)?;
    let state = read(&stream.state);
    let after_index = after.and_then(crate::state::parse_shard_id);
    let shards: Vec<&Arc<Shard>> = visible_shards(&state, now_ms())
        .into_iter()
        .filter(|s| after.is_none() || after_index.is_some_and(|a| s.index > a))
        .collect();
    let has_more = shards.len() > limit;
    let listed = shards.iter().take(limit).map(|s| shard_output(s)).collect();
    Ok(Output::Obj(vec![(
        "StreamDescription",
        Output::Obj(vec![
            ("StreamName", Output::Str(stream.name.clone())),
            ("StreamARN", Output::Str(stream.arn.clone())),
            ("StreamStatus", Output::str("ACTIVE")),
            ("StreamModeDetails", stream_mode(&state)),
            ("Shards", Output::List(listed)),
            ("HasMoreShards", Output::Bool(has_more)),
            ("RetentionPeriodHours", Output::Int(retention_hours(&state))),
            ("StreamCreationTimestamp", Output::Time(stream.created_ms as i64)),
            ("EnhancedMonitoring", enhanced_monitoring()),
            ("EncryptionType", Output::str("NONE")),
        ]),
    )]))
}

/// DescribeStreamSummary.
pub(crate) fn describe_stream_summary(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let state = read(&stream.state);
    Ok(Output::Obj(vec![(
        "StreamDescriptionSummary",
        Output::Obj(vec![
            ("StreamName", Output::Str(stream.name.clone())),
            ("StreamARN", Output::Str(stream.arn.clone())),
            ("StreamStatus", Output::str("ACTIVE")),
            ("StreamModeDetails", stream_mode(&state)),
            ("RetentionPeriodHours", Output::Int(retention_hours(&state))),
            ("StreamCreationTimestamp", Output::Time(stream.created_ms as i64)),
            ("EnhancedMonitoring", enhanced_monitoring()),
            ("EncryptionType", Output::str("NONE")),
            ("OpenShardCount", Output::Int(state.open_shards().len() as i64)),
            ("ConsumerCount", Output::Int(0)),
        ]),
    )]))
}

/// ListStreams (paged by `ExclusiveStartStreamName` or `NextToken`).
pub(crate) fn list_streams(server: &Server, req: Request<'_>) -> Result<Output, ApiError> {
    let limit = req.opt_int("Limit", 1, 10_000)?.unwrap_or(100) as usize;
    let start = req.opt_str_len("ExclusiveStartStreamName", 1, 128)?.map(str::to_owned);
    let token = req.opt_str_len("NextToken", 1, 1_048_576)?;
    let after = match token {
        Some(token) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(token).ok();
            Some(bytes.and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?)
        }
        None => start,
    };
    let streams: Vec<Arc<Stream>> = server.streams().into_iter().filter(|s| after.as_ref().is_none_or(|a| s.name.as_str() > a.as_str())).collect();
    let has_more = streams.len() > limit;
    let page = &streams[..streams.len().min(limit)];
    let mut out = vec![
        ("StreamNames", Output::List(page.iter().map(|s| Output::Str(s.name.clone())).collect())),
        ("HasMoreStreams", Output::Bool(has_more)),
    ];
    if let (true, Some(last)) = (has_more, page.last()) {
        out.push(("NextToken", Output::Str(base64::engine::general_purpose::STANDARD.encode(&last.name))));
    }
    let summaries = page
        .iter()
        .map(|s| {
            let state = read(&s.state);
            Output::Obj(vec![
                ("StreamName", Output::Str(s.name.clone())),
                ("StreamARN", Output::Str(s.arn.clone())),
                ("StreamStatus", Output::str("ACTIVE")),
                ("StreamModeDetails", stream_mode(&state)),
                ("StreamCreationTimestamp", Output::Time(s.created_ms as i64)),
            ])
        })
        .collect();
    out.push(("StreamSummaries", Output::List(summaries)));
    Ok(Output::Obj(out))
}

/// IncreaseStreamRetentionPeriod (`increase = true`) and
/// DecreaseStreamRetentionPeriod.
pub(crate) fn change_retention(server: &Server, req: Request<'_>, increase: bool) -> Result<Output, ApiError> {
    let stream = req.stream(server)?;
    let hours = req.opt_int("RetentionPeriodHours", 1, 8760)?.ok_or_else(|| ApiError::validation("null", "retentionPeriodHours", "Member must not be null"))?;
    let mut state = write(&stream.state);
    let current = retention_hours(&state);
    if increase && hours < current {
        return Err(ApiError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.",
            stream.name
        )));
    }
    if !increase && hours > current {
        return Err(ApiError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.",
            stream.name
        )));
    }
    let previous = state.retention_ms;
    state.retention_ms = hours as u64 * 3_600_000;
    if let Err(e) = server.persist(&stream.name, Some(stream.meta(&state))) {
        state.retention_ms = previous;
        return Err(e.into());
    }
    Ok(Output::empty())
}

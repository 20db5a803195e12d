//! The Kinesis operations, one module per concern: [`streams`] (create,
//! delete, describe, list, retention), [`shards`] (ListShards),
//! [`records`] (put and get), [`iterators`] (GetShardIterator) and
//! [`reshard`] (split, merge, update shard count). [`dispatch`] maps an
//! `X-Amz-Target` operation name to its handler.

pub(crate) mod iterators;
pub(crate) mod records;
pub(crate) mod request;
pub(crate) mod reshard;
pub(crate) mod shards;
pub(crate) mod streams;

use request::Request;

use crate::error::ApiError;
use crate::protocol::{Input, Output};
use crate::state::{Server, Shard};

/// The operations this server answers.
pub const OPERATIONS: &[&str] = &[
    "CreateStream",
    "DeleteStream",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "ListShards",
    "PutRecord",
    "PutRecords",
    "GetShardIterator",
    "GetRecords",
    "SplitShard",
    "MergeShards",
    "UpdateShardCount",
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
];

/// Runs `operation` on `input`. Blocking (file I/O): call it from a
/// blocking thread.
pub(crate) fn dispatch(server: &Server, operation: &str, input: &Input) -> Result<Output, ApiError> {
    if !matches!(input, Input::Map(_)) {
        return Err(ApiError::serialization("the request body is not a structure"));
    }
    let req = Request::new(input);
    match operation {
        "CreateStream" => streams::create_stream(server, req),
        "DeleteStream" => streams::delete_stream(server, req),
        "DescribeStream" => streams::describe_stream(server, req),
        "DescribeStreamSummary" => streams::describe_stream_summary(server, req),
        "ListStreams" => streams::list_streams(server, req),
        "IncreaseStreamRetentionPeriod" => streams::change_retention(server, req, true),
        "DecreaseStreamRetentionPeriod" => streams::change_retention(server, req, false),
        "ListShards" => shards::list_shards(server, req),
        "PutRecord" => records::put_record(server, req),
        "PutRecords" => records::put_records(server, req),
        "GetRecords" => records::get_records(server, req),
        "GetShardIterator" => iterators::get_shard_iterator(server, req),
        "SplitShard" => reshard::split_shard(server, req),
        "MergeShards" => reshard::merge_shards(server, req),
        "UpdateShardCount" => reshard::update_shard_count(server, req),
        other => Err(ApiError::unknown_operation(other)),
    }
}

/// `{"StartingHashKey", "EndingHashKey"}` of a shard.
pub(crate) fn hash_key_range(shard: &Shard) -> Output {
    Output::Obj(vec![("StartingHashKey", Output::Str(shard.start.to_string())), ("EndingHashKey", Output::Str(shard.end.to_string()))])
}

/// `Thu Jan 22 01:22:02 UTC 2015`, the service's format in iterator
/// expiry messages.
pub(crate) fn format_time(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (hh, mm, ss) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{} {} {day:02} {hh:02}:{mm:02}:{ss:02} UTC {year}", DAYS[(days.rem_euclid(7)) as usize], MONTHS[(month - 1) as usize])
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_times_like_the_service() {
        assert_eq!(super::format_time(1_421_889_722_000), "Thu Jan 22 01:22:02 UTC 2015");
        assert_eq!(super::format_time(0), "Thu Jan 01 00:00:00 UTC 1970");
    }
}

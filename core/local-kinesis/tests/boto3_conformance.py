#!/usr/bin/env python3
"""Conformance of `shardline local-kinesis` with AWS's own Python clients.

Usage: boto3_conformance.py ENDPOINT [AWS_CLI]

Drives boto3 (every served operation, waiters, paginators, errors with
their exception classes and HTTP 400) and, when AWS_CLI is given, the AWS
CLI against the server at ENDPOINT. Prints one `ok: ...` line per check and
exits non-zero at the first failure. Run by the Rust test
`tests/sdk/boto3.rs`.
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

ENDPOINT = sys.argv[1]
AWS_CLI = sys.argv[2] if len(sys.argv) > 2 else None
SUFFIX = str(os.getpid())

client = boto3.client(
    "kinesis",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=botocore.config.Config(retries={"max_attempts": 1}),
)


def ok(what):
    print(f"ok: {what}", flush=True)


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert status == 400, f"expected HTTP 400, got {status}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def drain(iterator):
    """All records from an iterator until empty or the shard end."""
    records = []
    while iterator:
        out = client.get_records(ShardIterator=iterator)
        records.extend(out["Records"])
        if not out["Records"] or "NextShardIterator" not in out:
            return records, out
        iterator = out.get("NextShardIterator")
    return records, None


def streams_and_records():
    name = f"boto3-{SUFFIX}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    ok("create_stream + stream_exists waiter")
    expect_error("ResourceInUseException", client.create_stream, StreamName=name, ShardCount=1)
    ok("duplicate stream: ResourceInUseException")

    description = client.describe_stream(StreamName=name)["StreamDescription"]
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
    assert isinstance(description["StreamCreationTimestamp"], datetime.datetime)
    assert [s["ShardId"] for s in description["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    summary = client.describe_stream_summary(StreamARN=description["StreamARN"])["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2 and summary["RetentionPeriodHours"] == 24
    assert name in client.list_streams()["StreamNames"]
    names = [n for page in client.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}) for n in page["StreamNames"]]
    assert name in names, names
    ok("describe_stream, describe_stream_summary (by ARN), list_streams + paginator")

    put = client.put_record(StreamName=name, PartitionKey="a", Data=b"\x00\x01binary")
    assert put["ShardId"] == "shardId-000000000000" and len(put["SequenceNumber"]) == 56
    ehk = client.put_record(StreamName=name, PartitionKey="a", Data=b"high", ExplicitHashKey=str(2**127))
    assert ehk["ShardId"] == "shardId-000000000001"
    batch = client.put_records(
        StreamName=name, Records=[{"PartitionKey": f"k{i}", "Data": json.dumps({"n": i}).encode()} for i in range(500)]
    )
    assert batch["FailedRecordCount"] == 0 and len(batch["Records"]) == 500
    assert all("SequenceNumber" in r for r in batch["Records"])
    ok("put_record (partition key and explicit hash key), put_records of 500")

    total = 0
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        it = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records, last = drain(it)
        total += len(records)
        assert last["MillisBehindLatest"] == 0
        for r in records:
            assert isinstance(r["ApproximateArrivalTimestamp"], datetime.datetime)
    assert total == 502, total
    first = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = client.get_records(ShardIterator=first, Limit=1)
    assert page["Records"][0]["Data"] == b"\x00\x01binary" and page["Records"][0]["PartitionKey"] == "a"
    seq = page["Records"][0]["SequenceNumber"]
    at = client.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq
    )["ShardIterator"]
    assert client.get_records(ShardIterator=at, Limit=1)["Records"][0]["SequenceNumber"] == seq
    after = client.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seq
    )["ShardIterator"]
    assert client.get_records(ShardIterator=after, Limit=1)["Records"][0]["SequenceNumber"] != seq
    past = client.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="AT_TIMESTAMP", Timestamp=datetime.datetime(2020, 1, 1)
    )["ShardIterator"]
    assert client.get_records(ShardIterator=past, Limit=1)["Records"][0]["SequenceNumber"] == seq
    latest = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="LATEST")["ShardIterator"]
    out = client.get_records(ShardIterator=latest)
    assert out["Records"] == [] and out["NextShardIterator"]
    client.put_record(StreamName=name, PartitionKey="a", Data=b"new")
    assert [r["Data"] for r in client.get_records(ShardIterator=out["NextShardIterator"])["Records"]] == [b"new"]
    ok("get_shard_iterator TRIM_HORIZON, AT_/AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP, LATEST; get_records Limit and MillisBehindLatest")

    expect_error("ResourceNotFoundException", client.describe_stream, StreamName="no-such-stream")
    expect_error("ResourceNotFoundException", client.get_shard_iterator, StreamName=name, ShardId="shardId-000000000099", ShardIteratorType="LATEST")
    expect_error("InvalidArgumentException", client.get_records, ShardIterator="bm90IGFuIGl0ZXJhdG9yIGF0IGFsbCwgbm90IGF0IGFsbA==")
    expect_error("ValidationException", client.put_record, StreamName=name, PartitionKey="k", Data=b"x" * (1024 * 1024 + 1))
    expect_error("InvalidArgumentException", client.put_records, StreamName=name,
                 Records=[{"PartitionKey": str(i), "Data": b"x" * (1024 * 1024 - 8)} for i in range(6)])
    err = expect_error("ResourceNotFoundException", client.put_record, StreamName="no-such-stream", PartitionKey="k", Data=b"x")
    assert isinstance(err, client.exceptions.ResourceNotFoundException)
    ok("errors: ResourceNotFound, InvalidArgument, ValidationException (1 MiB), 5 MiB limit; modeled exception classes")
    return name


def reshard(name):
    client.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    shards = client.list_shards(StreamName=name)["Shards"]
    assert [s["ShardId"] for s in shards] == [f"shardId-00000000000{i}" for i in range(4)]
    assert shards[2]["ParentShardId"] == "shardId-000000000000"
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    it = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records, last = drain(it)
    assert "NextShardIterator" not in last or last["NextShardIterator"] is None
    assert [c["ShardId"] for c in last["ChildShards"]] == ["shardId-000000000002", "shardId-000000000003"]
    assert last["ChildShards"][0]["ParentShards"] == ["shardId-000000000000"]
    ok("split_shard: closed parent ends with ChildShards and no NextShardIterator")

    client.merge_shards(StreamName=name, ShardToMerge="shardId-000000000002", AdjacentShardToMerge="shardId-000000000003")
    latest = client.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [s["ShardId"] for s in latest] == ["shardId-000000000001", "shardId-000000000004"], latest
    assert latest[1]["AdjacentParentShardId"] == "shardId-000000000003"
    horizon = client.list_shards(StreamName=name, ShardFilter={"Type": "AT_TRIM_HORIZON"})["Shards"]
    assert [s["ShardId"] for s in horizon] == ["shardId-000000000000", "shardId-000000000001"]
    after = client.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"})["Shards"]
    assert [s["ShardId"] for s in after] == ["shardId-000000000003", "shardId-000000000004"]
    # paged by hand: like the service, a NextToken call must not repeat
    # StreamName (botocore's list_shards paginator does, and the service
    # answers InvalidArgumentException)
    page = client.list_shards(StreamName=name, MaxResults=2)
    ids = [s["ShardId"] for s in page["Shards"]]
    while page.get("NextToken"):
        page = client.list_shards(NextToken=page["NextToken"], MaxResults=2)
        ids.extend(s["ShardId"] for s in page["Shards"])
    assert len(ids) == 5, ids
    expect_error("InvalidArgumentException", client.list_shards, StreamName=name,
                 NextToken=client.list_shards(StreamName=name, MaxResults=1)["NextToken"])
    expect_error("InvalidArgumentException", client.merge_shards, StreamName=name,
                 ShardToMerge="shardId-000000000000", AdjacentShardToMerge="shardId-000000000001")
    ok("merge_shards; list_shards filters AT_LATEST, AT_TRIM_HORIZON, AFTER_SHARD_ID; NextToken paging")

    out = client.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert out["CurrentShardCount"] == 2 and out["TargetShardCount"] == 4
    open_shards = client.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [int(s["HashKeyRange"]["StartingHashKey"]) for s in open_shards] == [0, 2**126, 2**127, 3 * 2**126]
    expect_error("LimitExceededException", client.update_shard_count, StreamName=name, TargetShardCount=9, ScalingType="UNIFORM_SCALING")
    ok("update_shard_count 2 -> 4 (uniform), over double: LimitExceededException")

    client.delete_stream(StreamName=name)
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    ok("delete_stream + stream_not_exists waiter")


def cli():
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def aws(*args, check=True):
        done = subprocess.run([AWS_CLI, "--endpoint-url", ENDPOINT, "--output", "json", "kinesis", *args],
                              capture_output=True, text=True, env=env, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    name = f"cli-{SUFFIX}"
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    aws("wait", "stream-exists", "--stream-name", name)
    summary = json.loads(aws("describe-stream-summary", "--stream-name", name).stdout)
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    version = subprocess.run([AWS_CLI, "--version"], capture_output=True, text=True, env=env).stdout
    # v1 sends blob arguments as given; v2 would base64-decode them unless told not to
    raw = ["--cli-binary-format", "raw-in-base64-out"] if "aws-cli/2" in version else []
    put = json.loads(aws("put-record", "--stream-name", name, "--partition-key", "p", "--data", "hello", *raw).stdout)
    assert put["ShardId"] == "shardId-000000000000"
    iterator = json.loads(aws("get-shard-iterator", "--stream-name", name, "--shard-id", "shardId-000000000000",
                              "--shard-iterator-type", "TRIM_HORIZON").stdout)["ShardIterator"]
    records = json.loads(aws("get-records", "--shard-iterator", iterator).stdout)["Records"]
    assert base64.b64decode(records[0]["Data"]) == b"hello", records
    listed = json.loads(aws("list-shards", "--stream-name", name).stdout)["Shards"]
    assert listed[0]["ShardId"] == "shardId-000000000000"
    missing = aws("describe-stream", "--stream-name", "no-such-stream", check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr, missing.stderr
    aws("delete-stream", "--stream-name", name)
    ok("aws cli: create-stream, wait, describe-stream-summary, put-record, get-shard-iterator, get-records, list-shards, errors")


name = streams_and_records()
reshard(name)
if AWS_CLI:
    cli()
else:
    print("skipped: aws cli checks (no AWS CLI given)")
print("boto3 conformance: all checks passed")

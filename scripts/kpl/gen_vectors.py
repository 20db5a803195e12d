#!/usr/bin/env python3
"""Generate KPL aggregation test vectors with AWS's own library.

Writes core/kinesis/tests/data/kpl_vectors.json: aggregated blobs made by
aws-kinesis-agg's AggRecord (the Python port of the KPL aggregator) and the
user records aws-kinesis-agg's deaggregator reads back from them, plus a few
corrupted blobs and what the deaggregator does with them.

Setup (outside the repository):
    python3 -m venv /tmp/aggvenv
    /tmp/aggvenv/bin/pip install aws-kinesis-agg==1.2.3 protobuf
    /tmp/aggvenv/bin/python scripts/kpl/gen_vectors.py

The output is deterministic; re-running it must not change the committed file.
"""

import base64
import hashlib
import json
import os
import sys
from importlib.metadata import version

import aws_kinesis_agg
from aws_kinesis_agg.aggregator import AggRecord
from aws_kinesis_agg import messages_pb2
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "core", "kinesis", "tests", "data", "kpl_vectors.json")


def b64(data):
    return base64.b64encode(data).decode("ascii")


def aggregate(records):
    agg = AggRecord()
    for pk, ehk, data in records:
        if not agg.add_user_record(pk, data, ehk):
            raise SystemExit("vector too big for one aggregate")
    _pk, _ehk, blob = agg.get_contents()
    return blob


def deaggregate(blob):
    """What aws-kinesis-agg's deaggregator yields for a Kinesis record holding `blob`.

    None when it passes the record through unchanged (not an aggregate)."""
    record = {"kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": "1", "partitionKey": "outer",
                          "approximateArrivalTimestamp": 0, "data": b64(blob)}}
    out = list(iter_deaggregate_records([record]))
    if len(out) == 1 and out[0] is record:
        return None
    # aws-kinesis-agg's deaggregator reads explicit_hash_key_table[index]
    # without checking that the index is set (proto2 default 0), so a record
    # without an explicit hash key gets the table's first key whenever the
    # table is non-empty. The KPL format and the Java KCL
    # (hasExplicitHashKeyIndex()) say "no explicit hash key": correct that.
    message = messages_pb2.AggregatedRecord()
    message.ParseFromString(blob[len(aws_kinesis_agg.MAGIC):-aws_kinesis_agg.DIGEST_SIZE])
    for r, mr in zip(out, message.records):
        if not mr.HasField("explicit_hash_key_index"):
            r["kinesis"]["explicitHashKey"] = None
    return [{"partition_key": r["kinesis"]["partitionKey"], "explicit_hash_key": r["kinesis"]["explicitHashKey"],
             "sub_sequence_number": r["kinesis"]["subSequenceNumber"],
             "data": r["kinesis"]["data"].decode("ascii")} for r in out]


def valid(name, records):
    blob = aggregate(records)
    expected = deaggregate(blob)
    assert expected is not None and len(expected) == len(records), name
    return {"name": name, "kind": "valid", "aggregate": b64(blob),
            "input": [{"partition_key": pk, "explicit_hash_key": ehk, "data": b64(data)} for pk, ehk, data in records],
            "expected": expected}


def corrupt(name, blob, note, kcl=None):
    """A blob the deaggregator rejects (passes through) or only partly reads.

    `kcl` records where the Java KCL (protobuf-java) differs from the Python
    library, as (kind, why)."""
    expected = deaggregate(blob)
    vector = {"name": name, "kind": "passthrough" if expected is None else "partial", "aggregate": b64(blob),
              "note": note, "expected": expected}
    if kcl is not None:
        vector["kcl_kind"], vector["kcl_note"] = kcl
    return vector


def framed(body):
    return aws_kinesis_agg.MAGIC + body + hashlib.md5(body).digest()


def main():
    vectors = [
        valid("single", [("pk", None, b"hello")]),
        valid("shared_keys", [("a", None, b"1"), ("b", None, b"2"), ("a", None, b"3"), ("b", None, b"4")]),
        valid("explicit_hash_keys", [
            ("a", "0", b"lowest"),
            ("b", "340282366920938463463374607431768211455", b"highest"),
            ("c", None, b"hashed"),
            ("d", "170141183460469231731687303715884105728", b"middle"),
            ("e", "0", b"shared ehk"),
        ]),
        valid("empty_data", [("pk", None, b""), ("pk", None, b"x"), ("pk2", None, b"")]),
        valid("unicode_keys", [("ключ", None, "данные".encode()), ("日本語キー", None, b"jp"), ("🔑-emoji", "42", "🙂".encode())]),
        valid("binary_data", [("bin", None, bytes(range(256)))]),
        valid("many_records", [("pk-%d" % (i % 37), None, ("record-%05d" % i).encode()) for i in range(1000)]),
        valid("large_record", [("big", None, bytes((i * 7) % 251 for i in range(40_000))), ("small", None, b"s")]),
        valid("long_partition_key", [("k" * 256, None, b"max length key")]),
    ]

    good = base64.b64decode(vectors[1]["aggregate"])
    bad_md5 = bytearray(good)
    bad_md5[-1] ^= 0xFF
    bad_magic = bytearray(good)
    bad_magic[0] = 0x00
    vectors += [
        corrupt("bad_md5", bytes(bad_md5), "last digest byte flipped"),
        corrupt("bad_magic", bytes(bad_magic), "first magic byte zeroed"),
        corrupt("truncated", good[:-5], "last 5 bytes cut (digest no longer matches)"),
        corrupt("truncated_body", framed(good[4:-16][:-3]), "protobuf cut inside a record, digest recomputed"),
        corrupt("magic_only", aws_kinesis_agg.MAGIC, "just the magic"),
        corrupt("magic_and_digest", aws_kinesis_agg.MAGIC + hashlib.md5(b"").digest(), "empty protobuf: not an aggregate"),
        corrupt("garbage_protobuf", framed(b"\xff\xff\xff"), "valid digest over bytes that are no protobuf"),
        corrupt("missing_required_data", framed(b"\x0a\x01a\x1a\x02\x08\x00"), "Record without its required data field",
                kcl=("passthrough", "protobuf-java's parseFrom rejects a message missing a required field "
                                    "(InvalidProtocolBufferException), so the KCL passes the record through; "
                                    "Python's upb parser does not check required fields")),
        # Record 0 is fine, record 1 points at partition key 3 of a one-key table:
        # the deaggregator (like the Java KCL) keeps record 0 and drops the rest.
        corrupt("pk_index_out_of_range", framed(b"\x0a\x01a" + b"\x1a\x05\x08\x00\x1a\x01x" + b"\x1a\x05\x08\x03\x1a\x01y"
                                                 + b"\x1a\x05\x08\x00\x1a\x01z"),
                "second record's partition key index out of range"),
    ]
    doc = {
        "generator": "scripts/kpl/gen_vectors.py with aws-kinesis-agg %s, protobuf %s" % (version("aws-kinesis-agg"), version("protobuf")),
        "format": "data fields are base64; kind valid: expected = deaggregator output and input = what was aggregated; "
                  "passthrough: deaggregator returned the record unchanged; partial: deaggregator kept only `expected`",
        "vectors": vectors,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote %d vectors to %s" % (len(vectors), os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()

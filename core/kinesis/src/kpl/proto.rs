//! A hand-written reader and writer for the three protobuf messages of the
//! KPL aggregation format (no prost, no protoc).
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! Parsing follows protobuf-java (what the Java KCL uses): a field whose wire
//! type does not match its declaration is an unknown field and is skipped,
//! unknown fields of every wire type (groups included) are skipped, the last
//! occurrence of a singular field wins, a missing `required` field fails the
//! parse, and strings are decoded lossily (protobuf-java does not reject
//! invalid UTF-8 in proto2 `string` fields). Record data is returned as
//! zero-copy slices of the input buffer.

use bytes::Bytes;

/// Why the protobuf part of an aggregate did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtoError {
    /// The buffer ended inside a field.
    Truncated,
    /// A varint longer than 10 bytes.
    VarintTooLong,
    /// Wire type 6 or 7, field number 0, or an unbalanced group.
    InvalidTag,
    /// A `required` field is absent.
    MissingRequired,
    /// Groups nested deeper than protobuf-java's recursion limit.
    TooDeep,
}

/// The decoded `Record` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordMessage {
    pub partition_key_index: u64,
    pub explicit_hash_key_index: Option<u64>,
    pub data: Bytes,
}

/// The decoded `AggregatedRecord` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AggregatedMessage {
    pub partition_key_table: Vec<String>,
    pub explicit_hash_key_table: Vec<String>,
    pub records: Vec<RecordMessage>,
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;
const RECURSION_LIMIT: u32 = 100;

/// A cursor over a slice of `buf` (`pos..end`).
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a Bytes, pos: usize, end: usize) -> Self {
        Reader { buf, pos, end }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for i in 0..10 {
            if self.pos >= self.end {
                return Err(ProtoError::Truncated);
            }
            let byte = self.buf[self.pos];
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintTooLong)
    }

    /// Reads a tag; returns `(field number, wire type)`.
    fn tag(&mut self) -> Result<(u64, u8), ProtoError> {
        let tag = self.varint()?;
        let field = tag >> 3;
        // protobuf-java reads tags as 32-bit values
        if field == 0 || tag > u64::from(u32::MAX) {
            return Err(ProtoError::InvalidTag);
        }
        Ok((field, (tag & 7) as u8))
    }

    fn skip(&mut self, n: usize) -> Result<(), ProtoError> {
        if self.end - self.pos < n {
            return Err(ProtoError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Reads a length prefix and returns the `(start, end)` of the payload.
    fn length_delimited(&mut self) -> Result<(usize, usize), ProtoError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ProtoError::Truncated)?;
        let start = self.pos;
        self.skip(len)?;
        Ok((start, start + len))
    }

    fn bytes(&mut self) -> Result<Bytes, ProtoError> {
        let (start, end) = self.length_delimited()?;
        Ok(self.buf.slice(start..end))
    }

    fn string(&mut self) -> Result<String, ProtoError> {
        let (start, end) = self.length_delimited()?;
        Ok(String::from_utf8_lossy(&self.buf[start..end]).into_owned())
    }

    /// Skips the value of a field of wire type `wire` whose tag was read.
    fn skip_field(&mut self, field: u64, wire: u8, depth: u32) -> Result<(), ProtoError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.skip(8),
            WIRE_LEN => self.length_delimited().map(drop),
            WIRE_FIXED32 => self.skip(4),
            WIRE_START_GROUP => {
                if depth >= RECURSION_LIMIT {
                    return Err(ProtoError::TooDeep);
                }
                loop {
                    if self.at_end() {
                        return Err(ProtoError::Truncated);
                    }
                    let (inner, inner_wire) = self.tag()?;
                    if inner_wire == WIRE_END_GROUP {
                        return if inner == field { Ok(()) } else { Err(ProtoError::InvalidTag) };
                    }
                    self.skip_field(inner, inner_wire, depth + 1)?;
                }
            }
            // an END_GROUP outside a group, or wire types 6 and 7
            _ => Err(ProtoError::InvalidTag),
        }
    }
}

/// Parses an `AggregatedRecord` from `buf[start..end]`.
pub(crate) fn decode_aggregated(buf: &Bytes, start: usize, end: usize) -> Result<AggregatedMessage, ProtoError> {
    let mut reader = Reader::new(buf, start, end);
    let mut message = AggregatedMessage::default();
    while !reader.at_end() {
        match reader.tag()? {
            (1, WIRE_LEN) => message.partition_key_table.push(reader.string()?),
            (2, WIRE_LEN) => message.explicit_hash_key_table.push(reader.string()?),
            (3, WIRE_LEN) => {
                let (record_start, record_end) = reader.length_delimited()?;
                message.records.push(decode_record(buf, record_start, record_end)?);
            }
            (field, wire) => reader.skip_field(field, wire, 0)?,
        }
    }
    Ok(message)
}

fn decode_record(buf: &Bytes, start: usize, end: usize) -> Result<RecordMessage, ProtoError> {
    let mut reader = Reader::new(buf, start, end);
    let mut partition_key_index = None;
    let mut explicit_hash_key_index = None;
    let mut data = None;
    while !reader.at_end() {
        match reader.tag()? {
            (1, WIRE_VARINT) => partition_key_index = Some(reader.varint()?),
            (2, WIRE_VARINT) => explicit_hash_key_index = Some(reader.varint()?),
            (3, WIRE_LEN) => data = Some(reader.bytes()?),
            (4, WIRE_LEN) => {
                let (tag_start, tag_end) = reader.length_delimited()?;
                check_tag(buf, tag_start, tag_end)?;
            }
            (field, wire) => reader.skip_field(field, wire, 0)?,
        }
    }
    match (partition_key_index, data) {
        (Some(partition_key_index), Some(data)) => Ok(RecordMessage { partition_key_index, explicit_hash_key_index, data }),
        _ => Err(ProtoError::MissingRequired),
    }
}

/// Tags are parsed only to validate them (their `key` is required); their
/// content is not exposed.
fn check_tag(buf: &Bytes, start: usize, end: usize) -> Result<(), ProtoError> {
    let mut reader = Reader::new(buf, start, end);
    let mut has_key = false;
    while !reader.at_end() {
        match reader.tag()? {
            (1, WIRE_LEN) => {
                reader.length_delimited()?;
                has_key = true;
            }
            (field, wire) => reader.skip_field(field, wire, 0)?,
        }
    }
    if has_key {
        Ok(())
    } else {
        Err(ProtoError::MissingRequired)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_len_field(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
    put_varint(out, (field << 3) | u64::from(WIRE_LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Serialises an `AggregatedRecord` in field-number order, which is what
/// protobuf's own serialisers (C++, Java, Python) produce, so the output is
/// byte-identical to theirs for the same message.
pub(crate) fn encode_aggregated(pks: &[&str], ehks: &[&str], records: &[(u64, Option<u64>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for pk in pks {
        put_len_field(&mut out, 1, pk.as_bytes());
    }
    for ehk in ehks {
        put_len_field(&mut out, 2, ehk.as_bytes());
    }
    for (pk_index, ehk_index, data) in records {
        let mut len = 1 + varint_len(*pk_index) + 1 + varint_len(data.len() as u64) + data.len();
        if let Some(ehk_index) = ehk_index {
            len += 1 + varint_len(*ehk_index);
        }
        put_varint(&mut out, (3 << 3) | u64::from(WIRE_LEN));
        put_varint(&mut out, len as u64);
        put_varint(&mut out, 1 << 3);
        put_varint(&mut out, *pk_index);
        if let Some(ehk_index) = ehk_index {
            put_varint(&mut out, 2 << 3);
            put_varint(&mut out, *ehk_index);
        }
        put_len_field(&mut out, 3, data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<AggregatedMessage, ProtoError> {
        let buf = Bytes::copy_from_slice(bytes);
        decode_aggregated(&buf, 0, buf.len())
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let buf = Bytes::from(out);
            assert_eq!(Reader::new(&buf, 0, buf.len()).varint(), Ok(v));
        }
    }

    #[test]
    fn empty_message_is_valid() {
        assert_eq!(decode(&[]), Ok(AggregatedMessage::default()));
    }

    #[test]
    fn skips_unknown_fields_of_every_wire_type() {
        let mut msg = Vec::new();
        put_varint(&mut msg, 9 << 3); // varint
        put_varint(&mut msg, 300);
        put_varint(&mut msg, (10 << 3) | 1); // fixed64
        msg.extend_from_slice(&[1; 8]);
        put_varint(&mut msg, (11 << 3) | 5); // fixed32
        msg.extend_from_slice(&[1; 4]);
        put_varint(&mut msg, (12 << 3) | 3); // group with a nested group
        put_varint(&mut msg, 1 << 3);
        put_varint(&mut msg, 7);
        put_varint(&mut msg, (2 << 3) | 3);
        put_varint(&mut msg, (2 << 3) | 4);
        put_varint(&mut msg, (12 << 3) | 4);
        put_len_field(&mut msg, 13, b"ignored");
        put_len_field(&mut msg, 1, b"pk");
        // field 1 with the wrong wire type is an unknown field
        put_varint(&mut msg, 1 << 3);
        put_varint(&mut msg, 5);
        let mut record = Vec::new();
        put_varint(&mut record, 1 << 3);
        put_varint(&mut record, 0);
        put_varint(&mut record, (99 << 3) | 5);
        record.extend_from_slice(&[0; 4]);
        put_len_field(&mut record, 3, b"data");
        let mut tag = Vec::new();
        put_len_field(&mut tag, 1, b"k");
        put_len_field(&mut tag, 2, b"v");
        put_len_field(&mut record, 4, &tag);
        put_len_field(&mut msg, 3, &record);
        let parsed = decode(&msg).unwrap();
        assert_eq!(parsed.partition_key_table, vec!["pk".to_owned()]);
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(&parsed.records[0].data[..], b"data");
        assert_eq!(parsed.records[0].explicit_hash_key_index, None);
    }

    #[test]
    fn rejects_broken_messages() {
        // truncated length
        assert_eq!(decode(&[0x0a, 0x05, b'a']), Err(ProtoError::Truncated));
        // wire type 7
        assert_eq!(decode(&[0x0f]), Err(ProtoError::InvalidTag));
        // field number 0
        assert_eq!(decode(&[0x00, 0x01]), Err(ProtoError::InvalidTag));
        // end group without start
        assert_eq!(decode(&[0x0c]), Err(ProtoError::InvalidTag));
        // unterminated group
        assert_eq!(decode(&[0x0b]), Err(ProtoError::Truncated));
        // varint too long
        assert_eq!(decode(&[0x08; 1].iter().chain([0xff; 11].iter()).copied().collect::<Vec<_>>()), Err(ProtoError::VarintTooLong));
        // record without data
        let mut msg = Vec::new();
        put_len_field(&mut msg, 3, &[0x08, 0x00]);
        assert_eq!(decode(&msg), Err(ProtoError::MissingRequired));
        // record without partition key index
        let mut msg = Vec::new();
        put_len_field(&mut msg, 3, &[0x1a, 0x00]);
        assert_eq!(decode(&msg), Err(ProtoError::MissingRequired));
        // tag without key
        let mut msg = Vec::new();
        put_len_field(&mut msg, 3, &[0x08, 0x00, 0x1a, 0x00, 0x22, 0x02, 0x12, 0x00]);
        assert_eq!(decode(&msg), Err(ProtoError::MissingRequired));
    }

    #[test]
    fn last_singular_field_wins_and_data_is_zero_copy() {
        let msg = [0x1a, 0x08, 0x08, 0x01, 0x08, 0x00, 0x1a, 0x02, b'h', b'i'];
        let buf = Bytes::copy_from_slice(&msg);
        let parsed = decode_aggregated(&buf, 0, buf.len()).unwrap();
        assert_eq!(parsed.records[0].partition_key_index, 0);
        assert_eq!(parsed.records[0].data.as_ptr(), buf[8..].as_ptr());
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let parsed = decode(&[0x0a, 0x02, 0xff, b'a']).unwrap();
        assert_eq!(parsed.partition_key_table, vec!["\u{fffd}a".to_owned()]);
    }
}

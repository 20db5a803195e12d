//! awsJson1_1: request documents decoded with serde_json straight into
//! [`Input`]; responses written by hand (blobs base64-encoded in place,
//! timestamps as epoch seconds with millisecond fractions).

use std::fmt;

use base64::Engine;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Input, Output};

/// Decodes a JSON request document.
pub(crate) fn decode(body: &[u8]) -> Result<Input, String> {
    serde_json::from_slice::<Input>(body).map_err(|e| e.to_string())
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Input, D::Error> {
        deserializer.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = Input;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Input, E> {
        Ok(Input::Null)
    }

    fn visit_none<E>(self) -> Result<Input, E> {
        Ok(Input::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Input, E> {
        Ok(Input::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Input, E> {
        Ok(Input::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Input, E> {
        Ok(Input::Int(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Input, E> {
        Ok(Input::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Input, E> {
        Ok(Input::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Input, E> {
        Ok(Input::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Input>()? {
            items.push(item);
        }
        Ok(Input::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Input, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Input>()? {
            members.push((key, value));
        }
        Ok(Input::Map(members))
    }
}

/// Encodes a response document.
pub(crate) fn encode(output: &Output) -> Vec<u8> {
    let mut out = Vec::with_capacity(estimate(output));
    write(&mut out, output);
    out
}

/// A cheap upper-bound guess of the encoded size, so large GetRecords
/// answers are written without reallocating.
fn estimate(output: &Output) -> usize {
    match output {
        Output::Bytes(b) => b.len() * 4 / 3 + 4,
        Output::Str(s) => s.len() + 8,
        Output::List(items) => items.iter().map(estimate).sum::<usize>() + items.len() + 2,
        Output::Obj(members) => members.iter().map(|(k, v)| k.len() + 4 + estimate(v)).sum::<usize>() + 2,
        _ => 24,
    }
}

fn write(out: &mut Vec<u8>, output: &Output) {
    match output {
        Output::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Output::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Output::Str(s) => write_str(out, s),
        Output::Bytes(b) => {
            out.push(b'"');
            let start = out.len();
            out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
            let written = base64::engine::general_purpose::STANDARD.encode_slice(b, &mut out[start..]).unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
        Output::Time(ms) => {
            let sign = if *ms < 0 { "-" } else { "" };
            let abs = ms.unsigned_abs();
            out.extend_from_slice(format!("{sign}{}.{:03}", abs / 1000, abs % 1000).as_bytes());
        }
        Output::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Output::Obj(members) => {
            out.push(b'{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write(out, value);
            }
            out.push(b'}');
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_documents() {
        let input = decode(br#"{"StreamName":"s","Limit":5,"T":1.5,"R":[{"Data":"AA=="}],"N":null}"#).unwrap();
        assert_eq!(input.get("StreamName"), Some(&Input::Str("s".into())));
        assert_eq!(input.get("Limit"), Some(&Input::Int(5)));
        assert_eq!(input.get("T"), Some(&Input::Float(1.5)));
        assert_eq!(input.get("N"), None);
        assert!(matches!(input.get("R"), Some(Input::List(items)) if items.len() == 1));
    }

    #[test]
    fn encodes_blobs_times_and_escapes() {
        let output = Output::Obj(vec![
            ("Data", Output::Bytes(bytes::Bytes::from_static(b"hi"))),
            ("T", Output::Time(1_700_000_000_123)),
            ("S", Output::str("a\"b\n\u{1}")),
            ("L", Output::List(vec![Output::Int(-3), Output::Bool(true)])),
        ]);
        let text = String::from_utf8(encode(&output)).unwrap();
        assert_eq!(text, r#"{"Data":"aGk=","T":1700000000.123,"S":"a\"b\n\u0001","L":[-3,true]}"#);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["S"], "a\"b\n\u{1}");
    }
}

//! awsCbor1_1 (RFC 8949 subset), what the AWS Java SDK sends to Kinesis by
//! default: maps with text keys (definite or indefinite length), text and
//! byte strings (also chunked), integers, floats (16/32/64-bit), booleans,
//! null, and tag 1 timestamps (the SDK writes epoch *milliseconds* as an
//! integer under tag 1; a float under tag 1 is read as seconds, RFC 8949's
//! meaning). Responses use definite lengths.

use super::{Input, Output};

/// Most nesting a request may use (Kinesis documents are three deep).
const MAX_DEPTH: usize = 32;
/// The "break" stop code ending an indefinite-length item.
const BREAK: u8 = 0xff;

/// Decodes a CBOR request document.
pub(crate) fn decode(body: &[u8]) -> Result<Input, String> {
    let mut decoder = Decoder { data: body, pos: 0 };
    let value = decoder.item(0)?;
    if decoder.pos != body.len() {
        return Err(format!("{} trailing bytes after the CBOR document", body.len() - decoder.pos));
    }
    Ok(value)
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("unexpected end of CBOR data")?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("unexpected end of CBOR data")?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The argument of an initial byte; `None` for indefinite length.
    fn argument(&mut self, info: u8) -> Result<Option<u64>, String> {
        Ok(Some(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "short")?)),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| "short")?)),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "short")?),
            31 => return Ok(None),
            _ => return Err(format!("invalid CBOR additional information {info}")),
        }))
    }

    fn length(&mut self, info: u8) -> Result<Option<usize>, String> {
        match self.argument(info)? {
            None => Ok(None),
            Some(n) => usize::try_from(n).ok().filter(|&n| n <= self.data.len()).map(Some).ok_or_else(|| "CBOR length too large".into()),
        }
    }

    fn at_break(&mut self) -> Result<bool, String> {
        if *self.data.get(self.pos).ok_or("unexpected end of CBOR data")? == BREAK {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn string_bytes(&mut self, major: u8, info: u8) -> Result<Vec<u8>, String> {
        match self.length(info)? {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let initial = self.byte()?;
                    if initial >> 5 != major {
                        return Err("mixed chunk types in an indefinite-length CBOR string".into());
                    }
                    let n = self.length(initial & 0x1f)?.ok_or("nested indefinite-length CBOR string")?;
                    out.extend_from_slice(self.take(n)?);
                }
                Ok(out)
            }
        }
    }

    fn item(&mut self, depth: usize) -> Result<Input, String> {
        if depth > MAX_DEPTH {
            return Err("CBOR document nested too deeply".into());
        }
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        match major {
            0 => Ok(Input::Int(i128::from(self.argument(info)?.ok_or("indefinite integer")?))),
            1 => Ok(Input::Int(-1 - i128::from(self.argument(info)?.ok_or("indefinite integer")?))),
            2 => Ok(Input::Bytes(self.string_bytes(2, info)?)),
            3 => String::from_utf8(self.string_bytes(3, info)?).map(Input::Str).map_err(|_| "invalid UTF-8 in a CBOR text string".into()),
            4 => {
                let mut items = Vec::new();
                match self.length(info)? {
                    Some(n) => {
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                }
                Ok(Input::List(items))
            }
            5 => {
                let mut members = Vec::new();
                let definite = self.length(info)?;
                let mut read = 0;
                loop {
                    match definite {
                        Some(n) if read == n => break,
                        None if self.at_break()? => break,
                        _ => {}
                    }
                    let key = match self.item(depth + 1)? {
                        Input::Str(key) => key,
                        other => return Err(format!("CBOR map key is not a text string: {other:?}")),
                    };
                    members.push((key, self.item(depth + 1)?));
                    read += 1;
                }
                Ok(Input::Map(members))
            }
            6 => {
                let tag = self.argument(info)?.ok_or("indefinite CBOR tag")?;
                let value = self.item(depth + 1)?;
                match (tag, value) {
                    (1, Input::Int(ms)) => Ok(Input::TimeMillis(i64::try_from(ms).map_err(|_| "timestamp out of range")?)),
                    (1, Input::Float(secs)) => Ok(Input::TimeMillis((secs * 1000.0) as i64)),
                    (_, value) => Ok(value),
                }
            }
            _ => match info {
                20 => Ok(Input::Bool(false)),
                21 => Ok(Input::Bool(true)),
                22 | 23 => Ok(Input::Null),
                25 => {
                    let bits = u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "short")?);
                    Ok(Input::Float(half_to_f64(bits)))
                }
                26 => Ok(Input::Float(f64::from(f32::from_be_bytes(self.take(4)?.try_into().map_err(|_| "short")?)))),
                27 => Ok(Input::Float(f64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "short")?))),
                _ => Err(format!("unsupported CBOR simple value {info}")),
            },
        }
    }
}

fn half_to_f64(bits: u16) -> f64 {
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let value = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mantissa + 1024.0) * 2f64.powi(e - 25),
    };
    if bits & 0x8000 != 0 {
        -value
    } else {
        value
    }
}

/// Encodes a response document.
pub(crate) fn encode(output: &Output) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, output);
    out
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        head(out, 0, i.unsigned_abs());
    } else {
        head(out, 1, (-1 - i).unsigned_abs());
    }
}

fn write(out: &mut Vec<u8>, output: &Output) {
    match output {
        Output::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Output::Int(i) => write_int(out, *i),
        Output::Str(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Output::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Output::Time(ms) => {
            head(out, 6, 1);
            write_int(out, *ms);
        }
        Output::List(items) => {
            head(out, 4, items.len() as u64);
            for item in items {
                write(out, item);
            }
        }
        Output::Obj(members) => {
            head(out, 5, members.len() as u64);
            for (key, value) in members {
                head(out, 3, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
                write(out, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_java_sdk_writes() {
        // {_ "StreamName": "s", "Data": h'0102', "Timestamp": 1(1700000000123), "Limit": 5, "F": 1.5 (f16)} indefinite map
        let mut body = vec![0xbf, 0x6a];
        body.extend_from_slice(b"StreamName");
        body.extend_from_slice(&[0x61, b's', 0x64]);
        body.extend_from_slice(b"Data");
        body.extend_from_slice(&[0x42, 1, 2, 0x69]);
        body.extend_from_slice(b"Timestamp");
        body.extend_from_slice(&[0xc1, 0x1b]);
        body.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        body.extend_from_slice(&[0x65]);
        body.extend_from_slice(b"Limit");
        body.extend_from_slice(&[0x05, 0x61, b'F', 0xf9, 0x3e, 0x00, 0xff]);
        let input = decode(&body).unwrap();
        assert_eq!(input.get("StreamName"), Some(&Input::Str("s".into())));
        assert_eq!(input.get("Data"), Some(&Input::Bytes(vec![1, 2])));
        assert_eq!(input.get("Timestamp"), Some(&Input::TimeMillis(1_700_000_000_123)));
        assert_eq!(input.get("Limit"), Some(&Input::Int(5)));
        assert_eq!(input.get("F"), Some(&Input::Float(1.5)));
    }

    #[test]
    fn round_trips_a_response() {
        let output = Output::Obj(vec![
            ("Data", Output::Bytes(bytes::Bytes::from(vec![7u8; 300]))),
            ("T", Output::Time(1_700_000_000_123)),
            ("N", Output::Int(-70_000)),
            ("L", Output::List(vec![Output::str("x"), Output::Bool(false)])),
        ]);
        let decoded = decode(&encode(&output)).unwrap();
        assert_eq!(decoded.get("Data"), Some(&Input::Bytes(vec![7u8; 300])));
        assert_eq!(decoded.get("T"), Some(&Input::TimeMillis(1_700_000_000_123)));
        assert_eq!(decoded.get("N"), Some(&Input::Int(-70_000)));
        assert_eq!(decoded.get("L"), Some(&Input::List(vec![Input::Str("x".into()), Input::Bool(false)])));
    }

    #[test]
    fn rejects_truncated_and_trailing_data() {
        assert!(decode(&[0xa1, 0x61]).is_err());
        assert!(decode(&[0x01, 0x02]).is_err());
    }
}

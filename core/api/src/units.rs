//! Human units for configuration: sizes like `"5MiB"` and durations like
//! `"60s"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size or duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {hint}")]
pub struct ParseUnitError {
    /// `size` or `duration`.
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// What would have been accepted.
    pub hint: &'static str,
}

const SIZE_HINT: &str = "expected a whole number of bytes or a number with a unit B, KB, MB, GB, KiB, MiB, GiB (e.g. \"5MiB\")";
const DURATION_HINT: &str = "expected a number with a unit ms, s, m, h (e.g. \"60s\", \"500ms\", \"1h 30m\")";

/// A size in bytes, written as `"5MiB"`, `"512KB"`, `"100B"` or a bare
/// integer (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseUnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseUnitError { what: "size", value: s.to_owned(), hint: SIZE_HINT };
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num.parse().map_err(|_| err())?;
        let mult: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "KB" | "kB" | "kb" => 1_000,
            "MB" | "mb" => 1_000_000,
            "GB" | "gb" => 1_000_000_000,
            "KiB" | "kib" | "K" | "k" => 1 << 10,
            "MiB" | "mib" | "M" => 1 << 20,
            "GiB" | "gib" | "G" => 1 << 30,
            _ => return Err(err()),
        };
        let bytes = num * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
            return Err(err());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b % (1 << 30) == 0 {
            write!(f, "{}GiB", b >> 30)
        } else if b >= 1 << 20 && b % (1 << 20) == 0 {
            write!(f, "{}MiB", b >> 20)
        } else if b >= 1 << 10 && b % (1 << 10) == 0 {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A duration written as `"60s"`, `"500ms"`, `"5m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }
}

impl FromStr for HumanDuration {
    type Err = ParseUnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|_| ParseUnitError { what: "duration", value: s.to_owned(), hint: DURATION_HINT })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("5MiB".parse::<ByteSize>().unwrap().0, 5 << 20);
        assert_eq!("512KB".parse::<ByteSize>().unwrap().0, 512_000);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap().0, 1536);
        assert!("5 parsecs".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(5 << 20).to_string(), "5MiB");
    }

    #[test]
    fn durations() {
        assert_eq!("60s".parse::<HumanDuration>().unwrap().0, Duration::from_secs(60));
        assert_eq!("500ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(500));
        assert!("sixty".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn deserialize_from_toml() {
        #[derive(Deserialize)]
        struct C {
            size: ByteSize,
            n: ByteSize,
            d: HumanDuration,
        }
        let c: C = toml::from_str("size = \"5MiB\"\nn = 10\nd = \"2s\"").unwrap();
        assert_eq!(c.size.0, 5 << 20);
        assert_eq!(c.n.0, 10);
        assert_eq!(c.d.0, Duration::from_secs(2));
        let e = toml::from_str::<C>("size = \"5 bananas\"\nn = 1\nd = \"1s\"").err().unwrap();
        assert!(e.to_string().contains("invalid size"), "{e}");
    }
}

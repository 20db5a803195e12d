//! DynamoDB numbers (`N`): the JSON number text of a record is sent as it
//! was written (no detour through `f64`, so no precision is lost), after
//! checking it against DynamoDB's limits (38 significant digits, magnitude
//! between 1E-130 and 9.99…E+125). The same parse gives the number's stored
//! size and a canonical form used to compare key values (`1`, `1.0` and
//! `10E-1` are the same key to DynamoDB).

/// Most significant digits DynamoDB keeps.
pub const MAX_SIGNIFICANT_DIGITS: usize = 38;
/// Largest decimal exponent (of the first significant digit) DynamoDB stores.
pub const MAX_EXPONENT: i64 = 125;
/// Smallest decimal exponent DynamoDB stores.
pub const MIN_EXPONENT: i64 = -130;

/// A decimal number as sign, significant digits and exponent:
/// `±0.d₁d₂…dₙ × 10^(exponent+1)`, i.e. `exponent` is the power of ten of
/// the first significant digit (`123.45` → digits `12345`, exponent 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    /// True for negative non-zero numbers.
    pub negative: bool,
    /// Significant digits without leading or trailing zeros; empty for zero.
    pub digits: String,
    /// Power of ten of the first significant digit (0 for zero).
    pub exponent: i64,
}

/// Why a number cannot be stored; the messages are DynamoDB's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not a decimal number.
    #[error("the parameter cannot be converted to a numeric value: {text}")]
    NotANumber {
        /// The text.
        text: String,
    },
    /// Larger than 9.99…E+125.
    #[error("Number overflow. Attempting to store a number with magnitude larger than supported range: {text}")]
    Overflow {
        /// The text.
        text: String,
    },
    /// Smaller than 1E-130 (and not zero).
    #[error("Number underflow. Attempting to store a number with magnitude smaller than supported range: {text}")]
    Underflow {
        /// The text.
        text: String,
    },
    /// More than 38 significant digits.
    #[error("Attempting to store more than 38 significant digits in a Number: {text}")]
    TooPrecise {
        /// The text.
        text: String,
    },
}

impl Decimal {
    /// Parses a JSON-style decimal (`-12.5e3`); leading `+` and a missing
    /// integer part (`.5`) are accepted too.
    ///
    /// # Errors
    /// [`NumberError::NotANumber`] when the text is no decimal number.
    pub fn parse(text: &str) -> Result<Decimal, NumberError> {
        let not_a_number = || NumberError::NotANumber { text: text.to_owned() };
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent_text) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (integer, fraction) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.len() + fraction.len() == 0 || !all_digits(integer) || !all_digits(fraction) {
            return Err(not_a_number());
        }
        let written_exponent = match exponent_text {
            None => 0,
            Some(e) => parse_exponent(e).ok_or_else(not_a_number)?,
        };
        let joined: String = format!("{integer}{fraction}");
        let leading_zeros = joined.bytes().take_while(|&b| b == b'0').count();
        let digits = joined[leading_zeros..].trim_end_matches('0');
        if digits.is_empty() {
            return Ok(Decimal { negative: false, digits: String::new(), exponent: 0 });
        }
        // The first significant digit sits `leading_zeros` places after the
        // start of `joined`, whose first digit has power integer.len() - 1.
        let exponent = (integer.len() as i64 - 1 - leading_zeros as i64).saturating_add(written_exponent);
        Ok(Decimal { negative, digits: digits.to_owned(), exponent })
    }

    /// Parses and checks DynamoDB's limits.
    ///
    /// # Errors
    /// The [`NumberError`] DynamoDB would answer.
    pub fn parse_storable(text: &str) -> Result<Decimal, NumberError> {
        let decimal = Decimal::parse(text)?;
        if decimal.is_zero() {
            return Ok(decimal);
        }
        if decimal.exponent > MAX_EXPONENT {
            return Err(NumberError::Overflow { text: text.to_owned() });
        }
        if decimal.exponent < MIN_EXPONENT {
            return Err(NumberError::Underflow { text: text.to_owned() });
        }
        if decimal.digits.len() > MAX_SIGNIFICANT_DIGITS {
            return Err(NumberError::TooPrecise { text: text.to_owned() });
        }
        Ok(decimal)
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Bytes DynamoDB counts for this number's value: numbers are stored
    /// as base-100 digit pairs, so one byte per two significant digits
    /// (aligned on the decimal point, hence one more when an even count of
    /// digits starts at an even exponent), one byte of exponent, and one
    /// more for a negative number; zero takes one byte. AWS documents
    /// "approximately 1 byte per two significant digits + 1"; this is the
    /// exact rule, as dynalite also implements it.
    pub fn stored_size(&self) -> u64 {
        if self.is_zero() {
            return 1;
        }
        let n = self.digits.len() as u64;
        let misaligned = u64::from(n & 1 == 0 && self.exponent.rem_euclid(2) == 0);
        1 + n.div_ceil(2) + misaligned + u64::from(self.negative)
    }

    /// The same text for every spelling of the same value (`1`, `1.0`,
    /// `10e-1` → `1e0`); used to compare key values.
    pub fn canonical(&self) -> String {
        if self.is_zero() {
            return "0".to_owned();
        }
        format!("{}{}e{}", if self.negative { "-" } else { "" }, self.digits, self.exponent)
    }
}

/// An exponent, saturated far beyond DynamoDB's range so that absurd
/// exponents still classify as overflow or underflow.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX / 2).min(i64::MAX / 2);
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (bool, String, i64) {
        let d = Decimal::parse(text).expect("a number");
        (d.negative, d.digits, d.exponent)
    }

    #[test]
    fn parses_sign_digits_and_exponent() {
        assert_eq!(parts("123.45"), (false, "12345".into(), 2));
        assert_eq!(parts("-0.00120"), (true, "12".into(), -3));
        assert_eq!(parts("1e3"), (false, "1".into(), 3));
        assert_eq!(parts("1500E-2"), (false, "15".into(), 1));
        assert_eq!(parts("0"), (false, String::new(), 0));
        assert_eq!(parts("-0.0e10"), (false, String::new(), 0));
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("abc").is_err());
        assert!(Decimal::parse("1e").is_err());
        assert!(Decimal::parse("").is_err());
    }

    #[test]
    fn canonical_form_equates_spellings() {
        let canon = |t: &str| Decimal::parse(t).expect("number").canonical();
        assert_eq!(canon("1"), canon("1.0"));
        assert_eq!(canon("1"), canon("10e-1"));
        assert_eq!(canon("-0"), canon("0.000"));
        assert_ne!(canon("1"), canon("-1"));
        assert_ne!(canon("1"), canon("10"));
    }

    #[test]
    fn limits_are_dynamodbs() {
        let ok = "12345678901234567890123456789012345678"; // 38 digits
        assert!(Decimal::parse_storable(ok).is_ok());
        assert!(Decimal::parse_storable("1234567890123456789012345678901234567800000").is_ok(), "trailing zeros are not significant");
        assert!(matches!(Decimal::parse_storable("123456789012345678901234567890123456789"), Err(NumberError::TooPrecise { .. })));
        assert!(Decimal::parse_storable("9.9999999999999999999999999999999999999E+125").is_ok());
        assert!(matches!(Decimal::parse_storable("1E+126"), Err(NumberError::Overflow { .. })));
        assert!(Decimal::parse_storable("1E-130").is_ok());
        assert!(matches!(Decimal::parse_storable("1E-131"), Err(NumberError::Underflow { .. })));
        assert!(matches!(Decimal::parse_storable("1e99999999999999999999999"), Err(NumberError::Overflow { .. })));
        assert!(Decimal::parse_storable("0e99999").is_ok());
    }

    #[test]
    fn stored_size_follows_base_100_digits() {
        let size = |t: &str| Decimal::parse(t).expect("number").stored_size();
        assert_eq!(size("0"), 1);
        assert_eq!(size("1"), 2);
        assert_eq!(size("-1"), 3);
        assert_eq!(size("12"), 2, "two digits starting at an odd exponent: one pair");
        assert_eq!(size("1.2"), 3, "two digits starting at an even exponent span two pairs");
        assert_eq!(size("123"), 3);
        assert_eq!(size("12345678901234567890123456789012345678"), 1 + 19, "38 digits from an odd exponent: 19 pairs");
    }
}

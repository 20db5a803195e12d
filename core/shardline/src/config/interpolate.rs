//! Environment interpolation in pipeline files: `${NAME}` is replaced by the
//! variable's value, `${NAME:-default}` falls back to `default` when the
//! variable is unset or empty, and `$$` writes a literal `$`. Values may not
//! contain newlines, so line numbers in error messages stay true.

/// A reference to a variable that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    /// Byte offset of the `$` in the original text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Replaces `${...}` references using `lookup`.
///
/// # Errors
/// Every unresolvable reference (unset without default, unterminated, bad
/// name, newline in the value).
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let at = offset + i;
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            offset += i + 2;
            rest = stripped;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            errors.push(InterpolationError { offset: at, message: "unterminated `${`".to_owned() });
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let reference = &body[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(InterpolationError { offset: at, message: format!("`${{{reference}}}` is not a valid variable reference") });
        } else {
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) if v.contains('\n') => {
                    errors.push(InterpolationError { offset: at, message: format!("environment variable {name} contains a newline") })
                }
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => errors.push(InterpolationError {
                    offset: at,
                    message: format!("environment variable {name} is not set (write `${{{name}:-default}}` for a default)"),
                }),
            }
        }
        let consumed = i + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4568".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_defaults() {
        assert_eq!(interpolate("a ${PORT} b", env).unwrap(), "a 4568 b");
        assert_eq!(interpolate("${MISSING:-x}", env).unwrap(), "x");
        assert_eq!(interpolate("${EMPTY:-y}", env).unwrap(), "y");
        assert_eq!(interpolate("cost $$5 and $x", env).unwrap(), "cost $5 and $x");
    }

    #[test]
    fn reports_unset_with_offset() {
        let errors = interpolate("line\nx = \"${NOPE}\"", env).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].offset, 10);
        assert!(errors[0].message.contains("NOPE is not set"));
        assert!(interpolate("${UNCLOSED", env).is_err());
        assert!(interpolate("${bad-name}", env).is_err());
    }
}

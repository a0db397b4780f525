//! Reading numeric profile fields the way pyDE1 does (`float(value)`), with de1d's
//! stricter edges.
//!
//! de1app writes every scalar as a JSON string (`"9.0"`, `"0"`), other tools write JSON
//! numbers; pyDE1 passes both through Python's `float()`, so both are accepted here.
//! String forms follow `float()`: surrounding whitespace is ignored, `+`/`-` signs,
//! exponents, a leading or trailing `.` and `_` between digits (`"1_000"`) are allowed.
//!
//! Deliberately stricter than pyDE1 (each of these is a profile error here):
//! * NaN and infinities (`"nan"`, `"inf"`): pyDE1 accepts some of them while parsing and
//!   then fails in the middle of the upload, or keeps them as stop targets;
//! * JSON booleans (`float(True)` is 1.0 in Python; no profile writer emits them);
//! * non-ASCII digits, which `float()` also reads.

use serde_json::Value;

use super::error::{JsonKind, ProfileError, ProfileErrorKind};

/// `value` read as a finite number, or an error naming `path`.
pub(crate) fn number(path: &str, value: &Value) -> Result<f64, ProfileError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_python_float(s),
        other => {
            return Err(ProfileError::new(
                path,
                ProfileErrorKind::WrongType {
                    expected: "a number or a numeric string",
                    found: JsonKind::of(other),
                },
            ))
        }
    };
    let Some(v) = parsed else {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(ProfileError::new(
            path,
            ProfileErrorKind::NotANumber { text },
        ));
    };
    if !v.is_finite() {
        return Err(ProfileError::new(
            path,
            ProfileErrorKind::NotFinite { value: v },
        ));
    }
    Ok(v)
}

/// Python's `float(str)` for ASCII text: `None` where Python raises `ValueError`.
fn parse_python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.contains('_') {
        // PEP 515: an underscore is only allowed between two digits.
        let b = t.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'_' {
                let before = i.checked_sub(1).and_then(|j| b.get(j));
                let after = b.get(i + 1);
                if !matches!((before, after), (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit())
                {
                    return None;
                }
            }
        }
        return t.replace('_', "").parse().ok();
    }
    t.parse().ok()
}

/// Python's `round()` to an integer: half to even.
pub(crate) fn round_half_even(v: f64) -> f64 {
    v.round_ties_even()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> Result<f64, ProfileError> {
        number("x", &v)
    }

    #[test]
    fn numbers_and_numeric_strings_like_python_float() {
        assert_eq!(n(json!(9)).unwrap(), 9.0);
        assert_eq!(n(json!(9.5)).unwrap(), 9.5);
        assert_eq!(n(json!("9.0")).unwrap(), 9.0);
        assert_eq!(n(json!(" 88.5\n")).unwrap(), 88.5);
        assert_eq!(n(json!("+1.5")).unwrap(), 1.5);
        assert_eq!(n(json!("-2")).unwrap(), -2.0);
        assert_eq!(n(json!(".5")).unwrap(), 0.5);
        assert_eq!(n(json!("5.")).unwrap(), 5.0);
        assert_eq!(n(json!("1e2")).unwrap(), 100.0);
        assert_eq!(n(json!("1_000.5")).unwrap(), 1000.5);
        assert_eq!(n(json!("8.600000000000001")).unwrap(), 8.600000000000001);
    }

    #[test]
    fn rejects_what_is_not_a_finite_number() {
        for bad in ["", " ", "abc", "1,5", "_1", "1_", "1__0", "0x10", ".", "1e"] {
            let e = n(json!(bad)).unwrap_err();
            assert!(
                matches!(e.kind, ProfileErrorKind::NotANumber { .. }),
                "{bad:?}: {e}"
            );
        }
        for bad in ["nan", "inf", "-Infinity"] {
            let e = n(json!(bad)).unwrap_err();
            assert!(
                matches!(e.kind, ProfileErrorKind::NotFinite { .. }),
                "{bad:?}: {e}"
            );
        }
        for bad in [json!(null), json!(true), json!([1]), json!({"v": 1})] {
            let e = n(bad.clone()).unwrap_err();
            assert!(
                matches!(e.kind, ProfileErrorKind::WrongType { .. }),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            n(json!("abc")).unwrap_err().to_string(),
            "x: \"abc\" is not a number"
        );
    }

    #[test]
    fn rounding_is_pythons() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(-0.4), 0.0);
    }
}

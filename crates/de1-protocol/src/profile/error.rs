//! [`ProfileError`]: why a profile was refused, and which field.

use std::fmt;

/// A profile that de1d refuses to send to the machine.
///
/// `path` names the offending field the way a person would write it
/// (`steps[3].seconds`, `target_volume_count_start`, `limiter.range` …); it is `profile`
/// when the document as a whole is at fault (not JSON, not an object). `Display` is one
/// line: `steps[3].seconds: 200 is out of range (0–127)`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ProfileError {
    /// The offending field, e.g. `steps[3].seconds`.
    pub path: String,
    /// What is wrong with it.
    pub kind: ProfileErrorKind,
}

impl ProfileError {
    pub(crate) fn new(path: impl Into<String>, kind: ProfileErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// The offending field, e.g. `steps[3].seconds` (`profile` for the whole document).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What is wrong with the field named by [`ProfileError::path`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileErrorKind {
    /// The bytes are not a JSON document.
    #[error("not valid JSON (line {line}, column {column}): {message}")]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// A field pyDE1 requires is absent.
    #[error("required field is missing")]
    Missing,
    /// The field has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: JsonKind,
    },
    /// A string where a number belongs, but it does not read as one.
    #[error("{text:?} is not a number")]
    NotANumber { text: String },
    /// NaN or an infinity.
    #[error("{value} is not a finite number")]
    NotFinite { value: f64 },
    /// The value does not fit what the machine can carry.
    #[error("{value} is out of range ({min}–{max})")]
    OutOfRange { value: f64, min: f64, max: f64 },
    /// A keyword field with a value that is not one of its keywords.
    #[error("{found} is not one of {}", QuotedList(.allowed))]
    UnknownValue {
        found: String,
        allowed: &'static [&'static str],
    },
    /// Only JSON v2 profiles (`"2"`, `"2.1"`, `2` …) are understood.
    #[error("{found} is not a supported profile version (only version 2, e.g. \"2\" or \"2.1\")")]
    UnsupportedVersion { found: String },
    /// No steps at all.
    #[error("a profile needs at least one step")]
    NoSteps,
    /// More steps than the machine has frames.
    #[error("{count} steps exceed the machine's {max}-frame limit")]
    TooManySteps { count: usize, max: usize },
    /// More preinfusion frames than there are frames.
    #[error("{value} exceeds the number of steps ({steps})")]
    PreinfuseExceedsSteps { value: f64, steps: usize },
}

/// The JSON type of a value, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    pub(crate) fn of(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Bool,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

/// `"a", "b" or "c"`.
struct QuotedList<'a>(&'a [&'a str]);

impl fmt::Display for QuotedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == n { " or " } else { ", " })?;
            }
            write!(f, "{item:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_the_path_first() {
        let e = ProfileError::new(
            "steps[3].seconds",
            ProfileErrorKind::OutOfRange {
                value: 200.0,
                min: 0.0,
                max: 127.0,
            },
        );
        assert_eq!(
            e.to_string(),
            "steps[3].seconds: 200 is out of range (0–127)"
        );

        let e = ProfileError::new(
            "steps[0].pump",
            ProfileErrorKind::UnknownValue {
                found: "\"steam\"".into(),
                allowed: &["flow", "pressure"],
            },
        );
        assert_eq!(
            e.to_string(),
            "steps[0].pump: \"steam\" is not one of \"flow\" or \"pressure\""
        );
        // Messages from JSON errors never span lines.
        let e = ProfileError::new(
            "profile",
            ProfileErrorKind::InvalidJson {
                line: 1,
                column: 38,
                message: "EOF while parsing a value".into(),
            },
        );
        assert!(!e.to_string().contains('\n'));
    }
}

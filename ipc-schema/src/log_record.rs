//! Log records that children forward to the launcher, which alone writes the log file.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest message forwarded, in bytes; longer messages are cut (at a character boundary)
/// so that a record always fits in one frame.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest target forwarded, in bytes.
pub const MAX_TARGET_LEN: usize = 256;

/// Severity of a record (the same scale as the `log` crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Upper-case name as printed in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

impl From<log::Level> for Level {
    fn from(l: log::Level) -> Level {
        match l {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        }
    }
}

impl From<Level> for log::Level {
    fn from(l: Level) -> log::Level {
        match l {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
            Level::Trace => log::Level::Trace,
        }
    }
}

/// One log line, as produced in a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the record was made, in microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    pub level: Level,
    /// The `log` target, usually the module path.
    pub target: String,
    pub message: String,
    /// How many records the sender had to drop (its queue was full) since the previous record
    /// it managed to send. The launcher reports this in the log.
    pub dropped_before: u64,
}

impl LogRecord {
    /// A record stamped now; target and message are cut to [`MAX_TARGET_LEN`] and
    /// [`MAX_MESSAGE_LEN`].
    pub fn new(level: Level, target: &str, message: String) -> LogRecord {
        LogRecord {
            time_us: now_us(),
            level,
            target: truncate(target, MAX_TARGET_LEN).to_owned(),
            message: truncate_owned(message, MAX_MESSAGE_LEN),
            dropped_before: 0,
        }
    }

    /// Builds a record from a `log` crate record.
    pub fn from_log(record: &log::Record<'_>) -> LogRecord {
        LogRecord::new(
            record.level().into(),
            record.target(),
            record.args().to_string(),
        )
    }
}

/// Microseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_owned(mut s: String, max: usize) -> String {
    if s.len() > max {
        let end = truncate(&s, max).len();
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        // 'é' is two bytes: a cut at an odd byte count must step back.
        let msg = "é".repeat(MAX_MESSAGE_LEN);
        let r = LogRecord::new(Level::Info, "t", msg);
        assert!(r.message.len() <= MAX_MESSAGE_LEN);
        assert!(r.message.len() >= MAX_MESSAGE_LEN - 1);
        assert!(r.message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn level_round_trips_through_log() {
        for l in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            assert_eq!(Level::from(log::Level::from(l)), l);
        }
    }

    #[test]
    fn time_is_recent() {
        // 2020-01-01 in µs; guards against a unit mistake (ms or ns).
        let t = now_us();
        assert!(
            t > 1_577_836_800_000_000 && t < 4_102_444_800_000_000,
            "{t}"
        );
    }
}

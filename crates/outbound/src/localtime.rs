//! Python logging's `asctime` (`2026-11-24 08:38:03,062`, local time) for the `log` topic.

use std::io::{self, Write};

/// Writes `YYYY-mm-dd HH:MM:SS,mmm` for `epoch` seconds in the local time zone (UTC if
/// the time cannot be converted). Milliseconds are truncated, as Python does.
pub fn write_asctime<W: Write>(out: &mut W, epoch: f64) -> io::Result<()> {
    let epoch = if epoch.is_finite() { epoch } else { 0.0 };
    let secs = epoch.floor();
    // In range for any realistic time; `as` saturates otherwise.
    let millis = (((epoch - secs) * 1000.0) as u32).min(999);
    let t = to_local(secs as i64);
    write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, millis
    )
}

struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn to_local(secs: i64) -> CivilTime {
    local_tm(secs).unwrap_or_else(|| utc(secs))
}

// `time_t` is `i64` here but narrower on some targets.
#[allow(clippy::useless_conversion)]
fn local_tm(secs: i64) -> Option<CivilTime> {
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `localtime_r` only writes into the `tm` we own; a zeroed `tm` is a valid
    // value of this plain C struct.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(CivilTime {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
    })
}

/// Proleptic Gregorian date from days since 1970-01-01 (civil-from-days algorithm).
fn utc(secs: i64) -> CivilTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        let t = utc(1_795_509_483);
        assert_eq!((t.year, t.month, t.day), (2026, 11, 24));
        assert_eq!((t.hour, t.minute, t.second), (8, 38, 3));
        let t = utc(951_782_400); // 2000-02-29 00:00:00
        assert_eq!((t.year, t.month, t.day, t.hour), (2000, 2, 29, 0));
        let t = utc(-1);
        assert_eq!((t.year, t.month, t.day, t.second), (1969, 12, 31, 59));
    }

    #[test]
    fn asctime_shape_and_truncated_millis() {
        let mut out = Vec::new();
        write_asctime(&mut out, 1_795_509_483.062_342_6).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.len(), "2026-11-24 08:38:03,062".len(), "{s}");
        assert!(s.ends_with(":03,062"), "{s}");
    }
}

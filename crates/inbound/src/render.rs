//! Typed replies → response text. The documents themselves are written by
//! [`pyde1_docs::document`]; this module adds what is HTTP's own: the error mapping, the
//! trailing newline, the `version` document and the timestamp headers.

use ipc_schema::command::{Document, Resource};
use pyde1_docs::pyjson;
use serde_json::{json, Value};

use crate::error::ApiError;

pub use pyde1_docs::document::{ghc_names, model_name, MAPPING_VERSION, RESOURCE_VERSION};
pub use pyde1_docs::payload::{availability_payload, state_update_payload};

/// Renders the GET document of `resource` from the controller's answer. `prune` is the
/// `http.prune_empty_nodes` setting. A document of the wrong kind is an internal error.
pub fn document(resource: Resource, doc: &Document, prune: bool) -> Result<Value, ApiError> {
    pyde1_docs::document::document(resource, doc, prune)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The `version` document: pyDE1's keys where they make sense for de1d (no Python), plus
/// de1d's own version.
pub fn version() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "de1d_version": v,
        "mapping_version": MAPPING_VERSION,
        "module_versions": { "de1d": v },
        "platform": std::env::consts::OS,
        "resource_version": RESOURCE_VERSION,
        "source_data": null,
    })
}

/// pyDE1's response text: sorted keys, 4-space indent (no trailing newline; callers add it).
pub fn to_pretty(v: &Value) -> String {
    pyjson::to_pretty(v)
}

/// A whole response body: [`to_pretty`] plus the trailing newline.
pub fn body(v: &Value) -> String {
    let mut s = to_pretty(v);
    s.push('\n');
    s
}

/// `x-pyde1-timestamp`: epoch seconds as Python prints a float.
pub fn timestamp_header(epoch: f64) -> String {
    pyjson::py_float(epoch)
}

/// `Last-Modified` in pyDE1's form, in UTC: `Tue, 24 Nov 2026 08:22:26 +0000`.
pub fn http_date(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(1795508546.26), "Tue, 24 Nov 2026 08:22:26 +0000");
        assert_eq!(http_date(0.0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(http_date(951782400.0), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn a_mismatched_document_is_an_internal_error() {
        let e =
            document(Resource::De1Id, &Document::Presence(Some(true)), true).expect_err("mismatch");
        assert_eq!(e.status.as_u16(), 500);
    }

    #[test]
    fn headers_print_floats_as_python_does() {
        assert_eq!(timestamp_header(1795508546.2630436), "1795508546.2630436");
        assert_eq!(timestamp_header(1.0), "1.0");
    }
}

//! Export of a sequence as a shot file visualizer.coffee accepts
//! (`POST https://visualizer.coffee/api/shots/upload`, multipart field `file`, HTTP Basic
//! auth).
//!
//! The format is de1app's JSON shot file (version 2), which visualizer.coffee reads with
//! its "Decent JSON" parser: `timestamp` (epoch seconds of the start), `elapsed` (seconds
//! since the start, one per DE1 sample), `pressure {pressure, goal}`, `flow {flow,
//! by_weight, goal}`, `temperature {basket, mix, goal, mix_goal}`, `totals {weight,
//! water_dispensed}`, `state_change`, `profile` (the JSON profile, whose `title` names
//! the shot) and `app.data.settings` (`profile_title`, `drink_weight`, `beverage_type`…).
//!
//! The values follow de1app's conventions, as pyDE1's uploader also does:
//!
//! * the shot runs from flow begin to flow end (`start_flow` … `end_flow`), falling back
//!   to the sequence's start and end;
//! * a goal of 0 (not controlled in that frame) is written −1 so the chart omits it;
//! * `water_dispensed` is mL ÷ 10 (de1app's legacy scaling);
//! * weight and weight-flow are the last scale values before each sample;
//! * `state_change` flips sign when the profile frame changes (±10000000);
//! * values are rounded to 2 decimals (`elapsed` to 3).

use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::history::{profile_json, HistoryError};

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    let r = (v * f).round() / f;
    if r == 0.0 {
        0.0 // no "-0.0"
    } else {
        r
    }
}

fn goal(v: f64) -> f64 {
    if v == 0.0 {
        -1.0
    } else {
        round(v, 2)
    }
}

struct Sample {
    de1_time: f64,
    pressure: f64,
    flow: f64,
    mix: f64,
    head: f64,
    set_mix: f64,
    set_head: f64,
    set_pressure: f64,
    set_flow: f64,
    frame: i64,
    volume: f64,
}

/// A scale value and when it was measured.
struct Timed {
    time: f64,
    value: f64,
}

/// The value in effect at each of `times` (sorted): the last one measured before it, if
/// any (0 before the first).
fn last_before(series: &[Timed], times: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut i = 0;
    let mut current = 0.0;
    times
        .map(|t| {
            while i < series.len() && series[i].time <= t {
                current = series[i].value;
                i += 1;
            }
            round(current, 2)
        })
        .collect()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 UTC, whole seconds.
pub(crate) fn rfc3339(epoch: f64) -> String {
    let secs = if epoch.is_finite() {
        epoch.floor() as i64
    } else {
        0
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The sequence `id` as a visualizer.coffee shot file; `None` if there is no such
/// sequence, [`HistoryError::NoSamples`] if it has no DE1 sample in its flow window.
pub fn export_visualizer(conn: &Connection, id: &str) -> Result<Option<Value>, HistoryError> {
    if id == "dummy" {
        return Ok(None);
    }
    type Row = (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT start_sequence, start_flow, end_flow, end_sequence, profile_id, \
             active_state FROM sequence WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((start_sequence, start_flow, end_flow, end_sequence, profile_id, active_state)) = row
    else {
        return Ok(None);
    };
    let from = start_flow.or(start_sequence).unwrap_or(f64::NEG_INFINITY);
    let to = end_flow.or(end_sequence).unwrap_or(f64::INFINITY);

    let mut stmt = conn.prepare(
        "SELECT de1_time, group_pressure, group_flow, mix_temp, head_temp, set_mix_temp, \
         set_head_temp, set_group_pressure, set_group_flow, frame_number, volume_total \
         FROM shot_sample_with_volume_update WHERE sequence_id = ?1 \
         AND de1_time >= ?2 AND de1_time <= ?3 ORDER BY de1_time, rowid",
    )?;
    let samples = stmt
        .query_map((id, from, to), |r| {
            let f = |i| r.get::<_, Option<f64>>(i).map(|v| v.unwrap_or(0.0));
            Ok(Sample {
                de1_time: f(0)?,
                pressure: f(1)?,
                flow: f(2)?,
                mix: f(3)?,
                head: f(4)?,
                set_mix: f(5)?,
                set_head: f(6)?,
                set_pressure: f(7)?,
                set_flow: f(8)?,
                frame: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
                volume: f(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = samples.first() else {
        return Err(HistoryError::NoSamples(id.to_owned()));
    };
    let start = if from.is_finite() {
        from
    } else {
        first.de1_time
    };

    // Scale data, by measurement time.
    let mut weight = Vec::new();
    let mut flow_by_weight = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT current_weight_time, current_weight, average_flow_time, average_flow \
         FROM weight_and_flow_update WHERE sequence_id = ?1 ORDER BY current_weight_time, rowid",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        if let (Some(time), Some(value)) = (r.get::<_, Option<f64>>(0)?, r.get(1)?) {
            weight.push(Timed { time, value });
        }
        if let (Some(time), Some(value)) = (r.get::<_, Option<f64>>(2)?, r.get(3)?) {
            // pyDE1 stores 0 / 0 while there is not enough history.
            if time != 0.0 {
                flow_by_weight.push(Timed { time, value });
            }
        }
    }
    flow_by_weight.sort_by(|a, b| a.time.total_cmp(&b.time));
    let times = || samples.iter().map(|s| s.de1_time);

    let mut out = Map::new();
    out.insert("version".into(), json!(2));
    let clock = start.round() as i64;
    out.insert("clock".into(), json!(clock));
    out.insert("timestamp".into(), json!(clock));
    out.insert("date".into(), json!(rfc3339(start)));
    out.insert(
        "elapsed".into(),
        json!(samples
            .iter()
            .map(|s| round(s.de1_time - start, 3))
            .collect::<Vec<_>>()),
    );
    out.insert(
        "pressure".into(),
        json!({
            "pressure": samples.iter().map(|s| round(s.pressure, 2)).collect::<Vec<_>>(),
            "goal": samples.iter().map(|s| goal(s.set_pressure)).collect::<Vec<_>>(),
        }),
    );
    let mut flow = Map::new();
    flow.insert(
        "flow".into(),
        json!(samples.iter().map(|s| round(s.flow, 2)).collect::<Vec<_>>()),
    );
    if !flow_by_weight.is_empty() {
        flow.insert(
            "by_weight".into(),
            json!(last_before(&flow_by_weight, times())),
        );
    }
    flow.insert(
        "goal".into(),
        json!(samples.iter().map(|s| goal(s.set_flow)).collect::<Vec<_>>()),
    );
    out.insert("flow".into(), Value::Object(flow));
    out.insert(
        "temperature".into(),
        json!({
            "basket": samples.iter().map(|s| round(s.head, 2)).collect::<Vec<_>>(),
            "mix": samples.iter().map(|s| round(s.mix, 2)).collect::<Vec<_>>(),
            "goal": samples.iter().map(|s| round(s.set_head, 2)).collect::<Vec<_>>(),
            "mix_goal": samples.iter().map(|s| round(s.set_mix, 2)).collect::<Vec<_>>(),
        }),
    );
    let mut totals = Map::new();
    if !weight.is_empty() {
        totals.insert("weight".into(), json!(last_before(&weight, times())));
    }
    totals.insert(
        "water_dispensed".into(),
        json!(samples
            .iter()
            .map(|s| round(s.volume / 10.0, 2))
            .collect::<Vec<_>>()),
    );
    out.insert("totals".into(), Value::Object(totals));
    out.insert(
        "state_change".into(),
        json!(samples
            .iter()
            .map(|s| if s.frame % 2 == 1 {
                10_000_000
            } else {
                -10_000_000
            })
            .collect::<Vec<_>>()),
    );

    // The profile as uploaded; its title names the shot.
    let profile = match profile_id.as_deref().filter(|p| *p != "dummy") {
        Some(pid) => profile_json(conn, pid)?,
        None => None,
    };
    let source = profile
        .as_ref()
        .map(|p| p["source"].clone())
        .filter(Value::is_object);
    let title = profile
        .as_ref()
        .and_then(|p| p["title"].as_str().map(str::to_owned))
        .or_else(|| {
            source
                .as_ref()
                .and_then(|s| s["title"].as_str().map(str::to_owned))
        });
    let beverage_type = profile
        .as_ref()
        .and_then(|p| p["beverage_type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| default_beverage(active_state.as_deref()).to_owned());
    let profile_value = source.unwrap_or_else(|| match &title {
        Some(t) => json!({"title": t}),
        None => json!({}),
    });
    out.insert("profile".into(), profile_value);

    let mut settings = Map::new();
    if let Some(t) = &title {
        settings.insert("profile_title".into(), json!(t));
    }
    if let Some(w) = drink_weight(conn, id, end_flow, end_sequence, weight.last())? {
        settings.insert("drink_weight".into(), json!(round(w, 1)));
    }
    settings.insert("beverage_type".into(), json!(beverage_type));
    out.insert(
        "app".into(),
        json!({
            "app_name": "de1d",
            "app_version": env!("CARGO_PKG_VERSION"),
            "data": {"settings": settings},
        }),
    );
    Ok(Some(Value::Object(out)))
}

fn default_beverage(mode: Option<&str>) -> &'static str {
    match mode {
        Some("Steam") => "steam",
        Some("HotWater") => "tea",
        Some("HotWaterRinse") => "cleaning",
        _ => "espresso",
    }
}

/// The weight in the cup: the largest median weight between flow end and sequence end
/// (the drips after the pump stops), else the last weight measured.
fn drink_weight(
    conn: &Connection,
    id: &str,
    end_flow: Option<f64>,
    end_sequence: Option<f64>,
    last: Option<&Timed>,
) -> rusqlite::Result<Option<f64>> {
    if let (Some(a), Some(b)) = (end_flow, end_sequence) {
        let w: Option<f64> = conn.query_row(
            "SELECT max(median_weight) FROM weight_and_flow_update WHERE sequence_id = ?1 \
             AND median_weight_time >= ?2 AND median_weight_time <= ?3",
            (id, a, b),
            |r| r.get(0),
        )?;
        if w.is_some() {
            return Ok(w);
        }
    }
    Ok(last.map(|t| t.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_509_490.679), "2026-11-24T08:38:10Z");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn scale_values_are_the_last_before_each_sample() {
        let series = [
            Timed {
                time: 1.0,
                value: 1.0,
            },
            Timed {
                time: 2.0,
                value: 2.0,
            },
            Timed {
                time: 3.0,
                value: 3.0,
            },
        ];
        assert_eq!(
            last_before(&series, [0.5, 1.0, 2.5, 9.0].into_iter()),
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(goal(0.0), -1.0);
        assert_eq!(goal(9.004), 9.0);
        assert_eq!(round(-0.001, 2), 0.0);
    }
}

//! Replaying a recorded sequence (`de1d replay SEQUENCE_ID`), as pyDE1's `pyde1-replay`
//! does (`pyde1-runtime.md` §10).
//!
//! The sequence's notifications are read back as the [`Event`]s they were recorded from,
//! rendered as pyDE1's payloads (`pyde1_docs::payload`, the live MQTT API's renderer) and
//! handed, at their recorded pace (or faster), to a caller-supplied `publish(topic,
//! payload)`. By default, as in pyDE1:
//!
//! * every time (`*_time`, `de1_time`, `scale_time`) is moved so that the sequence starts
//!   [`ReplayOptions::lead`] (5 s) after the replay starts; notifications recorded before
//!   the sequence start (its pre-sequence history) come first;
//! * the sequence id is replaced by a fresh one, so nothing confuses the replay with the
//!   original;
//! * the payloads carry `"shifted": <seconds added>` ([`shifted_payload`]) and go under a
//!   separate topic root, [`DEFAULT_TOPIC_ROOT`].
//!
//! The database is opened read-only and not changed.

use std::path::Path;
use std::time::{Duration, Instant};

use ipc_schema::event::{Event, SequenceId, Stamp};
use rusqlite::OptionalExtension;

use crate::rows::{self, BadRow};
use crate::schema::{self, now_epoch, SchemaError};

/// pyDE1's replay publishes under this root, not the live one.
pub const DEFAULT_TOPIC_ROOT: &str = "KEpyDE1";

/// How to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Pace: 1 = as recorded, 2 = twice as fast; `f64::INFINITY` = as fast as possible.
    pub speed: f64,
    /// Delay between the replay's start and the sequence start.
    pub lead: Duration,
    /// Move every time so the sequence seems to happen now (at `speed`).
    pub shift_times: bool,
    /// Give the sequence a fresh id.
    pub fresh_sequence_id: bool,
    /// Topics are `<topic_root>/<class>`.
    pub topic_root: String,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            lead: Duration::from_secs(5),
            shift_times: true,
            fresh_sequence_id: true,
            topic_root: DEFAULT_TOPIC_ROOT.to_owned(),
        }
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("reading the shot database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no sequence {0} in the shot database")]
    NotFound(String),
    #[error("sequence {0} has nothing to replay")]
    Empty(String),
    #[error("speed must be a positive number, not {0}")]
    BadSpeed(f64),
    #[error("publishing failed: {0}")]
    Publish(String),
    #[error("cannot render a payload: {0}")]
    Render(String),
}

/// One notification to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayItem {
    /// The event, times moved and sequence id replaced as asked.
    pub event: Event,
    /// Seconds added to its `event_time` (0 when times are not shifted).
    pub shifted: f64,
    /// When to publish it, from the replay's start.
    pub at: Duration,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub sequence_id: String,
    /// The id the replayed notifications carry.
    pub replayed_as: String,
    pub published: usize,
    /// Rows that could not be read back (left out).
    pub skipped: Vec<BadRow>,
}

/// A replay worked out in advance: the items in publishing order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub items: Vec<ReplayItem>,
    pub replayed_as: String,
    pub skipped: Vec<BadRow>,
}

/// Reads sequence `sequence_id` and works out what to publish when, for a replay
/// starting at `now` (epoch seconds).
pub fn plan(
    db: &Path,
    sequence_id: &str,
    options: &ReplayOptions,
    now: f64,
) -> Result<Plan, ReplayError> {
    if options.speed.is_nan() || options.speed <= 0.0 {
        return Err(ReplayError::BadSpeed(options.speed));
    }
    let conn = schema::open_read_only(db)?;
    let start: Option<Option<f64>> = conn
        .query_row(
            "SELECT start_sequence FROM sequence WHERE id = ?1 AND id <> 'dummy'",
            [sequence_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(start) = start else {
        return Err(ReplayError::NotFound(sequence_id.to_owned()));
    };
    let (stored, skipped) = rows::read_sequence(&conn, sequence_id)?;
    let first = stored.first().and_then(|s| rows::event_time(&s.event));
    let Some(start) = start.or(first) else {
        return Err(ReplayError::Empty(sequence_id.to_owned()));
    };

    let fresh = options
        .fresh_sequence_id
        .then(|| SequenceId::from_random_bytes(rand::random()));
    let replayed_as = fresh.map_or_else(|| sequence_id.to_owned(), |id| id.to_string());
    // Times keep their recorded spacing divided by the speed (unbounded speed: only the
    // publishing is immediate, the times keep the recorded spacing).
    let time_scale = if options.speed.is_finite() {
        options.speed
    } else {
        1.0
    };
    let origin = now + options.lead.as_secs_f64();
    let lead = options.lead.as_secs_f64();

    let mut items = Vec::with_capacity(stored.len());
    for s in stored {
        let mut event = s.event;
        let t = rows::event_time(&event).unwrap_or(start);
        let offset = if options.speed.is_finite() {
            (lead + (t - start) / options.speed).max(0.0)
        } else {
            0.0
        };
        let mut shifted = 0.0;
        if options.shift_times {
            let map = |x: f64| origin + (x - start) / time_scale;
            shifted = map(t) - t;
            map_times(&mut event, map);
        }
        if let (Some(id), Event::SequencerGateNotification(g)) = (fresh, &mut event) {
            g.sequence_id = id;
        }
        items.push(ReplayItem {
            event,
            shifted,
            at: Duration::try_from_secs_f64(offset).unwrap_or(Duration::ZERO),
        });
    }
    // Stable: equal times keep the stored order.
    items.sort_by_key(|a| a.at);
    Ok(Plan {
        items,
        replayed_as,
        skipped,
    })
}

/// Replays sequence `sequence_id` of the database `db`: calls `publish(topic, payload)`
/// for each notification at its time, with pyDE1's payload under
/// `<options.topic_root>/<class>` (QoS 0, not retained, as pyDE1's replay publishes).
/// Blocking (run it on a plain thread); stops at the first publishing error.
pub fn replay(
    db: &Path,
    sequence_id: &str,
    options: &ReplayOptions,
    mut publish: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> Result<ReplayReport, ReplayError> {
    let mut failure = None;
    let report = replay_events(db, sequence_id, options, |item| {
        match render(item, &options.topic_root) {
            Ok(Some((topic, payload))) => publish(&topic, &payload),
            Ok(None) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                failure = Some(e);
                Err(text)
            }
        }
    });
    match (report, failure) {
        (_, Some(e)) => Err(e),
        (r, None) => r,
    }
}

/// The topic and payload of a replayed notification (`None` for events without a
/// payload); `"shifted"` is appended when its times were moved.
pub fn render(
    item: &ReplayItem,
    topic_root: &str,
) -> Result<Option<(String, Vec<u8>)>, ReplayError> {
    let mut buf = Vec::with_capacity(pyde1_docs::payload::PAYLOAD_CAPACITY);
    match pyde1_docs::payload::event_payload(&item.event, &mut buf) {
        Ok(Some(class)) => Ok(Some((
            format!("{topic_root}/{}", class.name()),
            shifted_payload(&buf, item.shifted),
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(ReplayError::Render(e.to_string())),
    }
}

/// Like [`replay`], handing over the events themselves (times moved, id replaced) instead
/// of rendered payloads.
pub fn replay_events(
    db: &Path,
    sequence_id: &str,
    options: &ReplayOptions,
    mut publish: impl FnMut(&ReplayItem) -> Result<(), String>,
) -> Result<ReplayReport, ReplayError> {
    let plan = plan(db, sequence_id, options, now_epoch())?;
    let began = Instant::now();
    let mut published = 0;
    for item in &plan.items {
        let due = began + item.at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        publish(item).map_err(ReplayError::Publish)?;
        published += 1;
    }
    Ok(ReplayReport {
        sequence_id: sequence_id.to_owned(),
        replayed_as: plan.replayed_as,
        published,
        skipped: plan.skipped,
    })
}

/// Applies `f` to every time an event carries.
fn map_times(event: &mut Event, f: impl Fn(f64) -> f64) {
    let stamp = |s: &mut Stamp| {
        s.arrival_time = f(s.arrival_time);
        s.create_time = f(s.create_time);
        s.event_time = f(s.event_time);
    };
    match event {
        Event::ShotSampleWithVolumesUpdate(e) => {
            stamp(&mut e.stamp);
            e.de1_time = f(e.de1_time);
        }
        Event::WeightAndFlowUpdate(e) => {
            stamp(&mut e.stamp);
            e.scale_time = f(e.scale_time);
            for est in [
                &mut e.average_flow,
                &mut e.median_weight,
                &mut e.median_flow,
            ]
            .into_iter()
            .flatten()
            {
                est.time = f(est.time);
            }
        }
        Event::StateUpdate(e) => stamp(&mut e.stamp),
        Event::SequencerGateNotification(e) => stamp(&mut e.stamp),
        Event::StopAtNotification(e) => stamp(&mut e.stamp),
        Event::WaterLevelUpdate(e) => stamp(&mut e.stamp),
        Event::ScaleTareSeen(e) => stamp(&mut e.stamp),
        Event::AutoTareNotification(e) => stamp(&mut e.stamp),
        Event::ScaleButtonPress(e) => stamp(&mut e.stamp),
        Event::ConnectivityChange(e) => stamp(&mut e.stamp),
        Event::DeviceAvailability(e) => stamp(&mut e.stamp),
        Event::ScaleChange(e) => stamp(&mut e.stamp),
        Event::BlueDotUpdate(e) => stamp(&mut e.stamp),
        _ => {}
    }
}

/// A rendered JSON payload (an object) with `"shifted": <seconds>` appended as its last
/// key, as pyDE1's replay marks its payloads. Payloads that are not objects, and
/// unshifted ones (`shifted` = 0), are returned unchanged.
pub fn shifted_payload(payload: &[u8], shifted: f64) -> Vec<u8> {
    let trimmed_end = payload
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let body = &payload[..trimmed_end];
    if shifted == 0.0 || !shifted.is_finite() || body.last() != Some(&b'}') {
        return payload.to_vec();
    }
    let inner = &body[..body.len() - 1];
    let empty = inner
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(inner);
    if !empty {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(format!("\"shifted\": {shifted:?}}}").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_is_appended_as_the_last_key() {
        assert_eq!(
            shifted_payload(br#"{"a": 1, "class": "X"}"#, 12.5),
            br#"{"a": 1, "class": "X", "shifted": 12.5}"#.to_vec()
        );
        assert_eq!(shifted_payload(b"{}", 2.0), br#"{"shifted": 2.0}"#.to_vec());
        assert_eq!(shifted_payload(b"{\"a\": 1}", 0.0), b"{\"a\": 1}".to_vec());
        assert_eq!(shifted_payload(b"Here", 3.0), b"Here".to_vec());
        assert_eq!(shifted_payload(b"", 3.0), b"".to_vec());
    }
}

//! Reading the shot history (for the HTTP API and tools).
//!
//! Everything here reads through a read-only connection ([`History::open`] or
//! [`crate::schema::open_read_only`]); in WAL mode readers never wait for the recorder and
//! the recorder never waits for them. A connection is cheap to open; one per request (in
//! `spawn_blocking`) is fine.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, ToSql};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::rows::{parse_volumes, Table};
use crate::schema::{self, SchemaError};

/// Why a history request failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("reading the shot database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    BadRequest(String),
    #[error("sequence {0} has no shot samples to export")]
    NoSamples(String),
}

/// Which sequences to list; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceFilter {
    /// Exact profile id (40 hex digits).
    pub profile_id: Option<String>,
    /// Exact profile fingerprint (the frames the machine ran).
    pub profile_fingerprint: Option<String>,
    /// Case-insensitive part of the profile title.
    pub profile_title: Option<String>,
    /// The mode, as pyDE1 names it (`Espresso`, `Steam`, `HotWater`, `HotWaterRinse`).
    pub active_state: Option<String>,
    /// Started at or after this time (epoch seconds).
    pub since: Option<f64>,
    /// Started before this time (epoch seconds).
    pub until: Option<f64>,
}

/// A page of a list, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Page {
    /// Sequences to skip.
    pub offset: u64,
    /// Sequences to return, 1…[`Page::MAX_LIMIT`].
    pub limit: u32,
}

impl Page {
    pub const MAX_LIMIT: u32 = 500;
    pub const DEFAULT_LIMIT: u32 = 50;
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: Page::DEFAULT_LIMIT,
        }
    }
}

/// The profile of a sequence, in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSummary {
    pub id: String,
    /// Empty when only the id is known.
    pub fingerprint: String,
    pub title: Option<String>,
    pub beverage_type: Option<String>,
}

/// One sequence in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceSummary {
    pub id: String,
    /// The mode (`Espresso`…).
    pub active_state: Option<String>,
    pub start_sequence: Option<f64>,
    pub start_flow: Option<f64>,
    pub end_flow: Option<f64>,
    pub end_sequence: Option<f64>,
    /// `complete`, `superseded`, `timeout`, `controller_lost`, `shutdown`, `interrupted`,
    /// or null while being recorded.
    pub end_reason: Option<String>,
    /// `None` when no profile is known.
    pub profile: Option<ProfileSummary>,
    /// The profile was not uploaded in the same connection; it is the last one on record.
    pub profile_assumed: bool,
    pub shot_samples: u64,
    pub weight_updates: u64,
    /// Notifications lost while recording (queue full, slow link, database refusing).
    pub dropped_events: u64,
}

/// A page of [`SequenceSummary`]s.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequencePage {
    /// Sequences matching the filter, over all pages.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
    pub sequences: Vec<SequenceSummary>,
}

/// A read-only view of the shot database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
}

impl History {
    /// Opens the database at `path` read-only. [`SchemaError::Missing`] if nothing was
    /// recorded yet.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        Ok(History {
            conn: schema::open_read_only(path)?,
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn list_sequences(
        &self,
        filter: &SequenceFilter,
        page: Page,
    ) -> Result<SequencePage, HistoryError> {
        list_sequences(&self.conn, filter, page)
    }

    pub fn get_sequence(&self, id: &str) -> Result<Option<Value>, HistoryError> {
        get_sequence(&self.conn, id)
    }

    pub fn export_visualizer(&self, id: &str) -> Result<Option<Value>, HistoryError> {
        crate::visualizer::export_visualizer(&self.conn, id)
    }
}

/// Lists recorded sequences, newest first.
pub fn list_sequences(
    conn: &Connection,
    filter: &SequenceFilter,
    page: Page,
) -> Result<SequencePage, HistoryError> {
    if page.limit == 0 || page.limit > Page::MAX_LIMIT {
        return Err(HistoryError::BadRequest(format!(
            "limit must be 1…{}, not {}",
            Page::MAX_LIMIT,
            page.limit
        )));
    }
    let offset = i64::try_from(page.offset)
        .map_err(|_| HistoryError::BadRequest("offset is too large".into()))?;
    for (name, v) in [("since", filter.since), ("until", filter.until)] {
        if v.is_some_and(|t| !t.is_finite()) {
            return Err(HistoryError::BadRequest(format!("{name} must be a number")));
        }
    }

    let mut clauses = vec!["s.id <> 'dummy'".to_owned()];
    let mut params: Vec<Box<dyn ToSql>> = Vec::new();
    let mut add = |clause: &str, v: Box<dyn ToSql>| {
        params.push(v);
        clauses.push(clause.replace('?', &format!("?{}", params.len())));
    };
    if let Some(id) = &filter.profile_id {
        add("s.profile_id = ?", Box::new(id.to_ascii_lowercase()));
    }
    if let Some(fp) = &filter.profile_fingerprint {
        add("p.fingerprint = ?", Box::new(fp.to_ascii_lowercase()));
    }
    if let Some(title) = &filter.profile_title {
        let escaped = title
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        add(
            "p.title LIKE ? ESCAPE '\\'",
            Box::new(format!("%{escaped}%")),
        );
    }
    if let Some(state) = &filter.active_state {
        add("s.active_state = ?", Box::new(state.clone()));
    }
    if let Some(t) = filter.since {
        add("s.start_sequence >= ?", Box::new(t));
    }
    if let Some(t) = filter.until {
        add("s.start_sequence < ?", Box::new(t));
    }
    let from = format!(
        "FROM sequence s LEFT JOIN profile p ON p.id = s.profile_id WHERE {}",
        clauses.join(" AND ")
    );
    let refs: Vec<&dyn ToSql> = params.iter().map(|b| b.as_ref()).collect();
    let total: i64 = conn.query_row(&format!("SELECT count(*) {from}"), refs.as_slice(), |r| {
        r.get(0)
    })?;

    let n = params.len();
    let sql = format!(
        "SELECT s.id, s.active_state, s.start_sequence, s.start_flow, s.end_flow, \
         s.end_sequence, s.end_reason, s.profile_id, p.fingerprint, p.title, \
         p.beverage_type, s.profile_assumed, s.dropped_events, \
         (SELECT count(*) FROM shot_sample_with_volume_update x WHERE x.sequence_id = s.id), \
         (SELECT count(*) FROM weight_and_flow_update x WHERE x.sequence_id = s.id) \
         {from} ORDER BY s.start_sequence DESC, s.rowid DESC LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    let limit = i64::from(page.limit);
    let mut all: Vec<&dyn ToSql> = refs;
    all.push(&limit);
    all.push(&offset);
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(all.as_slice(), |r| {
        let profile_id: Option<String> = r.get(7)?;
        let profile = profile_id
            .filter(|id| id != "dummy")
            .map(|id| -> rusqlite::Result<ProfileSummary> {
                Ok(ProfileSummary {
                    id,
                    fingerprint: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                    title: r.get(9)?,
                    beverage_type: r.get(10)?,
                })
            })
            .transpose()?;
        Ok(SequenceSummary {
            id: r.get(0)?,
            active_state: r.get(1)?,
            start_sequence: r.get(2)?,
            start_flow: r.get(3)?,
            end_flow: r.get(4)?,
            end_sequence: r.get(5)?,
            end_reason: r.get(6)?,
            profile,
            profile_assumed: r.get::<_, Option<i64>>(11)?.unwrap_or(0) != 0,
            dropped_events: non_negative(r.get::<_, Option<i64>>(12)?),
            shot_samples: non_negative(r.get::<_, Option<i64>>(13)?),
            weight_updates: non_negative(r.get::<_, Option<i64>>(14)?),
        })
    })?;
    let sequences = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(SequencePage {
        total: non_negative(Some(total)),
        offset: page.offset,
        limit: page.limit,
        sequences,
    })
}

fn non_negative(v: Option<i64>) -> u64 {
    v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// A column value as JSON (blobs as text when they are UTF-8, else null).
fn json_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => Value::Null,
        },
    }
}

/// Text holding JSON, parsed; other text kept as a string; empty or null as null.
fn json_text(v: Option<String>) -> Value {
    match v {
        None => Value::Null,
        Some(s) if s.is_empty() => Value::Null,
        Some(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
    }
}

/// Rows of one notification table for a sequence, as JSON objects keyed by column, in
/// time order (the `sequence_id` column is left out).
fn table_rows(conn: &Connection, table: Table, id: &str) -> rusqlite::Result<Vec<Value>> {
    let sql = format!(
        "SELECT * FROM {} WHERE sequence_id = ?1 ORDER BY event_time, rowid",
        table.name()
    );
    let mut stmt = conn.prepare(&sql)?;
    let cols: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut obj = Map::new();
        for (i, name) in cols.iter().enumerate() {
            if name == "sequence_id" {
                continue;
            }
            let v = row.get_ref(i)?;
            let value = match (name.as_str(), v) {
                ("volume_by_frames", ValueRef::Text(t)) => {
                    let text = String::from_utf8_lossy(t);
                    match parse_volumes(&text) {
                        Some(Some(frames)) => json!(frames),
                        Some(None) => json!([]),
                        None => Value::String(text.into_owned()),
                    }
                }
                ("is_error_state", ValueRef::Text(t)) => json!(matches!(t, b"1" | b"True")),
                ("is_error_state", ValueRef::Integer(i)) => json!(i != 0),
                _ => json_value(v),
            };
            obj.insert(name.clone(), value);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}

/// One sequence with everything recorded for it; `None` if there is no such sequence.
///
/// `{"id", "active_state", "start_sequence", "start_flow", "end_flow", "end_sequence",
/// "end_reason", "dropped_events", "profile_assumed", "profile": {"id", "fingerprint",
/// "title", "author", "notes", "beverage_type", "date_added", "source"} | null,
/// "resources": {"version", "de1_id", …}, "shot_samples": […], "weight_and_flow": […],
/// "state_updates": […], "gate_notifications": […], "stop_at_notifications": […], …}`;
/// each notification is an object with the payload's field names.
pub fn get_sequence(conn: &Connection, id: &str) -> Result<Option<Value>, HistoryError> {
    if id == "dummy" {
        return Ok(None);
    }
    let row = conn
        .query_row(
            "SELECT active_state, start_sequence, start_flow, end_flow, end_sequence, \
             end_reason, dropped_events, profile_assumed, profile_id, resource_version, \
             resource_de1_id, resource_de1_read_once, resource_de1_calibration_flow_multiplier, \
             resource_de1_control_mode, resource_de1_control_tank_water_threshold, \
             resource_de1_setting_before_flow, resource_de1_setting_steam, \
             resource_de1_setting_target_group_temp, resource_scale_id \
             FROM sequence WHERE id = ?1",
            [id],
            |r| {
                let mut base = Map::new();
                base.insert("id".into(), json!(id));
                for (i, key) in [
                    "active_state",
                    "start_sequence",
                    "start_flow",
                    "end_flow",
                    "end_sequence",
                    "end_reason",
                    "dropped_events",
                ]
                .iter()
                .enumerate()
                {
                    base.insert((*key).into(), json_value(r.get_ref(i)?));
                }
                base.insert(
                    "profile_assumed".into(),
                    json!(r.get::<_, Option<i64>>(7)?.unwrap_or(0) != 0),
                );
                let profile_id: Option<String> = r.get(8)?;
                let mut resources = Map::new();
                for (i, key) in [
                    "version",
                    "de1_id",
                    "de1_read_once",
                    "de1_calibration_flow_multiplier",
                    "de1_control_mode",
                    "de1_control_tank_water_threshold",
                    "de1_setting_before_flow",
                    "de1_setting_steam",
                    "de1_setting_target_group_temp",
                    "scale_id",
                ]
                .iter()
                .enumerate()
                {
                    resources.insert((*key).into(), json_text(r.get(9 + i)?));
                }
                base.insert("resources".into(), Value::Object(resources));
                Ok((base, profile_id))
            },
        )
        .optional()?;
    let Some((mut out, profile_id)) = row else {
        return Ok(None);
    };
    let profile = match profile_id.filter(|p| p != "dummy") {
        None => Value::Null,
        Some(pid) => profile_json(conn, &pid)?.unwrap_or_else(|| json!({"id": pid})),
    };
    out.insert("profile".into(), profile);
    for table in Table::ALL {
        out.insert(
            table.json_key().into(),
            Value::Array(table_rows(conn, table, id)?),
        );
    }
    Ok(Some(Value::Object(out)))
}

/// A `profile` row as JSON, the source parsed when it is JSON.
pub(crate) fn profile_json(conn: &Connection, id: &str) -> rusqlite::Result<Option<Value>> {
    conn.query_row(
        "SELECT id, fingerprint, title, author, notes, beverage_type, date_added, source, \
         source_format FROM profile WHERE id = ?1",
        [id],
        |r| {
            let source = match r.get_ref(7)? {
                ValueRef::Blob(b) | ValueRef::Text(b) if !b.is_empty() => {
                    serde_json::from_slice::<Value>(b)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
                }
                _ => Value::Null,
            };
            Ok(json!({
                "id": json_value(r.get_ref(0)?),
                "fingerprint": json_value(r.get_ref(1)?),
                "title": json_value(r.get_ref(2)?),
                "author": json_value(r.get_ref(3)?),
                "notes": json_value(r.get_ref(4)?),
                "beverage_type": json_value(r.get_ref(5)?),
                "date_added": json_value(r.get_ref(6)?),
                "source_format": json_value(r.get_ref(8)?),
                "source": source,
            }))
        },
    )
    .optional()
}

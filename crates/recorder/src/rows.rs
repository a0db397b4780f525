//! One event ↔ one table row.
//!
//! Every persisted event class has its pyDE1 table ([`Table`]); [`insert`] writes an event
//! under a sequence id and [`read_sequence`] turns a sequence's rows back into the same
//! events (exactly: times and measurements are stored as 8-byte floats, enumerations as
//! their pyDE1 text).

use std::fmt::Write as _;

use ipc_schema::event::{
    AutoTareNotification, BlueDotUpdate, ConnectivityChange, DeviceAvailability, Estimate, Event,
    MachineState, ScaleButtonPress, ScaleChange, ScaleTareSeen, Sender, SequenceId,
    SequencerGateNotification, ShotSampleWithVolumesUpdate, Stamp, StateUpdate, StopAtNotification,
    Substate, WaterLevelUpdate, WeightAndFlowUpdate, VOLUME_FRAMES,
};
use pyde1_docs::payload::Class;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, Row};

use crate::names;

/// A table of notifications, one per persisted event class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    ShotSample,
    WeightAndFlow,
    State,
    Gate,
    StopAt,
    WaterLevel,
    ScaleTareSeen,
    AutoTare,
    ScaleButton,
    Connectivity,
    DeviceAvailability,
    ScaleChange,
    BlueDot,
}

impl Table {
    pub const ALL: [Table; 13] = [
        Table::ShotSample,
        Table::WeightAndFlow,
        Table::State,
        Table::Gate,
        Table::StopAt,
        Table::WaterLevel,
        Table::ScaleTareSeen,
        Table::AutoTare,
        Table::ScaleButton,
        Table::Connectivity,
        Table::DeviceAvailability,
        Table::ScaleChange,
        Table::BlueDot,
    ];

    /// The SQL table name (pyDE1's).
    pub const fn name(self) -> &'static str {
        match self {
            Table::ShotSample => "shot_sample_with_volume_update",
            Table::WeightAndFlow => "weight_and_flow_update",
            Table::State => "state_update",
            Table::Gate => "sequencer_gate_notification",
            Table::StopAt => "stop_at_notification",
            Table::WaterLevel => "water_level_update",
            Table::ScaleTareSeen => "scale_tare_seen",
            Table::AutoTare => "auto_tare_notification",
            Table::ScaleButton => "scale_button_press",
            Table::Connectivity => "connectivity_change",
            Table::DeviceAvailability => "device_availability",
            Table::ScaleChange => "scale_change",
            Table::BlueDot => "bluedot_update",
        }
    }

    /// The key of this table in the JSON of [`crate::history::get_sequence`].
    pub const fn json_key(self) -> &'static str {
        match self {
            Table::ShotSample => "shot_samples",
            Table::WeightAndFlow => "weight_and_flow",
            Table::State => "state_updates",
            Table::Gate => "gate_notifications",
            Table::StopAt => "stop_at_notifications",
            Table::WaterLevel => "water_levels",
            Table::ScaleTareSeen => "scale_tare_seen",
            Table::AutoTare => "auto_tare_notifications",
            Table::ScaleButton => "scale_button_presses",
            Table::Connectivity => "connectivity_changes",
            Table::DeviceAvailability => "device_availability",
            Table::ScaleChange => "scale_changes",
            Table::BlueDot => "bluedot_updates",
        }
    }

    /// The payload class the table holds.
    pub const fn class(self) -> Class {
        match self {
            Table::ShotSample => Class::ShotSampleWithVolumesUpdate,
            Table::WeightAndFlow => Class::WeightAndFlowUpdate,
            Table::State => Class::StateUpdate,
            Table::Gate => Class::SequencerGateNotification,
            Table::StopAt => Class::StopAtNotification,
            Table::WaterLevel => Class::WaterLevelUpdate,
            Table::ScaleTareSeen => Class::ScaleTareSeen,
            Table::AutoTare => Class::AutoTareNotification,
            Table::ScaleButton => Class::ScaleButtonPress,
            Table::Connectivity => Class::ConnectivityChange,
            Table::DeviceAvailability => Class::DeviceAvailability,
            Table::ScaleChange => Class::ScaleChange,
            Table::BlueDot => Class::BlueDotUpdate,
        }
    }

    /// The payload's semantic version, stored in the `version` column.
    pub const fn payload_version(self) -> &'static str {
        self.class().version()
    }

    /// How many of the most recent notifications of this class are kept while nothing is
    /// recorded, and written at the start of the next sequence (pyDE1's sizes).
    pub const fn history_len(self) -> usize {
        match self {
            Table::ShotSample => 5,
            Table::WeightAndFlow => 10,
            Table::State => 7,
            Table::Gate => 16,
            Table::StopAt => 1,
            Table::WaterLevel => 3,
            Table::ScaleTareSeen => 3,
            Table::AutoTare => 3,
            Table::ScaleButton => 3,
            Table::Connectivity => 8,
            Table::DeviceAvailability => 12,
            Table::ScaleChange => 2,
            Table::BlueDot => 10,
        }
    }

    /// The table an event is stored in; `None` for events that are not kept (heartbeats,
    /// logs, scans, firmware progress, settings pushes, process status).
    pub fn of(event: &Event) -> Option<Table> {
        Some(match event {
            Event::ShotSampleWithVolumesUpdate(_) => Table::ShotSample,
            Event::WeightAndFlowUpdate(_) => Table::WeightAndFlow,
            Event::StateUpdate(_) => Table::State,
            Event::SequencerGateNotification(_) => Table::Gate,
            Event::StopAtNotification(_) => Table::StopAt,
            Event::WaterLevelUpdate(_) => Table::WaterLevel,
            Event::ScaleTareSeen(_) => Table::ScaleTareSeen,
            Event::AutoTareNotification(_) => Table::AutoTare,
            Event::ScaleButtonPress(_) => Table::ScaleButton,
            Event::ConnectivityChange(_) => Table::Connectivity,
            Event::DeviceAvailability(_) => Table::DeviceAvailability,
            Event::ScaleChange(_) => Table::ScaleChange,
            Event::BlueDotUpdate(_) => Table::BlueDot,
            Event::Heartbeat
            | Event::FirmwareUpload(_)
            | Event::ScanResults(_)
            | Event::AreaUpdate(_)
            | Event::ProfileIdUpdate(_)
            | Event::Log(_)
            | Event::ProcessStatus(_) => return None,
        })
    }
}

/// The `event_time` of a persisted event.
pub fn event_time(event: &Event) -> Option<f64> {
    Some(stamp(event)?.event_time)
}

fn stamp(event: &Event) -> Option<&Stamp> {
    Some(match event {
        Event::ShotSampleWithVolumesUpdate(e) => &e.stamp,
        Event::WeightAndFlowUpdate(e) => &e.stamp,
        Event::StateUpdate(e) => &e.stamp,
        Event::SequencerGateNotification(e) => &e.stamp,
        Event::StopAtNotification(e) => &e.stamp,
        Event::WaterLevelUpdate(e) => &e.stamp,
        Event::ScaleTareSeen(e) => &e.stamp,
        Event::AutoTareNotification(e) => &e.stamp,
        Event::ScaleButtonPress(e) => &e.stamp,
        Event::ConnectivityChange(e) => &e.stamp,
        Event::DeviceAvailability(e) => &e.stamp,
        Event::ScaleChange(e) => &e.stamp,
        Event::BlueDotUpdate(e) => &e.stamp,
        _ => return None,
    })
}

/// `volume_by_frames` as stored: a Python-style list (`[]` before the first sequence,
/// `0` for an empty frame, shortest round-trip digits otherwise).
pub fn volumes_text(frames: Option<&[f64; VOLUME_FRAMES]>) -> String {
    let mut out = String::with_capacity(8 + VOLUME_FRAMES * 6);
    out.push('[');
    if let Some(frames) = frames {
        for (i, v) in frames.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if *v == 0.0 {
                out.push('0');
            } else {
                // Debug of f64 is the shortest text that reads back to the same value.
                let _ = write!(out, "{v:?}");
            }
        }
    }
    out.push(']');
    out
}

/// Reads [`volumes_text`] (or pyDE1's own formatting) back; `None` for malformed text or a
/// list that is neither empty nor [`VOLUME_FRAMES`] long.
pub fn parse_volumes(text: &str) -> Option<Option<[f64; VOLUME_FRAMES]>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(None);
    }
    let mut out = [0.0; VOLUME_FRAMES];
    let mut n = 0;
    for part in inner.split(',') {
        let v: f64 = part.trim().parse().ok()?;
        *out.get_mut(n)? = v;
        n += 1;
    }
    (n == VOLUME_FRAMES).then_some(Some(out))
}

fn est(e: Option<Estimate>) -> (f64, f64) {
    // pyDE1 stores (and publishes) 0 for both while there is too little history.
    e.map_or((0.0, 0.0), |e| (e.value, e.time))
}

/// Inserts `event` under `sequence` (the 36-character id). Returns false for events that
/// are not stored. Statements are cached on the connection.
pub fn insert(conn: &Connection, sequence: &str, event: &Event) -> rusqlite::Result<bool> {
    let Some(table) = Table::of(event) else {
        return Ok(false);
    };
    let Some(st) = stamp(event) else {
        return Ok(false);
    };
    let v = table.payload_version();
    let (a, c, t) = (st.arrival_time, st.create_time, st.event_time);
    match event {
        Event::ShotSampleWithVolumesUpdate(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO shot_sample_with_volume_update (sequence_id, version, sender, \
                 arrival_time, create_time, event_time, de1_time, sample_time, group_pressure, \
                 group_flow, mix_temp, head_temp, set_mix_temp, set_head_temp, \
                 set_group_pressure, set_group_flow, frame_number, steam_temp, \
                 volume_preinfuse, volume_pour, volume_total, volume_by_frames) VALUES \
                 (?1, ?2, 'DE1', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18, ?19, ?20, ?21)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                e.de1_time,
                e.sample_time,
                e.group_pressure,
                e.group_flow,
                e.mix_temp,
                e.head_temp,
                e.set_mix_temp,
                e.set_head_temp,
                e.set_group_pressure,
                e.set_group_flow,
                e.frame_number,
                e.steam_temp,
                e.volume_preinfuse,
                e.volume_pour,
                e.volume_total,
                volumes_text(e.volume_by_frames.as_ref()),
            ])?;
        }
        Event::WeightAndFlowUpdate(e) => {
            let (af, aft) = est(e.average_flow);
            let (mw, mwt) = est(e.median_weight);
            let (mf, mft) = est(e.median_flow);
            let mut s = conn.prepare_cached(
                "INSERT INTO weight_and_flow_update (sequence_id, version, sender, \
                 arrival_time, create_time, event_time, scale_time, current_weight, \
                 current_weight_time, average_flow, average_flow_time, median_weight, \
                 median_weight_time, median_flow, median_flow_time) VALUES \
                 (?1, ?2, 'ScaleProcessor', ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                e.scale_time,
                e.current_weight,
                af,
                aft,
                mw,
                mwt,
                mf,
                mft
            ])?;
        }
        Event::StateUpdate(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO state_update (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, state, substate, previous_state, previous_substate, \
                 is_error_state) VALUES (?1, ?2, 'DE1', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                e.state.as_str(),
                e.substate.as_str(),
                e.previous_state.as_str(),
                e.previous_substate.as_str(),
                i64::from(e.is_error_state),
            ])?;
        }
        Event::SequencerGateNotification(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO sequencer_gate_notification (sequence_id, version, sender, \
                 arrival_time, create_time, event_time, name, action, active_state) VALUES \
                 (?1, ?2, 'FlowSequencerImpl', ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                names::gate_name(e.name),
                names::gate_action_name(e.action),
                e.active_state.map(|s| s.as_str()),
            ])?;
        }
        Event::StopAtNotification(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO stop_at_notification (sequence_id, version, sender, \
                 arrival_time, create_time, event_time, stop_at, action, active_state, \
                 target_value, current_value, current_frame) VALUES \
                 (?1, ?2, 'FlowSequencerImpl', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                names::stop_at_name(e.stop_at),
                names::stop_at_action_name(e.action),
                e.active_state.as_str(),
                e.target_value,
                e.current_value,
                e.current_frame,
            ])?;
        }
        Event::WaterLevelUpdate(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO water_level_update (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, level, start_fill_level) VALUES \
                 (?1, ?2, 'DE1', ?3, ?4, ?5, ?6, ?7)",
            )?;
            s.execute(params![sequence, v, a, c, t, e.level, e.start_fill_level])?;
        }
        Event::ScaleTareSeen(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO scale_tare_seen (sequence_id, version, sender, arrival_time, \
                 create_time, event_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            s.execute(params![sequence, v, names::sender_name(e.sender), a, c, t])?;
        }
        Event::AutoTareNotification(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO auto_tare_notification (sequence_id, version, sender, \
                 arrival_time, create_time, event_time, action) VALUES \
                 (?1, ?2, 'FlowSequencerImpl', ?3, ?4, ?5, ?6)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                names::auto_tare_name(e.action)
            ])?;
        }
        Event::ScaleButtonPress(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO scale_button_press (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, button) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            s.execute(params![
                sequence,
                v,
                names::sender_name(e.sender),
                a,
                c,
                t,
                e.button
            ])?;
        }
        Event::ConnectivityChange(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO connectivity_change (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, state, id, name) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            s.execute(params![
                sequence,
                v,
                names::sender_name(e.sender),
                a,
                c,
                t,
                names::connectivity_name(e.state),
                e.id,
                e.name
            ])?;
        }
        Event::DeviceAvailability(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO device_availability (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, state, id, name, role, simulated) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            s.execute(params![
                sequence,
                v,
                names::sender_name(e.sender),
                a,
                c,
                t,
                names::availability_name(e.state),
                e.id,
                e.name,
                names::role_name(e.role),
                e.simulated,
            ])?;
        }
        Event::ScaleChange(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO scale_change (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, state, id, name) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            s.execute(params![
                sequence,
                v,
                names::sender_name(e.sender),
                a,
                c,
                t,
                names::availability_name(e.state),
                e.id,
                e.name
            ])?;
        }
        Event::BlueDotUpdate(e) => {
            let mut s = conn.prepare_cached(
                "INSERT INTO bluedot_update (sequence_id, version, sender, arrival_time, \
                 create_time, event_time, temperature, high_alarm, units, alarm_byte, name) \
                 VALUES (?1, ?2, 'BlueDOT', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            s.execute(params![
                sequence,
                v,
                a,
                c,
                t,
                e.temperature,
                e.high_alarm,
                names::units_name(e.units),
                e.alarm_byte,
                e.name
            ])?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A row that could not be read back as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub table: Table,
    pub rowid: i64,
    pub reason: String,
}

/// An event read back, with where it came from (for a stable order).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub table: Table,
    pub rowid: i64,
}

/// Every stored event of `sequence`, ordered by `event_time` (ties: table, then insertion
/// order), and the rows that could not be read.
pub fn read_sequence(
    conn: &Connection,
    sequence: &str,
) -> rusqlite::Result<(Vec<StoredEvent>, Vec<BadRow>)> {
    let sequence_id = parse_sequence_id(sequence);
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for table in Table::ALL {
        let sql = format!(
            "SELECT rowid, * FROM {} WHERE sequence_id = ?1 ORDER BY event_time, rowid",
            table.name()
        );
        let mut stmt = conn.prepare(&sql)?;
        let cols: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query([sequence])?;
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(0)?;
            let r = RowView { row, cols: &cols };
            match decode(table, &r, sequence_id) {
                Ok(event) => events.push(StoredEvent {
                    event,
                    table,
                    rowid,
                }),
                Err(reason) => bad.push(BadRow {
                    table,
                    rowid,
                    reason,
                }),
            }
        }
    }
    events.sort_by(|a, b| {
        let ta = event_time(&a.event).unwrap_or(0.0);
        let tb = event_time(&b.event).unwrap_or(0.0);
        ta.total_cmp(&tb)
            .then(a.table.cmp(&b.table))
            .then(a.rowid.cmp(&b.rowid))
    });
    Ok((events, bad))
}

/// Parses the hyphenated form of a UUID; `None` for anything else.
pub fn parse_sequence_id(text: &str) -> Option<SequenceId> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(SequenceId(out))
}

/// Column access by name, tolerant of the layouts of older versions (a missing column
/// reads as NULL).
struct RowView<'a, 'r> {
    row: &'a Row<'r>,
    cols: &'a [String],
}

impl RowView<'_, '_> {
    fn value(&self, name: &str) -> ValueRef<'_> {
        match self.cols.iter().position(|c| c == name) {
            Some(i) => self.row.get_ref(i).unwrap_or(ValueRef::Null),
            None => ValueRef::Null,
        }
    }

    fn f64(&self, name: &str) -> Result<f64, String> {
        self.opt_f64(name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    fn opt_f64(&self, name: &str) -> Result<Option<f64>, String> {
        match self.value(name) {
            ValueRef::Null => Ok(None),
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| format!("{name} is not a number")),
            ValueRef::Blob(_) => Err(format!("{name} is not a number")),
        }
    }

    fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, String> {
        self.opt_int(name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    fn opt_int<T: TryFrom<i64>>(&self, name: &str) -> Result<Option<T>, String> {
        let v = match self.opt_f64(name)? {
            None => return Ok(None),
            Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => v as i64,
            Some(_) => return Err(format!("{name} is not an integer")),
        };
        T::try_from(v)
            .map(Some)
            .map_err(|_| format!("{name} is out of range"))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.opt_text(name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>, String> {
        match self.value(name) {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            ValueRef::Integer(v) => Ok(Some(v.to_string())),
            ValueRef::Real(v) => Ok(Some(v.to_string())),
            ValueRef::Blob(_) => Err(format!("{name} is not text")),
        }
    }

    fn stamp(&self) -> Result<Stamp, String> {
        Ok(Stamp {
            arrival_time: self.f64("arrival_time")?,
            create_time: self.f64("create_time")?,
            event_time: self.f64("event_time")?,
        })
    }

    fn sender(&self) -> Result<Sender, String> {
        let s = self.text("sender")?;
        names::sender_from(&s).ok_or_else(|| format!("unknown sender {s:?}"))
    }

    fn state(&self, name: &str) -> Result<MachineState, String> {
        let s = self.text(name)?;
        s.parse().map_err(|_| format!("unknown {name} {s:?}"))
    }

    fn substate(&self, name: &str) -> Result<Substate, String> {
        let s = self.text(name)?;
        s.parse().map_err(|_| format!("unknown {name} {s:?}"))
    }

    fn boolean(&self, name: &str) -> Result<bool, String> {
        match self.value(name) {
            ValueRef::Integer(v) => Ok(v != 0),
            ValueRef::Real(v) => Ok(v != 0.0),
            ValueRef::Text(t) => match t {
                b"1" | b"True" | b"true" => Ok(true),
                b"0" | b"False" | b"false" => Ok(false),
                _ => Err(format!("{name} is not a boolean")),
            },
            _ => Err(format!("{name} is not a boolean")),
        }
    }

    fn estimate(&self, value: &str, time: &str) -> Result<Option<Estimate>, String> {
        let v = self.opt_f64(value)?.unwrap_or(0.0);
        let t = self.opt_f64(time)?.unwrap_or(0.0);
        // A real estimate has an epoch time; 0 means "not enough history yet".
        Ok((t != 0.0).then_some(Estimate { value: v, time: t }))
    }
}

fn lookup<T>(what: &str, text: String, f: impl Fn(&str) -> Option<T>) -> Result<T, String> {
    f(&text).ok_or_else(|| format!("unknown {what} {text:?}"))
}

/// pyDE1 0.6 rows have no id/name; pyDE1's replay substitutes these.
fn placeholder_device(sender: Sender) -> (&'static str, &'static str) {
    if sender == Sender::De1 {
        ("D9:B2:48:aa:bb:cc", "DE1")
    } else {
        ("CF:75:75:aa:bb::cc", "Skale")
    }
}

fn decode(
    table: Table,
    r: &RowView<'_, '_>,
    sequence: Option<SequenceId>,
) -> Result<Event, String> {
    let stamp = r.stamp()?;
    Ok(match table {
        Table::ShotSample => {
            let text = r.opt_text("volume_by_frames")?.unwrap_or_default();
            let volume_by_frames = if text.is_empty() {
                None
            } else {
                parse_volumes(&text).ok_or("volume_by_frames is malformed")?
            };
            Event::ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate {
                stamp,
                sample_time: r.int("sample_time")?,
                group_pressure: r.f64("group_pressure")?,
                group_flow: r.f64("group_flow")?,
                mix_temp: r.f64("mix_temp")?,
                head_temp: r.f64("head_temp")?,
                set_mix_temp: r.f64("set_mix_temp")?,
                set_head_temp: r.f64("set_head_temp")?,
                set_group_pressure: r.f64("set_group_pressure")?,
                set_group_flow: r.f64("set_group_flow")?,
                frame_number: r.int("frame_number")?,
                steam_temp: r.int("steam_temp")?,
                de1_time: r.f64("de1_time")?,
                volume_preinfuse: r.opt_f64("volume_preinfuse")?.unwrap_or(0.0),
                volume_pour: r.opt_f64("volume_pour")?.unwrap_or(0.0),
                volume_total: r.opt_f64("volume_total")?.unwrap_or(0.0),
                volume_by_frames,
            })
        }
        Table::WeightAndFlow => Event::WeightAndFlowUpdate(WeightAndFlowUpdate {
            stamp,
            scale_time: r.f64("scale_time")?,
            current_weight: r.f64("current_weight")?,
            average_flow: r.estimate("average_flow", "average_flow_time")?,
            median_weight: r.estimate("median_weight", "median_weight_time")?,
            median_flow: r.estimate("median_flow", "median_flow_time")?,
        }),
        Table::State => Event::StateUpdate(StateUpdate {
            stamp,
            state: r.state("state")?,
            substate: r.substate("substate")?,
            previous_state: r.state("previous_state")?,
            previous_substate: r.substate("previous_substate")?,
            is_error_state: r.boolean("is_error_state")?,
        }),
        Table::Gate => Event::SequencerGateNotification(SequencerGateNotification {
            stamp,
            name: lookup("gate", r.text("name")?, names::gate_from)?,
            action: lookup("gate action", r.text("action")?, names::gate_action_from)?,
            // Rows are stored under the sequence they belong to.
            sequence_id: sequence.ok_or("the sequence id is not a UUID")?,
            active_state: match r.opt_text("active_state")? {
                None => None,
                Some(s) => Some(s.parse().map_err(|_| format!("unknown state {s:?}"))?),
            },
        }),
        Table::StopAt => Event::StopAtNotification(StopAtNotification {
            stamp,
            stop_at: lookup("stop-at", r.text("stop_at")?, names::stop_at_from)?,
            action: lookup(
                "stop-at action",
                r.text("action")?,
                names::stop_at_action_from,
            )?,
            target_value: r.opt_f64("target_value")?,
            current_value: r.opt_f64("current_value")?,
            active_state: r.state("active_state")?,
            current_frame: r.opt_int("current_frame")?,
        }),
        Table::WaterLevel => Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp,
            level: r.f64("level")?,
            start_fill_level: r.f64("start_fill_level")?,
        }),
        Table::ScaleTareSeen => Event::ScaleTareSeen(ScaleTareSeen {
            stamp,
            sender: r.sender()?,
        }),
        Table::AutoTare => Event::AutoTareNotification(AutoTareNotification {
            stamp,
            action: lookup("auto-tare action", r.text("action")?, names::auto_tare_from)?,
        }),
        Table::ScaleButton => Event::ScaleButtonPress(ScaleButtonPress {
            stamp,
            sender: r.sender()?,
            button: r.int("button")?,
        }),
        Table::Connectivity => {
            let sender = r.sender()?;
            let (pid, pname) = placeholder_device(sender);
            Event::ConnectivityChange(ConnectivityChange {
                stamp,
                sender,
                state: lookup("state", r.text("state")?, names::connectivity_from)?,
                id: r.opt_text("id")?.unwrap_or_else(|| pid.to_owned()),
                name: r.opt_text("name")?.unwrap_or_else(|| pname.to_owned()),
            })
        }
        Table::DeviceAvailability => Event::DeviceAvailability(DeviceAvailability {
            stamp,
            sender: r.sender()?,
            state: lookup("state", r.text("state")?, names::availability_from)?,
            role: lookup("role", r.text("role")?, names::role_from)?,
            id: r.opt_text("id")?.unwrap_or_default(),
            name: r.opt_text("name")?.unwrap_or_default(),
            // Absent (pyDE1's files): a real device.
            simulated: r.opt_int::<i64>("simulated")?.unwrap_or(0) != 0,
        }),
        Table::ScaleChange => Event::ScaleChange(ScaleChange {
            stamp,
            sender: r.sender()?,
            state: lookup("state", r.text("state")?, names::availability_from)?,
            id: r.opt_text("id")?.unwrap_or_default(),
            name: r.opt_text("name")?.unwrap_or_default(),
        }),
        Table::BlueDot => Event::BlueDotUpdate(BlueDotUpdate {
            stamp,
            temperature: r.f64("temperature")?.round() as i32,
            high_alarm: r.f64("high_alarm")?.round() as i32,
            units: lookup("units", r.text("units")?, names::units_from)?,
            alarm_byte: r.int("alarm_byte")?,
            name: r.opt_text("name")?.unwrap_or_default(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_round_trip_exactly() {
        let mut frames = [0.0; VOLUME_FRAMES];
        frames[0] = 4.166_666_666_666_667;
        frames[2] = 11.66;
        frames[3] = 1e-7;
        frames[19] = 123_456.789;
        let text = volumes_text(Some(&frames));
        assert!(
            text.starts_with("[4.166666666666667, 0, 11.66, 1e-7, 0"),
            "{text}"
        );
        assert_eq!(parse_volumes(&text), Some(Some(frames)));
        assert_eq!(volumes_text(None), "[]");
        assert_eq!(parse_volumes("[]"), Some(None));
        // pyDE1's own formatting reads too.
        let py = format!("[1.0, 0, 1e-07{}]", ", 0".repeat(17));
        let mut want = [0.0; VOLUME_FRAMES];
        want[0] = 1.0;
        want[2] = 1e-7;
        assert_eq!(parse_volumes(&py), Some(Some(want)));
        for bad in ["", "[1, 2]", "[x]", "1, 2", "[1,,2]"] {
            assert_eq!(parse_volumes(bad), None, "{bad}");
        }
    }

    #[test]
    fn sequence_ids_parse_back() {
        let id = SequenceId::from_random_bytes([0x5a; 16]);
        assert_eq!(parse_sequence_id(&id.to_string()), Some(id));
        for bad in [
            "",
            "dummy",
            "aaec143f7078419b9a85d1f370eee4a5",
            "zzec143f-7078-419b-9a85-d1f370eee4a5",
        ] {
            assert_eq!(parse_sequence_id(bad), None, "{bad}");
        }
    }
}

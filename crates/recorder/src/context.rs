//! A sequence's profile and the settings in force, as stored in its `sequence` row.
//!
//! pyDE1 keeps compact JSON snapshots of its HTTP documents in the `resource_*` columns
//! (`pyde1-sequencer.md` §3); de1d renders the same documents from the controller's
//! typed answers with `pyde1_docs::document`, so they read exactly as `GET` returns them.
//!
//! The profile is deduplicated by id (SHA-1 of its source); its fingerprint (SHA-1 of the
//! frames) is stored alongside, so sequences can be grouped by what the machine ran.

use de1_protocol::profile::encode_profile;
use ipc_schema::command::{De1Document, DeviceId, Document, Resource};
use ipc_schema::event::MachineState;
use pyde1_docs::pyjson::to_compact;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

use crate::recorder::{RecorderOptions, SequenceContext};
use crate::schema::{hkv_get, hkv_set, now_epoch};

const LOG: &str = "recorder";

/// The compact JSON of `GET resource`.
fn doc(resource: Resource, document: Document) -> Option<String> {
    pyde1_docs::document::document(resource, &document, true)
        .ok()
        .map(|v| to_compact(&v))
}

/// The `resource_*` columns for a sequence in `mode`, in column order.
pub(crate) fn resources(
    de1: Option<&De1Document>,
    scale: Option<&DeviceId>,
    mode: Option<MachineState>,
) -> [(&'static str, Option<String>); 10] {
    use Resource as R;
    let version = Some(to_compact(&json!({
        "name": "de1d",
        "version": env!("CARGO_PKG_VERSION"),
    })));
    let controls = |r| de1.and_then(|d| doc(r, Document::Controls(d.control.clone())));
    let settings = |r| de1.and_then(|d| doc(r, Document::Settings(d.setting.clone())));
    let mode_resource = match mode {
        Some(MachineState::Espresso) => Some(R::De1ControlEspresso),
        Some(MachineState::Steam) => Some(R::De1ControlSteam),
        Some(MachineState::HotWater) => Some(R::De1ControlHotWater),
        Some(MachineState::HotWaterRinse) => Some(R::De1ControlHotWaterRinse),
        _ => None,
    };
    [
        ("resource_version", version),
        (
            "resource_de1_id",
            de1.and_then(|d| doc(R::De1Id, Document::DeviceId(d.id.clone()))),
        ),
        (
            "resource_de1_read_once",
            de1.and_then(|d| {
                doc(
                    R::De1ReadOnceValues,
                    Document::ReadOnce(d.read_once.clone()),
                )
            }),
        ),
        (
            "resource_de1_calibration_flow_multiplier",
            de1.and_then(|d| {
                doc(
                    R::De1CalibrationFlowMultiplier,
                    Document::Calibration(d.calibration.clone()),
                )
            }),
        ),
        (
            "resource_de1_control_mode",
            mode_resource.and_then(controls),
        ),
        (
            "resource_de1_control_tank_water_threshold",
            controls(R::De1ControlTankWaterThreshold),
        ),
        (
            "resource_de1_setting_before_flow",
            settings(R::De1SettingBeforeFlow),
        ),
        ("resource_de1_setting_steam", settings(R::De1SettingSteam)),
        (
            "resource_de1_setting_target_group_temp",
            settings(R::De1SettingTargetGroupTemp),
        ),
        (
            "resource_scale_id",
            scale.and_then(|s| doc(R::ScaleId, Document::DeviceId(s.clone()))),
        ),
    ]
}

/// Records `context` on the row of `sequence`: the profile (added to `profile` if new),
/// whether it was assumed, and the settings snapshots.
pub(crate) fn apply(
    conn: &Connection,
    sequence: &str,
    context: &SequenceContext,
    options: &RecorderOptions,
) -> rusqlite::Result<()> {
    let mode: Option<MachineState> = conn
        .query_row(
            "SELECT active_state FROM sequence WHERE id = ?1",
            [sequence],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .and_then(|s| s.parse().ok());

    let (profile_id, assumed) = match &context.profile_id {
        Some(id) => (id.to_ascii_lowercase(), false),
        None => match hkv_get(conn, "last_profile", "id")? {
            Some(id) if !id.is_empty() => (id, true),
            _ => ("dummy".to_owned(), true),
        },
    };
    if profile_id != "dummy" {
        let source = context
            .profile_source
            .clone()
            .or_else(|| read_profile_file(options, &profile_id));
        ensure_profile(conn, &profile_id, source.as_deref())?;
        if !assumed {
            hkv_set(conn, "last_profile", "id", &profile_id)?;
            hkv_set(conn, "last_profile", "datetime", &now_epoch().to_string())?;
        }
    }

    let cols = resources(context.de1.as_ref(), context.scale.as_ref(), mode);
    let mut sql = String::from("UPDATE sequence SET profile_id = ?1, profile_assumed = ?2");
    for (i, (name, _)) in cols.iter().enumerate() {
        sql.push_str(&format!(", {name} = ?{}", i + 3));
    }
    sql.push_str(&format!(" WHERE id = ?{}", cols.len() + 3));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&profile_id, &assumed];
    for (_, v) in &cols {
        params.push(v);
    }
    params.push(&sequence);
    stmt.execute(params.as_slice())?;
    Ok(())
}

/// `<profile_dir>/<id>.json`, if configured and present.
fn read_profile_file(options: &RecorderOptions, id: &str) -> Option<Vec<u8>> {
    let dir = options.profile_dir.as_ref()?;
    // Only plain hex ids name files.
    if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    std::fs::read(dir.join(format!("{id}.json"))).ok()
}

/// Makes sure `profile` has a row for `id`; fills in the source of a row created without
/// one. A source whose id differs from `id` is not used for it (it is stored under its own
/// id instead).
fn ensure_profile(conn: &Connection, id: &str, source: Option<&[u8]>) -> rusqlite::Result<()> {
    if let Some(source) = source {
        if let Some(stored) = store_profile(conn, source)? {
            if stored == id {
                return Ok(());
            }
            log::warn!(target: LOG, "profile file for {id} holds profile {stored}");
        }
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO profile (id, source, source_format, fingerprint, date_added) \
         VALUES (?1, X'', 'unknown', '', ?2)",
    )?
    .execute((id, now_epoch()))?;
    Ok(())
}

/// Stores a profile source (JSON v2) under its id, with its fingerprint and descriptive
/// fields; completes a row created earlier without a source. Returns the id, or `None` if
/// the source is not a valid profile (nothing is stored then).
pub(crate) fn store_profile(conn: &Connection, source: &[u8]) -> rusqlite::Result<Option<String>> {
    let encoded = match encode_profile(source) {
        Ok(e) => e,
        Err(e) => {
            log::warn!(target: LOG, "not storing an invalid profile: {e}");
            return Ok(None);
        }
    };
    let p = &encoded.profile;
    conn.prepare_cached(
        "INSERT INTO profile (id, source, source_format, fingerprint, date_added, title, \
         author, notes, beverage_type) VALUES (?1, ?2, 'JSONv2', ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (id) DO UPDATE SET source = excluded.source, \
         source_format = excluded.source_format, fingerprint = excluded.fingerprint, \
         title = excluded.title, author = excluded.author, notes = excluded.notes, \
         beverage_type = excluded.beverage_type WHERE length(profile.source) = 0",
    )?
    .execute((
        &encoded.id,
        source,
        &encoded.fingerprint,
        now_epoch(),
        &p.title,
        &p.author,
        &p.notes,
        &p.beverage_type,
    ))?;
    Ok(Some(encoded.id))
}

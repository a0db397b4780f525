//! The database layout, its versions, and opening a file safely.
//!
//! The layout is pyDE1's (`pyde1-runtime.md` §7.2): same tables, same columns, same text
//! for enumerated values, so the shot history of a pyDE1 installation can be opened as is,
//! and pyDE1's tools can read de1d's file. Version numbers continue pyDE1's
//! `PRAGMA user_version`:
//!
//! | version | written by | change |
//! |---|---|---|
//! | 1 | pyDE1 0.6 | first layout |
//! | 2 | pyDE1 0.7 | `connectivity_change.id`, `.name` |
//! | 3 | pyDE1 2.0 | `device_availability`, `scale_change`, `bluedot_update` (pyDE1 2.0.0 itself leaves a fresh file at 2) |
//! | 4 | de1d | `sequence.end_reason`, `sequence.dropped_events`, `stop_at_notification.current_frame`, `device_availability.simulated` |
//!
//! Opening for writing migrates an older file in one transaction, after copying it to
//! `<file>.v<old>.<unix time>.backup`. A file of a newer version is refused and left
//! untouched. A fresh file is created at the current version directly and reopens
//! cleanly (pyDE1 2.0.0's fresh file fails on its second start).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The version this crate writes and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the directory of database {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this de1d understands \
         ({SCHEMA_VERSION}); it was left untouched. Use the de1d version that wrote it, or \
         point [database] path at another file"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error(
        "database {path} has schema version {found}, which must be upgraded before it can \
         be read; start de1d (the recorder upgrades it) and try again"
    )]
    NeedsUpgrade { path: PathBuf, found: i64 },
    #[error("{path} is not a shot database (it holds other tables and no schema version)")]
    Foreign { path: PathBuf },
    #[error("no shot database at {path} yet")]
    Missing { path: PathBuf },
    #[error("could not back up {path} before upgrading it: {source}")]
    Backup {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl SchemaError {
    /// The SQLite error behind this one, if any.
    pub fn sqlite(&self) -> Option<&rusqlite::Error> {
        match self {
            SchemaError::Sqlite { source, .. } | SchemaError::Backup { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What [`open_for_writing`] did to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The file was new or empty; it now has the current layout.
    Created,
    /// The file already had the current layout.
    Current,
    /// The file was upgraded from `from`; its previous content was copied to `backup`.
    Migrated { from: i64, backup: PathBuf },
}

/// pyDE1's schema 3, the layout every later version builds on. The seed rows (`dummy`
/// profile and sequence) are pyDE1's: rows recorded before a profile is known point at
/// them, so they must exist.
const BASE_V3: &str = r#"
CREATE TABLE profile (
    id              TEXT NOT NULL PRIMARY KEY,
    source          BLOB NOT NULL,
    source_format   TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    date_added      REAL,
    title           TEXT,
    author          TEXT,
    notes           TEXT,
    beverage_type   TEXT
);
CREATE INDEX idx_profile_fingerprint ON profile (fingerprint);
CREATE INDEX idx_profile_date_added ON profile (date_added);
CREATE INDEX idx_profile_title ON profile (title);
CREATE INDEX idx_profile_beverage_type ON profile (beverage_type);

CREATE TABLE persist_hkv (
    header  TEXT,
    key     TEXT NOT NULL,
    value   TEXT
);
CREATE UNIQUE INDEX idx_persist_hkv_hk ON persist_hkv (header, key);

CREATE TABLE sequence (
    id              TEXT NOT NULL PRIMARY KEY,
    active_state    TEXT,
    start_sequence  REAL,
    start_flow      REAL,
    end_flow        REAL,
    end_sequence    REAL,
    profile_id      TEXT NOT NULL REFERENCES profile (id),
    profile_assumed INTEGER,
    resource_version                            TEXT,
    resource_de1_id                             TEXT,
    resource_de1_read_once                      TEXT,
    resource_de1_calibration_flow_multiplier    TEXT,
    resource_de1_control_mode                   TEXT,
    resource_de1_control_tank_water_threshold   TEXT,
    resource_de1_setting_before_flow            TEXT,
    resource_de1_setting_steam                  TEXT,
    resource_de1_setting_target_group_temp      TEXT,
    resource_scale_id                           TEXT
);
CREATE INDEX idx_sequence_active_state ON sequence (active_state);
CREATE INDEX idx_sequence_start_sequence ON sequence (start_sequence);
CREATE INDEX idx_sequence_start_flow ON sequence (start_flow);
CREATE INDEX idx_sequence_end_flow ON sequence (end_flow);
CREATE INDEX idx_sequence_end_sequence ON sequence (end_sequence);
CREATE INDEX idx_sequence_profile_id ON sequence (profile_id);

CREATE TABLE shot_sample_with_volume_update (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    de1_time            REAL,
    sample_time         INTEGER,
    group_pressure      REAL,
    group_flow          REAL,
    mix_temp            REAL,
    head_temp           REAL,
    set_mix_temp        REAL,
    set_head_temp       REAL,
    set_group_pressure  REAL,
    set_group_flow      REAL,
    frame_number        INTEGER,
    steam_temp          REAL,
    volume_preinfuse    REAL,
    volume_pour         REAL,
    volume_total        REAL,
    volume_by_frames    TEXT
);
CREATE INDEX idx_shot_sample_with_volume_update_sequence_id
    ON shot_sample_with_volume_update (sequence_id);

CREATE TABLE weight_and_flow_update (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    scale_time          REAL,
    current_weight      REAL,
    current_weight_time REAL,
    average_flow        REAL,
    average_flow_time   REAL,
    median_weight       REAL,
    median_weight_time  REAL,
    median_flow         REAL,
    median_flow_time    REAL
);
CREATE INDEX idx_weight_and_flow_update_sequence_id ON weight_and_flow_update (sequence_id);

CREATE TABLE state_update (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    state               TEXT,
    substate            TEXT,
    previous_state      TEXT,
    previous_substate   TEXT,
    is_error_state      TEXT
);
CREATE INDEX idx_state_update_sequence_id ON state_update (sequence_id);

CREATE TABLE sequencer_gate_notification (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    name                TEXT,
    action              TEXT,
    active_state        TEXT
);
CREATE INDEX idx_sequencer_gate_notification_sequence_id
    ON sequencer_gate_notification (sequence_id);

CREATE TABLE stop_at_notification (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    stop_at             TEXT,
    action              TEXT,
    active_state        TEXT,
    target_value        REAL,
    current_value       REAL
);
CREATE INDEX idx_stop_at_notification_sequence_id ON stop_at_notification (sequence_id);

CREATE TABLE water_level_update (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    level               REAL,
    start_fill_level    REAL
);
CREATE INDEX idx_water_level_update_sequence_id ON water_level_update (sequence_id);

CREATE TABLE scale_tare_seen (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL
);
CREATE INDEX idx_scale_tare_seen_sequence_id ON scale_tare_seen (sequence_id);

CREATE TABLE auto_tare_notification (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    action              TEXT
);
CREATE INDEX idx_auto_tare_notification_sequence_id ON auto_tare_notification (sequence_id);

CREATE TABLE scale_button_press (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    button              INTEGER
);
CREATE INDEX idx_scale_button_press_sequence_id ON scale_button_press (sequence_id);

CREATE TABLE connectivity_change (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    state               TEXT,
    id                  TEXT,
    name                TEXT
);
CREATE INDEX idx_connectivity_change_sequence_id ON connectivity_change (sequence_id);

INSERT INTO profile (id, source, source_format, fingerprint, date_added)
    VALUES ('dummy', 'dummy', 'dummy', 'dummy', 0);
INSERT INTO persist_hkv (header, key, value) VALUES ('last_profile', 'id', 'dummy');
INSERT INTO persist_hkv (header, key, value) VALUES ('last_profile', 'datetime', 0);
INSERT INTO sequence (id, profile_id) VALUES ('dummy', 'dummy');
"#;

/// 1 → 2 (pyDE1 0.7).
const UPGRADE_1_2: &str = "
ALTER TABLE connectivity_change ADD COLUMN id TEXT;
ALTER TABLE connectivity_change ADD COLUMN name TEXT;
";

/// 2 → 3 (pyDE1 2.0). `IF NOT EXISTS`: pyDE1 2.0.0 creates these tables in a fresh file
/// but labels it version 2.
const UPGRADE_2_3: &str = "
CREATE TABLE IF NOT EXISTS device_availability (
    sequence_id TEXT NOT NULL REFERENCES sequence (id),
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    state               TEXT,
    id                  TEXT,
    name                TEXT,
    role                TEXT
);
CREATE INDEX IF NOT EXISTS idx_device_availability_sequence_id
    ON device_availability (sequence_id);

CREATE TABLE IF NOT EXISTS scale_change (
    sequence_id TEXT,
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    state               TEXT,
    id                  TEXT,
    name                TEXT
);
CREATE INDEX IF NOT EXISTS idx_scale_change_sequence_id ON scale_change (sequence_id);

CREATE TABLE IF NOT EXISTS bluedot_update (
    sequence_id TEXT,
    version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL,
    temperature         REAL,
    high_alarm          REAL,
    units               TEXT,
    alarm_byte          INT,
    name                TEXT
);
CREATE INDEX IF NOT EXISTS idx_bluedot_update_sequence_id ON bluedot_update (sequence_id);
";

/// 3 → 4 (de1d). Sequences that pyDE1 saw complete are marked so.
const UPGRADE_3_4: &str = "
ALTER TABLE sequence ADD COLUMN end_reason TEXT;
ALTER TABLE sequence ADD COLUMN dropped_events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stop_at_notification ADD COLUMN current_frame INTEGER;
ALTER TABLE device_availability ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
UPDATE sequence SET end_reason = 'complete' WHERE end_sequence IS NOT NULL;
";

/// The table layout of a given version, applied to an empty file (tests build older files
/// with it). `version` must be 1…[`SCHEMA_VERSION`].
pub(crate) fn layout_sql(version: i64) -> String {
    let mut sql = String::from(BASE_V3);
    if version < 3 {
        // Version 3 without the three pyDE1 2.0 tables is pyDE1 0.7's layout.
        if version < 2 {
            sql = sql.replace(
                "    state               TEXT,\n    id                  TEXT,\n    name                TEXT\n);\nCREATE INDEX idx_connectivity_change_sequence_id",
                "    state               TEXT\n);\nCREATE INDEX idx_connectivity_change_sequence_id",
            );
        }
        return sql;
    }
    sql.push_str(UPGRADE_2_3);
    if version >= 4 {
        sql.push_str(UPGRADE_3_4);
    }
    sql
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> SchemaError + '_ {
    move |source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn user_table_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )
}

/// How long a writer waits for a lock held by another connection before the statement
/// fails (and is retried by the recorder later).
pub(crate) const WRITE_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Opens (creating if needed) the database at `path` for writing, in WAL mode, upgrading an
/// older layout (after a backup). `busy` bounds the wait for other connections' locks
/// during the upgrade.
pub fn open_for_writing(path: &Path, busy: Duration) -> Result<(Connection, Opened), SchemaError> {
    let err = sqlite_err(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SchemaError::Directory {
            path: path.to_owned(),
            source,
        })?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(busy).map_err(&err)?;
    // journal_mode cannot change inside a transaction; it sticks to the file.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!(target: "recorder", "{}: journal mode {mode}, not WAL", path.display());
    }

    let found = user_version(&conn).map_err(&err)?;
    if found > SCHEMA_VERSION {
        return Err(SchemaError::TooNew {
            path: path.to_owned(),
            found,
        });
    }
    let mut backup = None;
    if found != SCHEMA_VERSION && found != 0 {
        // Copy the whole file before touching it (outside any transaction).
        let name = format!(
            "{}.v{found}.{}.backup",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "database".to_owned()),
            now_epoch().floor() as i64
        );
        let target = path.with_file_name(name);
        conn.execute("VACUUM INTO ?1", [target.to_string_lossy()])
            .map_err(|source| SchemaError::Backup {
                path: path.to_owned(),
                source,
            })?;
        backup = Some(target);
    }

    // IMMEDIATE: two processes opening the same fresh file serialise here, and the
    // second sees the first one's result.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(&err)?;
    let result = migrate_locked(&conn, path);
    match result {
        Ok(from) => {
            conn.execute_batch("COMMIT").map_err(&err)?;
            let opened = match (from, backup) {
                (None, _) => Opened::Current,
                (Some(0), _) => Opened::Created,
                (Some(v), Some(b)) => Opened::Migrated { from: v, backup: b },
                // Another process upgraded it between our check and our lock.
                (Some(_), None) => Opened::Current,
            };
            Ok((conn, opened))
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Brings the layout to [`SCHEMA_VERSION`] inside the caller's write transaction; returns
/// the version found, or `None` if it was current.
fn migrate_locked(conn: &Connection, path: &Path) -> Result<Option<i64>, SchemaError> {
    let err = sqlite_err(path);
    let found = user_version(conn).map_err(&err)?;
    if found == SCHEMA_VERSION {
        return Ok(None);
    }
    if found > SCHEMA_VERSION {
        return Err(SchemaError::TooNew {
            path: path.to_owned(),
            found,
        });
    }
    match found {
        0 => {
            if user_table_count(conn).map_err(&err)? != 0 {
                return Err(SchemaError::Foreign {
                    path: path.to_owned(),
                });
            }
            conn.execute_batch(&layout_sql(SCHEMA_VERSION))
                .map_err(&err)?;
        }
        v if v < 0 => {
            return Err(SchemaError::Foreign {
                path: path.to_owned(),
            })
        }
        v => {
            if v < 2 {
                conn.execute_batch(UPGRADE_1_2).map_err(&err)?;
            }
            if v < 3 {
                conn.execute_batch(UPGRADE_2_3).map_err(&err)?;
            }
            conn.execute_batch(UPGRADE_3_4).map_err(&err)?;
        }
    }
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(&err)?;
    Ok(Some(found))
}

/// Opens the database at `path` read-only (for the HTTP API and tools). The file must
/// exist and have the current layout; nothing is created or changed. Readers never block
/// the recorder (WAL).
pub fn open_read_only(path: &Path) -> Result<Connection, SchemaError> {
    let err = sqlite_err(path);
    if !path.exists() {
        return Err(SchemaError::Missing {
            path: path.to_owned(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(&err)?;
    let found = user_version(&conn).map_err(&err)?;
    match found {
        SCHEMA_VERSION => Ok(conn),
        v if v > SCHEMA_VERSION => Err(SchemaError::TooNew {
            path: path.to_owned(),
            found: v,
        }),
        0 if user_table_count(&conn).map_err(&err)? == 0 => Err(SchemaError::Missing {
            path: path.to_owned(),
        }),
        v => Err(SchemaError::NeedsUpgrade {
            path: path.to_owned(),
            found: v,
        }),
    }
}

/// A value of the `persist_hkv` table.
pub(crate) fn hkv_get(
    conn: &Connection,
    header: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM persist_hkv WHERE header IS ?1 AND key = ?2",
        (header, key),
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()
    .map(Option::flatten)
}

pub(crate) fn hkv_set(
    conn: &Connection,
    header: &str,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO persist_hkv (header, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (header, key) DO UPDATE SET value = excluded.value",
        (header, key, value),
    )
    .map(|_| ())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    fn file_with_layout(dir: &Path, version: i64, label: i64) -> PathBuf {
        let path = dir.join(format!("v{version}.sqlite3"));
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(&layout_sql(version)).expect("layout");
        conn.execute_batch(&format!("PRAGMA user_version = {label}"))
            .expect("label");
        // A recorded sequence, as pyDE1 writes it.
        conn.execute_batch(
            "INSERT INTO sequence (id, active_state, start_sequence, start_flow, end_flow, \
             end_sequence, profile_id, profile_assumed) VALUES \
             ('old', 'Espresso', 100.0, 102.0, 120.0, 123.0, 'dummy', 0);
             INSERT INTO stop_at_notification (sequence_id, stop_at, action) \
             VALUES ('old', 'weight', 'triggered');",
        )
        .expect("rows");
        path
    }

    #[test]
    fn a_fresh_file_is_current_and_opens_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/dir/shots.sqlite3");
        let (conn, opened) = open_for_writing(&path, WRITE_BUSY_TIMEOUT).expect("first");
        assert_eq!(opened, Opened::Created);
        assert_eq!(user_version(&conn).expect("version"), SCHEMA_VERSION);
        drop(conn);
        let (conn, opened) = open_for_writing(&path, WRITE_BUSY_TIMEOUT).expect("second");
        assert_eq!(opened, Opened::Current);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        assert!(columns(&conn, "sequence").contains(&"end_reason".to_owned()));
        drop(conn);
        assert!(open_read_only(&path).is_ok());
    }

    #[test]
    fn pyde1_files_are_upgraded_after_a_backup() {
        // 2 with the schema-3 tables is what pyDE1 2.0.0 leaves; 2 without them is 0.7;
        // 1 is 0.6.
        for (layout, label) in [(3, 2), (3, 3), (2, 2), (1, 1)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = file_with_layout(dir.path(), layout, label);
            let (conn, opened) = open_for_writing(&path, WRITE_BUSY_TIMEOUT).expect("upgrade");
            let Opened::Migrated { from, backup } = opened else {
                panic!("not migrated: {opened:?}");
            };
            assert_eq!(from, label);
            assert_eq!(user_version(&conn).expect("v"), SCHEMA_VERSION);
            assert!(columns(&conn, "connectivity_change").contains(&"name".to_owned()));
            assert!(columns(&conn, "stop_at_notification").contains(&"current_frame".to_owned()));
            assert!(columns(&conn, "bluedot_update").contains(&"alarm_byte".to_owned()));
            let reason: Option<String> = conn
                .query_row(
                    "SELECT end_reason FROM sequence WHERE id = 'old'",
                    [],
                    |r| r.get(0),
                )
                .expect("old row kept");
            assert_eq!(reason.as_deref(), Some("complete"));
            // The backup is the file as it was.
            let old = Connection::open(&backup).expect("backup");
            assert_eq!(user_version(&old).expect("v"), label);
            assert_eq!(
                old.query_row("SELECT count(*) FROM sequence", [], |r| r.get::<_, i64>(0))
                    .expect("count"),
                2
            );
        }
    }

    #[test]
    fn a_newer_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with_layout(dir.path(), 3, 3);
        Connection::open(&path)
            .expect("open")
            .execute_batch("PRAGMA user_version = 9")
            .expect("label");
        let err = open_for_writing(&path, WRITE_BUSY_TIMEOUT).expect_err("refused");
        assert!(matches!(err, SchemaError::TooNew { found: 9, .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("version 9") && text.contains("newer"),
            "{text}"
        );
        assert!(matches!(
            open_read_only(&path),
            Err(SchemaError::TooNew { found: 9, .. })
        ));
        let conn = Connection::open(&path).expect("open");
        assert_eq!(user_version(&conn).expect("v"), 9);
        assert!(!columns(&conn, "sequence").contains(&"end_reason".to_owned()));
        // No backup either.
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert!(files <= 3, "unexpected files");
    }

    #[test]
    fn other_files_are_not_mistaken_for_shot_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("other.sqlite3");
        Connection::open(&path)
            .expect("open")
            .execute_batch("CREATE TABLE notes (t TEXT)")
            .expect("table");
        assert!(matches!(
            open_for_writing(&path, WRITE_BUSY_TIMEOUT),
            Err(SchemaError::Foreign { .. })
        ));
        assert!(matches!(
            open_read_only(&dir.path().join("absent.sqlite3")),
            Err(SchemaError::Missing { .. })
        ));
        let text_file = dir.path().join("text.sqlite3");
        std::fs::write(
            &text_file,
            b"this is not a database at all, just some text....",
        )
        .expect("write");
        assert!(open_for_writing(&text_file, WRITE_BUSY_TIMEOUT).is_err());
    }

    #[test]
    fn read_only_refuses_a_file_that_needs_an_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with_layout(dir.path(), 3, 2);
        assert!(matches!(
            open_read_only(&path),
            Err(SchemaError::NeedsUpgrade { found: 2, .. })
        ));
    }
}

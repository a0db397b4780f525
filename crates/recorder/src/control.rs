//! Switching shot recording on and off at run time (for the HTTP API).
//!
//! The switch lives in the database itself (`persist_hkv`, header `recorder`, key
//! `enabled`), so any process can flip it without a message to the recorder, and it
//! survives restarts. The recorder reads it when a sequence starts: a sequence already
//! being recorded is finished. `[database] enabled = false` in the configuration overrides
//! it (the recorder does not run at all).

use std::path::Path;

use crate::schema::{self, hkv_get, hkv_set, SchemaError};

pub(crate) const HKV_HEADER: &str = "recorder";
pub(crate) const HKV_ENABLED: &str = "enabled";

/// Switches recording of future sequences on or off. Opens (creating or upgrading if
/// needed) the database at `path` for one short write.
pub fn set_recording_enabled(path: &Path, enabled: bool) -> Result<(), SchemaError> {
    let (conn, _) = schema::open_for_writing(path, std::time::Duration::from_secs(2))?;
    hkv_set(
        &conn,
        HKV_HEADER,
        HKV_ENABLED,
        if enabled { "1" } else { "0" },
    )
    .map_err(|source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    })
}

/// Whether future sequences are recorded (true unless switched off; a database that does
/// not exist yet counts as on).
pub fn recording_enabled(path: &Path) -> Result<bool, SchemaError> {
    let conn = match schema::open_read_only(path) {
        Ok(c) => c,
        Err(SchemaError::Missing { .. }) => return Ok(true),
        Err(e) => return Err(e),
    };
    let v = hkv_get(&conn, HKV_HEADER, HKV_ENABLED).map_err(|source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    })?;
    Ok(v.as_deref() != Some("0"))
}

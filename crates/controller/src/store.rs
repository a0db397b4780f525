//! What the controller keeps on disk, in its state directory:
//!
//! * `devices.json`: the devices last used, so that they are reconnected at start-up
//!   (pyDE1 2.0 makes the user select them again after every start);
//! * `profiles/<id>.json`: profiles by id (SHA-1 of their bytes), stored verbatim, so a
//!   profile can be stored without uploading it and uploaded later by id.
//!
//! Files are replaced atomically (written to a temporary name, then renamed), so a crash
//! never leaves a half-written file. Nothing here is used on the notification path.

use std::io::Write;
use std::path::{Path, PathBuf};

use de1_protocol::profile::{encode_profile, EncodedProfile, ProfileError};
use serde::{Deserialize, Serialize};

const DEVICES_FILE: &str = "devices.json";
const PROFILES_DIR: &str = "profiles";
const LAST_PROFILE_FILE: &str = "last_profile";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no stored profile with id {0}")]
    NotFound(String),
    #[error("{0} is not a profile id (40 hexadecimal digits)")]
    BadId(String),
    #[error("invalid profile: {0}")]
    Profile(#[from] ProfileError),
    #[error("stored profile {id} is damaged: {reason}")]
    Damaged { id: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The devices last used, by Bluetooth address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RememberedDevices {
    pub de1: Option<String>,
    pub scale: Option<String>,
    pub thermometer: Option<String>,
}

/// The controller's state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Writes `data` to `path` atomically.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A profile id as 40 lowercase hex digits, or an error (no path tricks possible).
pub fn check_id(id: &str) -> Result<String, StoreError> {
    let lower = id.to_ascii_lowercase();
    if lower.len() == 40 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(StoreError::BadId(id.chars().take(64).collect()))
    }
}

impl Store {
    /// Opens (creating if needed) the state directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let dir = dir.into();
        let profiles = dir.join(PROFILES_DIR);
        std::fs::create_dir_all(&profiles).map_err(io(&profiles))?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The remembered devices; an unreadable or damaged file counts as none remembered.
    pub fn devices(&self) -> RememberedDevices {
        let path = self.dir.join(DEVICES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!(target: "controller::store", "ignoring {}: {e}", path.display());
                RememberedDevices::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RememberedDevices::default(),
            Err(e) => {
                log::warn!(target: "controller::store", "cannot read {}: {e}", path.display());
                RememberedDevices::default()
            }
        }
    }

    /// Replaces the remembered devices.
    pub fn set_devices(&self, devices: &RememberedDevices) -> Result<(), StoreError> {
        let path = self.dir.join(DEVICES_FILE);
        let text = serde_json::to_vec_pretty(devices).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &text)
    }

    /// Changes the remembered devices with `f` (read, modify, write).
    pub fn update_devices(
        &self,
        f: impl FnOnce(&mut RememberedDevices),
    ) -> Result<RememberedDevices, StoreError> {
        let mut d = self.devices();
        let before = d.clone();
        f(&mut d);
        if d != before {
            self.set_devices(&d)?;
        }
        Ok(d)
    }

    fn profile_path(&self, id: &str) -> PathBuf {
        self.dir.join(PROFILES_DIR).join(format!("{id}.json"))
    }

    /// Validates and encodes `source` completely, then stores it under its id. Storing
    /// the same profile again is harmless.
    pub fn store_profile(&self, source: &[u8]) -> Result<EncodedProfile, StoreError> {
        let encoded = encode_profile(source)?;
        let path = self.profile_path(&encoded.id);
        if !path.exists() {
            write_atomic(&path, source)?;
        }
        Ok(encoded)
    }

    /// The stored source of profile `id`.
    pub fn profile_source(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let id = check_id(id)?;
        let path = self.profile_path(&id);
        match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(id)),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Loads and encodes profile `id`, checking that the file still has that id.
    pub fn load_profile(&self, id: &str) -> Result<EncodedProfile, StoreError> {
        let id = check_id(id)?;
        let source = self.profile_source(&id)?;
        let encoded = encode_profile(&source).map_err(|e| StoreError::Damaged {
            id: id.clone(),
            reason: e.to_string(),
        })?;
        if encoded.id != id {
            return Err(StoreError::Damaged {
                id,
                reason: format!("its content has id {}", encoded.id),
            });
        }
        Ok(encoded)
    }

    /// Ids of all stored profiles, sorted.
    pub fn profile_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.join(PROFILES_DIR);
        let mut ids: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                check_id(id).ok()
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Records the profile last uploaded to the DE1 (pyDE1's `last_profile`).
    pub fn set_last_profile(&self, id: &str) -> Result<(), StoreError> {
        let id = check_id(id)?;
        write_atomic(&self.dir.join(LAST_PROFILE_FILE), id.as_bytes())
    }

    /// The profile last uploaded to the DE1, if recorded.
    pub fn last_profile(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(LAST_PROFILE_FILE)).ok()?;
        check_id(text.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{"version": "2", "title": "t", "target_volume": 36,
        "target_volume_count_start": 0, "steps": [{"name": "a", "pump": "pressure",
        "pressure": 9, "transition": "fast", "sensor": "coffee", "temperature": 93,
        "seconds": 25, "volume": 0}]}"#;

    #[test]
    fn profiles_round_trip_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let e = store.store_profile(PROFILE.as_bytes()).expect("store");
        assert_eq!(e.id.len(), 40);
        let back = store.load_profile(&e.id.to_uppercase()).expect("load");
        assert_eq!(back.fingerprint, e.fingerprint);
        assert_eq!(
            store.profile_source(&e.id).expect("source"),
            PROFILE.as_bytes()
        );
        assert_eq!(store.profile_ids().expect("ids"), vec![e.id.clone()]);
        // Storing again is harmless.
        store
            .store_profile(PROFILE.as_bytes())
            .expect("store again");
    }

    #[test]
    fn bad_profiles_and_ids_are_refused_without_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert!(matches!(
            store.store_profile(b"{\"version\": \"2\"}"),
            Err(StoreError::Profile(_))
        ));
        assert!(store.profile_ids().expect("ids").is_empty());
        assert!(matches!(
            store.load_profile("../../etc/passwd"),
            Err(StoreError::BadId(_))
        ));
        assert!(matches!(
            store.load_profile(&"0".repeat(40)),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn a_damaged_profile_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let e = store.store_profile(PROFILE.as_bytes()).expect("store");
        std::fs::write(store.profile_path(&e.id), PROFILE.replace("93", "94")).expect("tamper");
        assert!(matches!(
            store.load_profile(&e.id),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn devices_are_remembered_across_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.devices(), RememberedDevices::default());
        store
            .update_devices(|d| d.de1 = Some("AA:BB:CC:DD:EE:FF".into()))
            .expect("update");
        let again = Store::open(dir.path()).expect("reopen");
        assert_eq!(again.devices().de1.as_deref(), Some("AA:BB:CC:DD:EE:FF"));
        std::fs::write(dir.path().join(DEVICES_FILE), "not json").expect("write");
        assert_eq!(again.devices(), RememberedDevices::default());
        store.set_last_profile(&"ab".repeat(20)).expect("last");
        assert_eq!(store.last_profile(), Some("ab".repeat(20)));
    }
}

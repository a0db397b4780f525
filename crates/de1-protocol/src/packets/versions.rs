//! Versions (A001) — 18 bytes, read: two 9-byte `FWVersion` blocks, the BLE module's
//! (bytes 0–8) and the main firmware's ("LV", bytes 9–17).
//!
//! | Off (in block) | Size | Field      | Type                     |
//! |----------------|------|------------|--------------------------|
//! | 0              | 1    | APIVersion | U8 (MMR needs BLE API > 3) |
//! | 1              | 1    | Release    | F8_1_7 (`0F` = 1.5)      |
//! | 2              | 2    | Commits    | U16 BE                   |
//! | 4              | 1    | Changes    | U8                       |
//! | 5              | 4    | BLESha     | U32 BE git SHA           |
//!
//! Real machines report an all-zero LV block: read the firmware build number from MMR
//! 0x800010 instead.

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::F8_1_7;
use crate::DecodeError;

const NAME: &str = "Versions";

/// One version block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FirmwareVersion {
    pub api_version: u8,
    pub release: F8_1_7,
    pub commits: u16,
    pub changes: u8,
    pub sha: u32,
}

impl FirmwareVersion {
    pub const LEN: usize = 9;

    fn from_block(b: &[u8; 9]) -> Self {
        Self {
            api_version: b[0],
            release: F8_1_7(b[1]),
            commits: u16::from_be_bytes([b[2], b[3]]),
            changes: b[4],
            sha: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        }
    }

    fn write(&self, out: &mut [u8; 9]) {
        out[0] = self.api_version;
        out[1] = self.release.0;
        out[2..4].copy_from_slice(&self.commits.to_be_bytes());
        out[4] = self.changes;
        out[5..9].copy_from_slice(&self.sha.to_be_bytes());
    }

    /// True when the block is all zeros (what real machines report for "LV").
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// pyDE1's reading of the SHA: the upper 28 bits as 7 hex digits…
    pub fn short_sha(&self) -> String {
        format!("{:07x}", self.sha >> 4)
    }

    /// …and bit 0 as a "dirty working tree" marker.
    pub fn is_dirty(&self) -> bool {
        self.sha & 1 != 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "api_version": self.api_version,
            "release": self.release.to_f64(),
            "commits": self.commits,
            "changes": self.changes,
            "sha": format!("{:08x}", self.sha),
        })
    }
}

/// The Versions characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Versions {
    /// The BLE module's block.
    pub ble: FirmwareVersion,
    /// The main firmware's ("LV") block; zeros on real machines.
    pub firmware: FirmwareVersion,
}

impl Versions {
    pub const LEN: usize = 18;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<18>(NAME, bytes)?;
        let mut ble = [0u8; 9];
        let mut fw = [0u8; 9];
        ble.copy_from_slice(&b[0..9]);
        fw.copy_from_slice(&b[9..18]);
        Ok(Self {
            ble: FirmwareVersion::from_block(&ble),
            firmware: FirmwareVersion::from_block(&fw),
        })
    }

    pub fn encode(&self) -> [u8; 18] {
        let mut ble = [0u8; 9];
        let mut fw = [0u8; 9];
        self.ble.write(&mut ble);
        self.firmware.write(&mut fw);
        let mut out = [0u8; 18];
        out[0..9].copy_from_slice(&ble);
        out[9..18].copy_from_slice(&fw);
        out
    }

    /// de1app enables MMR only when the BLE API version is above 3.
    pub fn supports_mmr(&self) -> bool {
        self.ble.api_version > 3
    }

    pub fn to_json(&self) -> Value {
        json!({ "ble": self.ble.to_json(), "firmware": self.firmware.to_json() })
    }
}

serialize_via_json!(Versions);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn pyde1_firmware_1283_example() {
        let bytes = hex_bytes("04 0F 01 EF 3C 55 1E A9 F0 00 00 00 00 00 00 00 00 00");
        let v = Versions::decode(&bytes).unwrap();
        assert_eq!(v.ble.api_version, 4);
        assert_eq!(v.ble.release.to_f64(), 1.5);
        assert_eq!(v.ble.commits, 495);
        assert_eq!(v.ble.changes, 60);
        assert_eq!(v.ble.sha, 0x551E_A9F0);
        assert_eq!(v.ble.short_sha(), "551ea9f");
        assert!(!v.ble.is_dirty());
        assert!(v.firmware.is_empty());
        assert!(v.supports_mmr());
        assert_eq!(v.encode().to_vec(), bytes);
    }

    #[test]
    fn de1app_test_vector() {
        let block = "02 04 00 A4 0A 6E D0 68 51";
        let v = Versions::decode(&hex_bytes(&format!("{block} {block}"))).unwrap();
        assert_eq!(v.ble, v.firmware);
        assert_eq!(v.ble.api_version, 2);
        assert_eq!(v.ble.release.to_f64(), 0.4);
        assert_eq!(v.ble.commits, 164);
        assert_eq!(v.ble.changes, 10);
        assert_eq!(v.ble.sha, 0x6ED0_6851);
        assert!(v.ble.is_dirty());
        assert!(!v.supports_mmr());
        assert_eq!(v.to_json()["ble"]["sha"], "6ed06851");
    }

    #[test]
    fn length_is_exact() {
        assert!(Versions::decode(&[0u8; 9]).is_err());
        assert!(Versions::decode(&[0u8; 20]).is_err());
    }
}

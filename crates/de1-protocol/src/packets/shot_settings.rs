//! ShotSettings (A00B) — 9 bytes, read / write; always written whole.
//!
//! | Off | Size | Field                | Type       | Meaning                                |
//! |-----|------|----------------------|------------|----------------------------------------|
//! | 0   | 1    | SteamSettings        | U8 flags   | 0x80 FastStart, 0x40 HighPower         |
//! | 1   | 1    | TargetSteamTemp      | U8P0 °C    | 0 = steam heater off                   |
//! | 2   | 1    | TargetSteamLength    | U8P0 s     | firmware steam timeout (0 ends steam)  |
//! | 3   | 1    | TargetHotWaterTemp   | U8P0 °C    |                                        |
//! | 4   | 1    | TargetHotWaterVol    | U8P0 mL    | firmware stops hot water at this volume |
//! | 5   | 1    | TargetHotWaterLength | U8P0 s     | hot-water timeout                      |
//! | 6   | 1    | TargetEspressoVol    | U8P0 mL    | legacy                                 |
//! | 7   | 2    | TargetGroupTemp      | U16P8 °C BE |                                       |

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::U16P8;
use crate::DecodeError;

const NAME: &str = "ShotSettings";

/// Byte 0 of ShotSettings. de1app always sends 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SteamSettings(pub u8);

impl SteamSettings {
    /// Fast start (else slow start).
    pub const FAST_START: u8 = 0x80;
    /// High power (else low power). pyDE1's getter wrongly tests 0x80.
    pub const HIGH_POWER: u8 = 0x40;

    pub const fn fast_start(self) -> bool {
        self.0 & Self::FAST_START != 0
    }
    pub const fn high_power(self) -> bool {
        self.0 & Self::HIGH_POWER != 0
    }
}

/// Steam, hot-water and group-temperature settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShotSettings {
    pub steam_settings: SteamSettings,
    /// °C; 0 turns the steam heater off.
    pub target_steam_temp: u8,
    /// Seconds; 0 ends steaming immediately (pyDE1 uses this to stop steam).
    pub target_steam_length: u8,
    /// °C.
    pub target_hot_water_temp: u8,
    /// mL.
    pub target_hot_water_vol: u8,
    /// Seconds.
    pub target_hot_water_length: u8,
    /// mL (legacy).
    pub target_espresso_vol: u8,
    pub target_group_temp: U16P8,
}

impl ShotSettings {
    pub const LEN: usize = 9;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<9>(NAME, bytes)?;
        Ok(Self {
            steam_settings: SteamSettings(b[0]),
            target_steam_temp: b[1],
            target_steam_length: b[2],
            target_hot_water_temp: b[3],
            target_hot_water_vol: b[4],
            target_hot_water_length: b[5],
            target_espresso_vol: b[6],
            target_group_temp: U16P8::from_be_slice(&b[7..9]),
        })
    }

    pub fn encode(&self) -> [u8; 9] {
        let g = self.target_group_temp.0.to_be_bytes();
        [
            self.steam_settings.0,
            self.target_steam_temp,
            self.target_steam_length,
            self.target_hot_water_temp,
            self.target_hot_water_vol,
            self.target_hot_water_length,
            self.target_espresso_vol,
            g[0],
            g[1],
        ]
    }

    pub fn to_json(&self) -> Value {
        json!({
            "steam_settings": {
                "raw": format!("{:02x}", self.steam_settings.0),
                "fast_start": self.steam_settings.fast_start(),
                "high_power": self.steam_settings.high_power(),
            },
            "target_steam_temp_c": self.target_steam_temp,
            "target_steam_length_s": self.target_steam_length,
            "target_hot_water_temp_c": self.target_hot_water_temp,
            "target_hot_water_vol_ml": self.target_hot_water_vol,
            "target_hot_water_length_s": self.target_hot_water_length,
            "target_espresso_vol_ml": self.target_espresso_vol,
            "target_group_temp_c": self.target_group_temp.to_f64(),
        })
    }
}

serialize_via_json!(ShotSettings);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn spec_example() {
        // Steam 150 °C / 90 s, water 85 °C / 120 mL / 60 s, espresso 36 mL, group 92.5 °C.
        let s = ShotSettings {
            steam_settings: SteamSettings(0),
            target_steam_temp: 150,
            target_steam_length: 90,
            target_hot_water_temp: 85,
            target_hot_water_vol: 120,
            target_hot_water_length: 60,
            target_espresso_vol: 36,
            target_group_temp: U16P8::from_f64(92.5).unwrap(),
        };
        let bytes = hex_bytes("00 96 5A 55 78 3C 24 5C 80");
        assert_eq!(s.encode().to_vec(), bytes);
        assert_eq!(ShotSettings::decode(&bytes).unwrap(), s);
        assert_eq!(s.to_json()["target_group_temp_c"], 92.5);
    }

    #[test]
    fn steam_flags() {
        let s = ShotSettings::decode(&hex_bytes("40 96 5A 55 78 3C 24 5C 80")).unwrap();
        assert!(s.steam_settings.high_power());
        assert!(!s.steam_settings.fast_start());
        assert!(ShotSettings::decode(&[0u8; 8]).is_err());
    }
}

//! Settings and calibration kept in the DE1: memory-mapped registers, ShotSettings,
//! WaterLevels and SetTime (pyde1-http-api.md §5.3).
//!
//! Every write is followed by a read of what was written, and the mirror keeps what the
//! DE1 reports, not what was sent (registers may clip or round, de1-mmr.md §2.4).
//!
//! [`De1::apply`] carries out a list of [`SettingChange`]s the way pyDE1 handles one
//! PATCH: register writes in order, while the fields of ShotSettings, WaterLevels and
//! SetTime are collected and each structure is written once at the end. A failure stops
//! there; earlier writes stay.

use de1_protocol::characteristic::Characteristic;
use de1_protocol::fixed::U16P8;
use de1_protocol::mmr::{MmrRegister, MmrValue};
use de1_protocol::packets::{SetTime, ShotSettings, WaterLevels};

use super::{firmware_too_old, De1, De1Error, LOG};

/// Lowest and highest steam temperature the API accepts (0 / null turns the heater off).
pub const STEAM_TEMPERATURE_RANGE: (f64, f64) = (135.0, 160.0);

/// One change to a setting kept in the DE1.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingChange {
    /// Any writable register, in engineering units (see `de1_protocol::mmr`).
    Register(MmrRegister, MmrValue),
    /// ShotSettings.TargetSteamTemp, °C (135–160), `None` = steam heater off.
    SteamTemperature(Option<f64>),
    /// ShotSettings.TargetSteamLength: the DE1 ends steam after this many seconds.
    SteamTimeout(f64),
    /// ShotSettings.TargetHotWaterTemp, °C.
    HotWaterTemperature(f64),
    /// ShotSettings.TargetHotWaterVol: the DE1 stops hot water after this many mL.
    HotWaterVolume(f64),
    /// ShotSettings.TargetHotWaterLength: the DE1 stops hot water after this many s.
    HotWaterTimeout(f64),
    /// ShotSettings.TargetGroupTemp, °C.
    TargetGroupTemperature(f64),
    /// ShotSettings.TargetEspressoVol (legacy), mL.
    EspressoVolume(f64),
    /// WaterLevels.StartFillLevel, mm (written × 256, de1-ble.md §5.14).
    StartFillLevel(f64),
    /// SetTime, epoch seconds.
    Time(u64),
}

fn byte(name: &str, v: f64) -> Result<u8, De1Error> {
    let r = v.round_ties_even();
    if !v.is_finite() || !(0.0..=255.0).contains(&r) {
        return Err(De1Error::InvalidValue(format!(
            "{name} must be 0 … 255, not {v}"
        )));
    }
    Ok(r as u8)
}

fn u16p8(name: &str, v: f64) -> Result<U16P8, De1Error> {
    U16P8::from_f64(v).map_err(|e| De1Error::InvalidValue(format!("{name}: {e}")))
}

/// Applies a ShotSettings field change to `s`.
fn change_shot_settings(s: &mut ShotSettings, change: &SettingChange) -> Result<bool, De1Error> {
    match *change {
        SettingChange::SteamTemperature(t) => {
            s.target_steam_temp = match t.filter(|t| *t != 0.0) {
                None => 0,
                Some(t) => {
                    let (lo, hi) = STEAM_TEMPERATURE_RANGE;
                    if !(lo..=hi).contains(&t) {
                        return Err(De1Error::InvalidValue(format!(
                            "steam temperature must be {lo} … {hi} °C or null, not {t}"
                        )));
                    }
                    byte("steam temperature", t)?
                }
            }
        }
        SettingChange::SteamTimeout(v) => s.target_steam_length = byte("steam stop_at_time", v)?,
        SettingChange::HotWaterTemperature(v) => {
            s.target_hot_water_temp = byte("hot water temperature", v)?
        }
        SettingChange::HotWaterVolume(v) => {
            s.target_hot_water_vol = byte("hot water stop_at_volume", v)?
        }
        SettingChange::HotWaterTimeout(v) => {
            s.target_hot_water_length = byte("hot water stop_at_time", v)?
        }
        SettingChange::TargetGroupTemperature(v) => {
            s.target_group_temp = u16p8("target group temperature", v)?
        }
        SettingChange::EspressoVolume(v) => s.target_espresso_vol = byte("espresso volume", v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

impl De1 {
    /// Refuses writes while a firmware upload runs (de1-firmware.md §4: no other MMR
    /// traffic during an upload).
    pub(crate) fn ensure_writable(&self) -> Result<(), De1Error> {
        self.ensure_ready()?;
        if self.inner.firmware.is_running() {
            return Err(De1Error::InProgress("firmware upload"));
        }
        Ok(())
    }

    /// Writes a register and reads it back; returns the value the DE1 reports.
    pub async fn write_register(
        &self,
        r: MmrRegister,
        value: &MmrValue,
    ) -> Result<MmrValue, De1Error> {
        self.ensure_writable()?;
        self.write_register_unchecked(r, value).await
    }

    /// [`De1::write_register`] without the readiness check (connect-time sequence).
    pub(crate) async fn write_register_unchecked(
        &self,
        r: MmrRegister,
        value: &MmrValue,
    ) -> Result<MmrValue, De1Error> {
        let (features, build) = self.with_mirror(|m| (m.features(), m.firmware_build()));
        if !features.has_register(r) {
            return Err(firmware_too_old(r, build));
        }
        let packet = r.encode_write(value)?;
        log::info!(target: LOG, "writing {r} = {value:?}");
        self.write(Characteristic::WriteToMMR, &packet.encode())
            .await?;
        let read_back = self.read_register(r).await?;
        if read_back != *value && read_back.as_f64() != value.as_f64() {
            log::info!(target: LOG, "{r}: wrote {value:?}, the DE1 reports {read_back:?}");
        }
        Ok(read_back)
    }

    /// Read-modify-write of ShotSettings from the last value read, then a read-back.
    pub async fn write_shot_settings(
        &self,
        change: impl FnOnce(&mut ShotSettings) -> Result<(), De1Error>,
    ) -> Result<ShotSettings, De1Error> {
        self.ensure_writable()?;
        let mut s = self
            .with_mirror(|m| m.shot_settings.map(|s| s.value))
            .ok_or_else(|| De1Error::InvalidValue("ShotSettings have not been read".into()))?;
        change(&mut s)?;
        self.write_shot_settings_exact(s).await
    }

    /// Writes exactly `s` and reads ShotSettings back.
    pub(crate) async fn write_shot_settings_exact(
        &self,
        s: ShotSettings,
    ) -> Result<ShotSettings, De1Error> {
        log::info!(target: LOG, "writing ShotSettings {}", hex::encode(s.encode()));
        self.write(Characteristic::ShotSettings, &s.encode())
            .await?;
        self.read_into_mirror(Characteristic::ShotSettings).await?;
        self.with_mirror(|m| m.shot_settings.map(|s| s.value))
            .ok_or_else(|| De1Error::InvalidValue("ShotSettings read-back missing".into()))
    }

    /// Sets the refill threshold (mm, × 256 on the wire) and reads WaterLevels back.
    pub async fn set_start_fill_level(&self, mm: f64) -> Result<WaterLevels, De1Error> {
        self.ensure_writable()?;
        self.write_start_fill_level(mm).await
    }

    async fn write_start_fill_level(&self, mm: f64) -> Result<WaterLevels, De1Error> {
        // Level is not a setting; de1app writes 0 there.
        let w = WaterLevels {
            level: U16P8(0),
            start_fill_level: u16p8("start_fill_level", mm)?,
        };
        log::info!(target: LOG, "writing WaterLevels {}", hex::encode(w.encode()));
        self.write(Characteristic::WaterLevels, &w.encode()).await?;
        self.read_into_mirror(Characteristic::WaterLevels).await?;
        self.with_mirror(|m| m.water_levels.map(|s| s.value))
            .ok_or_else(|| De1Error::InvalidValue("WaterLevels read-back missing".into()))
    }

    /// Sets the DE1's clock and reads it back.
    pub async fn set_time(&self, epoch_seconds: u64) -> Result<SetTime, De1Error> {
        self.ensure_writable()?;
        self.write_time(epoch_seconds).await
    }

    async fn write_time(&self, epoch_seconds: u64) -> Result<SetTime, De1Error> {
        let t = SetTime {
            timestamp: epoch_seconds,
        };
        self.write(Characteristic::SetTime, &t.encode()).await?;
        self.read_into_mirror(Characteristic::SetTime).await?;
        self.with_mirror(|m| m.set_time.map(|s| s.value))
            .ok_or_else(|| De1Error::InvalidValue("SetTime read-back missing".into()))
    }

    /// Applies changes as one PATCH does (see the module documentation).
    pub async fn apply(&self, changes: &[SettingChange]) -> Result<(), De1Error> {
        self.ensure_writable()?;
        // Validate what can be validated before the first write.
        let (features, build) = self.with_mirror(|m| (m.features(), m.firmware_build()));
        let mut shot = self.with_mirror(|m| m.shot_settings.map(|s| s.value));
        let mut shot_changed = false;
        let mut fill = None;
        let mut time = None;
        for c in changes {
            match c {
                SettingChange::Register(r, v) => {
                    if !features.has_register(*r) {
                        return Err(firmware_too_old(*r, build));
                    }
                    r.encode_raw(v)?;
                }
                SettingChange::StartFillLevel(mm) => {
                    u16p8("start_fill_level", *mm)?;
                    fill = Some(*mm);
                }
                SettingChange::Time(t) => time = Some(*t),
                other => {
                    let s = shot.as_mut().ok_or_else(|| {
                        De1Error::InvalidValue("ShotSettings have not been read".into())
                    })?;
                    shot_changed |= change_shot_settings(s, other)?;
                }
            }
        }
        for c in changes {
            if let SettingChange::Register(r, v) = c {
                self.write_register_unchecked(*r, v).await?;
            }
        }
        if shot_changed {
            if let Some(s) = shot {
                self.write_shot_settings_exact(s).await?;
            }
        }
        if let Some(mm) = fill {
            self.write_start_fill_level(mm).await?;
        }
        if let Some(t) = time {
            self.write_time(t).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shot_settings_fields_are_range_checked() {
        let mut s = ShotSettings::default();
        assert!(
            change_shot_settings(&mut s, &SettingChange::SteamTemperature(Some(150.0))).unwrap()
        );
        assert_eq!(s.target_steam_temp, 150);
        assert!(
            change_shot_settings(&mut s, &SettingChange::SteamTemperature(Some(170.0))).is_err()
        );
        change_shot_settings(&mut s, &SettingChange::SteamTemperature(None)).unwrap();
        assert_eq!(s.target_steam_temp, 0);
        assert!(change_shot_settings(&mut s, &SettingChange::HotWaterVolume(300.0)).is_err());
        change_shot_settings(&mut s, &SettingChange::TargetGroupTemperature(92.5)).unwrap();
        assert_eq!(s.target_group_temp, U16P8(0x5C80));
        assert!(!change_shot_settings(&mut s, &SettingChange::Time(1)).unwrap());
    }
}

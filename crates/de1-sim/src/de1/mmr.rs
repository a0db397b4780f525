//! The machine's memory-mapped register file (de1-mmr.md §3).
//!
//! Registers are 32-bit little-endian words in the 0x80xxxx space; reads are answered
//! byte by byte from them, so unaligned and multi-word reads work as on the machine.
//! Registers newer than the configured firmware build read as zero and ignore writes.
//! Firmware ≤ 1260 stops answering register reads after a read that touches
//! PREF_GHC_MCI or MAX_SHOT_PRESS, as pyDE1's notes report.

use std::collections::BTreeMap;

use de1_protocol::mmr::MmrRegister as R;

use crate::config::SimConfig;

/// The debug buffer's text (de1-mmr.md: last 4 KiB of debug output).
const DEBUG_TEXT: &str = "de1-sim: simulated DE1 debug log\n";

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterFile {
    words: BTreeMap<u32, u32>,
    build: u32,
    /// Reads stopped answering (old firmware touched by a freezing read).
    frozen: bool,
}

fn addr(r: R) -> u32 {
    r.address()
}

impl RegisterFile {
    pub fn new(cfg: &SimConfig) -> Self {
        let m = &cfg.machine;
        let mut words = BTreeMap::new();
        let mut set = |r: R, v: u32| {
            words.insert(addr(r), v);
        };
        set(R::HwConfig, 0xFFFF_FFFF);
        set(R::Model, 0xFFFF_FFFF);
        set(R::CpuBoardModel, m.cpu_board_model);
        set(R::V13Model, m.model.to_raw());
        set(R::CpuFirmwareBuild, m.firmware_build);
        set(R::DebugLen, DEBUG_TEXT.len() as u32);
        set(R::DebugConfig, 0);
        set(R::FanThreshold, 60);
        set(R::TankTemp, 0);
        set(R::HeaterUp1Flow, 20);
        set(R::HeaterUp2Flow, 40);
        set(R::WaterHeaterIdleTemp, 850);
        set(R::GhcInfo, m.ghc.info().0);
        set(R::PrefGhcMci, 0);
        set(R::MaxShotPress, 0);
        set(R::TargetSteamFlow, 70);
        set(R::SteamStartSecs, 200);
        set(R::SerialNumber, m.serial_number);
        set(R::HeaterVoltage, m.heater_voltage);
        set(R::HeaterUp2Timeout, 50);
        set(R::CalFlowEst, 1000);
        set(R::FlushFlowRate, 60);
        set(R::FlushTemp, 850);
        set(R::FlushTimeout, 200);
        set(R::HotWaterFlowRate, 0);
        set(R::SteamPurgeMode, 0);
        set(R::AllowUsbCharging, 1);
        set(R::AppFeatureFlags, 0);
        set(R::RefillKitPresent, u32::from(m.refill_kit));
        set(R::UserPresent, 0);
        Self {
            words,
            build: m.firmware_build,
            frozen: false,
        }
    }

    /// The running firmware build changed (after a successful update and restart).
    pub fn set_build(&mut self, build: u32) {
        self.build = build;
        self.words.insert(addr(R::CpuFirmwareBuild), build);
    }

    fn present(&self, address: u32) -> bool {
        R::lookup_by_address(address).is_none_or(|r| r.available_on(self.build))
    }

    /// Value of a register as the machine holds it (0 if absent on this build).
    pub fn get(&self, r: R) -> u32 {
        let a = addr(r);
        if !self.present(a) {
            return 0;
        }
        self.words.get(&a).copied().unwrap_or(0)
    }

    /// Set a register from the machine's side (not an app write).
    pub fn set(&mut self, r: R, value: u32) {
        self.words.insert(addr(r), value);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// One byte of the register space.
    fn byte(&self, address: u32) -> u8 {
        let debug = addr(R::DebugBuffer);
        if (debug..debug + 4096).contains(&address) {
            let i = (address - debug) as usize;
            return DEBUG_TEXT.as_bytes().get(i).copied().unwrap_or(0);
        }
        let word = address & !3;
        let value = if self.present(word) {
            self.words.get(&word).copied().unwrap_or(0)
        } else {
            0
        };
        value.to_le_bytes()[(address & 3) as usize]
    }

    /// Read `len` bytes from `address` (0x80xxxx space). `None` when the firmware no
    /// longer answers.
    pub fn read(&mut self, address: u32, len: usize) -> Option<Vec<u8>> {
        if self.frozen {
            return None;
        }
        let end = address.saturating_add(len as u32);
        let touches_freezer = [addr(R::PrefGhcMci), addr(R::MaxShotPress)]
            .iter()
            .any(|&a| a < end && a + 4 > address);
        if touches_freezer && self.build <= 1260 {
            log::warn!(
                "MMR read touching PREF_GHC_MCI/MAX_SHOT_PRESS froze firmware {}",
                self.build
            );
            self.frozen = true;
            return None;
        }
        Some((0..len as u32).map(|i| self.byte(address + i)).collect())
    }

    /// Apply an app write of `data` at `address` (0x80xxxx space). Writes to read-only
    /// or absent registers are ignored, as the firmware ignores them.
    pub fn write(&mut self, address: u32, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let a = address + i as u32;
            let word = a & !3;
            let writable = R::lookup_by_address(word)
                .is_some_and(|r| r.info().writable && r.available_on(self.build));
            if !writable {
                continue;
            }
            let mut bytes = self.words.get(&word).copied().unwrap_or(0).to_le_bytes();
            bytes[(a & 3) as usize] = b;
            self.words.insert(word, u32::from_le_bytes(bytes));
        }
        self.clip();
    }

    /// Registers whose firmware clips out-of-range values.
    fn clip(&mut self) {
        // STEAM_START_SECS: valid 0–4 s (×100).
        let a = addr(R::SteamStartSecs);
        if let Some(v) = self.words.get_mut(&a) {
            *v = (*v).min(400);
        }
        // Booleans read back as 0/1.
        for r in [
            R::SteamPurgeMode,
            R::AllowUsbCharging,
            R::RefillKitPresent,
            R::UserPresent,
        ] {
            if let Some(v) = self.words.get_mut(&addr(r)) {
                *v = u32::from(*v != 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(build: u32) -> RegisterFile {
        let mut cfg = SimConfig::default();
        cfg.machine.firmware_build = build;
        RegisterFile::new(&cfg)
    }

    #[test]
    fn words_are_little_endian_and_reads_span_registers() {
        let mut f = file(1333);
        let b = f.read(0x80_0008, 12).unwrap();
        assert_eq!(
            b,
            [0x14, 0x05, 0, 0, 0x03, 0, 0, 0, 0x35, 0x05, 0, 0],
            "board 1300, DE1PRO, build 1333"
        );
        let unaligned = f.read(0x80_0009, 2).unwrap();
        assert_eq!(unaligned, [0x05, 0x00]);
    }

    #[test]
    fn writes_only_reach_writable_registers() {
        let mut f = file(1333);
        f.write(0x80_3808, &[45, 0, 0, 0]);
        assert_eq!(f.get(R::FanThreshold), 45);
        f.write(0x80_0010, &[1, 2, 3, 4]);
        assert_eq!(f.get(R::CpuFirmwareBuild), 1333);
        f.write(0x80_3850, &[7, 0, 0, 0]);
        assert_eq!(f.get(R::SteamPurgeMode), 1);
        f.write(0x80_382C, &[0xE8, 0x03, 0, 0]); // 10 s
        assert_eq!(f.get(R::SteamStartSecs), 400);
    }

    #[test]
    fn registers_newer_than_the_build_read_zero() {
        let mut f = file(1283);
        assert_eq!(f.get(R::UserPresent), 0);
        assert_eq!(f.read(0x80_3854, 4).unwrap(), [0, 0, 0, 0]);
        f.write(0x80_3858, &[1, 0, 0, 0]);
        assert_eq!(f.get(R::AppFeatureFlags), 0);
        assert_eq!(f.get(R::FlushTimeout), 200);
    }

    #[test]
    fn old_firmware_freezes_on_the_unsafe_registers() {
        let mut f = file(1250);
        assert!(f.read(0x80_3808, 20).is_some());
        assert!(f.read(0x80_381C, 8).is_none());
        assert!(f.read(0x80_0010, 4).is_none());
        let mut g = file(1283);
        assert_eq!(g.read(0x80_3820, 8).unwrap(), [0; 8]);
    }

    #[test]
    fn debug_buffer_is_text() {
        let mut f = file(1333);
        let b = f.read(0x80_2804, 16).unwrap();
        assert_eq!(&b, &DEBUG_TEXT.as_bytes()[..16]);
    }
}

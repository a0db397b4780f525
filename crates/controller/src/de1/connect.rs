//! The connect-time sequence (de1-behaviour.md §12.1, pyde1-runtime.md §8.4).
//!
//! Subscriptions are already enabled by [`super::De1::attach`]. Then:
//!
//! 1. concurrently: read CPU_FIRMWARE_BUILD alone, then the register blocks that are safe
//!    for that build (de1-mmr.md §4); GATT-read StateInfo, Versions, ShotSettings and
//!    WaterLevels;
//! 2. whatever did not arrive within [`super::De1Options::ready_wait`] is requested once
//!    more, word by word, and the sequence continues regardless (as pyDE1 does);
//! 3. firmware ≥ 1320: APP_FEATURE_FLAGS gets USER_PRESENT unless already set;
//! 4. calibration: flow, pressure, temperature × current, factory;
//! 5. firmware ≥ 1283: a flush time set before the connection is written to FLUSH_TIMEOUT.
//!
//! Only a missing firmware build or state makes the sequence fail: without them no
//! request can be checked.

use de1_protocol::characteristic::Characteristic;
use de1_protocol::mmr::{AppFeatureFlags, MmrRegister, MmrValue};
use de1_protocol::packets::ReadFromMMRRequest;

use super::{CalibrationTarget, De1, De1Error, LOG};

/// The register blocks pyDE1 reads for `build` (first address, last address).
pub fn register_blocks(build: u32) -> Vec<(u32, u32)> {
    let features = super::Features { build: Some(build) };
    let last = features.last_mmr0x80();
    let mut blocks = vec![(0x80_0000, 0x80_000C)];
    if features.safe_to_read_mmr_continuous() {
        blocks.push((0x80_3808, last));
    } else {
        // PREF_GHC_MCI and MAX_SHOT_PRESS hang firmware ≤ 1260: skip them.
        blocks.push((0x80_3808, MmrRegister::GhcInfo.address()));
        blocks.push((MmrRegister::TargetSteamFlow.address(), last));
    }
    blocks
}

/// Reads one block; returns the word addresses still missing.
async fn read_block(de1: &De1, first: u32, last: u32) -> Vec<u32> {
    let request = match ReadFromMMRRequest::block(first, last) {
        Ok(r) => r,
        Err(e) => {
            log::error!(target: LOG, "bad register block {first:#08x}..{last:#08x}: {e}");
            return Vec::new();
        }
    };
    match de1.read_mmr(request, de1.options().ready_wait).await {
        Ok(_) => Vec::new(),
        Err(e) => {
            log::warn!(target: LOG, "register block {first:#08x}: {}", e.error);
            e.missing
        }
    }
}

/// Reads single words again; logs what still does not arrive.
async fn retry_words(de1: &De1, words: &[u32]) {
    for &address in words {
        let Ok(request) = ReadFromMMRRequest::new(address, 1) else {
            continue;
        };
        if let Err(e) = de1.read_mmr(request, de1.options().op_timeout).await {
            log::warn!(target: LOG, "register {address:#08x} still unread: {}", e.error);
        }
    }
}

/// The MMR part of step 1–2.
async fn read_registers(de1: &De1) -> Result<(), De1Error> {
    let build_request = MmrRegister::CpuFirmwareBuild.read_request();
    if let Err(first) = de1.read_mmr(build_request, de1.options().ready_wait).await {
        log::warn!(target: LOG, "firmware build: {}; asking again", first.error);
        de1.read_mmr(build_request, de1.options().op_timeout)
            .await
            .map_err(|e| e.error)?;
    }
    let build = de1.with_mirror(|m| m.firmware_build()).ok_or_else(|| {
        De1Error::InvalidValue("the DE1 did not report its firmware build".into())
    })?;
    log::info!(target: LOG, "DE1 firmware build {build}");
    let mut missing = Vec::new();
    for (first, last) in register_blocks(build) {
        missing.extend(read_block(de1, first, last).await);
    }
    retry_words(de1, &missing).await;
    Ok(())
}

/// A GATT read with one retry; a failure is logged, not fatal.
async fn read_char(de1: &De1, c: Characteristic) {
    if let Err(e) = de1.read_into_mirror(c).await {
        log::warn!(target: LOG, "{c} read: {e}; asking again");
        if let Err(e) = de1.read_into_mirror(c).await {
            log::warn!(target: LOG, "{c} still unread: {e}");
        }
    }
}

/// Runs the whole sequence on a freshly attached DE1.
pub async fn run(de1: &De1) -> Result<(), De1Error> {
    let registers = read_registers(de1);
    let gatt = async {
        let state = match de1.read_state().await {
            Ok(s) => Ok(s),
            Err(e) => {
                log::warn!(target: LOG, "StateInfo read: {e}; asking again");
                de1.read_state().await
            }
        };
        read_char(de1, Characteristic::Versions).await;
        read_char(de1, Characteristic::ShotSettings).await;
        read_char(de1, Characteristic::WaterLevels).await;
        state
    };
    let (registers, state) = futures::join!(registers, gatt);
    registers?;
    let state = state?;
    log::info!(target: LOG, "DE1 is {}, {}", state.state, state.substate);

    let features = de1.with_mirror(|m| m.features());
    if features.user_present() {
        let flags = match de1.with_mirror(|m| m.register(MmrRegister::AppFeatureFlags).cloned()) {
            Some(s) => match s.value {
                MmrValue::FeatureFlags(f) => f.0,
                _ => 0,
            },
            None => 0,
        };
        if flags & AppFeatureFlags::USER_PRESENT == 0 {
            let want =
                MmrValue::FeatureFlags(AppFeatureFlags(flags | AppFeatureFlags::USER_PRESENT));
            if let Err(e) = de1
                .write_register_unchecked(MmrRegister::AppFeatureFlags, &want)
                .await
            {
                log::warn!(target: LOG, "cannot set APP_FEATURE_FLAGS: {e}");
            }
        }
    }

    for target in CalibrationTarget::ALL {
        for factory in [false, true] {
            if let Err(e) = de1.read_calibration(target, factory).await {
                log::warn!(target: LOG, "calibration {target:?} (factory: {factory}): {e}");
            }
        }
    }

    if features.rinse_control() {
        if let Some(pending) = de1.options().pending_flush_timeout {
            let seconds = pending.unwrap_or(0.0);
            let current = de1.with_mirror(|m| m.register_f64(MmrRegister::FlushTimeout));
            if current != Some(seconds) {
                if let Err(e) = de1
                    .write_register_unchecked(MmrRegister::FlushTimeout, &MmrValue::Number(seconds))
                    .await
                {
                    log::warn!(target: LOG, "cannot apply the flush time set before connecting: {e}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_skip_the_freezing_registers_on_old_firmware() {
        assert_eq!(
            register_blocks(1333),
            vec![(0x80_0000, 0x80_000C), (0x80_3808, 0x80_3860)]
        );
        assert_eq!(
            register_blocks(1260),
            vec![
                (0x80_0000, 0x80_000C),
                (0x80_3808, 0x80_381C),
                (0x80_3828, 0x80_383C)
            ]
        );
        assert_eq!(register_blocks(1200)[2], (0x80_3828, 0x80_3838));
        // pyDE1's Len for the fw ≥ 1283 block is 22.
        let r = ReadFromMMRRequest::block(0x80_3808, 0x80_3860).unwrap();
        assert_eq!(r.encode()[0], 22);
    }
}

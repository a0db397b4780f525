//! One module per GATT packet layout (de1-ble.md §5).
//!
//! Every packet type has `decode(&[u8]) -> Result<Self, DecodeError>` and an `encode`
//! that produces the exact wire bytes. Multi-byte fields are big-endian (register
//! values inside MMR data are the only little-endian exception, see [`crate::mmr`]).
//!
//! Length policy: the firmware sends and expects fixed-size values, so decoders accept
//! exactly the documented size and return [`DecodeError::Length`] otherwise. The only
//! variable-length packets are WriteToMMR (the last firmware chunk may be short) and the
//! layout-less characteristics kept as [`raw::Raw`].
//!
//! Every packet also has `to_json()`, the decoded fields with engineering values and the
//! unit in the key (e.g. `group_pressure_bar`), which is also its `Serialize` form —
//! except [`StateInfo`], which (de)serializes as `{"state": "Idle", "substate": "NoState"}`.

pub mod calibration;
pub mod frame_write;
pub mod fw_map_request;
pub mod header_write;
pub mod raw;
pub mod read_from_mmr;
pub mod requested_state;
pub mod set_time;
pub mod shot_sample;
pub mod shot_settings;
pub mod state_info;
pub mod temperatures;
pub mod versions;
pub mod water_levels;
pub mod write_to_mmr;

pub use calibration::{CalCommand, CalTarget, Calibration};
pub use frame_write::{ExtensionFrame, FrameFlags, FrameWrite, ShotFrame, TailFrame};
pub use fw_map_request::FWMapRequest;
pub use header_write::HeaderWrite;
pub use raw::Raw;
pub use read_from_mmr::{ReadFromMMRRequest, ReadFromMMRResponse};
pub use requested_state::RequestedState;
pub use set_time::SetTime;
pub use shot_sample::ShotSample;
pub use shot_settings::{ShotSettings, SteamSettings};
pub use state_info::StateInfo;
pub use temperatures::{TemperatureSet, Temperatures};
pub use versions::{FirmwareVersion, Versions};
pub use water_levels::WaterLevels;
pub use write_to_mmr::WriteToMMR;

use crate::DecodeError;

/// `bytes` as a fixed-size array, or a [`DecodeError::Length`] naming `packet`.
pub(crate) fn exact<'a, const N: usize>(
    packet: &'static str,
    bytes: &'a [u8],
) -> Result<&'a [u8; N], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::Length {
        packet,
        expected: N,
        actual: bytes.len(),
    })
}

/// Implements `Serialize` as the packet's `to_json()` form.
macro_rules! serialize_via_json {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&self.to_json(), serializer)
            }
        }
    };
}
pub(crate) use serialize_via_json;

#[cfg(test)]
pub(crate) fn hex_bytes(s: &str) -> Vec<u8> {
    let clean: String = s.split_whitespace().collect();
    hex::decode(clean).expect("test vector is valid hex")
}

//! Decode any characteristic's value to readable JSON (used by `de1d decode`).

use serde_json::Value;

use crate::characteristic::Characteristic;
use crate::packets::{
    Calibration, FWMapRequest, FrameWrite, HeaderWrite, Raw, ReadFromMMRRequest,
    ReadFromMMRResponse, RequestedState, SetTime, ShotSample, ShotSettings, StateInfo,
    Temperatures, Versions, WaterLevels, WriteToMMR,
};
use crate::DecodeError;

/// The decoded fields of `bytes` as a value of `characteristic`, with engineering values
/// and the unit in each key (e.g. `"group_pressure_bar": 9.0`).
///
/// Context-dependent cases:
/// * ReadFromMMR is decoded as a notification (a response). A value whose `Len` is not a
///   valid response length is decoded as a request instead (that is what a GATT read of
///   A005 returns). Both carry a `"kind"` key.
/// * FrameWrite has no header context: indexes 0 … 19 are shot frames, 20 a tail (see
///   [`FrameWrite::decode`]).
/// * ShotDirectory, ShotMapRequest, DeleteShotRange and Deprecated have no known layout
///   and are shown as hex.
pub fn decode_to_json(characteristic: Characteristic, bytes: &[u8]) -> Result<Value, DecodeError> {
    use Characteristic as C;
    Ok(match characteristic {
        C::Versions => Versions::decode(bytes)?.to_json(),
        C::RequestedState => RequestedState::decode(bytes)?.to_json(),
        C::SetTime => SetTime::decode(bytes)?.to_json(),
        C::ReadFromMMR => match ReadFromMMRResponse::decode(bytes) {
            Ok(r) => r.to_json(),
            Err(e @ DecodeError::InvalidValue { .. }) => {
                ReadFromMMRRequest::decode(bytes).map_err(|_| e)?.to_json()
            }
            Err(e) => return Err(e),
        },
        C::WriteToMMR => WriteToMMR::decode(bytes)?.to_json(),
        C::FWMapRequest => FWMapRequest::decode(bytes)?.to_json(),
        C::Temperatures => Temperatures::decode(bytes)?.to_json(),
        C::ShotSettings => ShotSettings::decode(bytes)?.to_json(),
        C::ShotSample => ShotSample::decode(bytes)?.to_json(),
        C::StateInfo => StateInfo::decode(bytes)?.to_json(),
        C::HeaderWrite => HeaderWrite::decode(bytes)?.to_json(),
        C::FrameWrite => FrameWrite::decode(bytes, None)?.to_json(),
        C::WaterLevels => WaterLevels::decode(bytes)?.to_json(),
        C::Calibration => Calibration::decode(bytes)?.to_json(),
        C::ShotDirectory | C::ShotMapRequest | C::DeleteShotRange | C::Deprecated => {
            Raw::decode(bytes)?.to_json()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn shot_sample_for_the_cli() {
        let j = decode_to_json(
            Characteristic::ShotSample,
            &hex_bytes("12 34 90 00 20 00 5C 80 5D 40 00 5C 00 5D 00 90 00 02 96"),
        )
        .unwrap();
        assert_eq!(j["sample_time_half_cycles"], 4660);
        assert_eq!(j["group_pressure_bar"], 9.0);
        assert_eq!(j["group_flow_ml_per_s"], 2.0);
        assert_eq!(j["mix_temp_c"], 92.5);
        assert_eq!(j["frame_number"], 2);
    }

    #[test]
    fn every_fixed_size_characteristic_decodes_its_own_size() {
        for c in Characteristic::ALL {
            let Some(len) = c.fixed_len() else { continue };
            // A zero-filled value is valid for every layout except as noted.
            let zeros = vec![0u8; len];
            let result = decode_to_json(c, &zeros);
            assert!(result.is_ok(), "{c}: {result:?}");
            let too_long = vec![0u8; len + 1];
            assert!(
                decode_to_json(c, &too_long).is_err(),
                "{c} accepted {} bytes",
                len + 1
            );
        }
    }

    #[test]
    fn mmr_read_value_falls_back_to_request() {
        let req = ReadFromMMRRequest::new(0x80_3808, 23).unwrap().encode();
        let j = decode_to_json(Characteristic::ReadFromMMR, &req).unwrap();
        assert_eq!(j["kind"], "request");
        assert_eq!(j["words"], 23);
        let resp = ReadFromMMRResponse::new(0x80_0010, &1333u32.to_le_bytes()).unwrap();
        let j = decode_to_json(Characteristic::ReadFromMMR, &resp.encode()).unwrap();
        assert_eq!(j["kind"], "response");
        assert_eq!(j["words"][0]["value_le"], 1333);
    }

    #[test]
    fn state_and_raw() {
        let j = decode_to_json(Characteristic::StateInfo, &[0x02, 0x00]).unwrap();
        assert_eq!(j["state"], "Idle");
        assert_eq!(j["substate"], "NoState");
        let j = decode_to_json(Characteristic::Deprecated, &[0xAB, 0xCD]).unwrap();
        assert_eq!(j["raw"], "abcd");
        assert!(decode_to_json(Characteristic::StateInfo, &[]).is_err());
    }
}

//! Robustness of the packet layer: every decoder on arbitrary bytes (it may refuse them,
//! it must not panic), byte-level and value-level round trips, and MMR reassembly fed
//! arbitrary notifications.

use de1_protocol::characteristic::Characteristic;
use de1_protocol::decode_any::decode_to_json;
use de1_protocol::fixed::{F8_1_7, S32P16, U10P0, U16P12, U16P8, U24P16, U8P1, U8P4};
use de1_protocol::mmr::{MmrReassembler, MmrRegister, MmrValue};
use de1_protocol::packets::*;
use de1_protocol::state::{MachineState, Substate};
use de1_protocol::DecodeError;
use proptest::collection::vec;
use proptest::prelude::*;

/// Cases per property. 25 properties × 4096 = 102 400 generated cases in all.
const CASES: u32 = 4096;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// Arbitrary bytes (0 … 63), half the time of exactly `len` bytes so that the decoders'
/// success paths are exercised too.
fn bytes_around(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), len)]
}

/// For lossless fixed-size packets: decoding arbitrary bytes never panics, and whenever
/// it succeeds, encoding gives the same bytes back.
macro_rules! byte_round_trip {
    ($test:ident, $ty:ty, $len:expr) => {
        proptest! {
            #![proptest_config(config())]
            #[test]
            fn $test(bytes in bytes_around($len)) {
                match <$ty>::decode(&bytes) {
                    Ok(p) => prop_assert_eq!(p.encode().to_vec(), bytes),
                    Err(DecodeError::Length { expected, .. }) => {
                        prop_assert_eq!(expected, $len);
                        prop_assert_ne!(bytes.len(), $len);
                    }
                    Err(_) => prop_assert_eq!(bytes.len(), $len),
                }
            }
        }
    };
}

byte_round_trip!(versions_bytes, Versions, 18);
byte_round_trip!(requested_state_bytes, RequestedState, 1);
byte_round_trip!(set_time_bytes, SetTime, 8);
byte_round_trip!(fw_map_request_bytes, FWMapRequest, 7);
byte_round_trip!(temperatures_bytes, Temperatures, 16);
byte_round_trip!(shot_settings_bytes, ShotSettings, 9);
byte_round_trip!(shot_sample_bytes, ShotSample, 19);
byte_round_trip!(state_info_bytes, StateInfo, 2);
byte_round_trip!(header_write_bytes, HeaderWrite, 5);
byte_round_trip!(water_levels_bytes, WaterLevels, 4);
byte_round_trip!(calibration_bytes, Calibration, 14);

proptest! {
    #![proptest_config(config())]

    /// Every characteristic through the CLI's generic decoder.
    #[test]
    fn decode_to_json_never_panics(bytes in vec(any::<u8>(), 0..64), which in 0usize..18) {
        let c = Characteristic::ALL[which];
        let result = decode_to_json(c, &bytes);
        if let Some(len) = c.fixed_len() {
            if bytes.len() != len {
                prop_assert!(result.is_err());
            }
        }
    }

    /// FrameWrite: with or without header context; the meaningful bytes survive.
    #[test]
    fn frame_write_bytes(bytes in bytes_around(8), frames in proptest::option::of(0u8..=20)) {
        if let Ok(fw) = FrameWrite::decode(&bytes, frames) {
            let out = fw.encode();
            let kept = match fw {
                FrameWrite::Shot { .. } => 8,
                FrameWrite::Extension { .. } => 3,
                FrameWrite::Tail { .. } => 3,
            };
            prop_assert_eq!(&out[..kept], &bytes[..kept]);
            prop_assert!(out[kept..].iter().all(|b| *b == 0));
            prop_assert_eq!(FrameWrite::decode(&out, frames), Ok(fw));
        }
    }

    #[test]
    fn read_from_mmr_bytes(bytes in bytes_around(20)) {
        if let Ok(r) = ReadFromMMRResponse::decode(&bytes) {
            let out = r.encode();
            let n = 4 + r.data().len();
            prop_assert_eq!(&out[..n], &bytes[..n]);
            prop_assert_eq!(ReadFromMMRResponse::decode(&out), Ok(r));
            prop_assert_eq!(r.words().count(), r.data().len() / 4);
        }
        if let Ok(q) = ReadFromMMRRequest::decode(&bytes) {
            prop_assert_eq!(&q.encode()[..4], &bytes[..4]);
            prop_assert_eq!(q.byte_len(), 4 * (usize::from(bytes[0]) + 1));
        }
    }

    #[test]
    fn write_to_mmr_bytes(bytes in bytes_around(20)) {
        if let Ok(w) = WriteToMMR::decode(&bytes) {
            prop_assert!(!w.data().is_empty() && w.data().len() <= 16);
            prop_assert_eq!(&w.encode()[1..4], &bytes[1..4]);
            prop_assert_eq!(w.data(), &bytes[4..4 + w.data().len()]);
            prop_assert_eq!(WriteToMMR::decode(&w.encode()), Ok(w));
            prop_assert_eq!(WriteToMMR::decode(&w.encode_unpadded()), Ok(w));
            let _ = w.to_json();
        }
    }

    /// Every register decoder on arbitrary bytes; 4-byte values always decode.
    #[test]
    fn mmr_register_values(bytes in bytes_around(4)) {
        for reg in MmrRegister::ALL {
            let result = reg.decode_value(&bytes);
            if bytes.len() == 4 {
                prop_assert!(result.is_ok(), "{} refused 4 bytes", reg);
            }
            if let Ok(v) = result {
                let _ = v.to_json();
            }
        }
    }

    /// Reassembly fed arbitrary notifications, in any order, for any request.
    #[test]
    fn mmr_reassembly_arbitrary(
        request in any::<[u8; 4]>(),
        packets in vec(vec(any::<u8>(), 0..=20), 0..40),
    ) {
        // Any request as it may arrive on the wire, including ranges past 0xFFFFFF.
        let request = ReadFromMMRRequest::decode(&request).unwrap();
        let words = request.words();
        let mut r = MmrReassembler::new(request);
        let mut accepted = 0;
        for p in &packets {
            if let Ok(resp) = ReadFromMMRResponse::decode(p) {
                if r.push(&resp).is_ok() {
                    accepted += 1;
                }
            }
        }
        let missing = r.missing_addresses().count();
        prop_assert_eq!(missing + r.words().count(), usize::from(words));
        prop_assert_eq!(r.is_complete(), missing == 0);
        prop_assert_eq!(r.data().is_some(), missing == 0);
        prop_assert!(accepted <= packets.len());
        let _ = r.register_values();
    }

    /// A reply split the way the machine splits it reassembles exactly, in any order.
    #[test]
    fn mmr_reassembly_exact(
        address in (0u32..=0x3F_FEFF).prop_map(|a| a * 4),
        data in vec(any::<u8>(), 1..=256).prop_map(|w| {
            w.iter().flat_map(|b| [*b, b.wrapping_mul(3), 0, 1]).collect::<Vec<u8>>()
        }),
        seed in any::<u64>(),
    ) {
        let words = (data.len() / 4) as u16;
        let request = ReadFromMMRRequest::new(address, words).unwrap();
        let mut pieces: Vec<ReadFromMMRResponse> = data
            .chunks(16)
            .zip(0u32..)
            .map(|(c, i)| ReadFromMMRResponse::new(address + 16 * i, c).unwrap())
            .collect();
        // Deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..pieces.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            pieces.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(pieces.len(), request.response_count());
        let mut r = MmrReassembler::new(request);
        for (i, p) in pieces.iter().enumerate() {
            let wire = ReadFromMMRResponse::decode(&p.encode()).unwrap();
            prop_assert_eq!(r.push(&wire), Ok(i + 1 == pieces.len()));
        }
        prop_assert_eq!(r.data(), Some(&data[..]));
    }
}

// ---- value-level round trips: decode(encode(x)) == x ----

fn state() -> impl Strategy<Value = MachineState> {
    any::<u8>().prop_map(MachineState::from_u8)
}

fn shot_sample() -> impl Strategy<Value = ShotSample> {
    (
        any::<u16>(),
        (any::<u16>(), any::<u16>(), any::<u16>()),
        0u32..=0xFF_FFFF,
        (any::<u16>(), any::<u16>()),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
    )
        .prop_map(
            |(t, (p, f, mix), head, (smix, shead), (sp, sf, frame, steam))| ShotSample {
                sample_time: t,
                group_pressure: U16P12(p),
                group_flow: U16P12(f),
                mix_temp: U16P8(mix),
                head_temp: U24P16(head),
                set_mix_temp: U16P8(smix),
                set_head_temp: U16P8(shead),
                set_group_pressure: U8P4(sp),
                set_group_flow: U8P4(sf),
                frame_number: frame,
                steam_temp: steam,
            },
        )
}

fn frame_write() -> impl Strategy<Value = (FrameWrite, u8)> {
    let shot = (0u8..=19, any::<[u8; 5]>(), any::<u16>()).prop_map(|(index, b, vol)| {
        let frame = ShotFrame {
            flags: FrameFlags(b[0]),
            set_value: U8P4(b[1]),
            temperature: U8P1(b[2]),
            duration: F8_1_7(b[3]),
            trigger_value: U8P4(b[4]),
            max_volume: U10P0(vol),
        };
        (FrameWrite::Shot { index, frame }, 20)
    });
    let ext = (0u8..=19, any::<u8>(), any::<u8>()).prop_map(|(index, v, r)| {
        let frame = ExtensionFrame {
            limiter_value: U8P4(v),
            limiter_range: U8P4(r),
        };
        (FrameWrite::Extension { index, frame }, 20)
    });
    let tail = (0u8..=20, any::<u16>()).prop_map(|(index, vol)| {
        let frame = TailFrame {
            max_total_volume: U10P0(vol),
        };
        (FrameWrite::Tail { index, frame }, index)
    });
    prop_oneof![shot, ext, tail]
}

fn calibration() -> impl Strategy<Value = Calibration> {
    (
        any::<u32>(),
        prop_oneof![
            Just(CalCommand::Read),
            Just(CalCommand::Write),
            Just(CalCommand::ResetToFactory),
            Just(CalCommand::ReadFactory)
        ],
        prop_oneof![
            Just(CalTarget::Flow),
            Just(CalTarget::Pressure),
            Just(CalTarget::Temperature),
            Just(CalTarget::Error)
        ],
        any::<i32>(),
        any::<i32>(),
    )
        .prop_map(|(key, command, target, r, m)| Calibration {
            write_key: key,
            command,
            target,
            reported: S32P16(r),
            measured: S32P16(m),
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn shot_sample_values(s in shot_sample()) {
        prop_assert_eq!(ShotSample::decode(&s.encode()), Ok(s));
        // Engineering values survive a trip through from_values.
        prop_assert_eq!(ShotSample::from_values(&s.values()), Ok(s));
        prop_assert_eq!(ShotSample::from_values_saturating(&s.values()), s);
    }

    #[test]
    fn state_info_values(state in state(), sub in any::<u8>().prop_map(Substate::from_u8)) {
        let s = StateInfo { state, substate: sub };
        prop_assert_eq!(StateInfo::decode(&s.encode()), Ok(s));
        let json = serde_json::to_string(&s).unwrap();
        let back: StateInfo = serde_json::from_str(&json).unwrap();
        // Names are lossless for known values; unknown ones keep their name.
        prop_assert_eq!(back.state.as_str(), state.as_str());
        prop_assert_eq!(back.substate.as_str(), sub.as_str());
        prop_assert_eq!(RequestedState::decode(&RequestedState::new(state).encode()),
            Ok(RequestedState::new(state)));
    }

    #[test]
    fn frame_write_values((fw, frames) in frame_write()) {
        prop_assert_eq!(FrameWrite::decode(&fw.encode(), Some(frames)), Ok(fw));
    }

    #[test]
    fn header_and_small_packets(b in any::<[u8; 5]>(), levels in any::<(u16, u16)>(), t in any::<u64>()) {
        let h = HeaderWrite {
            header_version: b[0],
            number_of_frames: b[1],
            number_of_preinfuse_frames: b[2],
            minimum_pressure: U8P4(b[3]),
            maximum_flow: U8P4(b[4]),
        };
        prop_assert_eq!(HeaderWrite::decode(&h.encode()), Ok(h));
        let w = WaterLevels { level: U16P8(levels.0), start_fill_level: U16P8(levels.1) };
        prop_assert_eq!(WaterLevels::decode(&w.encode()), Ok(w));
        let st = SetTime { timestamp: t };
        prop_assert_eq!(SetTime::decode(&st.encode()), Ok(st));
    }

    #[test]
    fn calibration_values(c in calibration()) {
        prop_assert_eq!(Calibration::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn mmr_packet_values(
        address in 0u32..=0xFF_FBFF,
        data in vec(any::<u8>(), 1..=16),
        words in 1u16..=256,
        fw in (any::<u16>(), any::<u8>(), any::<u8>(), 0u32..=0xFF_FFFF),
    ) {
        let w = WriteToMMR::new(address, &data).unwrap();
        prop_assert_eq!(WriteToMMR::decode(&w.encode()), Ok(w));
        let r = ReadFromMMRResponse::new(address, &data).unwrap();
        prop_assert_eq!(ReadFromMMRResponse::decode(&r.encode()), Ok(r));
        let q = ReadFromMMRRequest::new(address, words).unwrap();
        prop_assert_eq!(ReadFromMMRRequest::decode(&q.encode()), Ok(q));
        let m = FWMapRequest { window_increment: fw.0, fw_to_erase: fw.1, fw_to_map: fw.2, first_error: fw.3 };
        prop_assert_eq!(FWMapRequest::decode(&m.encode()), Ok(m));
    }

    /// Scaled register writes read back within half a step of the value written.
    #[test]
    fn mmr_scaled_register_values(which in 0usize..31, x in 0.0f64..200.0) {
        let reg = MmrRegister::ALL[which];
        if let Ok(w) = reg.encode_write(&MmrValue::Number(x)) {
            if let Ok(MmrValue::Number(back)) = reg.decode_value(w.data()) {
                let de1_protocol::mmr::MmrEncoding::Scaled(div) = reg.info().encoding else {
                    return Err(TestCaseError::fail("Number from an unscaled register"));
                };
                prop_assert!((back - x).abs() <= 0.5 / f64::from(div) + 1e-9);
            }
        }
    }
}

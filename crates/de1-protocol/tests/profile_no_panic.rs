//! No input makes profile encoding or firmware parsing panic, and whatever they accept
//! is internally consistent.

use std::path::Path;

use de1_protocol::firmware::{FirmwareHeader, FirmwareImage, BOARD_MARKER, HEADER_LEN};
use de1_protocol::packets::frame_write::FrameWrite;
use de1_protocol::profile::{encode_profile, EncodedProfile, ProfileError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        scalar_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Strings a profile field might hold: numbers as text, keywords, junk.
fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        (-5000i64..5000).prop_map(|n| format!("{}.{}", n / 10, (n % 10).abs())),
        prop::sample::select(vec![
            "", " ", "nan", "inf", "-inf", "1e400", "1_0", "_1", "2", "2.1", "1", "flow",
            "pressure", "coffee", "water", "fast", "smooth", "over", "under", "0x10", "٣",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "version",
            "steps",
            "target_volume_count_start",
            "target_volume",
            "target_weight",
            "tank_temperature",
            "title",
            "pump",
            "sensor",
            "transition",
            "temperature",
            "seconds",
            "volume",
            "weight",
            "flow",
            "pressure",
            "exit",
            "limiter",
            "type",
            "condition",
            "value",
            "range",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,8}",
    ]
}

/// A value for a numeric field: usually in `lo..hi` (as a number or as de1app's
/// string), now and then just outside it, rarely anything at all.
fn numberish(lo: f64, hi: f64) -> impl Strategy<Value = Value> {
    let span = hi - lo;
    prop_oneof![
        10 => (lo..hi).prop_map(|f| json!(f)),
        10 => (lo..hi).prop_map(|f| json!(format!("{f:.2}"))),
        2 => (lo - span..hi + span).prop_map(|f| json!(format!("{f}"))),
        1 => any_json(),
    ]
}

fn keyword(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        30 => prop::sample::select(words).prop_map(|w| json!(w)),
        1 => any_json(),
    ]
}

/// A step that is often valid and often slightly wrong.
fn step() -> impl Strategy<Value = Value> {
    (
        keyword(&["flow", "pressure"]),
        keyword(&["coffee", "water"]),
        keyword(&["fast", "smooth"]),
        (
            numberish(80.0, 100.0),
            numberish(0.0, 60.0),
            numberish(0.0, 300.0),
            numberish(0.0, 12.0),
            numberish(0.0, 12.0),
        ),
        prop::option::of((
            keyword(&["pressure", "flow"]),
            keyword(&["over", "under"]),
            numberish(0.0, 12.0),
        )),
        prop::option::of((numberish(0.0, 12.0), numberish(0.0, 2.0))),
        prop::option::of(numberish(0.0, 60.0)),
        prop_oneof![
            20 => Just(Vec::new()),
            1 => prop::collection::vec(field_name(), 1..3),
        ],
    )
        .prop_map(
            |(pump, sensor, transition, (t, s, v, f, p), exit, limiter, weight, drop)| {
                let mut step = json!({
                    "pump": pump, "sensor": sensor, "transition": transition,
                    "temperature": t, "seconds": s, "volume": v, "flow": f, "pressure": p,
                });
                if let Some((ty, cond, val)) = exit {
                    step["exit"] = json!({"type": ty, "condition": cond, "value": val});
                }
                if let Some((val, range)) = limiter {
                    step["limiter"] = json!({"value": val, "range": range});
                }
                if let Some(w) = weight {
                    step["weight"] = w;
                }
                if let Value::Object(m) = &mut step {
                    for name in drop {
                        m.remove(&name);
                    }
                }
                step
            },
        )
}

fn profile_shaped() -> impl Strategy<Value = Value> {
    (
        keyword(&["2", "2.1"]),
        prop_oneof![
            30 => prop::collection::vec(step(), 1..6),
            1 => prop::collection::vec(step(), 0..23),
        ],
        numberish(0.0, 3.0),
        numberish(-10.0, 500.0),
        prop::option::of(numberish(-10.0, 80.0)),
        prop::option::of(numberish(0.0, 60.0)),
    )
        .prop_map(|(version, steps, count_start, volume, weight, tank)| {
            let mut p = json!({
                "version": version, "steps": steps,
                "target_volume_count_start": count_start, "target_volume": volume,
            });
            if let Some(w) = weight {
                p["target_weight"] = w;
            }
            if let Some(t) = tank {
                p["tank_temperature"] = t;
            }
            p
        })
}

/// What must hold for any result of `encode_profile`.
fn check(result: Result<EncodedProfile, ProfileError>) -> Result<(), TestCaseError> {
    match result {
        Ok(p) => {
            let n = usize::from(p.header.number_of_frames);
            prop_assert!((1..=20).contains(&n));
            prop_assert!(p.number_of_preinfuse_frames <= p.header.number_of_frames);
            let writes = p.writes();
            let extensions = p
                .frames
                .iter()
                .filter(|f| matches!(f, FrameWrite::Extension { .. }))
                .count();
            prop_assert_eq!(writes.len(), 1 + n + extensions + 1);
            prop_assert_eq!(writes[0].1.len(), 5);
            prop_assert!(writes[1..].iter().all(|(_, b)| b.len() == 8));
            prop_assert_eq!(writes.last().map(|w| w.1[0]), Some(n as u8));
            prop_assert_eq!(p.fingerprint.len(), 40);
            prop_assert_eq!(p.id.len(), 40);
            prop_assert_eq!(p.fingerprint_bytes().len(), 5 + 8 * (n + extensions + 1));
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!e.path().is_empty());
            prop_assert!(msg.starts_with(&format!("{}: ", e.path())), "{}", msg);
            prop_assert!(!msg.contains('\n'), "{}", msg);
        }
    }
    Ok(())
}

fn blooming_source() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/profiles/de1app__blooming_espresso.json");
    std::fs::read(path).unwrap_or_default()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(encode_profile(&bytes))?;
        let _ = FirmwareImage::parse(bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        check(encode_profile(value.to_string().as_bytes()))?;
    }

    #[test]
    fn profile_shaped_json_never_panics(value in profile_shaped()) {
        check(encode_profile(value.to_string().as_bytes()))?;
    }

    #[test]
    fn mutated_real_profiles_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut source = blooming_source();
        prop_assume!(!source.is_empty());
        for (at, byte) in edits {
            let i = at.index(source.len());
            source[i] = byte;
        }
        check(encode_profile(&source))?;
        let end = cut.index(source.len() + 1);
        check(encode_profile(&source[..end]))?;
    }

    #[test]
    fn arbitrary_firmware_headers_never_panic(
        words in prop::array::uniform9(any::<u32>()),
        marker in any::<bool>(),
        small in any::<bool>(),
        body_len in 0usize..300,
    ) {
        let byte_count = if small { words[3] % 400 } else { words[3] };
        let header = FirmwareHeader {
            checksum: words[0],
            board_marker: if marker { BOARD_MARKER } else { words[1] },
            version: words[2],
            byte_count,
            cpu_bytes: if small { words[4] % 400 } else { words[4] },
            unused: words[5],
            dc_sum: words[6],
            iv: [words[7] as u8; 32],
            header_sum: words[8],
        };
        let mut file = header.to_bytes().to_vec();
        file.extend((0..body_len).map(|i| i as u8));
        if let Ok(img) = FirmwareImage::parse(file.clone()) {
            prop_assert_eq!(img.header, header);
            prop_assert!(img.payload().len() == byte_count as usize);
            prop_assert!(HEADER_LEN + img.payload().len() <= file.len());
            let joined: Vec<u8> = img.chunks().flat_map(|c| c.bytes().to_vec()).collect();
            prop_assert_eq!(joined, file);
            let _ = img.crc32_report();
        }
    }
}

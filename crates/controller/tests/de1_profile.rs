//! Profile upload against the simulated DE1.

mod common;

use std::time::Duration;

use controller::de1::profile::ProfileOptions;
use controller::de1::{De1Error, ProfileState};
use de1_protocol::characteristic::Characteristic;
use de1_protocol::mmr::{MmrRegister, MmrValue};
use de1_protocol::profile::encode_profile;
use de1_sim::SimDevice;
use ipc_schema::command::CommandErrorKind;
use serde_json::Value;

fn frame_writes(c: &common::Connected) -> Vec<(Characteristic, Vec<u8>)> {
    let header = ble::Uuid(Characteristic::HeaderWrite.uuid());
    let frame = ble::Uuid(Characteristic::FrameWrite.uuid());
    c.writes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(u, b)| {
            if *u == header {
                Some((Characteristic::HeaderWrite, b.clone()))
            } else if *u == frame {
                Some((Characteristic::FrameWrite, b.clone()))
            } else {
                None
            }
        })
        .collect()
}

fn expected_hex(name: &str) -> Vec<String> {
    let path = format!(
        "{}/../../tests/vectors/profiles/{name}.expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("vector")).expect("json");
    v["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| w["hex"].as_str().expect("hex").to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn uploaded_bytes_are_the_encoders() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    for name in [
        "custom__edge_20_steps",
        "de1app__blooming_espresso",
        "de1app__turbobloom",
    ] {
        c.writes.lock().unwrap().clear();
        let source = common::profile(name);
        let up = c
            .de1
            .upload_profile(&source, ProfileOptions::default())
            .await
            .expect("upload");
        let encoded = encode_profile(&source).expect("encode");
        assert_eq!(frame_writes(&c), encoded.writes(), "{name}");
        // And they are pyDE1's bytes, except the tail frame (big-endian, no volume
        // limit; see de1_protocol::profile::EncodedProfile::frames).
        let pyde1 = expected_hex(name);
        let ours: Vec<String> = frame_writes(&c)
            .iter()
            .map(|(_, b)| hex::encode(b))
            .collect();
        assert_eq!(ours.len(), pyde1.len());
        assert_eq!(ours[..ours.len() - 1], pyde1[..pyde1.len() - 1], "{name}");
        assert_eq!(up.id, encoded.id);
        assert_eq!(
            c.de1.mirror().profile,
            ProfileState::Loaded {
                id: encoded.id.clone(),
                fingerprint: encoded.fingerprint.clone(),
                at: c.de1.mirror().profile_loaded_at().expect("time"),
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_profile_writes_nothing() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    c.writes.lock().unwrap().clear();
    for name in [
        "custom__bad_21_steps",
        "custom__bad_frame_200s",
        "custom__bad_not_json",
    ] {
        let e = c
            .de1
            .upload_profile(&common::profile(name), ProfileOptions::default())
            .await
            .expect_err(name);
        assert!(matches!(e, De1Error::Profile(_)), "{name}: {e}");
        assert_eq!(e.kind(), CommandErrorKind::BadRequest);
    }
    assert!(c.writes.lock().unwrap().is_empty());
    assert_eq!(c.de1.mirror().profile, ProfileState::Unknown);
}

#[tokio::test(start_paused = true)]
async fn a_write_failing_mid_upload_leaves_the_profile_unknown() {
    let (t, ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let good = common::profile("de1app__blooming_espresso");
    c.de1
        .upload_profile(&good, ProfileOptions::default())
        .await
        .expect("first upload");
    c.writes.lock().unwrap().clear();

    // Fail one write once five frames of the next profile have gone through.
    let log = c.writes.clone();
    let frame = ble::Uuid(Characteristic::FrameWrite.uuid());
    let watcher = tokio::spawn(async move {
        loop {
            let n = log
                .lock()
                .unwrap()
                .iter()
                .filter(|(u, _)| *u == frame)
                .count();
            if n >= 5 {
                ctl.fail_next_writes(SimDevice::De1, 1);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let source = common::profile("custom__edge_20_steps");
    let e = c
        .de1
        .upload_profile(&source, ProfileOptions::default())
        .await
        .expect_err("must fail");
    watcher.await.expect("watcher");
    match &e {
        De1Error::ProfileUploadFailed { written, total, .. } => {
            assert!(*written >= 6 && written < total, "{written} of {total}");
        }
        other => panic!("expected an upload failure, got {other:?}"),
    }
    assert_eq!(e.kind(), CommandErrorKind::Internal);
    let m = c.de1.mirror();
    assert!(
        matches!(m.profile, ProfileState::Failed { .. }),
        "{:?}",
        m.profile
    );
    assert_eq!(m.profile.loaded_id(), None, "never claimed");

    // A retry succeeds and is claimed.
    let up = c
        .de1
        .upload_profile(&source, ProfileOptions::default())
        .await
        .expect("retry");
    assert_eq!(c.de1.mirror().profile.loaded_id(), Some(up.id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn the_tank_temperature_follows_the_profile_when_allowed() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let source = common::profile("de1app__pour_over_basket_v60_20g_in_340g_out");
    let up = c
        .de1
        .upload_profile(
            &source,
            ProfileOptions {
                override_tank_temperature: false,
            },
        )
        .await
        .expect("upload");
    assert_eq!(up.tank_temperature_written, None);
    let before = c.de1.mirror().register_f64(MmrRegister::TankTemp);
    assert_ne!(before, Some(30.0));
    let up = c
        .de1
        .upload_profile(&source, ProfileOptions::default())
        .await
        .expect("upload");
    assert_eq!(up.tank_temperature_written, Some(30));
    // Read back from the DE1, not assumed.
    assert_eq!(
        c.de1.read_register(MmrRegister::TankTemp).await,
        Ok(MmrValue::Integer(30))
    );
    // Not written again when it already holds that value.
    let up = c
        .de1
        .upload_profile(&source, ProfileOptions::default())
        .await
        .expect("upload");
    assert_eq!(up.tank_temperature_written, None);
}

/// Figure for the notes: a 20-frame profile with 10 ms per acknowledged write.
#[tokio::test(start_paused = true)]
async fn figure_twenty_frame_upload_time() {
    let (t, _ctl) = common::sim(|cfg| cfg.timing.gatt_latency = Duration::from_millis(10));
    let c = common::connect(&t, common::options()).await;
    let up = c
        .de1
        .upload_profile(
            &common::profile("custom__edge_20_steps"),
            ProfileOptions::default(),
        )
        .await
        .expect("upload");
    // One header, 20 frames, the tail (no limiter frames in this profile).
    assert_eq!(up.writes, 22);
    let per_write = up.elapsed / up.writes as u32;
    println!(
        "FIGURE profile upload: {} writes in {:?} ({:?} per write, simulator 10 ms per write)",
        up.writes, up.elapsed, per_write
    );
    assert!(up.elapsed >= Duration::from_millis(220));
    assert!(up.elapsed < Duration::from_millis(300), "{:?}", up.elapsed);
}

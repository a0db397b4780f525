//! The connect-time sequence against the simulated DE1.

mod common;

use controller::de1::{CalibrationTarget, ProfileState};
use de1_protocol::characteristic::Characteristic;
use de1_protocol::mmr::{MmrRegister, MmrValue};
use de1_protocol::state::{MachineState, Substate};

#[tokio::test(start_paused = true)]
async fn connect_sequence_fills_the_mirror() {
    let (t, _c) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    assert!(c.de1.is_ready());
    let m = c.de1.mirror();
    assert_eq!(m.firmware_build(), Some(1333));
    let s = m.state.expect("state read");
    assert_eq!(
        (s.value.state, s.value.substate),
        (MachineState::Idle, Substate::NoState)
    );
    assert!(s.updated >= 1_700_000_000.0);
    assert!(m.versions.is_some(), "versions");
    assert!(m.shot_settings.is_some(), "shot settings");
    assert!(m.water_levels.is_some(), "water levels");
    // Every register pyDE1 reads on firmware 1333, HW_CONFIG … USER_PRESENT.
    for r in MmrRegister::ALL {
        let i = r.info();
        let in_blocks = (0x80_0000..=0x80_000C).contains(&i.address)
            || (0x80_3808..=0x80_3860).contains(&i.address);
        if in_blocks && i.readable {
            assert!(m.register(*r).is_some(), "{r} not read");
        }
    }
    assert_eq!(m.ghc_info().map(|g| g.is_active()), Some(false));
    for target in CalibrationTarget::ALL {
        for factory in [false, true] {
            assert!(
                m.calibration.contains_key(&(target, factory)),
                "{target:?} {factory}"
            );
        }
    }
    // Firmware ≥ 1320: the user-present feature flag was written and read back.
    match m.register(MmrRegister::AppFeatureFlags).map(|s| &s.value) {
        Some(MmrValue::FeatureFlags(f)) => assert!(f.user_present()),
        other => panic!("APP_FEATURE_FLAGS {other:?}"),
    }
    let wrote_flags = c.writes.lock().unwrap().iter().any(|(u, b)| {
        *u == ble::Uuid(Characteristic::WriteToMMR.uuid()) && b[..4] == [0x04, 0x80, 0x38, 0x58]
    });
    assert!(wrote_flags);
    assert_eq!(m.profile, ProfileState::Unknown);
}

#[tokio::test(start_paused = true)]
async fn old_firmware_skips_the_freezing_registers() {
    let (t, _c) = common::sim(|cfg| cfg.machine.firmware_build = 1255);
    let c = common::connect(&t, common::options()).await;
    let m = c.de1.mirror();
    assert_eq!(m.firmware_build(), Some(1255));
    // Read and still answering: the block reads skipped 0x803820/0x803824.
    assert!(m.register(MmrRegister::CalFlowEst).is_some());
    assert!(m.register(MmrRegister::FlushTimeout).is_none());
    let requests: Vec<Vec<u8>> = c
        .writes
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _)| *u == ble::Uuid(Characteristic::ReadFromMMR.uuid()))
        .map(|(_, b)| b[..4].to_vec())
        .collect();
    assert!(
        requests.contains(&vec![0x05, 0x80, 0x38, 0x08]),
        "{requests:?}"
    );
    assert!(!requests.iter().any(|r| r[1..4] == [0x80, 0x38, 0x20]));
    // No feature flag write below 1320.
    assert!(c.de1.read_register(MmrRegister::UserPresent).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn settings_the_firmware_lacks_are_refused_before_anything_is_written() {
    use controller::de1::settings::SettingChange;
    let (t, _c) = common::sim(|cfg| cfg.machine.firmware_build = 1283);
    let c = common::connect(&t, common::options()).await;
    let before = c.writes.lock().unwrap().len();
    let e = c
        .de1
        .apply(&[
            SettingChange::Register(MmrRegister::FanThreshold, MmrValue::Integer(50)),
            SettingChange::Register(MmrRegister::AllowUsbCharging, MmrValue::Bool(false)),
        ])
        .await
        .expect_err("USB outlet needs 1320");
    assert_eq!(
        e.kind(),
        ipc_schema::command::CommandErrorKind::NotImplemented
    );
    assert!(e.to_string().contains("1320"), "{e}");
    assert_eq!(c.writes.lock().unwrap().len(), before, "nothing written");
    // What the firmware has works.
    c.de1
        .apply(&[SettingChange::Register(
            MmrRegister::FlushTimeout,
            MmrValue::Number(5.0),
        )])
        .await
        .expect("flush timeout on 1283");
    assert_eq!(
        c.de1.mirror().register_f64(MmrRegister::FlushTimeout),
        Some(5.0)
    );
}

//! The simulated DE1's state machine, settings, registers, calibration and firmware
//! update, seen through the BLE seam.

mod common;

use std::time::Duration;

use ble::{Address, Transport};
use common::{uuid, Harness, Note};
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::fixed::S32P16;
use de1_protocol::mmr::MmrRegister;
use de1_protocol::packets::read_from_mmr::{ReadFromMMRRequest, ReadFromMMRResponse};
use de1_protocol::packets::{
    CalCommand, CalTarget, Calibration, FWMapRequest, ShotSample, ShotSettings, StateInfo,
    Versions, WaterLevels, WriteToMMR,
};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{Ghc, GroupHeadButton, SimConfig, DE1_ADDRESS, SKALE_ADDRESS};

fn cfg() -> SimConfig {
    SimConfig::default()
}

#[tokio::test(start_paused = true)]
async fn scan_connect_and_the_gatt_surface() {
    let (t, _c) = de1_sim::simulator(cfg());
    let found = ble::scan_collect(&t, Duration::from_secs(2)).await.unwrap();
    let names: Vec<_> = found
        .iter()
        .map(|a| {
            (
                a.address.as_str().to_string(),
                a.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (DE1_ADDRESS.to_string(), "DE1".to_string()),
            (SKALE_ADDRESS.to_string(), "Skale".to_string())
        ]
    );
    let de1 = t.connect(&Address::new(DE1_ADDRESS)).await.unwrap();
    for c in C::ALL {
        assert!(de1.characteristics().contains(&uuid(c)), "{}", c.name());
    }
    let v = Versions::decode(&de1.read(uuid(C::Versions)).await.unwrap()).unwrap();
    assert!(v.supports_mmr());
    let s = StateInfo::decode(&de1.read(uuid(C::StateInfo)).await.unwrap()).unwrap();
    assert_eq!((s.state, s.substate), (S::Idle, Sub::NoState));
    // One central at a time; a connected device does not advertise.
    let again = t.connect(&Address::new(DE1_ADDRESS)).await;
    assert_eq!(again.err().unwrap().kind(), ble::ErrorKind::ConnectFailed);
    let found = ble::scan_collect(&t, Duration::from_secs(1)).await.unwrap();
    assert_eq!(found.len(), 1);
    // Writes to read-only characteristics and malformed values are GATT errors.
    let e = de1
        .write(uuid(C::StateInfo), &[2, 0], ble::WriteKind::WithResponse)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ble::ErrorKind::NotSupported);
    let e = de1
        .write(
            uuid(C::RequestedState),
            &[4, 0],
            ble::WriteKind::WithResponse,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ble::ErrorKind::Gatt);
    // After a disconnect the handle is dead and the device can be reached again.
    de1.disconnect().await.unwrap();
    let e = de1.read(uuid(C::StateInfo)).await.unwrap_err();
    assert_eq!(e.kind(), ble::ErrorKind::NotConnected);
    assert!(t.connect(&Address::new(DE1_ADDRESS)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn state_info_only_on_change_and_samples_every_25_half_cycles() {
    let h = Harness::new(cfg()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(h.states().is_empty(), "nothing changed, nothing notified");
    let samples = h.samples();
    assert!((39..=41).contains(&samples.len()), "{}", samples.len());
    for w in samples.windows(2) {
        assert_eq!(w[1].1.sample_time.wrapping_sub(w[0].1.sample_time), 25);
        assert_eq!((w[1].0 - w[0].0).as_millis(), 250);
    }
    // WaterLevels every 0.4 s.
    let levels = h.water_levels();
    assert!((24..=26).contains(&levels.len()), "{}", levels.len());
    // NoRequest makes the machine report its unchanged state.
    h.request(S::NoRequest).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let states = h.states();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].1.state, states[0].1.substate),
        (S::Idle, Sub::NoState)
    );
}

#[tokio::test(start_paused = true)]
async fn sample_time_wraps_at_65536() {
    let h = Harness::new(SimConfig {
        initial_sample_time: u16::MAX - 109,
        mains: de1_sim::MainsHz::Hz60,
        ..cfg()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t: Vec<u16> = h.samples().iter().map(|(_, s)| s.sample_time).collect();
    assert!(t.windows(2).any(|w| w[1] < w[0]), "no wrap in {t:?}");
    assert!(t.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 25), "{t:?}");
    // 60 Hz: 25 half-cycles = 208.3 ms.
    let s = h.samples();
    let dt = (s[5].0 - s[0].0).as_secs_f64() / 5.0;
    assert!((dt - 25.0 / 120.0).abs() < 1e-3, "{dt}");
}

#[tokio::test(start_paused = true)]
async fn sleep_then_wake() {
    let h = Harness::new(cfg()).await;
    h.request(S::Sleep).await;
    assert_eq!(h.control.snapshot().de1.state, S::GoingToSleep);
    h.wait_state(S::Sleep, Duration::from_secs(2)).await;
    h.clear();
    tokio::time::sleep(Duration::from_secs(600)).await;
    let s = h.samples();
    assert!(s
        .windows(2)
        .all(|w| w[1].1.sample_time.wrapping_sub(w[0].1.sample_time) == 75));
    // Ten minutes asleep: the water heater has cooled well below its idle temperature.
    h.clear();
    h.request(S::Idle).await;
    h.control
        .wait_for(Duration::from_secs(120), |s| {
            s.de1.state == S::Idle && s.de1.substate == Sub::NoState
        })
        .await
        .expect("heats up");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let seq: Vec<_> = h
        .states()
        .iter()
        .map(|(_, s)| (s.state, s.substate))
        .collect();
    assert_eq!(
        seq,
        vec![(S::Idle, Sub::HeatWaterHeater), (S::Idle, Sub::NoState)]
    );
}

async fn write_settings(h: &Harness, f: impl FnOnce(&mut ShotSettings)) {
    let mut s = ShotSettings::decode(&h.read(C::ShotSettings).await).unwrap();
    f(&mut s);
    h.write(C::ShotSettings, &s.encode()).await;
}

async fn write_register(h: &Harness, r: MmrRegister, value: u32) {
    let w = WriteToMMR::register(r.address(), value).unwrap();
    h.write(C::WriteToMMR, &w.encode()).await;
}

fn state_times(h: &Harness, state: S) -> (tokio::time::Instant, tokio::time::Instant) {
    let st = h.states();
    let start = st.iter().find(|(_, s)| s.state == state).unwrap().0;
    let end = st
        .iter()
        .find(|(t, s)| *t >= start && s.state != state)
        .unwrap()
        .0;
    (start, end)
}

#[tokio::test(start_paused = true)]
async fn steam_stops_at_its_time_and_the_purge_mode_needs_two_stops() {
    let h = Harness::new(cfg()).await;
    write_settings(&h, |s| s.target_steam_length = 12).await;
    h.request(S::Steam).await;
    assert_eq!(h.control.snapshot().de1.substate, Sub::Pour);
    h.control
        .wait_for(Duration::from_secs(30), |s| s.de1.state == S::Idle)
        .await
        .unwrap();
    let (start, end) = state_times(&h, S::Steam);
    assert!(((end - start).as_secs_f64() - 12.0).abs() < 0.02);
    // Steam flows at TARGET_STEAM_FLOW (0.70 mL/s) after the start boost.
    let flows: Vec<f64> = h
        .samples()
        .iter()
        .filter(|(t, _)| *t > start + Duration::from_secs(4) && *t < end)
        .map(|(_, s)| s.values().group_flow)
        .collect();
    assert!(flows.iter().all(|f| (f - 0.70).abs() < 0.05), "{flows:?}");

    // pyDE1's early stop: TargetSteamLength 0, then the original settings back.
    h.request(S::Steam).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    write_settings(&h, |s| s.target_steam_length = 0).await;
    write_settings(&h, |s| s.target_steam_length = 12).await;
    h.wait_state(S::Idle, Duration::from_secs(1)).await;

    // STEAM_PURGE_MODE: first stop → puffs, second stop → Idle.
    write_register(&h, MmrRegister::SteamPurgeMode, 1).await;
    h.request(S::Steam).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.request(S::Idle).await;
    assert_eq!(
        (
            h.control.snapshot().de1.state,
            h.control.snapshot().de1.substate
        ),
        (S::Steam, Sub::SteamPuff)
    );
    h.request(S::Idle).await;
    assert_eq!(h.control.snapshot().de1.state, S::Idle);
}

#[tokio::test(start_paused = true)]
async fn hot_water_stops_at_its_volume_or_its_time() {
    let h = Harness::new(cfg()).await;
    write_settings(&h, |s| {
        s.target_hot_water_vol = 50;
        s.target_hot_water_length = 60;
    })
    .await;
    h.request(S::HotWater).await;
    h.control
        .wait_for(Duration::from_secs(60), |s| s.de1.state == S::Idle)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let delivered: f64 = h
        .samples()
        .iter()
        .map(|(_, s)| s.values().group_flow * 0.25)
        .sum();
    assert!((delivered - 50.0).abs() < 1.5, "{delivered}");
    let mix_at_end = h.samples().last().unwrap().1.values().mix_temp;
    assert!((mix_at_end - 85.0).abs() < 2.0, "{mix_at_end}");

    h.clear();
    write_settings(&h, |s| {
        s.target_hot_water_vol = 250;
        s.target_hot_water_length = 5;
    })
    .await;
    h.request(S::HotWater).await;
    h.control
        .wait_for(Duration::from_secs(60), |s| s.de1.state == S::Idle)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let st = h.states();
    let pour = st.iter().find(|(_, s)| s.substate == Sub::Pour).unwrap().0;
    let idle = st.iter().find(|(_, s)| s.state == S::Idle).unwrap().0;
    assert!(((idle - pour).as_secs_f64() - 5.0).abs() < 0.02);
}

#[tokio::test(start_paused = true)]
async fn flush_stops_at_flush_timeout_on_firmware_that_has_it() {
    let h = Harness::new(cfg()).await;
    write_register(&h, MmrRegister::FlushTimeout, 30).await;
    h.request(S::HotWaterRinse).await;
    h.control
        .wait_for(Duration::from_secs(30), |s| s.de1.state == S::Idle)
        .await
        .unwrap();
    let st = h.states();
    let pour = st.iter().find(|(_, s)| s.substate == Sub::Pour).unwrap().0;
    let idle = st.iter().find(|(_, s)| s.state == S::Idle).unwrap().0;
    assert!(((idle - pour).as_secs_f64() - 3.0).abs() < 0.02);

    // Firmware 1250 has no flush control: the flush runs until the app stops it.
    let mut old = cfg();
    old.machine.firmware_build = 1250;
    let h = Harness::new(old).await;
    h.request(S::HotWaterRinse).await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(h.control.snapshot().de1.state, S::HotWaterRinse);
    h.request(S::Idle).await;
    assert_eq!(h.control.snapshot().de1.state, S::Idle);
}

#[tokio::test(start_paused = true)]
async fn low_water_means_refill_until_the_tank_is_filled() {
    let h = Harness::new(cfg()).await;
    h.control.set_water_level(3.0);
    h.wait_state(S::Refill, Duration::from_secs(1)).await;
    h.request(S::Espresso).await;
    h.request(S::Idle).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.control.snapshot().de1.state, S::Refill);
    // The refill threshold the app writes is what counts.
    h.write(
        C::WaterLevels,
        &WaterLevels {
            level: Default::default(),
            start_fill_level: de1_protocol::fixed::U16P8::from_f64(2.0).unwrap(),
        }
        .encode(),
    )
    .await;
    h.wait_state(S::Idle, Duration::from_secs(1)).await;
    h.control.set_water_level(1.0);
    h.wait_state(S::Refill, Duration::from_secs(1)).await;
    h.control.refill_tank();
    h.wait_state(S::Idle, Duration::from_secs(1)).await;
    let last = *h.water_levels().last().unwrap();
    assert_eq!(last.start_fill_level.to_f64(), 2.0);
}

#[tokio::test(start_paused = true)]
async fn an_active_ghc_refuses_app_started_flows() {
    let h = Harness::new(SimConfig {
        machine: de1_sim::MachineConfig {
            ghc: Ghc::Active,
            ..Default::default()
        },
        ..cfg()
    })
    .await;
    let req = ReadFromMMRRequest::new(MmrRegister::GhcInfo.address(), 1).unwrap();
    h.write(C::ReadFromMMR, &req.encode()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let resp = mmr_responses(&h.notes());
    assert_eq!(resp[0].data(), &[0x07, 0, 0, 0]);
    for s in [S::Espresso, S::Steam, S::HotWater, S::HotWaterRinse] {
        h.request(s).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            h.control.snapshot().de1.state,
            S::Idle,
            "{s} must be ignored"
        );
    }
    assert!(h.states().is_empty());
    // The group head starts it; the app may still stop it.
    h.control
        .press_group_head(GroupHeadButton::Espresso)
        .unwrap();
    assert_eq!(h.control.snapshot().de1.state, S::Espresso);
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.request(S::Idle).await;
    assert_eq!(h.control.snapshot().de1.state, S::Idle);
    // Clean is not a flow start: allowed.
    h.request(S::Clean).await;
    assert_eq!(h.control.snapshot().de1.state, S::Clean);

    let plain = Harness::new(cfg()).await;
    assert!(plain
        .control
        .press_group_head(GroupHeadButton::Espresso)
        .is_err());
}

fn mmr_responses(notes: &[Note]) -> Vec<ReadFromMMRResponse> {
    notes
        .iter()
        .filter(|n| n.ch == C::ReadFromMMR)
        .map(|n| ReadFromMMRResponse::decode(&n.value).expect("MMR response decodes"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn mmr_block_reads_are_split_into_16_byte_notifications() {
    let mut c = cfg();
    c.machine.firmware_build = 1320;
    c.machine.serial_number = 0xCAFE;
    let h = Harness::new(c).await;
    let req = ReadFromMMRRequest::block(0x80_3808, 0x80_3860).unwrap();
    assert_eq!(req.words(), 23);
    h.write(C::ReadFromMMR, &req.encode()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let resp = mmr_responses(&h.notes());
    let shape: Vec<(u32, usize)> = resp.iter().map(|r| (r.address(), r.data().len())).collect();
    assert_eq!(
        shape,
        vec![
            (0x80_3808, 16),
            (0x80_3818, 16),
            (0x80_3828, 16),
            (0x80_3838, 16),
            (0x80_3848, 16),
            (0x80_3858, 12)
        ]
    );
    let word = |a: u32| {
        resp.iter()
            .flat_map(|r| r.words())
            .find(|(addr, _)| *addr == a)
            .map(|(_, b)| u32::from_le_bytes(b))
            .unwrap()
    };
    assert_eq!(word(0x80_3808), 60);
    assert_eq!(word(0x80_3830), 0xCAFE);
    assert_eq!(word(0x80_3848), 200);
    // A GATT read of A005 returns the last request.
    assert_eq!(h.read(C::ReadFromMMR).await, req.encode().to_vec());
    // Write then read back.
    write_register(&h, MmrRegister::FanThreshold, 45).await;
    h.clear();
    h.write(
        C::ReadFromMMR,
        &MmrRegister::FanThreshold.read_request().encode(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(mmr_responses(&h.notes())[0].data(), &[45, 0, 0, 0]);
    // Firmware build and model at connect (pyDE1 block 1).
    h.clear();
    h.write(
        C::ReadFromMMR,
        &ReadFromMMRRequest::new(0x80_0000, 5).unwrap().encode(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = mmr_responses(&h.notes());
    let build = r
        .iter()
        .flat_map(|r| r.words())
        .find(|(a, _)| *a == 0x80_0010)
        .unwrap();
    assert_eq!(u32::from_le_bytes(build.1), 1320);
}

fn calibrations(notes: &[Note]) -> Vec<Calibration> {
    notes
        .iter()
        .filter(|n| n.ch == C::Calibration)
        .map(|n| Calibration::decode(&n.value).expect("Calibration decodes"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn calibration_answers_each_request_with_one_value() {
    let h = Harness::new(cfg()).await;
    // pyDE1 reads with WriteKey 0 and expects exactly one value notification.
    let mut read = Calibration::read(CalTarget::Pressure, false);
    read.write_key = 0;
    h.write(C::Calibration, &read.encode()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = calibrations(&h.notes());
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].write_key, 0);
    assert_eq!(
        (c[0].command, c[0].target),
        (CalCommand::Read, CalTarget::Pressure)
    );
    assert_eq!((c[0].reported.to_f64(), c[0].measured.to_f64()), (1.0, 1.0));
    // A write with the key stores measured / reported.
    h.clear();
    let w = Calibration::write(
        CalTarget::Pressure,
        S32P16::from_f64(9.0).unwrap(),
        S32P16::from_f64(8.8).unwrap(),
    );
    h.write(C::Calibration, &w.encode()).await;
    h.write(
        C::Calibration,
        &Calibration::read(CalTarget::Pressure, false).encode(),
    )
    .await;
    h.write(
        C::Calibration,
        &Calibration::read(CalTarget::Pressure, true).encode(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = calibrations(&h.notes());
    assert_eq!(c.len(), 3);
    assert!((c[1].calibration_value().unwrap() - 8.8 / 9.0).abs() < 1e-4);
    assert_eq!(c[2].calibration_value(), Some(1.0));
    // Without the key nothing is stored and the answer is an error report.
    h.clear();
    let mut bad = w;
    bad.write_key = 0x1234_5678;
    h.write(C::Calibration, &bad.encode()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(calibrations(&h.notes())[0].target, CalTarget::Error);
    // Temperature is an offset: reported 0.
    h.clear();
    h.write(
        C::Calibration,
        &Calibration::read(CalTarget::Temperature, false).encode(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = calibrations(&h.notes());
    assert_eq!((c[0].reported.to_f64(), c[0].measured.to_f64()), (0.0, 0.0));
}

fn fw_notes(notes: &[Note]) -> Vec<(tokio::time::Instant, FWMapRequest)> {
    notes
        .iter()
        .filter(|n| n.ch == C::FWMapRequest)
        .map(|n| {
            (
                n.at,
                FWMapRequest::decode(&n.value).expect("FWMapRequest decodes"),
            )
        })
        .collect()
}

async fn upload_firmware(h: &Harness, file: &[u8]) -> u32 {
    h.clear();
    let t0 = tokio::time::Instant::now();
    h.write(C::FWMapRequest, &FWMapRequest::erase(1).encode())
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let n = fw_notes(&h.notes());
    assert_eq!(n.len(), 1, "erase acknowledged at once");
    assert_eq!(n[0].1.fw_to_erase, 1);
    h.control
        .wait_for(Duration::from_secs(30), |s| !s.de1.erasing)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let n = fw_notes(&h.notes());
    assert_eq!(n.len(), 2);
    assert_eq!(n[1].1.fw_to_erase, 0);
    let erase = (n[1].0 - t0).as_secs_f64();
    assert!((9.9..10.2).contains(&erase), "erase took {erase}");
    for (i, chunk) in file.chunks(16).enumerate() {
        let w = WriteToMMR::firmware_chunk((i * 16) as u32, chunk).unwrap();
        h.write(C::WriteToMMR, &w.encode()).await;
    }
    h.write(C::FWMapRequest, &FWMapRequest::verify(1).encode())
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = fw_notes(&h.notes());
    assert_eq!(n.len(), 3, "one verify answer");
    n[2].1.first_error
}

async fn running_build(h: &Harness) -> u32 {
    h.clear();
    h.write(
        C::ReadFromMMR,
        &MmrRegister::CpuFirmwareBuild.read_request().encode(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = mmr_responses(&h.notes());
    u32::from_le_bytes(r[0].data().try_into().unwrap())
}

#[tokio::test(start_paused = true)]
async fn firmware_update_verify_and_restart() {
    let file = de1_sim::make_firmware_file(1352, 4000, 9);
    let mut h = Harness::new(cfg()).await;
    assert_eq!(upload_firmware(&h, &file).await, FWMapRequest::NO_ERRORS);
    // The old firmware runs until the machine restarts.
    assert_eq!(running_build(&h).await, 1333);
    h.control.power_cycle();
    assert!(h.de1.link().is_down());
    // The machine is out of reach while it restarts.
    assert!(h
        .transport
        .connect(&Address::new(DE1_ADDRESS))
        .await
        .is_err());
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.reconnect().await;
    assert_eq!(running_build(&h).await, 1352);
}

#[tokio::test(start_paused = true)]
async fn corrupted_or_short_firmware_uploads_fail_and_the_old_firmware_keeps_running() {
    let good = de1_sim::make_firmware_file(1352, 4000, 9);
    let h = Harness::new(cfg()).await;
    let mut corrupted = good.clone();
    corrupted[1000] ^= 0x40;
    let r = upload_firmware(&h, &corrupted).await;
    assert_ne!(r, FWMapRequest::NO_ERRORS);
    let short = &good[..2048];
    assert_eq!(upload_firmware(&h, short).await, 2048);
    h.control.power_cycle();
    assert_eq!(h.control.snapshot().de1.firmware_build, 1333);
}

#[tokio::test(start_paused = true)]
async fn every_notification_decodes() {
    let h = Harness::new(cfg()).await;
    h.upload(&common::profile(
        vec![
            common::step("flow", 4.0, 5.0),
            common::step("pressure", 9.0, 10.0),
        ],
        1,
    ))
    .await;
    h.pull_shot(Duration::from_secs(60)).await;
    h.request(S::Steam).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.request(S::Idle).await;
    h.request(S::HotWater).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.request(S::Idle).await;
    h.request(S::Sleep).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.request(S::Idle).await;
    h.write(
        C::ReadFromMMR,
        &ReadFromMMRRequest::block(0x80_0000, 0x80_0010)
            .unwrap()
            .encode(),
    )
    .await;
    h.write(
        C::Calibration,
        &Calibration::read(CalTarget::Flow, false).encode(),
    )
    .await;
    h.write(C::FWMapRequest, &FWMapRequest::erase(1).encode())
        .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    h.write(C::FWMapRequest, &FWMapRequest::verify(1).encode())
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notes = h.notes();
    let mut seen = std::collections::BTreeSet::new();
    for n in &notes {
        seen.insert(n.ch.name());
        match n.ch {
            C::ShotSample => {
                let s = ShotSample::decode(&n.value).unwrap();
                let v = s.values();
                assert!(v.group_flow >= 0.0 && v.group_pressure >= 0.0);
            }
            C::StateInfo => {
                let s = StateInfo::decode(&n.value).unwrap();
                assert!(!s.is_error());
            }
            C::WaterLevels => {
                WaterLevels::decode(&n.value).unwrap();
            }
            C::ReadFromMMR => {
                ReadFromMMRResponse::decode(&n.value).unwrap();
            }
            C::Calibration => {
                Calibration::decode(&n.value).unwrap();
            }
            C::FWMapRequest => {
                FWMapRequest::decode(&n.value).unwrap();
            }
            other => panic!("unexpected notification on {}", other.name()),
        }
    }
    for c in [
        "ShotSample",
        "StateInfo",
        "WaterLevels",
        "ReadFromMMR",
        "Calibration",
        "FWMapRequest",
    ] {
        assert!(seen.contains(c), "no {c} notification");
    }
}

#[tokio::test(start_paused = true)]
async fn clean_descale_and_transport_run_their_sequences() {
    let h = Harness::new(cfg()).await;
    let cases = [
        (
            S::Clean,
            vec![
                Sub::CleanInit,
                Sub::CleanFillGroup,
                Sub::CleanSoak,
                Sub::CleanGroup,
            ],
        ),
        (
            S::Descale,
            vec![
                Sub::DescaleInit,
                Sub::DescaleFillGroup,
                Sub::DescaleReturn,
                Sub::DescaleGroup,
                Sub::DescaleSteam,
            ],
        ),
        (S::AirPurge, vec![Sub::NoState]),
    ];
    for (state, subs) in cases {
        h.clear();
        h.request(state).await;
        h.control
            .wait_for(Duration::from_secs(300), |s| s.de1.state == S::Idle)
            .await
            .unwrap_or_else(|| panic!("{state} never ends"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen: Vec<_> = h
            .states()
            .iter()
            .map(|(_, s)| (s.state, s.substate))
            .collect();
        let mut expected: Vec<_> = subs.iter().map(|s| (state, *s)).collect();
        expected.push((S::Idle, Sub::NoState));
        assert_eq!(seen, expected);
    }
    // A stop aborts a sequence.
    h.request(S::Clean).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    h.request(S::Idle).await;
    assert_eq!(h.control.snapshot().de1.state, S::Idle);
}

/// Demo mode: in a normal runtime the machine runs on the wall clock.
#[tokio::test]
async fn real_time_mode_follows_the_wall_clock() {
    let h = Harness::new(cfg()).await;
    let wall = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let n = h.samples().len();
    assert!(wall.elapsed() >= Duration::from_millis(1100));
    assert!((3..=5).contains(&n), "{n} samples in 1.1 s");
}

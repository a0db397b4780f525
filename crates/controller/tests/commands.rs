//! Commands as inbound sends them, against the controller and the simulated DE1:
//! settings and calibration (every write read back), controls, profiles by id,
//! firmware, scans, auto-off, and a stop-at-weight shot through the sequencer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::RecordingTransport;
use controller::bus::{Delivery, Subscription};
use controller::clock::Clock;
use controller::controller::{Controller, ControllerSetup};
use controller::de1::De1Options;
use controller::link::LinkOptions;
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::state::MachineState as S;
use ipc_schema::command::{
    CalibrationChange, Change, Command, CommandError, CommandErrorKind, ControlChange, Device,
    DeviceSelection, Document, ModeRequest, Reply, Resource, SettingChange,
};
use ipc_schema::event::{
    AreaDocument, DeviceRole, Event, FirmwareUploadState, SettingsArea, StopAtAction, StopAtKind,
};
use ipc_schema::Config;

const T: Duration = Duration::from_secs(60);

struct Rig {
    ctl: Controller,
    rec: RecordingTransport,
    sim: de1_sim::SimControl,
    sub: Subscription,
    _dir: tempfile::TempDir,
}

async fn rig(auto_connect: bool) -> Rig {
    rig_with(Config::default(), auto_connect).await
}

async fn rig_with(config: Config, auto_connect: bool) -> Rig {
    let (t, sim) = common::sim(|_| {});
    let rec = RecordingTransport::new(t);
    let dir = tempfile::tempdir().expect("tempdir");
    let transport: Arc<dyn ble::Transport> = Arc::new(rec.clone());
    let ctl = Controller::start(ControllerSetup {
        config,
        transport: Ok(transport),
        simulated: true,
        state_dir: Some(dir.path().to_owned()),
        clock: Clock::starting_at(1_700_000_000.0),
        bus: controller::bus::EventBus::new(100_000),
        link: LinkOptions::default(),
        de1: De1Options::default(),
        auto_connect,
    });
    let sub = ctl.bus().subscribe();
    if auto_connect {
        assert!(ctl.de1_link().wait_for(T, |s| s.is_ready()).await);
    }
    Rig {
        ctl,
        rec,
        sim,
        sub,
        _dir: dir,
    }
}

impl Rig {
    async fn call(&self, c: Command) -> Result<Reply, CommandError> {
        self.ctl.dispatch(c).await
    }

    async fn patch(&self, resource: Resource, changes: Vec<Change>) -> Result<Reply, CommandError> {
        self.call(Command::Patch { resource, changes }).await
    }

    async fn get(&self, r: Resource) -> Document {
        match self.call(Command::Get(r)).await {
            Ok(Reply::Document(d)) => d,
            other => panic!("GET {r}: {other:?}"),
        }
    }

    fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(d) = self.sub.try_recv() {
            if let Delivery::Event(e) = d {
                out.push(e);
            }
        }
        out
    }

    fn area_updates(&mut self, area: SettingsArea) -> Vec<AreaDocument> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::AreaUpdate(u) if u.area() == area => Some(u.document),
                _ => None,
            })
            .collect()
    }
}

fn settings(d: Document) -> ipc_schema::command::Settings {
    match d {
        Document::Settings(s) => s,
        other => panic!("{other:?}"),
    }
}

fn setting(s: SettingChange) -> Change {
    Change::Setting(s)
}

#[tokio::test(start_paused = true)]
async fn settings_are_written_read_back_and_published() {
    let mut r = rig(true).await;
    r.events();
    let before = r.rec.writes_to(C::ShotSettings).len();
    r.patch(
        Resource::De1Setting,
        vec![
            setting(SettingChange::FanThreshold(45)),
            setting(SettingChange::StartFillLevel(10.0)),
            setting(SettingChange::TargetGroupTemp(92.5)),
            setting(SettingChange::UsbOutlet(false)),
            setting(SettingChange::RefillKit(true)),
            setting(SettingChange::SteamTemperature(Some(150))),
            setting(SettingChange::SteamFlow(0.8)),
            setting(SettingChange::SteamHighFlowTime(1.5)),
            setting(SettingChange::SteamPurgeDeferred(true)),
            setting(SettingChange::HeaterPhase1Flow(2.5)),
            setting(SettingChange::HeaterPhase2Flow(4.5)),
            setting(SettingChange::HeaterPhase2Timeout(6.0)),
            setting(SettingChange::HeaterIdleTemperature(88.0)),
            setting(SettingChange::Time(1_700_000_123)),
            setting(SettingChange::AutoOffTime(Some(30.0))),
        ],
    )
    .await
    .expect("patch");

    // On the wire: the register write, then its read-back.
    let mmr = r.rec.writes_to(C::WriteToMMR);
    assert!(mmr
        .iter()
        .any(|b| b[..8] == [0x04, 0x80, 0x38, 0x08, 45, 0, 0, 0]));
    let reads = r.rec.writes_to(C::ReadFromMMR);
    assert!(
        reads.iter().any(|b| b[..4] == [0x00, 0x80, 0x38, 0x08]),
        "fan read back"
    );
    // start_fill_level × 256, Level 0.
    assert_eq!(
        r.rec.writes_to(C::WaterLevels).last().map(|b| b.to_vec()),
        Some(vec![0, 0, 0x0A, 0])
    );
    // ShotSettings fields of one PATCH are written once.
    let shots = r.rec.writes_to(C::ShotSettings);
    assert_eq!(shots.len(), before + 1);
    let last = shots.last().expect("ShotSettings");
    assert_eq!(last[1], 150);
    assert_eq!(last[7..9], [0x5C, 0x80]);
    assert_eq!(
        r.rec.writes_to(C::SetTime).last().map(|b| b.to_vec()),
        Some(1_700_000_123u64.to_be_bytes().to_vec())
    );

    // What GET reports is what the DE1 reports.
    let s = settings(r.get(Resource::De1SettingUsbOutlet).await);
    assert_eq!(s.fan_threshold, Some(45));
    assert_eq!(s.start_fill_level, Some(10.0));
    assert_eq!(s.target_group_temp, Some(92.5));
    assert_eq!(s.usb_outlet, Some(false));
    assert_eq!(s.refill_kit, Some(true));
    assert_eq!(s.steam.temperature, Some(150));
    assert_eq!(s.steam.flow, Some(0.8));
    assert_eq!(s.steam.high_flow_time, Some(1.5));
    assert_eq!(s.steam.purge_deferred, Some(true));
    assert_eq!(s.before_flow.heater_phase1_flow, Some(2.5));
    assert_eq!(s.before_flow.heater_idle_temperature, Some(88.0));
    assert_eq!(s.time, 1_700_000_123);
    assert_eq!(s.auto_off_time, Some(30.0));

    // The whole area is pushed after the PATCH.
    let pushed = r.area_updates(SettingsArea::Setting);
    assert_eq!(pushed.len(), 1);
    let AreaDocument::Setting(pushed) = &pushed[0] else {
        panic!("not a setting area: {pushed:?}")
    };
    assert_eq!(pushed.fan_threshold, Some(45));
    assert_eq!(pushed.start_fill_level, Some(10.0));

    // A bad value is refused and nothing is written.
    let n = r.rec.log.lock().unwrap().len();
    let e = r
        .patch(
            Resource::De1SettingSteam,
            vec![setting(SettingChange::SteamTemperature(Some(170)))],
        )
        .await
        .expect_err("170 °C");
    assert_eq!(e.kind, CommandErrorKind::BadRequest);
    assert_eq!(r.rec.log.lock().unwrap().len(), n);
}

#[tokio::test(start_paused = true)]
async fn calibration_presence_and_controls() {
    let mut r = rig(true).await;
    r.patch(
        Resource::De1Calibration,
        vec![
            Change::Calibration(CalibrationChange::LineFrequency(50)),
            Change::Calibration(CalibrationChange::FlowMultiplier(1.1)),
        ],
    )
    .await
    .expect("calibration");
    assert!(r
        .rec
        .writes_to(C::WriteToMMR)
        .iter()
        .any(|b| b[..8] == [0x04, 0x80, 0x38, 0x3C, 0x4C, 0x04, 0, 0]));
    match r.get(Resource::De1Calibration).await {
        Document::Calibration(c) => {
            assert_eq!(c.line_frequency, 50);
            assert_eq!(c.flow_multiplier, Some(1.1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.area_updates(SettingsArea::Calibration).len(), 1);
    let e = r
        .patch(
            Resource::De1CalibrationLineFrequency,
            vec![Change::Calibration(CalibrationChange::LineFrequency(55))],
        )
        .await
        .expect_err("55 Hz");
    assert_eq!(e.kind, CommandErrorKind::BadRequest);

    r.patch(Resource::De1Presence, vec![Change::UserPresent(true)])
        .await
        .expect("presence");
    assert_eq!(
        r.get(Resource::De1Presence).await,
        Document::Presence(Some(true))
    );

    r.patch(
        Resource::De1Control,
        vec![
            Change::Control(ControlChange::SteamStopAtTime(60)),
            Change::Control(ControlChange::HotWaterStopAtTime(30)),
            Change::Control(ControlChange::HotWaterStopAtVolume(100)),
            Change::Control(ControlChange::HotWaterTemperature(80)),
            Change::Control(ControlChange::RinseTemperature(90.0)),
            Change::Control(ControlChange::RinseFlow(5.0)),
            Change::Control(ControlChange::RinseStopAtTime(Some(4.0))),
            Change::Control(ControlChange::TankWaterThreshold(40)),
            Change::Control(ControlChange::EspressoStopAtWeight(Some(36.0))),
        ],
    )
    .await
    .expect("controls");
    match r.get(Resource::De1Control).await {
        Document::Controls(c) => {
            assert_eq!(c.steam.stop_at_time, Some(60));
            assert_eq!(c.hot_water.stop_at_time, Some(30));
            assert_eq!(c.hot_water.stop_at_volume, Some(100));
            assert_eq!(c.hot_water.temperature, Some(80));
            assert_eq!(c.hot_water_rinse.temperature, Some(90.0));
            assert_eq!(c.hot_water_rinse.flow, Some(5.0));
            assert_eq!(c.hot_water_rinse.stop_at_time, Some(4.0));
            assert_eq!(c.tank_water_threshold.temperature, Some(40));
            assert_eq!(c.espresso.stop_at_weight, Some(36.0));
        }
        other => panic!("{other:?}"),
    }
    // The sequencer announces the DE1's own limits from what the DE1 reports.
    r.ctl.with_sequencer(|s| {
        assert_eq!(s.steam_control().stop_at_time, Some(60.0));
        assert_eq!(s.hot_water_control().stop_at_volume, Some(100.0));
        assert_eq!(s.hot_water_rinse_control().stop_at_time, Some(4.0));
    });
    let pushed = r.area_updates(SettingsArea::Control);
    let Some(AreaDocument::Control(pushed)) = pushed.last() else {
        panic!("no control push: {pushed:?}")
    };
    assert_eq!(pushed.steam.stop_at_time, Some(60));
}

#[tokio::test(start_paused = true)]
async fn patch_on_connect_is_applied_when_the_de1_becomes_ready() {
    let mut config = Config::default();
    config.de1.patch_on_connect = Some(
        toml::from_str(
            "[setting.fan_threshold]\ntemperature = 47\n\
             [control.espresso]\nstop_at_weight = 36.5\n",
        )
        .expect("table"),
    );
    let r = rig_with(config, true).await;
    let mut applied = None;
    for _ in 0..200 {
        let s = settings(r.get(Resource::De1Setting).await);
        if s.fan_threshold == Some(47) {
            applied = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied.is_some(), "fan threshold never became 47");
    match r.get(Resource::De1ControlEspresso).await {
        Document::Controls(c) => assert_eq!(c.espresso.stop_at_weight, Some(36.5)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_flush_time_set_before_connecting_is_applied_at_connect() {
    let r = rig(false).await;
    r.patch(
        Resource::De1ControlHotWaterRinse,
        vec![Change::Control(ControlChange::RinseStopAtTime(Some(7.0)))],
    )
    .await
    .expect("no DE1 needed");
    let e = r
        .patch(
            Resource::De1SettingFanThreshold,
            vec![setting(SettingChange::FanThreshold(40))],
        )
        .await
        .expect_err("needs a DE1");
    assert_eq!(e.kind, CommandErrorKind::NotConnected);
    match r
        .patch(
            Resource::De1Id,
            vec![Change::SelectDevice {
                device: Device::De1,
                selection: DeviceSelection::Scan,
            }],
        )
        .await
    {
        Ok(Reply::Patched(out)) => assert_eq!(
            out,
            vec![ipc_schema::command::PatchOutput::Address(
                de1_sim::DE1_ADDRESS.into()
            )]
        ),
        other => panic!("{other:?}"),
    }
    assert!(r.ctl.de1_link().wait_for(T, |s| s.is_ready()).await);
    let de1 = r.ctl.de1().expect("de1");
    assert_eq!(
        de1.read_register(de1_protocol::mmr::MmrRegister::FlushTimeout)
            .await,
        Ok(de1_protocol::mmr::MmrValue::Number(7.0))
    );
}

#[tokio::test(start_paused = true)]
async fn auto_off_puts_an_idle_de1_to_sleep() {
    let r = rig(true).await;
    r.patch(
        Resource::De1SettingAutoOffTime,
        vec![setting(SettingChange::AutoOffTime(Some(2.0)))],
    )
    .await
    .expect("auto off");
    let de1 = r.ctl.de1().expect("de1");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(de1.state().map(|s| s.state), Some(S::Idle), "not yet");
    assert!(
        common::wait_state(&de1, Duration::from_secs(240), |s| s.state == S::Sleep)
            .await
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn profiles_are_stored_and_selected_by_id() {
    let mut r = rig(false).await;
    let source = common::profile("de1app__turbobloom");
    // Storing needs no DE1.
    let stored = match r
        .call(Command::StoreProfile {
            source: source.clone(),
        })
        .await
    {
        Ok(Reply::Profile(p)) => p,
        other => panic!("{other:?}"),
    };
    let encoded = de1_protocol::profile::encode_profile(&source).expect("encode");
    assert_eq!(hex::encode(stored.id), encoded.id);
    assert_eq!(hex::encode(stored.fingerprint), encoded.fingerprint);
    let e = r
        .call(Command::StoreProfile {
            source: common::profile("custom__bad_21_steps"),
        })
        .await
        .expect_err("bad profile");
    assert_eq!(e.kind, CommandErrorKind::BadRequest);

    r.patch(
        Resource::De1Id,
        vec![Change::SelectDevice {
            device: Device::De1,
            selection: DeviceSelection::Scan,
        }],
    )
    .await
    .expect("scan");
    assert!(r.ctl.de1_link().wait_for(T, |s| s.is_ready()).await);
    r.events();
    let e = r
        .call(Command::SelectProfile { id: [0xAB; 20] })
        .await
        .expect_err("unknown id");
    assert_eq!(e.kind, CommandErrorKind::NotFound);
    assert_eq!(
        r.call(Command::SelectProfile { id: stored.id }).await,
        Ok(Reply::Done)
    );
    assert_eq!(
        r.get(Resource::De1ProfileId).await,
        Document::ProfileId(Some(stored.id))
    );
    // The frames written are the stored profile's.
    let frames: Vec<Vec<u8>> = r.rec.writes_to(C::FrameWrite);
    let want: Vec<Vec<u8>> = encoded.frames.iter().map(|f| f.encode().to_vec()).collect();
    assert_eq!(frames[frames.len() - want.len()..], want[..]);
    let ids: Vec<Option<[u8; 20]>> = r
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ProfileIdUpdate(u) => Some(u.id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![None, Some(stored.id)]);
}

#[tokio::test(start_paused = true)]
async fn firmware_by_command_and_scans() {
    let mut r = rig(false).await;
    // Scan by role while nothing is connected: both devices advertise.
    r.call(Command::Scan {
        role: DeviceRole::De1,
    })
    .await
    .expect("scan");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let results: Vec<_> = r
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ScanResults(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(results
        .first()
        .is_some_and(|s| s.scanning && s.devices.is_empty()));
    let last = results.last().expect("final report");
    assert!(!last.scanning);
    assert_eq!(last.devices.len(), 1, "{last:?}");
    assert_eq!(last.devices[0].address, de1_sim::DE1_ADDRESS);

    r.patch(
        Resource::De1Id,
        vec![Change::SelectDevice {
            device: Device::De1,
            selection: DeviceSelection::Scan,
        }],
    )
    .await
    .expect("scan");
    assert!(r.ctl.de1_link().wait_for(T, |s| s.is_ready()).await);
    let path = r._dir.path().join("fw.bin");
    std::fs::write(&path, de1_sim::make_firmware_file(1400, 4_000, 2)).expect("file");
    assert_eq!(
        r.call(Command::UploadFirmware { path }).await,
        Ok(Reply::Done)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    match r.get(Resource::De1Firmware).await {
        Document::FirmwareProgress(p) => assert!(p.running),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.call(Command::CancelFirmwareUpload).await, Ok(Reply::Done));
    tokio::time::sleep(Duration::from_secs(1)).await;
    match r.get(Resource::De1Firmware).await {
        Document::FirmwareProgress(p) => {
            assert!(!p.running);
            assert_eq!(p.last.map(|l| l.state), Some(FirmwareUploadState::Canceled));
        }
        other => panic!("{other:?}"),
    }
    let bad = r._dir.path().join("bad.bin");
    std::fs::write(&bad, b"not firmware").expect("file");
    let maps = r.rec.writes_to(C::FWMapRequest).len();
    let e = r
        .call(Command::UploadFirmware { path: bad })
        .await
        .expect_err("bad file");
    assert_eq!(e.kind, CommandErrorKind::BadRequest);
    assert_eq!(
        r.rec.writes_to(C::FWMapRequest).len(),
        maps,
        "no erase for a bad file"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shot_stops_at_weight_through_the_sequencer() {
    let mut r = rig(true).await;
    assert!(
        r.ctl.scale_link().wait_for(T, |s| s.is_ready()).await,
        "scale"
    );
    r.patch(
        Resource::De1ControlEspresso,
        vec![
            Change::Control(ControlChange::ProfileCanOverrideStopLimits(false)),
            Change::Control(ControlChange::EspressoStopAtWeight(Some(30.0))),
        ],
    )
    .await
    .expect("controls");
    r.call(Command::UploadProfile {
        source: common::profile("de1app__classic_italian_espresso"),
    })
    .await
    .expect("profile");
    r.events();
    r.patch(Resource::De1Mode, vec![Change::Mode(ModeRequest::Espresso)])
        .await
        .expect("espresso");
    let de1 = r.ctl.de1().expect("de1");
    common::wait_state(&de1, T, |s| s.state == S::Espresso)
        .await
        .expect("espresso");
    common::wait_state(&de1, Duration::from_secs(120), |s| s.state == S::Idle)
        .await
        .expect("back to idle");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = r.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StopAtNotification(n)
            if n.stop_at == StopAtKind::Weight && n.action == StopAtAction::Triggered)),
        "stop-at-weight fired"
    );
    // The sequencer's Idle request reached the DE1.
    assert!(r
        .rec
        .writes_to(C::RequestedState)
        .iter()
        .any(|b| b[0] == 0x02));
    let cup = r.sim.snapshot().scale.expect("scale").liquid_g;
    assert!((cup - 30.0).abs() < 3.0, "{cup:.1} g in the cup");
    // Samples carried the sequencer's volumes.
    assert!(events.iter().any(|e| matches!(e,
        Event::ShotSampleWithVolumesUpdate(s) if s.volume_total > 10.0)));
}

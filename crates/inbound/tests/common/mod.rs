//! Test support: a fake controller serving the real IPC socket from canned typed state, a
//! running HTTP API in front of it, and a raw HTTP/1.1 client that shows exactly what the
//! server sends (every byte, so a second response would be seen).
//!
//! Set `DE1D_TEST_CONTROLLER_SOCKET` to the socket of a running controller to test against
//! it instead of the fake (the assertions on the fake's command log are then skipped).
//! [`start_simulated`] runs the real controller with the simulated DE1 in-process instead.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inbound::server::{self, ConnectionLimits, Settings};
use ipc_schema::child::{Shutdown, ShutdownReason};
use ipc_schema::client::ControllerClient;
use ipc_schema::command::*;
use ipc_schema::config::Config;
use ipc_schema::envelope::Role;
use ipc_schema::event::{
    AvailabilityState, DeviceAvailability, DeviceRole, FirmwareUpload, FirmwareUploadState,
    ScaleClass, Sender, Stamp, StateUpdate,
};
use ipc_schema::server::ControllerListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DE1_ADDRESS: &str = "D9:B2:48:00:DE:01";
pub const SCALE_ADDRESS: &str = "CF:75:75:00:5C:A1";

// ---------------------------------------------------------------------------------------
// The fake controller
// ---------------------------------------------------------------------------------------

/// What the fake knows; public so that tests can set up situations.
#[derive(Debug, Clone)]
pub struct FakeState {
    pub de1_address: Option<String>,
    pub de1_ready: bool,
    pub scale_address: Option<String>,
    pub scale_ready: bool,
    pub state: MachineState,
    pub substate: Substate,
    pub last_state_update: Option<StateUpdate>,
    pub ghc_active: bool,
    pub controls: Controls,
    pub settings: Settings2,
    pub calibration: Calibration,
    pub profiles: HashMap<ProfileId, Vec<u8>>,
    pub current_profile: Option<ProfileId>,
    pub firmware: Option<FirmwareUpload>,
    pub firmware_running: bool,
    /// Every firmware image the fake received (read from the file inbound wrote).
    pub firmware_images: Vec<Vec<u8>>,
}

/// `ipc_schema::command::Settings` (renamed: `inbound::server::Settings` is in scope too).
pub type Settings2 = ipc_schema::command::Settings;

fn stamp() -> Stamp {
    Stamp::at(1795509487.2821035)
}

impl FakeState {
    /// A DE1 (firmware 1333) and a Skale II, both connected and ready, the DE1 idle.
    pub fn connected() -> FakeState {
        FakeState {
            de1_address: Some(DE1_ADDRESS.into()),
            de1_ready: true,
            scale_address: Some(SCALE_ADDRESS.into()),
            scale_ready: true,
            state: MachineState::Idle,
            substate: Substate::NoState,
            last_state_update: None,
            ghc_active: false,
            controls: Controls {
                espresso: EspressoControl {
                    stop_at_time: None,
                    stop_at_volume: None,
                    stop_at_weight: None,
                    move_on_weight: vec![],
                    disable_auto_tare: false,
                    profile_can_override_stop_limits: true,
                    profile_can_override_tank_temperature: true,
                    first_drops_threshold: Some(0.0),
                    last_drops_minimum_time: 3.0,
                },
                steam: SteamControl {
                    stop_at_time: Some(90),
                    disable_auto_tare: false,
                },
                hot_water: HotWaterControl {
                    stop_at_time: Some(45),
                    stop_at_volume: Some(120),
                    stop_at_weight: None,
                    disable_auto_tare: false,
                    temperature: Some(85),
                },
                hot_water_rinse: HotWaterRinseControl {
                    stop_at_time: Some(20.0),
                    disable_auto_tare: false,
                    temperature: Some(85.0),
                    flow: Some(6.0),
                },
                tank_water_threshold: TankWaterThreshold {
                    temperature: Some(0),
                },
            },
            settings: Settings2 {
                auto_off_time: None,
                fan_threshold: Some(50),
                start_fill_level: Some(5.0),
                before_flow: BeforeFlow {
                    heater_phase1_flow: Some(2.0),
                    heater_phase2_flow: Some(4.0),
                    heater_phase2_timeout: Some(10.0),
                    heater_idle_temperature: Some(85.0),
                },
                target_group_temp: Some(92.0),
                usb_outlet: Some(true),
                refill_kit: Some(false),
                steam: SteamSetting {
                    temperature: Some(160),
                    flow: Some(0.8),
                    high_flow_time: Some(0.0),
                    purge_deferred: Some(false),
                },
                time: 0,
            },
            calibration: Calibration {
                line_frequency: 60,
                flow_multiplier: Some(1.0),
            },
            profiles: HashMap::new(),
            current_profile: None,
            firmware: None,
            firmware_running: false,
            firmware_images: Vec::new(),
        }
    }

    /// Nothing connected, nothing selected.
    pub fn disconnected() -> FakeState {
        FakeState {
            de1_address: None,
            de1_ready: false,
            scale_address: None,
            scale_ready: false,
            ..FakeState::connected()
        }
    }

    fn availability(&self, device: Device) -> Availability {
        let (ready, addr, name, sender, role) = match device {
            Device::De1 => (
                self.de1_ready,
                &self.de1_address,
                self.de1_name(),
                Sender::De1,
                DeviceRole::De1,
            ),
            Device::Scale => (
                self.scale_ready,
                &self.scale_address,
                self.scale_name(),
                Sender::Scale(ScaleClass::AtomaxSkaleII),
                DeviceRole::Scale,
            ),
            Device::Thermometer => (
                false,
                &None,
                "BlueDOT_None".into(),
                Sender::BlueDot,
                DeviceRole::Thermometer,
            ),
        };
        let state = if ready {
            AvailabilityState::Ready
        } else if addr.is_some() {
            AvailabilityState::Released
        } else {
            AvailabilityState::Initial
        };
        Availability {
            state,
            last_event: Some(DeviceAvailability {
                stamp: stamp(),
                sender,
                state,
                role,
                id: addr.clone().unwrap_or_default(),
                name,
                simulated: false,
            }),
            simulated: false,
        }
    }

    fn de1_name(&self) -> String {
        if self.de1_address.is_some() {
            "DE1".into()
        } else {
            "DE1_None".into()
        }
    }

    fn scale_name(&self) -> String {
        if self.scale_address.is_some() {
            "AtomaxSkaleII: Skale".into()
        } else {
            "GenericScale: (unknown)".into()
        }
    }

    fn connectivity(ready: bool) -> ConnectivityMode {
        if ready {
            ConnectivityMode::Ready
        } else {
            ConnectivityMode::NotConnected
        }
    }

    fn document(&self, kind: DocumentKind, resource: Resource) -> Document {
        let device = match resource {
            Resource::Scale | Resource::ScaleId | Resource::ScaleAvailability => Device::Scale,
            Resource::ScaleConnectivity => Device::Scale,
            Resource::Thermometer | Resource::ThermometerId | Resource::ThermometerAvailability => {
                Device::Thermometer
            }
            _ => Device::De1,
        };
        match kind {
            DocumentKind::De1 => Document::De1(Box::new(De1Document {
                id: self.device_id(Device::De1),
                state: self.de1_state(),
                availability: self.availability(Device::De1),
                connectivity: FakeState::connectivity(self.de1_ready),
                control: self.controls.clone(),
                setting: self.settings.clone(),
                calibration: self.calibration.clone(),
                read_once: read_once(),
            })),
            DocumentKind::DeviceId => Document::DeviceId(self.device_id(device)),
            DocumentKind::De1State => Document::De1State(self.de1_state()),
            DocumentKind::FeatureFlags => Document::FeatureFlags(FeatureFlags {
                fw_version: Some(1333),
                ghc_active: Some(self.ghc_active),
                last_mmr0x80: Some(0x3860),
                safe_to_read_mmr_continuous: Some(true),
                skip_to_next: Some(true),
                rinse_control: Some(true),
                sched_idle: Some(true),
                steam_purge_mode: Some(true),
                allow_usb_charging: Some(true),
                app_feature_flag_user_present: Some(true),
                user_present: Some(true),
                refill_kit_present: Some(true),
                hot_water_flow_control: Some(false),
                mmr_max_shot_press: Some(false),
                mmr_pref_ghc_mci: Some(false),
            }),
            DocumentKind::ProfileId => Document::ProfileId(self.current_profile),
            DocumentKind::FirmwareProgress => Document::FirmwareProgress(FirmwareProgress {
                running: self.firmware_running,
                last: self.firmware,
            }),
            DocumentKind::FirmwareId => Document::FirmwareId(Some(1333)),
            DocumentKind::Availability => Document::Availability(self.availability(device)),
            DocumentKind::Connectivity => {
                Document::Connectivity(FakeState::connectivity(match device {
                    Device::Scale => self.scale_ready,
                    _ => self.de1_ready,
                }))
            }
            DocumentKind::Controls => Document::Controls(self.controls.clone()),
            DocumentKind::Settings => Document::Settings(self.settings.clone()),
            DocumentKind::Calibration => Document::Calibration(self.calibration.clone()),
            DocumentKind::ReadOnce => Document::ReadOnce(read_once()),
            DocumentKind::Presence => Document::Presence(Some(true)),
            DocumentKind::Scale => Document::Scale(ScaleDocument {
                id: self.device_id(Device::Scale),
                availability: self.availability(Device::Scale),
                connectivity: FakeState::connectivity(self.scale_ready),
            }),
            DocumentKind::Thermometer => Document::Thermometer(ThermometerDocument {
                id: self.device_id(Device::Thermometer),
                availability: self.availability(Device::Thermometer),
            }),
        }
    }

    fn device_id(&self, device: Device) -> DeviceId {
        match device {
            Device::De1 => DeviceId {
                address: self.de1_address.clone(),
                name: self.de1_name(),
                simulated: false,
            },
            Device::Scale => DeviceId {
                address: self.scale_address.clone(),
                name: self.scale_name(),
                simulated: false,
            },
            Device::Thermometer => DeviceId {
                address: None,
                name: "BlueDOT_None".into(),
                simulated: false,
            },
        }
    }

    fn de1_state(&self) -> De1State {
        De1State {
            state: self.state,
            substate: self.substate,
            last_updated: 1795509487.1614516,
            last_update: self.last_state_update,
        }
    }

    fn needs(&self, needs: Needs) -> Result<(), CommandError> {
        match needs {
            Needs::Nothing => Ok(()),
            Needs::ReadyDe1 if self.de1_ready => Ok(()),
            Needs::ReadyScale if self.scale_ready => Ok(()),
            Needs::ReadyDe1 => Err(CommandError::new(
                CommandErrorKind::NotConnected,
                "DE1 not connected",
            )),
            Needs::ReadyScale => Err(CommandError::new(
                CommandErrorKind::NotConnected,
                "Scale not connected",
            )),
        }
    }

    pub fn set_state(&mut self, state: MachineState, substate: Substate) {
        self.last_state_update = Some(StateUpdate {
            stamp: stamp(),
            state,
            substate,
            previous_state: self.state,
            previous_substate: self.substate,
            is_error_state: false,
        });
        self.state = state;
        self.substate = substate;
    }

    /// pyDE1's mode rules (`pyde1-http-api.md` §7), with the machine reaching the
    /// requested state at once.
    fn mode(&mut self, m: ModeRequest) -> Result<(), CommandError> {
        use MachineState as S;
        let refuse = |s: &FakeState| {
            Err(CommandError::new(
                CommandErrorKind::Conflict,
                format!(
                    "Can't move to {} from {}, {}",
                    m.as_str(),
                    s.state,
                    s.substate
                ),
            ))
        };
        match m {
            ModeRequest::Sleep => match self.state {
                S::Idle | S::Refill => self.set_state(S::Sleep, Substate::NoState),
                S::Sleep | S::GoingToSleep => {}
                _ => return refuse(self),
            },
            ModeRequest::Wake => {
                if self.state.is_asleep() {
                    self.set_state(S::Idle, Substate::NoState);
                }
            }
            ModeRequest::Stop => match self.state {
                S::Sleep | S::GoingToSleep | S::SchedIdle | S::Idle => {}
                S::ShortCal
                | S::SelfTest
                | S::LongCal
                | S::FatalError
                | S::Init
                | S::NoRequest
                | S::SkipToNext
                | S::Refill
                | S::InBootLoader => return refuse(self),
                _ => self.set_state(S::Idle, Substate::NoState),
            },
            ModeRequest::EndSteam => {
                if self.state == S::Steam {
                    self.set_state(S::Idle, Substate::NoState);
                }
            }
            ModeRequest::SkipToNext => {
                if !(self.state == S::Espresso
                    && matches!(self.substate, Substate::PreInfuse | Substate::Pour))
                {
                    return refuse(self);
                }
                self.set_state(S::Espresso, Substate::Pour);
            }
            ModeRequest::Espresso
            | ModeRequest::Steam
            | ModeRequest::HotWater
            | ModeRequest::HotWaterRinse => {
                if self.ghc_active {
                    return Err(CommandError::new(
                        CommandErrorKind::DeviceCannot,
                        "start at the group head",
                    ));
                }
                if self.state != S::Idle {
                    return refuse(self);
                }
                let (state, sub) = match m {
                    ModeRequest::Espresso => (S::Espresso, Substate::PreInfuse),
                    ModeRequest::Steam => (S::Steam, Substate::Pour),
                    ModeRequest::HotWater => (S::HotWater, Substate::Pour),
                    _ => (S::HotWaterRinse, Substate::Pour),
                };
                self.set_state(state, sub);
            }
            ModeRequest::Clean | ModeRequest::Descale | ModeRequest::Transport => {
                if self.state != S::Idle {
                    return refuse(self);
                }
            }
            ModeRequest::NoRequest => {}
        }
        Ok(())
    }

    fn apply(&mut self, c: &Change, out: &mut Vec<PatchOutput>) -> Result<(), CommandError> {
        self.needs(c.needs())?;
        match c {
            Change::SelectDevice { device, selection } => {
                let (addr, ready, found) = match device {
                    Device::De1 => (&mut self.de1_address, &mut self.de1_ready, DE1_ADDRESS),
                    Device::Scale => (
                        &mut self.scale_address,
                        &mut self.scale_ready,
                        SCALE_ADDRESS,
                    ),
                    Device::Thermometer => {
                        return Err(CommandError::new(
                            CommandErrorKind::NotImplemented,
                            "no thermometer support",
                        ))
                    }
                };
                match selection {
                    DeviceSelection::Forget => {
                        *addr = None;
                        *ready = false;
                    }
                    DeviceSelection::Scan => {
                        if !*ready {
                            *addr = Some(found.into());
                            *ready = true;
                        }
                    }
                    DeviceSelection::Address(a) => {
                        if addr.as_deref() != Some(a) {
                            *addr = Some(a.clone());
                            *ready = false;
                        }
                    }
                }
                out.push(PatchOutput::Address(addr.clone().unwrap_or_default()));
            }
            Change::Mode(m) => self.mode(*m)?,
            Change::Availability { device, request } | Change::Connectivity { device, request } => {
                let (addr, ready) = match device {
                    Device::De1 => (&self.de1_address, &mut self.de1_ready),
                    Device::Scale => (&self.scale_address, &mut self.scale_ready),
                    Device::Thermometer => {
                        return Err(CommandError::new(
                            CommandErrorKind::Conflict,
                            "no thermometer address",
                        ))
                    }
                };
                match request {
                    CaptureRequest::Capture if addr.is_none() => {
                        return Err(CommandError::new(
                            CommandErrorKind::Conflict,
                            "no address to capture",
                        ))
                    }
                    CaptureRequest::Capture => *ready = true,
                    CaptureRequest::Release => *ready = false,
                }
            }
            Change::Control(c) => self.control(c),
            Change::Setting(s) => self.setting(s),
            Change::Calibration(CalibrationChange::LineFrequency(hz)) => {
                self.calibration.line_frequency = *hz
            }
            Change::Calibration(CalibrationChange::FlowMultiplier(m)) => {
                self.calibration.flow_multiplier = Some(*m)
            }
            Change::UserPresent(_) | Change::ScaleTare | Change::ScaleDisplay(_) => {}
        }
        Ok(())
    }

    fn control(&mut self, c: &ControlChange) {
        let k = &mut self.controls;
        match c {
            ControlChange::EspressoStopAtTime(v) => k.espresso.stop_at_time = *v,
            ControlChange::EspressoStopAtVolume(v) => k.espresso.stop_at_volume = *v,
            ControlChange::EspressoStopAtWeight(v) => k.espresso.stop_at_weight = *v,
            ControlChange::EspressoMoveOnWeight(v) => k.espresso.move_on_weight = v.clone(),
            ControlChange::ProfileCanOverrideStopLimits(v) => {
                k.espresso.profile_can_override_stop_limits = *v
            }
            ControlChange::ProfileCanOverrideTankTemperature(v) => {
                k.espresso.profile_can_override_tank_temperature = *v
            }
            ControlChange::FirstDropsThreshold(v) => k.espresso.first_drops_threshold = *v,
            ControlChange::LastDropsMinimumTime(v) => k.espresso.last_drops_minimum_time = *v,
            ControlChange::DisableAutoTare { mode, disable } => match mode {
                ControlMode::Espresso => k.espresso.disable_auto_tare = *disable,
                ControlMode::Steam => k.steam.disable_auto_tare = *disable,
                ControlMode::HotWater => k.hot_water.disable_auto_tare = *disable,
                ControlMode::HotWaterRinse => k.hot_water_rinse.disable_auto_tare = *disable,
            },
            ControlChange::SteamStopAtTime(v) => k.steam.stop_at_time = Some(*v),
            ControlChange::HotWaterStopAtTime(v) => k.hot_water.stop_at_time = Some(*v),
            ControlChange::HotWaterStopAtVolume(v) => k.hot_water.stop_at_volume = Some(*v),
            ControlChange::HotWaterStopAtWeight(v) => k.hot_water.stop_at_weight = *v,
            ControlChange::HotWaterTemperature(v) => k.hot_water.temperature = Some(*v),
            ControlChange::RinseStopAtTime(v) => k.hot_water_rinse.stop_at_time = *v,
            ControlChange::RinseTemperature(v) => k.hot_water_rinse.temperature = Some(*v),
            ControlChange::RinseFlow(v) => k.hot_water_rinse.flow = Some(*v),
            ControlChange::TankWaterThreshold(v) => k.tank_water_threshold.temperature = Some(*v),
        }
    }

    fn setting(&mut self, c: &SettingChange) {
        let s = &mut self.settings;
        match c {
            SettingChange::AutoOffTime(v) => s.auto_off_time = *v,
            SettingChange::FanThreshold(v) => s.fan_threshold = Some(*v),
            SettingChange::StartFillLevel(v) => s.start_fill_level = Some(*v),
            SettingChange::HeaterPhase1Flow(v) => s.before_flow.heater_phase1_flow = Some(*v),
            SettingChange::HeaterPhase2Flow(v) => s.before_flow.heater_phase2_flow = Some(*v),
            SettingChange::HeaterPhase2Timeout(v) => s.before_flow.heater_phase2_timeout = Some(*v),
            SettingChange::HeaterIdleTemperature(v) => {
                s.before_flow.heater_idle_temperature = Some(*v)
            }
            SettingChange::TargetGroupTemp(v) => s.target_group_temp = Some(*v),
            SettingChange::UsbOutlet(v) => s.usb_outlet = Some(*v),
            SettingChange::RefillKit(v) => s.refill_kit = Some(*v),
            SettingChange::SteamTemperature(v) => s.steam.temperature = *v,
            SettingChange::SteamFlow(v) => s.steam.flow = Some(*v),
            SettingChange::SteamHighFlowTime(v) => s.steam.high_flow_time = Some(*v),
            SettingChange::SteamPurgeDeferred(v) => s.steam.purge_deferred = Some(*v),
            SettingChange::Time(v) => s.time = *v,
        }
    }

    fn store_profile(&mut self, source: &[u8]) -> Result<ProfileRef, CommandError> {
        let enc = de1_protocol::profile::encode_profile(source).map_err(|e| {
            CommandError::at(CommandErrorKind::BadRequest, e.path(), e.kind.to_string())
        })?;
        let mut id = [0u8; 20];
        let mut fingerprint = [0u8; 20];
        hex::decode_to_slice(&enc.id, &mut id)
            .and_then(|()| hex::decode_to_slice(&enc.fingerprint, &mut fingerprint))
            .map_err(|e| CommandError::new(CommandErrorKind::Internal, e.to_string()))?;
        self.profiles.insert(id, source.to_vec());
        Ok(ProfileRef { id, fingerprint })
    }

    /// Carries out one command.
    pub fn handle(&mut self, cmd: &Command) -> Result<Reply, CommandError> {
        match cmd {
            Command::Ping => Ok(Reply::Pong),
            Command::Get(resource) => {
                let kind = resource.document_kind().ok_or_else(|| {
                    CommandError::new(CommandErrorKind::BadRequest, "not readable")
                })?;
                self.needs(resource.get_needs())?;
                Ok(Reply::Document(self.document(kind, *resource)))
            }
            Command::Patch { changes, .. } => {
                let mut out = Vec::new();
                for c in changes {
                    self.apply(c, &mut out)?;
                }
                Ok(Reply::Patched(out))
            }
            Command::UploadProfile { source } => {
                self.needs(Needs::ReadyDe1)?;
                let p = self.store_profile(source)?;
                self.current_profile = Some(p.id);
                Ok(Reply::Profile(p))
            }
            Command::StoreProfile { source } => Ok(Reply::Profile(self.store_profile(source)?)),
            Command::SelectProfile { id } => {
                self.needs(Needs::ReadyDe1)?;
                if !self.profiles.contains_key(id) {
                    return Err(CommandError::new(
                        CommandErrorKind::NotFound,
                        format!("No profile record for {}", hex::encode(id)),
                    ));
                }
                self.current_profile = Some(*id);
                Ok(Reply::Done)
            }
            Command::UploadFirmware { path } => {
                self.needs(Needs::ReadyDe1)?;
                if self.firmware_running {
                    return Err(CommandError::new(
                        CommandErrorKind::Busy,
                        "an upload is running",
                    ));
                }
                let image = std::fs::read(path)
                    .map_err(|e| CommandError::new(CommandErrorKind::Internal, e.to_string()))?;
                de1_protocol::firmware::FirmwareImage::parse(image.clone())
                    .map_err(|e| CommandError::new(CommandErrorKind::BadRequest, e.to_string()))?;
                self.firmware_running = true;
                self.firmware = Some(FirmwareUpload {
                    stamp: stamp(),
                    state: FirmwareUploadState::Starting,
                    uploaded: 0,
                    total: image.len() as u32,
                });
                self.firmware_images.push(image);
                Ok(Reply::Done)
            }
            Command::CancelFirmwareUpload => {
                if !self.firmware_running {
                    return Err(CommandError::new(
                        CommandErrorKind::Conflict,
                        "No 'upload_firmware' task to cancel",
                    ));
                }
                self.firmware_running = false;
                self.firmware = Some(FirmwareUpload {
                    stamp: stamp(),
                    state: FirmwareUploadState::Canceled,
                    uploaded: 0,
                    total: 0,
                });
                Ok(Reply::Done)
            }
            Command::Scan { .. } => Ok(Reply::Done),
        }
    }
}

fn read_once() -> ReadOnce {
    ReadOnce {
        hw_config: Some([1, 0, 0, 0]),
        model: Some([2, 0, 0, 0]),
        cpu_board_model: Some(1.3),
        firmware_model: Some(2),
        firmware_build_number: Some(1333),
        ghc_info: Some(0),
        serial_number: Some([0x2a, 0x1d, 0, 0]),
        heater_voltage: Some(120),
        version_ble: VersionBlock {
            api: 4,
            release: 1.0,
            commits: 488,
            changes: 0,
            sha: 1917985424,
        },
        version_lv: VersionBlock {
            api: 6,
            release: 1.3,
            commits: 1333,
            changes: 0,
            sha: 906972640,
        },
    }
}

/// The fake controller: its state and the log of every command it received.
#[derive(Default)]
pub struct Fake {
    pub state: Mutex<Option<FakeState>>,
    pub log: Mutex<Vec<Command>>,
    /// Delay before answering (to provoke timeouts).
    pub delay: Mutex<Duration>,
}

impl Fake {
    pub fn set(&self, state: FakeState) {
        if let Ok(mut s) = self.state.lock() {
            *s = Some(state);
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard.get_or_insert_with(FakeState::connected);
        f(state)
    }

    pub fn commands(&self) -> Vec<Command> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn command_count(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }

    async fn dispatch(self: Arc<Self>, cmd: Command) -> Result<Reply, CommandError> {
        if let Ok(mut l) = self.log.lock() {
            l.push(cmd.clone());
        }
        let delay = self.delay.lock().map(|d| *d).unwrap_or_default();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.with(|s| s.handle(&cmd))
    }
}

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

pub struct Harness {
    pub addr: SocketAddr,
    /// `None` when testing against a real controller.
    pub fake: Option<Arc<Fake>>,
    pub log_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown
            .request(ShutdownReason::Internal("test over".into()));
    }
}

impl Harness {
    /// The fake; panics when testing against a real controller.
    pub fn fake(&self) -> &Arc<Fake> {
        self.fake.as_ref().expect("a fake controller")
    }

    /// Commands the fake received so far (0 against a real controller).
    pub fn commands(&self) -> usize {
        self.fake.as_ref().map_or(0, |f| f.command_count())
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        request(self.addr, method, path, body, headers).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, &[]).await
    }

    pub async fn patch(&self, path: &str, body: &str) -> Resp {
        self.request("PATCH", path, Some(body.as_bytes()), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: &[u8]) -> Resp {
        self.request("PUT", path, Some(body), &[]).await
    }
}

/// Starts the real controller with the built-in simulated DE1 and scale (`[bluetooth]
/// simulate = true`, real-time pace) on a temporary socket, and the HTTP API in front of
/// it. Returns once both devices are ready (as `GET /de1/availability` and
/// `/scale/availability` report it).
pub async fn start_simulated() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = Shutdown::new();
    let path = dir.path().join("controller.sock");
    let listener = ControllerListener::bind(&path).expect("bind controller socket");
    let mut config = Config::default();
    config.bluetooth.simulate = true;
    let transport = controller::process::transport(&config).await;
    let state_dir = controller::process::state_dir(&config, dir.path());
    let ctl = controller::controller::Controller::start(
        controller::controller::ControllerSetup::new(config, transport, true, state_dir),
    );
    tokio::spawn(controller::process::serve(listener, ctl, shutdown.clone()));
    let h = serve_http(dir, shutdown, path, None, |_, _| {}).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for device in ["de1", "scale"] {
        loop {
            let r = h.get(&format!("/{device}/availability")).await;
            if r.status == 200 && r.json()["mode"] == "ready" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the simulated {device} did not become ready: {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    h
}

/// Starts a fake controller (or attaches to `DE1D_TEST_CONTROLLER_SOCKET`) and the HTTP API
/// in front of it, on an ephemeral loopback port.
pub async fn start(configure: impl FnOnce(&mut Settings, &mut ConnectionLimits)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = Shutdown::new();
    let (socket, fake) = match std::env::var_os("DE1D_TEST_CONTROLLER_SOCKET") {
        Some(path) => (PathBuf::from(path), None),
        None => {
            let path = dir.path().join("controller.sock");
            let listener = ControllerListener::bind(&path).expect("bind controller socket");
            let fake = Arc::new(Fake::default());
            let (events, _) = tokio::sync::broadcast::channel(16);
            let f = fake.clone();
            tokio::spawn(ipc_schema::server::serve(
                listener,
                move |cmd| f.clone().dispatch(cmd),
                events,
                None,
                shutdown.clone(),
            ));
            (path, Some(fake))
        }
    };
    serve_http(dir, shutdown, socket, fake, configure).await
}

/// The HTTP API on an ephemeral loopback port, talking to the controller at `socket`.
async fn serve_http(
    dir: tempfile::TempDir,
    shutdown: Shutdown,
    socket: PathBuf,
    fake: Option<Arc<Fake>>,
    configure: impl FnOnce(&mut Settings, &mut ConnectionLimits),
) -> Harness {
    let client = ControllerClient::start(socket, Role::Inbound);
    assert!(
        client.wait_connected(Duration::from_secs(5)).await,
        "controller not reachable"
    );
    let log_dir = dir.path().join("log");
    std::fs::create_dir(&log_dir).expect("log dir");
    let mut settings = Settings::from_config(&Config::default(), dir.path());
    settings.log_dir = Some(log_dir.clone());
    let mut limits = ConnectionLimits::default();
    configure(&mut settings, &mut limits);
    let router = server::router(settings, client);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind http");
    let addr = tcp.local_addr().expect("addr");
    tokio::spawn(server::serve(tcp, router, limits, shutdown.clone()));
    Harness {
        addr,
        fake,
        log_dir,
        runtime_dir: dir.path().to_owned(),
        shutdown,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// One response, and whatever followed it on the connection.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes after the first response (a second response would show up here).
    pub extra: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` of a JSON error body.
    pub fn error_kind(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_owned()
    }
}

/// Sends `raw` bytes on a new connection and reads everything until the server closes it.
pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = s.split();
    let write = async {
        // The server may answer (and close) before reading everything: ignore errors.
        let _ = w.write_all(raw).await;
    };
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    };
    let (_, buf) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
            .await
            .expect("the server answers and closes the connection");
    buf
}

/// Parses the first response of `buf`.
pub fn parse(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let (body, extra) = if let Some(len) = get("content-length").and_then(|v| v.parse().ok()) {
        let len: usize = len;
        assert!(rest.len() >= len, "short body");
        (rest[..len].to_vec(), rest[len..].to_vec())
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line")
                + pos;
            let size_text = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            pos = line_end + 2;
            if size == 0 {
                // Trailer section ends with an empty line.
                let end = rest[pos..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("end of chunks")
                    + pos
                    + 2;
                break (body, rest[end..].to_vec());
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
    } else {
        (rest.to_vec(), Vec::new())
    };
    Resp {
        status,
        headers,
        body,
        extra,
    }
}

/// One request on its own connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(b) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    parse(&exchange(addr, &bytes).await)
}

// ---------------------------------------------------------------------------------------
// Reference recordings
// ---------------------------------------------------------------------------------------

/// A file of the workspace's `tests/vectors/http/` (pyDE1's recorded answers).
pub fn reference(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../tests/vectors/http/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("reference JSON")
}

/// Every recorded PATCH/PUT/GET case, in the order they were sent: selecting the devices
/// (`connect.json`), the request cases (`requests.json`), then a shot (`shot_requests.json`).
pub fn recorded_requests() -> Vec<serde_json::Value> {
    ["connect.json", "requests.json", "shot_requests.json"]
        .iter()
        .flat_map(|f| match reference(f) {
            serde_json::Value::Array(a) => a,
            other => panic!("{f} is not a list: {other}"),
        })
        .collect()
}

/// The recorded GET of every resource in one situation (`disconnected`, `connected`,
/// `after_shot`).
pub fn recorded_gets(situation: &str) -> Vec<serde_json::Value> {
    let file = match situation {
        "disconnected" => "get_disconnected.json",
        "connected" => "get_connected.json",
        _ => "get_after_shot.json",
    };
    match reference(file)["results"].take() {
        serde_json::Value::Array(a) => a,
        other => panic!("{file}: no results: {other}"),
    }
}

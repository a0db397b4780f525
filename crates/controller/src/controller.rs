//! The controller: the DE1 and scale links, the flow sequencer between them, the
//! profile store, and the handling of every [`Command`].
//!
//! One task (the hub) receives what the devices report, feeds the sequencer
//! (`on_state`, `on_shot_sample`, `on_weight`, `on_tick` …) and carries out what it asks
//! for ([`Action`]: RequestedState writes, tares, events). It never waits on a device:
//! writes it asks for run as separate tasks, and events go to the non-blocking
//! [`EventBus`].
//!
//! Commands ([`Controller::dispatch`]) run concurrently with the hub; they share the
//! sequencer and the controller-local settings through a short-held lock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ble::{Address, Advertisement, Peripheral, Transport};
use de1_protocol::mmr::{MmrRegister as R, MmrValue};
use de1_protocol::packets::StateInfo;
use de1_protocol::state::MachineState;
use futures::future::BoxFuture;
use futures::StreamExt;
use ipc_schema::command::{
    CalibrationChange, CaptureRequest, Change, Command, CommandError, CommandErrorKind,
    ControlChange, ControlMode, De1Document, Device, DeviceId, DeviceSelection, Document,
    FirmwareProgress, ModeRequest, Needs, PatchOutput, ProfileRef, Reply, Resource, ScaleDocument,
    SettingChange, ThermometerDocument,
};
use ipc_schema::config::{seconds, Config};
use ipc_schema::event::{
    AreaDocument, AreaUpdate, AvailabilityState, ConnectivityChange, ConnectivityState, DeviceRole,
    Event, FirmwareUpload, ProfileIdUpdate, ScanDevice, ScanResults, Sender, SettingsArea, Stamp,
    StateUpdate, WaterLevelUpdate,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bus::EventBus;
use crate::clock::Clock;
use crate::de1::profile::ProfileOptions;
use crate::de1::settings::SettingChange as De1Change;
use crate::de1::{De1, De1Context, De1Error, De1Notice, De1Options, De1Role, Mode};
use crate::documents;
use crate::link::{LinkCommand, LinkError, LinkHandle, LinkManager, LinkOptions, ManagedDevice};
use crate::scale::{self, Scale, ScaleEvent};
use crate::sequencer::{
    seed_from_os, Action, EpochAnchor, Sequencer, SequencerSettings, SettingsError, StopTuning,
};
use crate::store::{Store, StoreError};

const LOG: &str = "controller";

/// How often the auto-off rule is checked (pyDE1: every 60 s).
const AUTO_OFF_CHECK: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn err(kind: CommandErrorKind, message: impl Into<String>) -> CommandError {
    CommandError::new(kind, message)
}

fn settings_error(e: SettingsError, path: &str) -> CommandError {
    CommandError::at(
        CommandErrorKind::BadRequest,
        format!("{path}:{}", e.field),
        e.to_string(),
    )
}

fn link_error(e: LinkError) -> CommandError {
    let kind = match &e {
        LinkError::NoAddress(_) => CommandErrorKind::Conflict,
        LinkError::NoTransport(_) => CommandErrorKind::NotConnected,
        LinkError::NotFound { .. } => CommandErrorKind::NotFound,
        LinkError::Scan(_) => CommandErrorKind::Conflict,
        LinkError::Stopped(_) => CommandErrorKind::Internal,
    };
    err(kind, e.to_string())
}

fn store_error(e: StoreError) -> CommandError {
    match e {
        StoreError::NotFound(id) => De1Error::UnknownProfile(id).to_command_error(),
        StoreError::Profile(p) => De1Error::Profile(p).to_command_error(),
        StoreError::BadId(_) => err(CommandErrorKind::BadRequest, e.to_string()),
        other => err(CommandErrorKind::Internal, other.to_string()),
    }
}

fn hex20(text: &str) -> Option<[u8; 20]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

// ------------------------------------------------------------------------- scale role

/// A connected scale and the task forwarding its reports to the hub.
pub struct ScaleConn {
    pub scale: Scale,
}

/// What reaches the hub about the scale, in order.
#[derive(Debug, Clone)]
enum ScaleInput {
    Report(ScaleEvent),
    /// An availability event of the scale's link.
    Link(Box<Event>),
}

/// The scale as a [`ManagedDevice`].
pub struct ScaleRole {
    events: mpsc::Sender<ScaleInput>,
}

impl ManagedDevice for ScaleRole {
    type Handle = Arc<ScaleConn>;

    fn role(&self) -> DeviceRole {
        DeviceRole::Scale
    }

    fn label(&self) -> &'static str {
        "scale"
    }

    fn sender(&self, advertised: Option<&str>) -> Sender {
        Sender::Scale(scale::scale_class(advertised.and_then(scale::recognise)))
    }

    fn display_name(&self, _address: Option<&Address>, advertised: Option<&str>) -> String {
        scale::display_name(advertised.and_then(scale::recognise), advertised)
    }

    fn matches(&self, adv: &Advertisement) -> bool {
        adv.name.as_deref().and_then(scale::recognise).is_some()
    }

    fn start(
        &self,
        peripheral: Arc<dyn Peripheral>,
    ) -> BoxFuture<'static, Result<Arc<ScaleConn>, String>> {
        let tx = self.events.clone();
        Box::pin(async move {
            let (scale, mut events) = Scale::from_peripheral(peripheral)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                while let Some(e) = events.next().await {
                    if tx.try_send(ScaleInput::Report(e)).is_err() {
                        log::debug!(target: LOG, "scale report dropped (hub busy)");
                    }
                }
            });
            Ok(Arc::new(ScaleConn { scale }))
        })
    }

    fn link(handle: &Arc<ScaleConn>) -> ble::LinkWatch {
        handle.scale.link()
    }

    fn disconnect(handle: &Arc<ScaleConn>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = handle.scale.disconnect().await {
                log::debug!(target: LOG, "scale disconnect: {e}");
            }
        })
    }
}

// ------------------------------------------------------------------------- controller

/// Everything needed to start a [`Controller`].
pub struct ControllerSetup {
    pub config: Config,
    /// The Bluetooth transport, or why there is none.
    pub transport: Result<Arc<dyn Transport>, String>,
    /// The transport is the built-in simulator.
    pub simulated: bool,
    /// Where remembered devices and stored profiles live (none: nothing is kept).
    pub state_dir: Option<PathBuf>,
    pub clock: Clock,
    pub bus: EventBus,
    pub link: LinkOptions,
    pub de1: De1Options,
    /// Connect at start-up (configured, remembered or first-found devices).
    pub auto_connect: bool,
}

impl ControllerSetup {
    /// The setup the configuration asks for.
    pub fn new(
        config: Config,
        transport: Result<Arc<dyn Transport>, String>,
        simulated: bool,
        state_dir: Option<PathBuf>,
    ) -> ControllerSetup {
        ControllerSetup {
            link: LinkOptions::from_config(&config),
            de1: De1Options::from_config(&config),
            config,
            transport,
            simulated,
            state_dir,
            clock: Clock::new(),
            bus: EventBus::default(),
            auto_connect: true,
        }
    }
}

/// The sequencer settings the configuration asks for.
pub fn sequencer_settings(config: &Config) -> SequencerSettings {
    let s = &config.sequencer;
    let mut out = SequencerSettings::default();
    out.espresso.disable_auto_tare = s.disable_auto_tare;
    out.espresso.first_drops_threshold = Some(s.first_drops_threshold);
    out.espresso.last_drops_minimum_time = s.last_drops_minimum;
    out.espresso.profile_can_override_stop_limits = s.profile_can_override_stop_limits;
    out.espresso.profile_can_override_tank_temperature = s.profile_can_override_tank_temperature;
    out.espresso.stop_at_weight = s.espresso.weight;
    out.espresso.stop_at_volume = s.espresso.volume;
    out.espresso.stop_at_time = s.espresso.time;
    out.steam.disable_auto_tare = s.disable_auto_tare;
    out.hot_water.disable_auto_tare = s.disable_auto_tare;
    out.hot_water.stop_at_weight = s.hot_water.weight;
    out.hot_water_rinse.disable_auto_tare = s.disable_auto_tare;
    out.hot_water_rinse.stop_at_time = s.hot_water_rinse.time;
    out.line_frequency = config.de1.line_frequency;
    out.sequence_watchdog = config.de1.sequence_watchdog_timeout;
    out.stop = StopTuning {
        stop_at_weight_adjust: config.de1.stop_at_weight_adjust,
        ..StopTuning::default()
    };
    out
}

/// `[de1] patch_on_connect` as changes. The launcher refuses a configuration whose patch
/// is invalid, so an error here (a controller started without the launcher) is logged
/// and the patch ignored.
fn patch_on_connect_changes(config: &Config) -> Vec<Change> {
    let Some(table) = &config.de1.patch_on_connect else {
        return Vec::new();
    };
    match pyde1_docs::patch::de1_changes(table) {
        Ok(changes) => changes,
        Err(e) => {
            log::error!(target: LOG, "[de1] patch_on_connect is ignored: {e}");
            Vec::new()
        }
    }
}

/// What the hub and the commands share.
struct CoreState {
    sequencer: Sequencer,
    /// Minutes without a state change before the DE1 is put to sleep.
    auto_off_time: Option<f64>,
    /// The previous StateInfo of this connection (for `StateUpdate.previous_*`).
    previous: Option<StateInfo>,
    last_state_update: Option<StateUpdate>,
    last_firmware: Option<FirmwareUpload>,
}

struct Shared {
    config: Config,
    clock: Clock,
    bus: EventBus,
    transport: Result<Arc<dyn Transport>, String>,
    simulated: bool,
    de1: LinkHandle<De1Role>,
    scale: LinkHandle<ScaleRole>,
    de1_options: Arc<Mutex<De1Options>>,
    store: Option<Store>,
    core: Mutex<CoreState>,
    scan: Mutex<Option<JoinHandle<()>>>,
    /// `[de1] patch_on_connect`, parsed once; applied each time the DE1 becomes ready.
    patch_on_connect: Vec<Change>,
}

/// The controller; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("de1", &self.inner.de1)
            .field("scale", &self.inner.scale)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Starts the links, the hub, and (unless disabled) the start-up connections.
    pub fn start(setup: ControllerSetup) -> Controller {
        let ControllerSetup {
            config,
            transport,
            simulated,
            state_dir,
            clock,
            bus,
            link,
            de1,
            auto_connect,
        } = setup;
        let store = state_dir.and_then(|d| match Store::open(&d) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(target: LOG, "no state directory: {e}; devices and profiles are not kept");
                None
            }
        });
        if let Err(e) = &transport {
            log::error!(target: LOG, "{e}");
        }
        let (notice_tx, notice_rx) = mpsc::channel(1024);
        let (scale_tx, scale_rx) = mpsc::channel(256);
        let de1_options = Arc::new(Mutex::new(de1));
        // Availability events travel with the devices' reports (see `link::Publish`);
        // should the queue be full they go straight to the bus rather than be lost.
        let de1_publish: crate::link::Publish = {
            let tx = notice_tx.clone();
            let bus = bus.clone();
            Arc::new(move |e: Event| {
                if let Err(
                    mpsc::error::TrySendError::Full(De1Notice::Link(e))
                    | mpsc::error::TrySendError::Closed(De1Notice::Link(e)),
                ) = tx.try_send(De1Notice::Link(Box::new(e)))
                {
                    bus.publish(*e);
                }
            })
        };
        let scale_publish: crate::link::Publish = {
            let tx = scale_tx.clone();
            let bus = bus.clone();
            Arc::new(move |e: Event| {
                if let Err(
                    mpsc::error::TrySendError::Full(ScaleInput::Link(e))
                    | mpsc::error::TrySendError::Closed(ScaleInput::Link(e)),
                ) = tx.try_send(ScaleInput::Link(Box::new(e)))
                {
                    bus.publish(*e);
                }
            })
        };
        let remember = config.bluetooth.remember_last_devices && !simulated;
        let on_ready = |which: Device| -> Option<crate::link::OnReady> {
            let store = store.clone()?;
            if !remember {
                return None;
            }
            Some(Box::new(move |a: &Address| {
                let store = store.clone();
                let a = a.to_string();
                tokio::task::spawn_blocking(move || {
                    let r = store.update_devices(|d| match which {
                        Device::De1 => d.de1 = Some(a),
                        Device::Scale => d.scale = Some(a),
                        Device::Thermometer => d.thermometer = Some(a),
                    });
                    if let Err(e) = r {
                        log::warn!(target: LOG, "cannot remember the device: {e}");
                    }
                });
            }))
        };
        let de1_link = LinkManager::spawn(
            De1Role {
                ctx: De1Context {
                    clock,
                    bus: bus.clone(),
                    notices: Some(notice_tx),
                    simulated,
                },
                options: Arc::clone(&de1_options),
            },
            transport.clone(),
            link,
            de1_publish,
            clock,
            simulated,
            on_ready(Device::De1),
        );
        let scale_link = LinkManager::spawn(
            ScaleRole { events: scale_tx },
            transport.clone(),
            link,
            scale_publish,
            clock,
            simulated,
            on_ready(Device::Scale),
        );
        let (instant, epoch) = clock.anchor();
        let sequencer = Sequencer::new(
            sequencer_settings(&config),
            EpochAnchor::new(instant.into_std(), epoch),
            seed_from_os(),
        );
        let patch_on_connect = patch_on_connect_changes(&config);
        let ctl = Controller {
            inner: Arc::new(Shared {
                config,
                clock,
                bus,
                transport,
                simulated,
                de1: de1_link,
                scale: scale_link,
                de1_options,
                store,
                core: Mutex::new(CoreState {
                    sequencer,
                    auto_off_time: None,
                    previous: None,
                    last_state_update: None,
                    last_firmware: None,
                }),
                scan: Mutex::new(None),
                patch_on_connect,
            }),
        };
        {
            let mut core = lock(&ctl.inner.core);
            core.auto_off_time = ctl
                .inner
                .config
                .de1
                .default_auto_off_time
                .filter(|t| *t > 0.0);
        }
        tokio::spawn(ctl.clone().hub(notice_rx, scale_rx));
        if auto_connect {
            ctl.connect_at_start();
        }
        ctl
    }

    /// Picks the devices to use at start-up: configured address, else the remembered
    /// one, else the first one found.
    fn connect_at_start(&self) {
        let remembered = match (
            &self.inner.store,
            self.inner.config.bluetooth.remember_last_devices,
        ) {
            (Some(s), true) if !self.inner.simulated => s.devices(),
            _ => Default::default(),
        };
        let b = &self.inner.config.bluetooth;
        let pick = |configured: &Option<String>, remembered: Option<String>| {
            configured.clone().or(remembered).map(Address::new)
        };
        let de1 = pick(&b.de1_address, remembered.de1);
        let scale = pick(&b.scale_address, remembered.scale);
        for (address, send) in [
            (de1, &self.inner.de1 as &dyn LinkSender),
            (scale, &self.inner.scale as &dyn LinkSender),
        ] {
            let r = match address {
                Some(a) => {
                    log::info!(target: LOG, "connecting to {a} at start-up");
                    send.send_command(LinkCommand::Assign(Some(a)))
                        .and_then(|_| send.send_command(LinkCommand::Capture))
                }
                None => send.send_command(LinkCommand::Seek),
            };
            if let Err(e) = r {
                log::error!(target: LOG, "{e}");
            }
        }
    }

    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    pub fn de1_link(&self) -> &LinkHandle<De1Role> {
        &self.inner.de1
    }

    pub fn scale_link(&self) -> &LinkHandle<ScaleRole> {
        &self.inner.scale
    }

    /// The connected, ready DE1.
    pub fn de1(&self) -> Option<De1> {
        self.inner.de1.current().filter(|d| d.is_ready())
    }

    /// The store, if the controller has a state directory.
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.as_ref()
    }

    /// Reads the sequencer (for tests and documents).
    pub fn with_sequencer<T>(&self, f: impl FnOnce(&Sequencer) -> T) -> T {
        f(&lock(&self.inner.core).sequencer)
    }

    /// The events a new subscriber should see first: the devices' availability and the
    /// DE1's state.
    pub fn snapshot_events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for status in [self.inner.de1.status(), self.inner.scale.status()] {
            if let Some(e) = status.last_event {
                let c =
                    ConnectivityState::from_availability(e.state).map(|state| ConnectivityChange {
                        stamp: e.stamp,
                        sender: e.sender,
                        state,
                        id: e.id.clone(),
                        name: e.name.clone(),
                    });
                out.push(Event::DeviceAvailability(e));
                if let Some(c) = c {
                    out.push(Event::ConnectivityChange(c));
                }
            }
        }
        if let Some(s) = lock(&self.inner.core).last_state_update {
            out.push(Event::StateUpdate(s));
        }
        out
    }

    /// Puts the DE1 to sleep if configured, then releases the devices.
    pub async fn shutdown(&self) {
        if let Some(h) = lock(&self.inner.scan).take() {
            h.abort();
        }
        if self.inner.config.de1.sleep_on_shutdown {
            if let Some(de1) = self.de1() {
                let asleep = de1.state().is_some_and(|s| {
                    matches!(
                        s.state,
                        MachineState::Sleep | MachineState::GoingToSleep | MachineState::NoRequest
                    )
                });
                if !asleep {
                    log::info!(target: LOG, "putting the DE1 to sleep before stopping");
                    let r = tokio::time::timeout(
                        Duration::from_secs(1),
                        de1.write_requested_state(MachineState::Sleep),
                    )
                    .await;
                    if matches!(r, Ok(Ok(()))) {
                        // Keep the link until the DE1 reports the change, so the
                        // subscribers see it go to sleep.
                        let mut states = de1.watch_state();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            states.wait_for(|s| {
                                s.is_some_and(|s| {
                                    matches!(
                                        s.state,
                                        MachineState::Sleep | MachineState::GoingToSleep
                                    )
                                })
                            }),
                        )
                        .await;
                    } else {
                        log::warn!(target: LOG, "could not put the DE1 to sleep");
                    }
                }
            }
        }
        let _ = self.inner.de1.release();
        let _ = self.inner.scale.release();
        let released = |s: &crate::link::LinkStatus| {
            matches!(
                s.availability,
                AvailabilityState::Released | AvailabilityState::Initial
            )
        };
        let t = Duration::from_secs(1);
        let _ = tokio::join!(
            self.inner.de1.wait_for(t, released),
            self.inner.scale.wait_for(t, released)
        );
    }

    // --------------------------------------------------------------------- the hub

    fn execute(&self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Emit(e) => self.inner.bus.publish(e),
                Action::RequestState(state) => match self.de1() {
                    Some(de1) => {
                        tokio::spawn(async move {
                            if let Err(e) = de1.write_requested_state(state).await {
                                log::error!(target: LOG, "sequencer request {state}: {e}");
                            }
                        });
                    }
                    None => log::warn!(target: LOG, "sequencer asked for {state}, but no DE1"),
                },
                Action::TareScale => match self.inner.scale.current() {
                    Some(s) => {
                        tokio::spawn(async move {
                            if let Err(e) = s.scale.tare().await {
                                log::warn!(target: LOG, "tare: {e}");
                            }
                        });
                    }
                    None => log::debug!(target: LOG, "tare asked for, but no scale"),
                },
            }
        }
    }

    fn std_instant(&self, epoch: f64) -> std::time::Instant {
        self.inner.clock.instant(epoch).into_std()
    }

    fn now_std() -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn on_notice(&self, n: De1Notice) {
        let actions = {
            let mut core = lock(&self.inner.core);
            match n {
                De1Notice::State { info, at } => {
                    let prev = core.previous.replace(info);
                    let (ps, pss) = prev.map_or(
                        (
                            MachineState::NoRequest,
                            de1_protocol::state::Substate::NoState,
                        ),
                        |p| (p.state, p.substate),
                    );
                    let update = StateUpdate {
                        stamp: Stamp {
                            arrival_time: at,
                            create_time: self.inner.clock.now(),
                            event_time: self.inner.clock.now(),
                        },
                        state: info.state,
                        substate: info.substate,
                        previous_state: ps,
                        previous_substate: pss,
                        is_error_state: info.is_error(),
                    };
                    core.last_state_update = Some(update);
                    self.inner.bus.publish(Event::StateUpdate(update));
                    core.sequencer
                        .on_state(self.std_instant(at), info.state, info.substate)
                }
                De1Notice::ShotSample { sample, at } => {
                    core.sequencer.on_shot_sample(self.std_instant(at), &sample)
                }
                De1Notice::Link(e) => {
                    self.inner.bus.publish(*e);
                    Vec::new()
                }
                De1Notice::WaterLevels { levels, at } => {
                    self.inner
                        .bus
                        .publish(Event::WaterLevelUpdate(WaterLevelUpdate {
                            stamp: Stamp {
                                arrival_time: at,
                                create_time: at,
                                event_time: self.inner.clock.now(),
                            },
                            level: levels.level.to_f64(),
                            start_fill_level: levels.start_fill_level.to_f64(),
                        }));
                    Vec::new()
                }
            }
        };
        self.execute(actions);
    }

    fn on_scale_event(&self, e: ScaleInput) {
        let now = Self::now_std();
        let actions = {
            let mut core = lock(&self.inner.core);
            match e {
                ScaleInput::Report(ScaleEvent::Weight(w)) => core.sequencer.on_weight(now, w),
                ScaleInput::Report(ScaleEvent::Button { arrival, button }) => {
                    core.sequencer.on_scale_button(now, arrival, button)
                }
                ScaleInput::Link(e) => {
                    self.inner.bus.publish(*e);
                    Vec::new()
                }
            }
        };
        self.execute(actions);
    }

    /// The DE1's DE1-enforced limits, as the sequencer announces them.
    fn sync_de1_controls(&self, de1: &De1) {
        let (shot, features, flush) = de1.with_mirror(|m| {
            (
                m.shot_settings.map(|s| s.value),
                m.features(),
                m.register_f64(R::FlushTimeout),
            )
        });
        let mut core = lock(&self.inner.core);
        let seq = &mut core.sequencer;
        seq.set_firmware_build(features.build);
        if let Some(s) = shot {
            let mut steam = seq.steam_control().clone();
            steam.stop_at_time = Some(f64::from(s.target_steam_length));
            let mut hw = seq.hot_water_control().clone();
            hw.stop_at_time = Some(f64::from(s.target_hot_water_length));
            hw.stop_at_volume = Some(f64::from(s.target_hot_water_vol));
            let _ = seq.set_steam_control(steam);
            let _ = seq.set_hot_water_control(hw);
        }
        if features.rinse_control() {
            let mut r = seq.hot_water_rinse_control().clone();
            r.stop_at_time = flush.filter(|t| *t > 0.0);
            let _ = seq.set_hot_water_rinse_control(r);
        }
    }

    fn on_de1_change(&self, de1: Option<De1>) {
        match de1 {
            Some(de1) => {
                self.sync_de1_controls(&de1);
                lock(&self.inner.de1_options).pending_flush_timeout = None;
                if !self.inner.patch_on_connect.is_empty() {
                    let ctl = self.clone();
                    tokio::spawn(async move { ctl.apply_patch_on_connect().await });
                }
            }
            None => {
                let actions = {
                    let mut core = lock(&self.inner.core);
                    core.previous = None;
                    core.sequencer.on_de1_disconnected(Self::now_std())
                };
                self.execute(actions);
            }
        }
    }

    /// Applies `[de1] patch_on_connect` as `PATCH /de1` would, after a (re)connection.
    async fn apply_patch_on_connect(&self) {
        let changes = &self.inner.patch_on_connect;
        match self.patch(changes).await {
            Ok(_) => log::info!(
                target: LOG,
                "[de1] patch_on_connect applied ({} changes)",
                changes.len()
            ),
            Err(e) => log::warn!(target: LOG, "[de1] patch_on_connect not applied: {e}"),
        }
    }

    fn on_scale_change(&self, scale: Option<Arc<ScaleConn>>) {
        let now = Self::now_std();
        let actions = {
            let mut core = lock(&self.inner.core);
            match scale {
                Some(s) => core.sequencer.on_scale_connected(now, s.scale.model()),
                None => core.sequencer.on_scale_disconnected(now),
            }
        };
        self.execute(actions);
    }

    /// Puts the DE1 to sleep after `auto_off_time` minutes without a state change.
    fn check_auto_off(&self) {
        let Some(minutes) = lock(&self.inner.core).auto_off_time else {
            return;
        };
        let Some(de1) = self.de1() else {
            return;
        };
        let (state, last) = de1.with_mirror(|m| (m.state_info(), m.last_state_change));
        let (Some(state), Some(last)) = (state, last) else {
            return;
        };
        if state.state.is_asleep() || self.inner.clock.now() - last < minutes * 60.0 {
            return;
        }
        log::info!(target: LOG, "no state change for {minutes} min: putting the DE1 to sleep");
        tokio::spawn(async move {
            if let Err(e) = de1.request_mode(Mode::Sleep).await {
                log::warn!(target: LOG, "auto-off: {e}");
            }
        });
    }

    async fn hub(
        self,
        mut notices: mpsc::Receiver<De1Notice>,
        mut scale_events: mpsc::Receiver<ScaleInput>,
    ) {
        let mut de1_current = self.inner.de1.watch_current();
        let mut scale_current = self.inner.scale.watch_current();
        let mut auto_off = tokio::time::interval(AUTO_OFF_CHECK);
        auto_off.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut firmware_rx: Option<tokio::sync::watch::Receiver<_>> = None;
        loop {
            let deadline = lock(&self.inner.core)
                .sequencer
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                n = notices.recv() => match n {
                    Some(n) => self.on_notice(n),
                    None => return,
                },
                Some(e) = scale_events.recv() => self.on_scale_event(e),
                r = de1_current.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let de1 = de1_current.borrow_and_update().clone();
                    firmware_rx = de1.as_ref().map(|d| d.firmware_progress());
                    self.on_de1_change(de1);
                }
                r = scale_current.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let s = scale_current.borrow_and_update().clone();
                    self.on_scale_change(s);
                }
                Some(()) = async {
                    match firmware_rx.as_mut() {
                        Some(rx) => rx.changed().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    let last = firmware_rx.as_ref().and_then(|rx| rx.borrow().clone());
                    if let Some(p) = last {
                        lock(&self.inner.core).last_firmware = Some(FirmwareUpload {
                            stamp: Stamp::at(self.inner.clock.now()),
                            state: p.state,
                            uploaded: p.uploaded,
                            total: p.total,
                        });
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let actions = lock(&self.inner.core).sequencer.on_tick(Self::now_std());
                    self.execute(actions);
                }
                _ = auto_off.tick() => self.check_auto_off(),
            }
        }
    }

    // ----------------------------------------------------------------- commands

    /// Carries out one command.
    pub async fn dispatch(&self, command: Command) -> Result<Reply, CommandError> {
        log::debug!(target: LOG, "command {}", command.name());
        match command {
            Command::Ping => Ok(Reply::Pong),
            Command::Get(resource) => self.get(resource).await.map(Reply::Document),
            Command::Patch { resource, changes } => {
                let result = self.patch(&changes).await;
                if let Some(area) = resource.update_area() {
                    self.push_area(area).await;
                }
                result.map(Reply::Patched)
            }
            Command::UploadProfile { source } => self.upload_profile(&source).await,
            Command::StoreProfile { source } => self.store_profile(source).await,
            Command::SelectProfile { id } => self.select_profile(id).await,
            Command::UploadFirmware { path } => self.upload_firmware(path).await,
            Command::CancelFirmwareUpload => {
                let de1 = self.inner.de1.current().ok_or_else(|| {
                    De1Error::NothingInProgress("firmware upload").to_command_error()
                })?;
                de1.cancel_firmware_upload()?;
                Ok(Reply::Done)
            }
            Command::Scan { role } => {
                self.scan(role)?;
                Ok(Reply::Done)
            }
        }
    }

    fn not_ready(&self, device: Device) -> CommandError {
        let (label, status) = match device {
            Device::De1 => ("DE1", self.inner.de1.status()),
            Device::Scale => ("Scale", self.inner.scale.status()),
            Device::Thermometer => {
                return err(CommandErrorKind::NotConnected, "Thermometer not connected")
            }
        };
        let connected = matches!(
            status.availability,
            AvailabilityState::Captured | AvailabilityState::Ready
        );
        let mut message = if connected {
            format!("{label} not ready")
        } else {
            format!("{label} not connected")
        };
        if let (false, Some(e)) = (connected, status.last_error) {
            message.push_str(&format!(" ({e})"));
        }
        err(CommandErrorKind::NotConnected, message)
    }

    fn ready_de1(&self) -> Result<De1, CommandError> {
        self.de1().ok_or_else(|| self.not_ready(Device::De1))
    }

    fn ready_scale(&self) -> Result<Arc<ScaleConn>, CommandError> {
        match self.inner.scale.current() {
            Some(s) if self.inner.scale.status().is_ready() => Ok(s),
            _ => Err(self.not_ready(Device::Scale)),
        }
    }

    fn check_needs(&self, needs: Needs) -> Result<(), CommandError> {
        match needs {
            Needs::Nothing => Ok(()),
            Needs::ReadyDe1 => self.ready_de1().map(|_| ()),
            Needs::ReadyScale => self.ready_scale().map(|_| ()),
        }
    }

    fn thermometer_id() -> DeviceId {
        DeviceId {
            address: None,
            name: "BlueDOT_None".into(),
            simulated: false,
        }
    }

    fn thermometer_availability() -> ipc_schema::command::Availability {
        ipc_schema::command::Availability {
            state: AvailabilityState::Initial,
            last_event: None,
            simulated: false,
        }
    }

    /// Re-reads a register that changes by itself (pyDE1 re-reads it on every GET).
    async fn refresh(&self, de1: &De1, r: R) {
        if de1.with_mirror(|m| m.features()).has_register(r) {
            if let Err(e) = de1.read_register(r).await {
                log::warn!(target: LOG, "re-reading {r}: {e}");
            }
        }
    }

    fn line_frequency(&self) -> u32 {
        lock(&self.inner.core).sequencer.configured_line_frequency()
    }

    fn controls(&self, de1: Option<&De1>) -> ipc_schema::command::Controls {
        let settings = lock(&self.inner.core).sequencer.settings().clone();
        match de1 {
            Some(d) => d.with_mirror(|m| documents::controls(Some(m), &settings)),
            None => documents::controls(None, &settings),
        }
    }

    async fn get(&self, resource: Resource) -> Result<Document, CommandError> {
        use ipc_schema::command::DocumentKind as K;
        let kind = resource.document_kind().ok_or_else(|| {
            err(
                CommandErrorKind::BadRequest,
                format!("GET not permitted for {resource}"),
            )
        })?;
        self.check_needs(resource.get_needs())?;
        let de1 = self.de1();
        let mirror = || {
            de1.as_ref()
                .map(|d| d.mirror())
                .ok_or_else(|| self.not_ready(Device::De1))
        };
        let auto_off = lock(&self.inner.core).auto_off_time;
        Ok(match kind {
            K::De1 => {
                let d = self.ready_de1()?;
                self.refresh(&d, R::AllowUsbCharging).await;
                let m = d.mirror();
                let status = self.inner.de1.status();
                let last = lock(&self.inner.core).last_state_update;
                Document::De1(Box::new(De1Document {
                    id: documents::device_id(&status),
                    state: documents::de1_state(&m, last)
                        .ok_or_else(|| self.not_ready(Device::De1))?,
                    availability: documents::availability(&status),
                    connectivity: documents::connectivity(&status),
                    control: self.controls(Some(&d)),
                    setting: documents::settings(&m, auto_off),
                    calibration: documents::calibration(Some(&m), self.line_frequency()),
                    read_once: documents::read_once(&m),
                }))
            }
            K::DeviceId => Document::DeviceId(match resource {
                Resource::ScaleId => documents::device_id(&self.inner.scale.status()),
                Resource::ThermometerId => Self::thermometer_id(),
                _ => documents::device_id(&self.inner.de1.status()),
            }),
            K::De1State => {
                let last = lock(&self.inner.core).last_state_update;
                Document::De1State(
                    documents::de1_state(&mirror()?, last)
                        .ok_or_else(|| self.not_ready(Device::De1))?,
                )
            }
            K::FeatureFlags => Document::FeatureFlags(documents::feature_flags(&mirror()?)),
            K::ProfileId => Document::ProfileId(mirror()?.profile.loaded_id().and_then(hex20)),
            K::FirmwareProgress => Document::FirmwareProgress(FirmwareProgress {
                running: self.inner.de1.current().is_some_and(|d| {
                    d.firmware_progress().borrow().as_ref().is_some_and(|p| {
                        matches!(
                            p.state,
                            ipc_schema::event::FirmwareUploadState::Starting
                                | ipc_schema::event::FirmwareUploadState::Uploading
                        )
                    })
                }),
                last: lock(&self.inner.core).last_firmware,
            }),
            K::FirmwareId => Document::FirmwareId(mirror()?.firmware_build()),
            K::Availability => Document::Availability(match resource {
                Resource::ScaleAvailability => documents::availability(&self.inner.scale.status()),
                Resource::ThermometerAvailability => Self::thermometer_availability(),
                _ => documents::availability(&self.inner.de1.status()),
            }),
            K::Connectivity => Document::Connectivity(match resource {
                Resource::ScaleConnectivity => documents::connectivity(&self.inner.scale.status()),
                _ => documents::connectivity(&self.inner.de1.status()),
            }),
            K::Controls => Document::Controls(self.controls(de1.as_ref())),
            K::Settings => {
                let d = self.ready_de1()?;
                if matches!(
                    resource,
                    Resource::De1Setting | Resource::De1SettingUsbOutlet
                ) {
                    self.refresh(&d, R::AllowUsbCharging).await;
                }
                Document::Settings(documents::settings(&d.mirror(), auto_off))
            }
            K::Calibration => Document::Calibration(documents::calibration(
                de1.as_ref().map(|d| d.mirror()).as_ref(),
                self.line_frequency(),
            )),
            K::ReadOnce => Document::ReadOnce(documents::read_once(&mirror()?)),
            K::Presence => {
                let d = self.ready_de1()?;
                let has = d.with_mirror(|m| m.features()).has_register(R::UserPresent);
                Document::Presence(if has {
                    match d.read_register(R::UserPresent).await? {
                        MmrValue::Bool(b) => Some(b),
                        other => other.as_f64().map(|x| x != 0.0),
                    }
                } else {
                    None
                })
            }
            K::Scale => {
                let status = self.inner.scale.status();
                Document::Scale(ScaleDocument {
                    id: documents::device_id(&status),
                    availability: documents::availability(&status),
                    connectivity: documents::connectivity(&status),
                })
            }
            K::Thermometer => Document::Thermometer(ThermometerDocument {
                id: Self::thermometer_id(),
                availability: Self::thermometer_availability(),
            }),
        })
    }

    /// Publishes `update/de1/<area>` after a PATCH (skipped, as pyDE1 does, when the
    /// area cannot be read).
    async fn push_area(&self, area: SettingsArea) {
        let timestamp = self.inner.clock.now();
        let Some(de1) = self.de1() else {
            log::debug!(target: LOG, "no {area:?} update: DE1 not ready");
            return;
        };
        let document = match area {
            SettingsArea::Control => AreaDocument::Control(self.controls(Some(&de1))),
            SettingsArea::Setting => {
                let auto_off = lock(&self.inner.core).auto_off_time;
                AreaDocument::Setting(documents::settings(&de1.mirror(), auto_off))
            }
            SettingsArea::Calibration => AreaDocument::Calibration(documents::calibration(
                Some(&de1.mirror()),
                self.line_frequency(),
            )),
        };
        self.inner.bus.publish(Event::AreaUpdate(AreaUpdate {
            timestamp,
            document,
        }));
    }

    fn link_sender(&self, device: Device) -> Result<&dyn LinkSender, CommandError> {
        match device {
            Device::De1 => Ok(&self.inner.de1),
            Device::Scale => Ok(&self.inner.scale),
            Device::Thermometer => Err(err(
                CommandErrorKind::NotImplemented,
                "thermometers are not supported",
            )),
        }
    }

    async fn select_device(
        &self,
        device: Device,
        selection: &DeviceSelection,
    ) -> Result<PatchOutput, CommandError> {
        let link = self.link_sender(device)?;
        match selection {
            DeviceSelection::Forget => {
                link.send_command(LinkCommand::Assign(None))
                    .map_err(link_error)?;
                if let Some(store) = self.inner.store.clone() {
                    let _ = tokio::task::spawn_blocking(move || {
                        store.update_devices(|d| match device {
                            Device::De1 => d.de1 = None,
                            Device::Scale => d.scale = None,
                            Device::Thermometer => d.thermometer = None,
                        })
                    })
                    .await;
                }
                Ok(PatchOutput::Address(String::new()))
            }
            DeviceSelection::Address(a) => {
                let a = Address::new(a);
                link.send_command(LinkCommand::Assign(Some(a.clone())))
                    .map_err(link_error)?;
                Ok(PatchOutput::Address(a.to_string()))
            }
            DeviceSelection::Scan => {
                let a = link.scan_and_capture().await.map_err(link_error)?;
                Ok(PatchOutput::Address(a.to_string()))
            }
        }
    }

    async fn capture(
        &self,
        device: Device,
        request: CaptureRequest,
        wait: bool,
    ) -> Result<(), CommandError> {
        let link = self.link_sender(device)?;
        match request {
            CaptureRequest::Capture => {
                if let Err(e) = &self.inner.transport {
                    return Err(err(CommandErrorKind::NotConnected, e.clone()));
                }
                link.capture().map_err(link_error)?;
                if wait {
                    let t = self.connect_wait();
                    if !link.wait_ready(t).await {
                        return Err(err(
                            CommandErrorKind::Timeout,
                            format!("no connection within {t:?}"),
                        ));
                    }
                }
            }
            CaptureRequest::Release => {
                link.send_command(LinkCommand::Release)
                    .map_err(link_error)?;
                if wait {
                    let t = seconds(self.inner.config.bluetooth.disconnect_timeout);
                    link.wait_released(t).await;
                }
            }
        }
        Ok(())
    }

    fn connect_wait(&self) -> Duration {
        seconds(self.inner.config.bluetooth.connect_timeout) + Duration::from_secs(10)
    }

    /// Applies DE1 setting changes collected so far.
    async fn flush(&self, pending: &mut Vec<De1Change>) -> Result<(), CommandError> {
        if pending.is_empty() {
            return Ok(());
        }
        let de1 = self.ready_de1()?;
        let list = std::mem::take(pending);
        let r = de1.apply(&list).await;
        self.sync_de1_controls(&de1);
        r.map_err(Into::into)
    }

    fn update_sequencer(
        &self,
        f: impl FnOnce(&mut Sequencer) -> Result<(), SettingsError>,
        path: &str,
    ) -> Result<(), CommandError> {
        let mut core = lock(&self.inner.core);
        f(&mut core.sequencer).map_err(|e| settings_error(e, path))
    }

    async fn patch(&self, changes: &[Change]) -> Result<Vec<PatchOutput>, CommandError> {
        let mut out = Vec::new();
        let mut pending: Vec<De1Change> = Vec::new();
        for change in changes {
            self.check_needs(change.needs())?;
            match change {
                Change::SelectDevice { device, selection } => {
                    self.flush(&mut pending).await?;
                    out.push(self.select_device(*device, selection).await?);
                }
                Change::Mode(m) => {
                    self.flush(&mut pending).await?;
                    let de1 = self.ready_de1()?;
                    de1.request_mode(mode_of(*m)).await?;
                }
                Change::Availability { device, request } => {
                    self.capture(*device, *request, false).await?
                }
                Change::Connectivity { device, request } => {
                    self.capture(*device, *request, true).await?
                }
                Change::Control(c) => self.control_change(c, &mut pending).await?,
                Change::Setting(s) => self.setting_change(s, &mut pending)?,
                Change::Calibration(CalibrationChange::LineFrequency(hz)) => self
                    .update_sequencer(
                        |s| s.set_line_frequency(*hz),
                        "calibration:line_frequency",
                    )?,
                Change::Calibration(CalibrationChange::FlowMultiplier(x)) => {
                    pending.push(De1Change::Register(R::CalFlowEst, MmrValue::Number(*x)))
                }
                Change::UserPresent(b) => {
                    pending.push(De1Change::Register(R::UserPresent, MmrValue::Bool(*b)))
                }
                Change::ScaleTare => {
                    let actions = lock(&self.inner.core)
                        .sequencer
                        .request_tare(Self::now_std());
                    self.execute(actions);
                }
                Change::ScaleDisplay(on) => {
                    let s = self.ready_scale()?;
                    s.scale
                        .set_display(*on)
                        .await
                        .map_err(|e| err(CommandErrorKind::Internal, e.to_string()))?;
                }
            }
        }
        self.flush(&mut pending).await?;
        Ok(out)
    }

    async fn control_change(
        &self,
        c: &ControlChange,
        pending: &mut Vec<De1Change>,
    ) -> Result<(), CommandError> {
        use ControlChange as C;
        let esp = |f: &dyn Fn(&mut crate::sequencer::EspressoControl)| {
            self.update_sequencer(
                |s| {
                    let mut e = s.espresso_control().clone();
                    f(&mut e);
                    s.set_espresso_control(e)
                },
                "control:espresso",
            )
        };
        match c {
            C::EspressoStopAtTime(v) => esp(&|e| e.stop_at_time = *v)?,
            C::EspressoStopAtVolume(v) => esp(&|e| e.stop_at_volume = *v)?,
            C::EspressoStopAtWeight(v) => esp(&|e| e.stop_at_weight = *v)?,
            C::EspressoMoveOnWeight(v) => esp(&|e| e.move_on_weight = v.clone())?,
            C::ProfileCanOverrideStopLimits(b) => {
                esp(&|e| e.profile_can_override_stop_limits = *b)?
            }
            C::ProfileCanOverrideTankTemperature(b) => {
                esp(&|e| e.profile_can_override_tank_temperature = *b)?
            }
            C::FirstDropsThreshold(v) => esp(&|e| e.first_drops_threshold = *v)?,
            C::LastDropsMinimumTime(v) => esp(&|e| e.last_drops_minimum_time = *v)?,
            C::DisableAutoTare { mode, disable } => {
                let d = *disable;
                self.update_sequencer(
                    |s| match mode {
                        ControlMode::Espresso => {
                            let mut e = s.espresso_control().clone();
                            e.disable_auto_tare = d;
                            s.set_espresso_control(e)
                        }
                        ControlMode::Steam => {
                            let mut e = s.steam_control().clone();
                            e.disable_auto_tare = d;
                            s.set_steam_control(e)
                        }
                        ControlMode::HotWater => {
                            let mut e = s.hot_water_control().clone();
                            e.disable_auto_tare = d;
                            s.set_hot_water_control(e)
                        }
                        ControlMode::HotWaterRinse => {
                            let mut e = s.hot_water_rinse_control().clone();
                            e.disable_auto_tare = d;
                            s.set_hot_water_rinse_control(e)
                        }
                    },
                    "control",
                )?
            }
            C::HotWaterStopAtWeight(v) => self.update_sequencer(
                |s| {
                    let mut e = s.hot_water_control().clone();
                    e.stop_at_weight = *v;
                    s.set_hot_water_control(e)
                },
                "control:hot_water",
            )?,
            C::RinseStopAtTime(v) => {
                let seconds = *v;
                let on_de1 = self
                    .de1()
                    .is_some_and(|d| d.with_mirror(|m| m.features()).rinse_control());
                if on_de1 {
                    pending.push(De1Change::Register(
                        R::FlushTimeout,
                        MmrValue::Number(seconds.unwrap_or(0.0)),
                    ));
                } else {
                    // Kept for the sequencer's timer and pushed to the DE1 at connect.
                    lock(&self.inner.de1_options).pending_flush_timeout = Some(seconds);
                }
                self.update_sequencer(
                    |s| {
                        let mut e = s.hot_water_rinse_control().clone();
                        e.stop_at_time = seconds;
                        s.set_hot_water_rinse_control(e)
                    },
                    "control:hot_water_rinse",
                )?
            }
            C::SteamStopAtTime(v) => pending.push(De1Change::SteamTimeout(f64::from(*v))),
            C::HotWaterStopAtTime(v) => pending.push(De1Change::HotWaterTimeout(f64::from(*v))),
            C::HotWaterStopAtVolume(v) => pending.push(De1Change::HotWaterVolume(f64::from(*v))),
            C::HotWaterTemperature(v) => {
                pending.push(De1Change::HotWaterTemperature(f64::from(*v)))
            }
            C::RinseTemperature(v) => {
                pending.push(De1Change::Register(R::FlushTemp, MmrValue::Number(*v)))
            }
            C::RinseFlow(v) => {
                pending.push(De1Change::Register(R::FlushFlowRate, MmrValue::Number(*v)))
            }
            C::TankWaterThreshold(v) => {
                pending.push(De1Change::Register(R::TankTemp, MmrValue::Integer(*v)))
            }
        }
        Ok(())
    }

    fn setting_change(
        &self,
        s: &SettingChange,
        pending: &mut Vec<De1Change>,
    ) -> Result<(), CommandError> {
        use SettingChange as S;
        let reg = |r: R, v: MmrValue| De1Change::Register(r, v);
        let change = match s {
            S::AutoOffTime(v) => {
                if let Some(t) = v {
                    if !t.is_finite() || *t < 0.0 {
                        return Err(CommandError::at(
                            CommandErrorKind::BadRequest,
                            "setting:auto_off_time:time",
                            format!("{t} must be ≥ 0"),
                        ));
                    }
                }
                lock(&self.inner.core).auto_off_time = v.filter(|t| *t > 0.0);
                return Ok(());
            }
            S::FanThreshold(t) => {
                if *t > 60 {
                    log::warn!(target: LOG, "fan threshold {t} °C is outside 0–60 °C");
                }
                reg(R::FanThreshold, MmrValue::Integer(*t))
            }
            S::StartFillLevel(mm) => De1Change::StartFillLevel(*mm),
            S::HeaterPhase1Flow(v) => reg(R::HeaterUp1Flow, MmrValue::Number(*v)),
            S::HeaterPhase2Flow(v) => reg(R::HeaterUp2Flow, MmrValue::Number(*v)),
            S::HeaterPhase2Timeout(v) => reg(R::HeaterUp2Timeout, MmrValue::Number(*v)),
            S::HeaterIdleTemperature(v) => reg(R::WaterHeaterIdleTemp, MmrValue::Number(*v)),
            S::TargetGroupTemp(v) => De1Change::TargetGroupTemperature(*v),
            S::UsbOutlet(b) => reg(R::AllowUsbCharging, MmrValue::Bool(*b)),
            S::RefillKit(b) => reg(R::RefillKitPresent, MmrValue::Bool(*b)),
            S::SteamTemperature(t) => De1Change::SteamTemperature(t.map(f64::from)),
            S::SteamFlow(v) => reg(R::TargetSteamFlow, MmrValue::Number(*v)),
            S::SteamHighFlowTime(v) => reg(R::SteamStartSecs, MmrValue::Number(*v)),
            S::SteamPurgeDeferred(b) => reg(R::SteamPurgeMode, MmrValue::Bool(*b)),
            S::Time(t) => De1Change::Time(*t),
        };
        pending.push(change);
        Ok(())
    }

    fn profile_options(&self) -> ProfileOptions {
        ProfileOptions {
            override_tank_temperature: lock(&self.inner.core)
                .sequencer
                .espresso_control()
                .profile_can_override_tank_temperature,
        }
    }

    /// After a successful upload: sequencer limits, the store, the last-profile record.
    fn after_upload(&self, up: &crate::de1::profile::UploadedProfile, source: Option<Vec<u8>>) {
        lock(&self.inner.core).sequencer.on_profile(&up.encoded);
        if let Some(store) = self.inner.store.clone() {
            let id = up.id.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(source) = source {
                    if let Err(e) = store.store_profile(&source) {
                        log::warn!(target: LOG, "cannot store profile {id}: {e}");
                    }
                }
                if let Err(e) = store.set_last_profile(&id) {
                    log::warn!(target: LOG, "cannot record the last profile: {e}");
                }
            });
        }
    }

    fn profile_ref(id: &str, fingerprint: &str) -> Result<ProfileRef, CommandError> {
        match (hex20(id), hex20(fingerprint)) {
            (Some(id), Some(fingerprint)) => Ok(ProfileRef { id, fingerprint }),
            _ => Err(err(CommandErrorKind::Internal, "malformed profile id")),
        }
    }

    async fn upload_profile(&self, source: &[u8]) -> Result<Reply, CommandError> {
        // Validate before anything else: a bad profile is a 400 even without a DE1.
        let encoded = de1_protocol::profile::encode_profile(source).map_err(De1Error::Profile)?;
        let de1 = self.ready_de1()?;
        let up = de1
            .upload_encoded(Arc::new(encoded), self.profile_options())
            .await?;
        self.after_upload(&up, Some(source.to_vec()));
        Ok(Reply::Profile(Self::profile_ref(&up.id, &up.fingerprint)?))
    }

    async fn store_profile(&self, source: Vec<u8>) -> Result<Reply, CommandError> {
        let store = self.inner.store.clone().ok_or_else(|| {
            err(
                CommandErrorKind::NotImplemented,
                "no state directory: profiles cannot be stored",
            )
        })?;
        let encoded = tokio::task::spawn_blocking(move || store.store_profile(&source))
            .await
            .map_err(|e| err(CommandErrorKind::Internal, e.to_string()))?
            .map_err(store_error)?;
        Ok(Reply::Profile(Self::profile_ref(
            &encoded.id,
            &encoded.fingerprint,
        )?))
    }

    async fn select_profile(&self, id: [u8; 20]) -> Result<Reply, CommandError> {
        let result = async {
            let de1 = self.ready_de1()?;
            let store = self
                .inner
                .store
                .clone()
                .ok_or_else(|| De1Error::UnknownProfile(hex::encode(id)).to_command_error())?;
            let hex_id = hex::encode(id);
            let encoded = tokio::task::spawn_blocking(move || store.load_profile(&hex_id))
                .await
                .map_err(|e| err(CommandErrorKind::Internal, e.to_string()))?
                .map_err(store_error)?;
            let up = de1
                .upload_encoded(Arc::new(encoded), self.profile_options())
                .await?;
            self.after_upload(&up, None);
            Ok::<_, CommandError>(up)
        }
        .await;
        self.inner
            .bus
            .publish(Event::ProfileIdUpdate(ProfileIdUpdate {
                id: result.as_ref().ok().and_then(|up| hex20(&up.id)),
                timestamp: self.inner.clock.now(),
            }));
        result.map(|_| Reply::Done)
    }

    async fn upload_firmware(&self, path: PathBuf) -> Result<Reply, CommandError> {
        let de1 = self.ready_de1()?;
        let limit = self.inner.config.http.firmware_body_limit;
        let file = tokio::fs::read(&path).await.map_err(|e| {
            err(
                CommandErrorKind::BadRequest,
                format!("cannot read the firmware file {}: {e}", path.display()),
            )
        })?;
        if file.len() > limit.max(de1_protocol::firmware::HEADER_LEN) {
            return Err(err(
                CommandErrorKind::BadRequest,
                format!("firmware file of {} bytes exceeds {limit}", file.len()),
            ));
        }
        de1.start_firmware_upload(file).await?;
        Ok(Reply::Done)
    }

    /// Starts a scan by role; results are published as `ScanResults`.
    fn scan(&self, role: DeviceRole) -> Result<(), CommandError> {
        let transport = match &self.inner.transport {
            Ok(t) => Arc::clone(t),
            Err(e) => return Err(err(CommandErrorKind::NotConnected, e.clone())),
        };
        let duration = seconds(self.inner.config.bluetooth.scan_timeout);
        let bus = self.inner.bus.clone();
        let clock = self.inner.clock;
        let task = tokio::spawn(async move {
            let publish = |devices: &[ScanDevice], scanning: bool| {
                bus.publish(Event::ScanResults(ScanResults {
                    stamp: Stamp::at(clock.now()),
                    role,
                    scanning,
                    devices: devices.to_vec(),
                }));
            };
            let mut found: Vec<ScanDevice> = Vec::new();
            publish(&found, true);
            match transport.scan(duration).await {
                Ok(mut stream) => {
                    while let Some(adv) = stream.next().await {
                        if !role_matches(role, adv.name.as_deref()) {
                            continue;
                        }
                        let address = adv.address.to_string();
                        if found.iter().any(|d| d.address == address) {
                            continue;
                        }
                        found.push(ScanDevice {
                            address,
                            name: adv.name.unwrap_or_default(),
                            rssi: adv.rssi.unwrap_or(0),
                        });
                        publish(&found, true);
                    }
                }
                Err(e) => log::warn!(target: LOG, "scan: {e}"),
            }
            publish(&found, false);
        });
        if let Some(old) = lock(&self.inner.scan).replace(task) {
            old.abort();
        }
        Ok(())
    }
}

/// The scanner's name rules by role (pyde1-http-api.md §6.6).
pub fn role_matches(role: DeviceRole, name: Option<&str>) -> bool {
    const SCALES: [&str; 8] = [
        "ACAIA",
        "ACAIAL1",
        "LUNAR",
        "PROCH",
        "PEARLS",
        "PYXIS",
        "Skale",
        "FelicitaArc",
    ];
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return false;
    };
    match role {
        DeviceRole::De1 => name.starts_with("DE1"),
        DeviceRole::Scale => SCALES.iter().any(|p| name.starts_with(p)),
        DeviceRole::Thermometer => name.starts_with("BlueDOT"),
        DeviceRole::Other => false,
        DeviceRole::Unknown => true,
    }
}

fn mode_of(m: ModeRequest) -> Mode {
    match m {
        ModeRequest::Sleep => Mode::Sleep,
        ModeRequest::Wake => Mode::Wake,
        ModeRequest::Stop => Mode::Stop,
        ModeRequest::EndSteam => Mode::EndSteam,
        ModeRequest::SkipToNext => Mode::SkipToNext,
        ModeRequest::Espresso => Mode::Espresso,
        ModeRequest::Steam => Mode::Steam,
        ModeRequest::HotWater => Mode::HotWater,
        ModeRequest::HotWaterRinse => Mode::HotWaterRinse,
        ModeRequest::Clean => Mode::Clean,
        ModeRequest::Descale => Mode::Descale,
        ModeRequest::Transport => Mode::Transport,
        ModeRequest::NoRequest => Mode::NoRequest,
    }
}

/// The link operations the commands need, for either device.
trait LinkSender: Send + Sync {
    fn send_command(&self, c: LinkCommand) -> Result<(), LinkError>;
    fn capture(&self) -> Result<(), LinkError>;
    fn scan_and_capture(&self) -> BoxFuture<'_, Result<Address, LinkError>>;
    fn wait_ready(&self, t: Duration) -> BoxFuture<'_, bool>;
    fn wait_released(&self, t: Duration) -> BoxFuture<'_, bool>;
}

impl<D: ManagedDevice> LinkSender for LinkHandle<D> {
    fn send_command(&self, c: LinkCommand) -> Result<(), LinkError> {
        self.send(c)
    }
    fn capture(&self) -> Result<(), LinkError> {
        LinkHandle::capture(self)
    }
    fn scan_and_capture(&self) -> BoxFuture<'_, Result<Address, LinkError>> {
        Box::pin(self.scan())
    }
    fn wait_ready(&self, t: Duration) -> BoxFuture<'_, bool> {
        Box::pin(self.wait_for(t, |s| s.is_ready()))
    }
    fn wait_released(&self, t: Duration) -> BoxFuture<'_, bool> {
        Box::pin(self.wait_for(t, |s| {
            matches!(
                s.availability,
                AvailabilityState::Released | AvailabilityState::Initial
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_roles_match_by_name_prefix() {
        assert!(role_matches(DeviceRole::De1, Some("DE1")));
        assert!(role_matches(DeviceRole::De1, Some("DE1 (simulated)")));
        assert!(!role_matches(DeviceRole::De1, Some("de1")));
        assert!(role_matches(DeviceRole::Scale, Some("Skale")));
        assert!(role_matches(DeviceRole::Scale, Some("PEARLS123")));
        assert!(!role_matches(DeviceRole::Scale, Some("DE1")));
        assert!(role_matches(DeviceRole::Thermometer, Some("BlueDOT")));
        assert!(!role_matches(DeviceRole::Other, Some("BlueDOT")));
        assert!(role_matches(DeviceRole::Unknown, Some("anything")));
        assert!(!role_matches(DeviceRole::Unknown, None));
    }

    #[test]
    fn configuration_reaches_the_sequencer() {
        let mut c = Config::default();
        c.sequencer.espresso.weight = Some(36.0);
        c.de1.line_frequency = 50;
        let s = sequencer_settings(&c);
        assert_eq!(s.espresso.stop_at_weight, Some(36.0));
        assert_eq!(s.line_frequency, 50);
        assert!(s.validated().is_ok());
    }
}

//! The DE1 device model: one [`De1`] per Bluetooth connection.
//!
//! * [`De1::start`] subscribes to the DE1's notifications, runs the connect-time
//!   sequence ([`connect`]) and returns a ready handle;
//! * a notification pump decodes everything the DE1 sends into the [`Mirror`] and hands
//!   state, shot-sample and water-level reports to the controller as [`De1Notice`]s
//!   (without blocking and without disk I/O);
//! * GATT operations are serialised (one outstanding request at a time, as de1-ble.md §2
//!   recommends) and each is bounded by [`De1Options::op_timeout`];
//! * every write is read back so the mirror stays true ([`settings`]);
//! * mode requests ([`modes`]), profile upload ([`profile`]) and firmware upload
//!   ([`firmware`]) build on these.
//!
//! A handle whose link dropped fails every operation with [`De1Error::NotConnected`];
//! reconnection makes a new handle (see [`crate::link`]).

pub mod connect;
pub mod error;
pub mod firmware;
pub mod mirror;
pub mod modes;
pub mod profile;
pub mod settings;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ble::{Address, LinkWatch, Notification, Peripheral, Uuid, WriteKind};
use de1_protocol::characteristic::Characteristic;
use de1_protocol::mmr::{MmrReassembler, MmrRegister, MmrValue};
use de1_protocol::packets::{
    Calibration, FWMapRequest, ReadFromMMRRequest, ReadFromMMRResponse, RequestedState, SetTime,
    ShotSample, ShotSettings, StateInfo, Versions, WaterLevels,
};
use de1_protocol::state::MachineState;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::EventBus;
use crate::clock::Clock;

pub use error::De1Error;
pub use firmware::FirmwareOptions;
pub use mirror::{CalibrationTarget, Features, Mirror, ProfileState, Stamped};
pub use modes::{Mode, ModeAction};

const LOG: &str = "controller::de1";

/// Tunables of a DE1 connection. Defaults follow pyDE1's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct De1Options {
    /// Longest one GATT operation may take, waiting for the link included
    /// (`[de1] cuuid_lock_wait_timeout`, 2 s).
    pub op_timeout: Duration,
    /// Longest the connect-time reads may take before the missing ones are requested
    /// again (`[de1] max_wait_for_ready_events`, 4 s).
    pub ready_wait: Duration,
    /// `[de1] api_stop_ignores_checks`.
    pub stop_ignores_checks: bool,
    /// A flush time set before the DE1 connected, pushed to FLUSH_TIMEOUT at connect
    /// (firmware ≥ 1283), in seconds; `Some(None)` = no limit.
    pub pending_flush_timeout: Option<Option<f64>>,
    pub firmware: FirmwareOptions,
}

impl Default for De1Options {
    fn default() -> Self {
        De1Options {
            op_timeout: Duration::from_secs(2),
            ready_wait: Duration::from_secs(4),
            stop_ignores_checks: false,
            pending_flush_timeout: None,
            firmware: FirmwareOptions::default(),
        }
    }
}

impl De1Options {
    /// The options the configuration asks for.
    pub fn from_config(config: &ipc_schema::Config) -> De1Options {
        let d = &config.de1;
        De1Options {
            op_timeout: ipc_schema::config::seconds(d.cuuid_lock_wait_timeout),
            ready_wait: ipc_schema::config::seconds(d.max_wait_for_ready_events),
            stop_ignores_checks: d.api_stop_ignores_checks,
            pending_flush_timeout: None,
            firmware: FirmwareOptions::default(),
        }
    }
}

/// A report from the DE1 that the controller acts on at once (sequencer, events).
/// Passing a state, sample or water-level report never allocates.
#[derive(Debug, Clone, PartialEq)]
pub enum De1Notice {
    /// A StateInfo notification or read, with its arrival time (epoch seconds).
    State { info: StateInfo, at: f64 },
    /// A ShotSample notification.
    ShotSample { sample: ShotSample, at: f64 },
    /// A WaterLevels notification or read.
    WaterLevels { levels: WaterLevels, at: f64 },
    /// An event about the DE1's link (availability), kept in order with the reports.
    Link(Box<ipc_schema::event::Event>),
}

/// Where a [`De1`] delivers what it observes.
#[derive(Clone)]
pub struct De1Context {
    pub clock: Clock,
    /// Events produced by the device layer itself (firmware progress, settings).
    pub bus: EventBus,
    /// Hot-path reports for the controller; dropped (and counted) if the queue is full.
    pub notices: Option<mpsc::Sender<De1Notice>>,
    /// The DE1 is the built-in simulator.
    pub simulated: bool,
}

/// One MMR read waiting for its notifications.
struct PendingMmr {
    asm: MmrReassembler,
    done: Option<oneshot::Sender<Vec<u8>>>,
}

/// One calibration read waiting for its value report.
struct PendingCal {
    request: Calibration,
    done: Option<oneshot::Sender<Calibration>>,
}

pub(crate) struct Inner {
    peripheral: Arc<dyn Peripheral>,
    address: Address,
    name: Option<String>,
    ctx: De1Context,
    options: De1Options,
    mirror: Mutex<Mirror>,
    state_tx: watch::Sender<Option<StateInfo>>,
    ready: AtomicBool,
    /// Serialises GATT operations.
    op_lock: tokio::sync::Mutex<()>,
    /// One MMR read at a time, so responses are never ambiguous.
    mmr_lock: tokio::sync::Mutex<()>,
    pending_mmr: Mutex<Option<PendingMmr>>,
    cal_lock: tokio::sync::Mutex<()>,
    pending_cal: Mutex<Option<PendingCal>>,
    /// FWMapRequest notifications go here while a firmware upload runs.
    fw_notes: Mutex<Option<mpsc::UnboundedSender<FWMapRequest>>>,
    /// One profile upload at a time.
    profile_lock: tokio::sync::Mutex<()>,
    pub(crate) firmware: firmware::FirmwareSlot,
    dropped_notices: AtomicU64,
    bad_packets: AtomicU64,
    /// Goes down once the link is down *and* every notification received before has
    /// been handed on, so that "gone" is never reported ahead of the last report.
    pump_link: ble::Link,
}

/// A connected DE1; cheap to clone.
#[derive(Clone)]
pub struct De1 {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for De1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("De1")
            .field("address", &self.inner.address)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

pub(crate) fn uuid(c: Characteristic) -> Uuid {
    Uuid(c.uuid())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The characteristics pyDE1 subscribes to at connect (de1-behaviour.md §12.1).
pub const SUBSCRIBED: [Characteristic; 13] = [
    Characteristic::Versions,
    Characteristic::RequestedState,
    Characteristic::SetTime,
    Characteristic::ReadFromMMR,
    Characteristic::WriteToMMR,
    Characteristic::FWMapRequest,
    Characteristic::ShotSettings,
    Characteristic::HeaderWrite,
    Characteristic::FrameWrite,
    Characteristic::Calibration,
    Characteristic::ShotSample,
    Characteristic::StateInfo,
    Characteristic::WaterLevels,
];

/// Subscriptions without which the controller cannot work.
const ESSENTIAL: [Characteristic; 4] = [
    Characteristic::ReadFromMMR,
    Characteristic::ShotSample,
    Characteristic::StateInfo,
    Characteristic::WaterLevels,
];

impl De1 {
    /// Takes over a freshly connected peripheral: subscribes to notifications, runs the
    /// connect-time sequence, and returns the ready DE1.
    pub async fn start(
        peripheral: Arc<dyn Peripheral>,
        ctx: De1Context,
        options: De1Options,
    ) -> Result<De1, De1Error> {
        let de1 = De1::attach(peripheral, ctx, options).await?;
        connect::run(&de1).await?;
        de1.inner.ready.store(true, Ordering::SeqCst);
        Ok(de1)
    }

    /// Subscribes and starts the notification pump, without the connect-time sequence.
    async fn attach(
        peripheral: Arc<dyn Peripheral>,
        ctx: De1Context,
        options: De1Options,
    ) -> Result<De1, De1Error> {
        let address = peripheral.address().clone();
        let name = peripheral.name();
        let inner = Arc::new(Inner {
            peripheral,
            address,
            name,
            ctx,
            options,
            mirror: Mutex::new(Mirror::default()),
            state_tx: watch::Sender::new(None),
            ready: AtomicBool::new(false),
            op_lock: tokio::sync::Mutex::new(()),
            mmr_lock: tokio::sync::Mutex::new(()),
            pending_mmr: Mutex::new(None),
            cal_lock: tokio::sync::Mutex::new(()),
            pending_cal: Mutex::new(None),
            fw_notes: Mutex::new(None),
            profile_lock: tokio::sync::Mutex::new(()),
            firmware: firmware::FirmwareSlot::default(),
            dropped_notices: AtomicU64::new(0),
            bad_packets: AtomicU64::new(0),
            pump_link: ble::Link::new(),
        });
        let de1 = De1 { inner };
        let streams = de1.subscribe_all().await?;
        let pump = de1.clone();
        tokio::spawn(async move { pump.pump(streams).await });
        Ok(de1)
    }

    /// Enables notifications on [`SUBSCRIBED`], concurrently.
    async fn subscribe_all(&self) -> Result<Vec<TaggedStream>, De1Error> {
        let t = self.inner.options.op_timeout;
        let attempts = SUBSCRIBED.iter().map(|&c| async move {
            let r = tokio::time::timeout(t, self.inner.peripheral.subscribe(uuid(c))).await;
            (c, r)
        });
        let mut streams = Vec::with_capacity(SUBSCRIBED.len());
        for (c, r) in futures::future::join_all(attempts).await {
            let err = match r {
                Ok(Ok(s)) => {
                    streams.push(s.map(move |n| (c, n)).boxed());
                    continue;
                }
                Ok(Err(e)) => De1Error::Ble(e),
                Err(_) => De1Error::Timeout {
                    what: format!("enabling {c} notifications"),
                    after: t,
                },
            };
            if ESSENTIAL.contains(&c) {
                return Err(err);
            }
            log::warn!(target: LOG, "cannot enable {c} notifications: {err}");
        }
        Ok(streams)
    }

    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// The advertised name, if the backend knows it.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// True for the built-in simulator.
    pub fn is_simulated(&self) -> bool {
        self.inner.ctx.simulated
    }

    /// Connected and the connect-time sequence finished.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) && !self.inner.peripheral.link().is_down()
    }

    /// Resolves when the link has dropped and every notification received before the
    /// drop has been handed on.
    pub fn link(&self) -> LinkWatch {
        self.inner.pump_link.watch()
    }

    /// A copy of everything read so far.
    pub fn mirror(&self) -> Mirror {
        lock(&self.inner.mirror).clone()
    }

    /// Reads the mirror in place (keep the closure short: it holds a lock).
    pub fn with_mirror<R>(&self, f: impl FnOnce(&Mirror) -> R) -> R {
        f(&lock(&self.inner.mirror))
    }

    fn update_mirror<R>(&self, f: impl FnOnce(&mut Mirror) -> R) -> R {
        f(&mut lock(&self.inner.mirror))
    }

    /// The last reported state.
    pub fn state(&self) -> Option<StateInfo> {
        *self.inner.state_tx.borrow()
    }

    /// Follows every state report.
    pub fn watch_state(&self) -> watch::Receiver<Option<StateInfo>> {
        self.inner.state_tx.subscribe()
    }

    /// Notices dropped because the controller's queue was full, and packets that did
    /// not decode.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.inner.dropped_notices.load(Ordering::Relaxed),
            self.inner.bad_packets.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn clock(&self) -> Clock {
        self.inner.ctx.clock
    }

    pub(crate) fn bus(&self) -> &EventBus {
        &self.inner.ctx.bus
    }

    pub(crate) fn options(&self) -> &De1Options {
        &self.inner.options
    }

    /// Fails unless the DE1 is connected and ready.
    pub fn ensure_ready(&self) -> Result<(), De1Error> {
        if let Some(reason) = self.inner.peripheral.link().reason() {
            return Err(De1Error::NotConnected(Some(reason)));
        }
        if !self.inner.ready.load(Ordering::SeqCst) {
            return Err(De1Error::NotReady);
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        self.inner.ready.store(false, Ordering::SeqCst);
        let t = self.inner.options.op_timeout;
        match tokio::time::timeout(t, self.inner.peripheral.disconnect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!(target: LOG, "disconnect: {e}"),
            Err(_) => log::warn!(target: LOG, "disconnect did not finish within {t:?}"),
        }
    }

    // ---------------------------------------------------------------- GATT operations

    fn link_error(&self) -> Option<De1Error> {
        self.inner
            .peripheral
            .link()
            .reason()
            .map(|r| De1Error::NotConnected(Some(r)))
    }

    /// An acknowledged write, serialised with every other GATT operation.
    pub(crate) async fn write(&self, c: Characteristic, value: &[u8]) -> Result<(), De1Error> {
        if let Some(e) = self.link_error() {
            return Err(e);
        }
        let t = self.inner.options.op_timeout;
        let op = async {
            let _g = self.inner.op_lock.lock().await;
            self.inner
                .peripheral
                .write(uuid(c), value, WriteKind::WithResponse)
                .await
        };
        match tokio::time::timeout(t, op).await {
            Ok(r) => r.map_err(De1Error::Ble),
            Err(_) => Err(De1Error::Timeout {
                what: format!("{c} write"),
                after: t,
            }),
        }
    }

    /// A GATT read, serialised with every other GATT operation.
    pub(crate) async fn read(&self, c: Characteristic) -> Result<Vec<u8>, De1Error> {
        if let Some(e) = self.link_error() {
            return Err(e);
        }
        let t = self.inner.options.op_timeout;
        let op = async {
            let _g = self.inner.op_lock.lock().await;
            self.inner.peripheral.read(uuid(c)).await
        };
        match tokio::time::timeout(t, op).await {
            Ok(r) => r.map_err(De1Error::Ble),
            Err(_) => Err(De1Error::Timeout {
                what: format!("{c} read"),
                after: t,
            }),
        }
    }

    /// Writes RequestedState. The outcome arrives as a StateInfo notification.
    pub async fn write_requested_state(&self, state: MachineState) -> Result<(), De1Error> {
        log::info!(target: LOG, "requesting {state}");
        self.write(
            Characteristic::RequestedState,
            &RequestedState::new(state).encode(),
        )
        .await
    }

    /// Reads StateInfo and records it like a notification.
    pub async fn read_state(&self) -> Result<StateInfo, De1Error> {
        let bytes = self.read(Characteristic::StateInfo).await?;
        let info = StateInfo::decode(&bytes).map_err(|e| De1Error::InvalidValue(e.to_string()))?;
        self.on_state(info, self.clock().now());
        Ok(info)
    }

    /// Reads a fixed-layout characteristic and records it in the mirror.
    pub(crate) async fn read_into_mirror(&self, c: Characteristic) -> Result<(), De1Error> {
        let bytes = self.read(c).await?;
        let now = self.clock().now();
        if !self.record(c, &bytes, now) {
            return Err(De1Error::InvalidValue(format!(
                "{c}: cannot decode {} bytes read",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Reads `request` from the MMR and returns the bytes. The words also land in the
    /// mirror (the pump decodes every register it sees). On timeout the error lists
    /// what is missing.
    pub(crate) async fn read_mmr(
        &self,
        request: ReadFromMMRRequest,
        wait: Duration,
    ) -> Result<Vec<u8>, MmrReadError> {
        let _g = self.inner.mmr_lock.lock().await;
        let (tx, rx) = oneshot::channel();
        *lock(&self.inner.pending_mmr) = Some(PendingMmr {
            asm: MmrReassembler::new(request),
            done: Some(tx),
        });
        let sent = self
            .write(Characteristic::ReadFromMMR, &request.encode())
            .await;
        let result = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(data)) => Ok(data),
                Ok(Err(_)) => Err(self.link_error().unwrap_or(De1Error::NotConnected(None))),
                Err(_) => Err(De1Error::Timeout {
                    what: format!("MMR read at {:#08x}", request.address()),
                    after: wait,
                }),
            },
        };
        let pending = lock(&self.inner.pending_mmr).take();
        result.map_err(|error| MmrReadError {
            missing: pending
                .map(|p| p.asm.missing_addresses().collect())
                .unwrap_or_default(),
            error,
        })
    }

    /// Reads one register now (and records it).
    pub async fn read_register(&self, r: MmrRegister) -> Result<MmrValue, De1Error> {
        if !r.info().readable {
            return Err(De1Error::InvalidValue(format!("{r} is not readable")));
        }
        let build = self.with_mirror(|m| m.firmware_build());
        if !self.with_mirror(|m| m.features()).has_register(r) {
            return Err(firmware_too_old(r, build));
        }
        let t = self.inner.options.op_timeout;
        let bytes = self
            .read_mmr(r.read_request(), t)
            .await
            .map_err(|e| e.error)?;
        let word = bytes.get(..4).ok_or_else(|| {
            De1Error::InvalidValue(format!("{r}: short MMR answer ({} bytes)", bytes.len()))
        })?;
        r.decode_value(word)
            .map_err(|e| De1Error::InvalidValue(e.to_string()))
    }

    /// One calibration read (WriteKey 1, so the echo is not mistaken for a value).
    pub(crate) async fn read_calibration(
        &self,
        target: CalibrationTarget,
        factory: bool,
    ) -> Result<f64, De1Error> {
        let _g = self.inner.cal_lock.lock().await;
        let request = Calibration::read(target.to_packet(), factory);
        let (tx, rx) = oneshot::channel();
        *lock(&self.inner.pending_cal) = Some(PendingCal {
            request,
            done: Some(tx),
        });
        let t = self.inner.options.op_timeout;
        let result = async {
            self.write(Characteristic::Calibration, &request.encode())
                .await?;
            match tokio::time::timeout(t, rx).await {
                Ok(Ok(report)) => report.calibration_value().ok_or_else(|| {
                    De1Error::InvalidValue(format!("calibration {target:?}: no value reported"))
                }),
                Ok(Err(_)) => Err(self.link_error().unwrap_or(De1Error::NotConnected(None))),
                Err(_) => Err(De1Error::Timeout {
                    what: format!("calibration read {target:?}"),
                    after: t,
                }),
            }
        }
        .await;
        lock(&self.inner.pending_cal).take();
        let value = result?;
        let now = self.clock().now();
        self.update_mirror(|m| {
            m.calibration
                .insert((target, factory), Stamped::new(value, now))
        });
        Ok(value)
    }

    // ------------------------------------------------------------- notification pump

    async fn pump(self, streams: Vec<TaggedStream>) {
        use futures::FutureExt;
        let mut all = futures::stream::select_all(streams);
        let link = self.inner.peripheral.link();
        let reason = loop {
            tokio::select! {
                biased;
                n = all.next() => match n {
                    Some((c, n)) => {
                        let at = self.clock().epoch(n.at);
                        self.on_notification(c, &n.value, at);
                    }
                    None => break link.reason().unwrap_or_else(|| "notifications ended".into()),
                },
                reason = link.down() => {
                    // Hand on what arrived before the drop, then stop.
                    while let Some(Some((c, n))) = all.next().now_or_never() {
                        let at = self.clock().epoch(n.at);
                        self.on_notification(c, &n.value, at);
                    }
                    break reason;
                }
            }
        };
        log::debug!(target: LOG, "notifications ended: {reason}");
        self.inner.ready.store(false, Ordering::SeqCst);
        // Wake anyone waiting for an answer that cannot come now.
        lock(&self.inner.pending_mmr).take();
        lock(&self.inner.pending_cal).take();
        lock(&self.inner.fw_notes).take();
        self.inner.pump_link.set_down(reason);
    }

    /// Decodes one notification; never panics on malformed bytes.
    fn on_notification(&self, c: Characteristic, value: &[u8], at: f64) {
        match c {
            Characteristic::ReadFromMMR => self.on_mmr(value, at),
            Characteristic::Calibration => self.on_calibration(value),
            Characteristic::FWMapRequest => match FWMapRequest::decode(value) {
                Ok(r) => {
                    if let Some(tx) = lock(&self.inner.fw_notes).as_ref() {
                        let _ = tx.send(r);
                    } else {
                        log::debug!(target: LOG, "FWMapRequest notification outside an upload: {r:?}");
                    }
                }
                Err(e) => self.bad(c, &e),
            },
            Characteristic::WriteToMMR
            | Characteristic::HeaderWrite
            | Characteristic::FrameWrite
            | Characteristic::RequestedState => {
                log::trace!(target: LOG, "{c} notification {}", hex::encode(value));
            }
            _ => {
                if !self.record(c, value, at) {
                    self.inner.bad_packets.fetch_add(1, Ordering::Relaxed);
                    log::warn!(target: LOG, "undecodable {c} notification: {}", hex::encode(value));
                }
            }
        }
    }

    fn bad(&self, c: Characteristic, e: &dyn std::fmt::Display) {
        self.inner.bad_packets.fetch_add(1, Ordering::Relaxed);
        log::warn!(target: LOG, "bad {c} notification: {e}");
    }

    fn notice(&self, n: De1Notice) {
        if let Some(tx) = &self.inner.ctx.notices {
            if tx.try_send(n).is_err() {
                let dropped = self.inner.dropped_notices.fetch_add(1, Ordering::Relaxed);
                if dropped.is_power_of_two() {
                    log::warn!(target: LOG, "controller queue full: {} DE1 reports dropped", dropped + 1);
                }
            }
        }
    }

    fn on_state(&self, info: StateInfo, at: f64) {
        if info.is_error() {
            log::error!(target: LOG, "DE1 reports an error: {}, {}", info.state, info.substate);
        }
        self.update_mirror(|m| m.set_state(info, at));
        self.inner.state_tx.send_replace(Some(info));
        self.notice(De1Notice::State { info, at });
    }

    /// Decodes a fixed-layout value into the mirror; false if it does not decode.
    fn record(&self, c: Characteristic, value: &[u8], at: f64) -> bool {
        match c {
            Characteristic::StateInfo => match StateInfo::decode(value) {
                Ok(info) => {
                    self.on_state(info, at);
                    true
                }
                Err(_) => false,
            },
            Characteristic::ShotSample => match ShotSample::decode(value) {
                Ok(sample) => {
                    self.update_mirror(|m| m.shot_sample = Some(Stamped::new(sample, at)));
                    self.notice(De1Notice::ShotSample { sample, at });
                    true
                }
                Err(_) => false,
            },
            Characteristic::WaterLevels => match WaterLevels::decode(value) {
                Ok(levels) => {
                    self.update_mirror(|m| m.water_levels = Some(Stamped::new(levels, at)));
                    self.notice(De1Notice::WaterLevels { levels, at });
                    true
                }
                Err(_) => false,
            },
            Characteristic::ShotSettings => match ShotSettings::decode(value) {
                Ok(s) => {
                    self.update_mirror(|m| m.shot_settings = Some(Stamped::new(s, at)));
                    true
                }
                Err(_) => false,
            },
            Characteristic::Versions => match Versions::decode(value) {
                Ok(v) => {
                    self.update_mirror(|m| m.versions = Some(Stamped::new(v, at)));
                    true
                }
                Err(_) => false,
            },
            Characteristic::SetTime => match SetTime::decode(value) {
                Ok(t) => {
                    self.update_mirror(|m| m.set_time = Some(Stamped::new(t, at)));
                    true
                }
                Err(_) => false,
            },
            // Nothing to decode; not an error.
            _ => true,
        }
    }

    fn on_mmr(&self, value: &[u8], at: f64) {
        let response = match ReadFromMMRResponse::decode(value) {
            Ok(r) => r,
            Err(e) => return self.bad(Characteristic::ReadFromMMR, &e),
        };
        // Every register seen goes into the mirror.
        self.update_mirror(|m| {
            for (address, word) in response.words() {
                if let Some(r) = MmrRegister::lookup_by_address(address) {
                    if r.info().width == 4 {
                        if let Ok(v) = r.decode_value(&word) {
                            m.set_register(r, v, at);
                        }
                    }
                }
            }
        });
        let mut slot = lock(&self.inner.pending_mmr);
        let Some(pending) = slot.as_mut() else {
            log::debug!(target: LOG, "unsolicited MMR notification at {:#08x}", response.address());
            return;
        };
        if !pending.asm.covers(&response) {
            log::debug!(target: LOG, "MMR notification at {:#08x} outside the pending read", response.address());
            return;
        }
        match pending.asm.push(&response) {
            Ok(true) => {
                if let (Some(done), Some(data)) = (pending.done.take(), pending.asm.data()) {
                    let _ = done.send(data.to_vec());
                }
            }
            Ok(false) => {}
            Err(e) => self.bad(Characteristic::ReadFromMMR, &e),
        }
    }

    fn on_calibration(&self, value: &[u8]) {
        let report = match Calibration::decode(value) {
            Ok(r) => r,
            Err(e) => return self.bad(Characteristic::Calibration, &e),
        };
        if !report.is_value_report() {
            // An echo of a request.
            return;
        }
        let mut slot = lock(&self.inner.pending_cal);
        if let Some(p) = slot.as_mut() {
            let wanted = p.request;
            if report.command == wanted.command && report.target == wanted.target {
                if let Some(done) = p.done.take() {
                    let _ = done.send(report);
                }
            } else if report.target == de1_protocol::packets::CalTarget::Error {
                log::warn!(target: LOG, "the DE1 refused calibration request {wanted:?}");
            }
        }
    }

    /// Starts routing FWMapRequest notifications to a firmware upload.
    pub(crate) fn take_fw_notes(&self) -> mpsc::UnboundedReceiver<FWMapRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.inner.fw_notes) = Some(tx);
        rx
    }

    pub(crate) fn release_fw_notes(&self) {
        lock(&self.inner.fw_notes).take();
    }

    pub(crate) async fn profile_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.profile_lock.lock().await
    }

    pub(crate) fn set_profile_state(&self, p: ProfileState) {
        self.update_mirror(|m| m.profile = p);
    }
}

/// An MMR read that did not complete.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MmrReadError {
    /// Word addresses not received.
    pub missing: Vec<u32>,
    pub error: De1Error,
}

pub(crate) fn firmware_too_old(r: MmrRegister, build: Option<u32>) -> De1Error {
    match (r.info().min_firmware, build) {
        (Some(min), Some(build)) => De1Error::FirmwareTooOld {
            what: r.name(),
            min,
            build,
        },
        _ => De1Error::InvalidValue(format!("{r} is not available (firmware build not known)")),
    }
}

/// One characteristic's notifications, tagged with it so that all can be merged.
type TaggedStream = futures::stream::BoxStream<'static, (Characteristic, Notification)>;

/// The DE1 as a [`crate::link::ManagedDevice`]: a fresh connection runs
/// [`De1::start`] with the current options.
pub struct De1Role {
    pub ctx: De1Context,
    /// Read at each connection, so changes (e.g. a flush time set while disconnected)
    /// apply to the next one.
    pub options: Arc<Mutex<De1Options>>,
}

/// pyDE1's name for a DE1 without an advertised name: `DE1_<last 8 characters of the
/// address>`, or `DE1_None`.
pub fn placeholder_name(address: Option<&Address>) -> String {
    match address {
        Some(a) => {
            let s = a.as_str();
            let tail: String = s
                .chars()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("DE1_{tail}")
        }
        None => "DE1_None".to_owned(),
    }
}

impl crate::link::ManagedDevice for De1Role {
    type Handle = De1;

    fn role(&self) -> ipc_schema::event::DeviceRole {
        ipc_schema::event::DeviceRole::De1
    }

    fn label(&self) -> &'static str {
        "DE1"
    }

    fn sender(&self, _advertised: Option<&str>) -> ipc_schema::event::Sender {
        ipc_schema::event::Sender::De1
    }

    fn display_name(&self, address: Option<&Address>, advertised: Option<&str>) -> String {
        match advertised {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => placeholder_name(address),
        }
    }

    fn matches(&self, adv: &ble::Advertisement) -> bool {
        adv.name.as_deref().is_some_and(|n| n.starts_with("DE1"))
    }

    fn start(
        &self,
        peripheral: Arc<dyn Peripheral>,
    ) -> futures::future::BoxFuture<'static, Result<De1, String>> {
        let ctx = self.ctx.clone();
        let options = lock(&self.options).clone();
        Box::pin(async move {
            De1::start(peripheral, ctx, options)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn link(handle: &De1) -> LinkWatch {
        handle.link()
    }

    fn disconnect(handle: &De1) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(handle.disconnect())
    }
}

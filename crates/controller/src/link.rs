//! Device link management: which device to use, connecting, reconnecting with backoff,
//! and truthful availability reports (pyde1-runtime.md §8).
//!
//! A [`LinkManager`] owns one device role (the DE1, or a scale). It is driven by
//! [`LinkCommand`]s and reports every change as a [`LinkStatus`] (watchable) and as
//! `DeviceAvailability` + `ConnectivityChange` events:
//!
//! ```text
//! initial ─capture─► capturing ─BLE up─► captured ─initialised─► ready
//!                        ▲                                         │ link dropped
//!                        └──── not ready ◄────────────────────────┘ (reconnect with backoff)
//! ready/… ─release─► releasing ─► released
//! ```
//!
//! * Find-first-and-use: [`LinkCommand::Seek`] scans until a device of the role
//!   advertises, then uses it ([`LinkCommand::Scan`] scans once).
//! * An unexpected drop reconnects to the same address: the first retry at once, then
//!   after a backoff that doubles up to [`LinkOptions::backoff_max`] (up to
//!   [`LinkOptions::backoff_max_late`] after [`LinkOptions::late_after`] of failures).
//! * Without a Bluetooth adapter every request fails at once with a clear error; nothing
//!   retries and nothing hangs.
//!
//! The device-specific part (what to do with a fresh connection, how the role is named
//! and found) is a [`ManagedDevice`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ble::{Address, Advertisement, LinkWatch, Peripheral, Transport};
use futures::future::BoxFuture;
use futures::StreamExt;
use ipc_schema::event::{
    AvailabilityState, ConnectivityChange, ConnectivityState, DeviceAvailability, DeviceRole,
    Event, ScaleChange, Sender, Stamp,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::clock::Clock;

const LOG: &str = "controller::link";

/// The device-specific side of a link.
pub trait ManagedDevice: Send + Sync + 'static {
    /// A connected, initialised device.
    type Handle: Clone + Send + Sync + 'static;

    /// The role (`de1`, `scale` …) reported in events.
    fn role(&self) -> DeviceRole;

    /// The role in log lines and messages (`DE1`, `scale`).
    fn label(&self) -> &'static str;

    /// The `sender` of availability events (scales are named by their class, which
    /// follows from the advertised name).
    fn sender(&self, advertised: Option<&str>) -> Sender;

    /// The name reported for the device: the advertised one when known, else a
    /// placeholder made from the address (pyDE1: `DE1_<last 8 chars>`, `DE1_None`).
    fn display_name(&self, address: Option<&Address>, advertised: Option<&str>) -> String;

    /// Whether an advertisement is a device of this role.
    fn matches(&self, adv: &Advertisement) -> bool;

    /// Initialises a fresh connection (the DE1's connect-time sequence).
    fn start(
        &self,
        peripheral: Arc<dyn Peripheral>,
    ) -> BoxFuture<'static, Result<Self::Handle, String>>;

    /// The handle's link signal.
    fn link(handle: &Self::Handle) -> LinkWatch;

    /// Closes the handle's connection.
    fn disconnect(handle: &Self::Handle) -> BoxFuture<'_, ()>;
}

/// Timing of connections and retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkOptions {
    /// Longest a connection attempt (BLE connect only) may take.
    pub connect_timeout: Duration,
    /// Longest the initialisation after connecting may take.
    pub start_timeout: Duration,
    /// Duration of one scan.
    pub scan_timeout: Duration,
    /// First wait after a failed attempt (the first retry after a drop is immediate).
    pub backoff_first: Duration,
    /// Longest wait between attempts during the first [`LinkOptions::late_after`].
    pub backoff_max: Duration,
    /// Longest wait between attempts after that.
    pub backoff_max_late: Duration,
    pub late_after: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(20),
            scan_timeout: Duration::from_secs(5),
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            backoff_max_late: Duration::from_secs(60),
            late_after: Duration::from_secs(1800),
        }
    }
}

impl LinkOptions {
    /// The `[bluetooth]` timeouts of the configuration.
    pub fn from_config(config: &ipc_schema::Config) -> LinkOptions {
        let b = &config.bluetooth;
        LinkOptions {
            connect_timeout: ipc_schema::config::seconds(b.connect_timeout),
            scan_timeout: ipc_schema::config::seconds(b.scan_timeout),
            ..LinkOptions::default()
        }
    }
}

/// Why a link request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Capture without an address (409).
    #[error("no {0} address set")]
    NoAddress(&'static str),
    /// No Bluetooth at all (the message says why).
    #[error("{0}")]
    NoTransport(String),
    /// A scan found nothing.
    #[error("no {label} found within {after:?}")]
    NotFound {
        label: &'static str,
        after: Duration,
    },
    /// A scan could not run.
    #[error("scan failed: {0}")]
    Scan(String),
    /// The manager task has stopped.
    #[error("{0} link manager stopped")]
    Stopped(&'static str),
}

/// What the manager is asked to do.
#[derive(Debug)]
pub enum LinkCommand {
    /// Use this address (or forget the device); releases the current connection, does
    /// not capture (pyDE1 2.0 semantics).
    Assign(Option<Address>),
    /// Connect to the assigned address and keep reconnecting.
    Capture,
    /// Disconnect and stay disconnected.
    Release,
    /// Scan once; use and capture the first device found. No action if one is connected.
    Scan(oneshot::Sender<Result<Address, LinkError>>),
    /// Scan until a device is found, then use and capture it (find-first-and-use).
    Seek,
}

/// The manager's view of its device.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatus {
    pub availability: AvailabilityState,
    pub address: Option<Address>,
    /// Advertised name, when the address came from a scan or a connection.
    pub advertised_name: Option<String>,
    /// The name reported in events and documents.
    pub name: String,
    /// The device is the built-in simulator.
    pub simulated: bool,
    /// The last connection error, cleared when the device becomes ready.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last availability event sent.
    pub last_event: Option<DeviceAvailability>,
}

impl LinkStatus {
    pub fn is_ready(&self) -> bool {
        self.availability == AvailabilityState::Ready
    }
}

/// Handle to a running [`LinkManager`]; cheap to clone.
#[derive(Clone)]
pub struct LinkHandle<D: ManagedDevice> {
    label: &'static str,
    commands: mpsc::UnboundedSender<LinkCommand>,
    status: watch::Receiver<LinkStatus>,
    current: watch::Receiver<Option<D::Handle>>,
}

impl<D: ManagedDevice> fmt::Debug for LinkHandle<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHandle")
            .field("label", &self.label)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl<D: ManagedDevice> LinkHandle<D> {
    /// Sends a command (the manager carries it out in order).
    pub fn send(&self, command: LinkCommand) -> Result<(), LinkError> {
        self.commands
            .send(command)
            .map_err(|_| LinkError::Stopped(self.label))
    }

    /// Captures the assigned device; fails at once without an address.
    pub fn capture(&self) -> Result<(), LinkError> {
        let s = self.status();
        if s.address.is_none() {
            return Err(LinkError::NoAddress(self.label));
        }
        self.send(LinkCommand::Capture)
    }

    pub fn release(&self) -> Result<(), LinkError> {
        self.send(LinkCommand::Release)
    }

    pub fn assign(&self, address: Option<Address>) -> Result<(), LinkError> {
        self.send(LinkCommand::Assign(address))
    }

    /// Scans once and captures the first device found (returns its address).
    pub async fn scan(&self) -> Result<Address, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.send(LinkCommand::Scan(tx))?;
        rx.await.map_err(|_| LinkError::Stopped(self.label))?
    }

    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// Follows every status change.
    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// The connected, ready device, if any.
    pub fn current(&self) -> Option<D::Handle> {
        self.current.borrow().clone()
    }

    /// Follows the connected device.
    pub fn watch_current(&self) -> watch::Receiver<Option<D::Handle>> {
        self.current.clone()
    }

    /// Waits until the status satisfies `pred` (false on timeout).
    pub async fn wait_for(&self, timeout: Duration, pred: impl FnMut(&LinkStatus) -> bool) -> bool {
        let mut rx = self.status.clone();
        let ok = matches!(
            tokio::time::timeout(timeout, rx.wait_for(pred)).await,
            Ok(Ok(_))
        );
        ok
    }
}

/// What the manager tries to achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Release,
    Capture,
    Seek,
}

/// Where a link manager sends its availability events. The controller routes them
/// through the same queue as the device's reports, so that subscribers see a device's
/// last report before the event that says it is gone.
pub type Publish = Arc<dyn Fn(Event) + Send + Sync>;

/// Called with the address whenever a device becomes ready (to remember it).
pub type OnReady = Box<dyn Fn(&Address) + Send + Sync>;

/// Runs one device role's link.
pub struct LinkManager<D: ManagedDevice> {
    device: Arc<D>,
    transport: Result<Arc<dyn Transport>, String>,
    options: LinkOptions,
    publish: Publish,
    clock: Clock,
    status: watch::Sender<LinkStatus>,
    current: watch::Sender<Option<D::Handle>>,
    commands: mpsc::UnboundedReceiver<LinkCommand>,
    /// Called with the address whenever a device becomes ready (remember it).
    on_ready: Option<OnReady>,
    want: Want,
    scan_waiters: Vec<oneshot::Sender<Result<Address, LinkError>>>,
}

impl<D: ManagedDevice> LinkManager<D> {
    /// Starts the manager task. `transport` is `Err(why)` when there is no Bluetooth.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        device: D,
        transport: Result<Arc<dyn Transport>, String>,
        options: LinkOptions,
        publish: Publish,
        clock: Clock,
        simulated: bool,
        on_ready: Option<OnReady>,
    ) -> LinkHandle<D> {
        let device = Arc::new(device);
        let label = device.label();
        let name = device.display_name(None, None);
        let (status_tx, status_rx) = watch::channel(LinkStatus {
            availability: AvailabilityState::Initial,
            address: None,
            advertised_name: None,
            name,
            simulated,
            last_error: transport.as_ref().err().cloned(),
            failures: 0,
            last_event: None,
        });
        let (current_tx, current_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let manager = LinkManager {
            device,
            transport,
            options,
            publish,
            clock,
            status: status_tx,
            current: current_tx,
            commands: cmd_rx,
            on_ready,
            want: Want::Release,
            scan_waiters: Vec::new(),
        };
        tokio::spawn(manager.run());
        LinkHandle {
            label,
            commands: cmd_tx,
            status: status_rx,
            current: current_rx,
        }
    }

    fn label(&self) -> &'static str {
        self.device.label()
    }

    /// Updates the status and, if the availability changed, publishes the events.
    fn report(&self, availability: AvailabilityState) {
        let now = self.clock.now();
        let device = &self.device;
        let mut event = None;
        self.status.send_modify(|s| {
            s.name = device.display_name(s.address.as_ref(), s.advertised_name.as_deref());
            if s.availability != availability || s.last_event.is_none() {
                s.availability = availability;
                let e = DeviceAvailability {
                    stamp: Stamp::at(now),
                    sender: device.sender(s.advertised_name.as_deref()),
                    state: availability,
                    role: device.role(),
                    id: s
                        .address
                        .as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    name: s.name.clone(),
                    simulated: s.simulated,
                };
                s.last_event = Some(e.clone());
                event = Some(e);
            }
        });
        if let Some(e) = event {
            log::info!(target: LOG, "{} {}: {:?}", self.label(), e.id, availability);
            let connectivity = ConnectivityState::from_availability(availability).map(|state| {
                ConnectivityChange {
                    stamp: e.stamp,
                    sender: e.sender,
                    state,
                    id: e.id.clone(),
                    name: e.name.clone(),
                }
            });
            // pyDE1 also reports every change of its scale object as a ScaleChange.
            let scale_change = (e.role == DeviceRole::Scale).then(|| ScaleChange {
                stamp: e.stamp,
                sender: e.sender,
                state: e.state,
                id: e.id.clone(),
                name: e.name.clone(),
            });
            (self.publish)(Event::DeviceAvailability(e));
            if let Some(c) = connectivity {
                (self.publish)(Event::ConnectivityChange(c));
            }
            if let Some(s) = scale_change {
                (self.publish)(Event::ScaleChange(s));
            }
        }
    }

    fn set_error(&self, error: Option<String>) {
        self.status.send_modify(|s| {
            if error.is_some() {
                s.failures += 1;
            } else {
                s.failures = 0;
            }
            s.last_error = error;
        });
    }

    fn address(&self) -> Option<Address> {
        self.status.borrow().address.clone()
    }

    fn answer_scans(&mut self, result: Result<Address, LinkError>) {
        for w in self.scan_waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    /// Applies a command; returns true if the current connection must be closed.
    fn apply(&mut self, cmd: LinkCommand) -> bool {
        match cmd {
            LinkCommand::Assign(address) => {
                let same = address.is_some() && address == self.address();
                self.status.send_modify(|s| {
                    if !same {
                        s.advertised_name = None;
                    }
                    s.address = address.clone();
                });
                self.want = Want::Release;
                self.answer_scans(Err(LinkError::Scan("superseded by an address".into())));
                true
            }
            LinkCommand::Capture => {
                if self.address().is_some() {
                    self.want = Want::Capture;
                }
                false
            }
            LinkCommand::Release => {
                self.want = Want::Release;
                self.answer_scans(Err(LinkError::Scan("released".into())));
                true
            }
            LinkCommand::Scan(reply) => {
                let ready = self.current.borrow().is_some();
                match (ready, self.address()) {
                    (true, Some(a)) => {
                        let _ = reply.send(Ok(a));
                    }
                    _ => {
                        self.scan_waiters.push(reply);
                        if self.want != Want::Seek {
                            self.want = Want::Seek;
                        }
                    }
                }
                false
            }
            LinkCommand::Seek => {
                if self.current.borrow().is_none() {
                    self.want = Want::Seek;
                }
                false
            }
        }
    }

    async fn next_command(&mut self) -> Option<LinkCommand> {
        self.commands.recv().await
    }

    /// Waits for `fut`, applying commands meanwhile; `None` if a command asks to drop
    /// what `fut` is doing (or the handle is gone).
    async fn interruptible<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => return Some(r),
                cmd = self.commands.recv() => match cmd {
                    Some(c) => {
                        let before = self.want;
                        if self.apply(c) || self.want != before {
                            return None;
                        }
                    }
                    None => return None,
                },
            }
        }
    }

    /// Sleeps, applying commands; false if interrupted.
    async fn pause(&mut self, d: Duration) -> bool {
        self.interruptible(tokio::time::sleep(d)).await.is_some()
    }

    async fn run(mut self) {
        let mut backoff = Duration::ZERO;
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.want {
                Want::Release => {
                    if self.status.borrow().availability != AvailabilityState::Initial {
                        self.report(AvailabilityState::Released);
                    }
                    backoff = Duration::ZERO;
                    failing_since = None;
                    match self.next_command().await {
                        Some(c) => {
                            self.apply(c);
                        }
                        None => return,
                    }
                }
                Want::Seek => {
                    let found = self.seek_once().await;
                    match found {
                        Some(Ok((address, name))) => {
                            self.status.send_modify(|s| {
                                s.address = Some(address.clone());
                                s.advertised_name = name;
                            });
                            self.answer_scans(Ok(address));
                            self.want = Want::Capture;
                            backoff = Duration::ZERO;
                        }
                        Some(Err(e)) => {
                            let fatal = matches!(e, LinkError::NoTransport(_));
                            if self.status.borrow().failures == 0 {
                                log::info!(target: LOG, "{e}; still looking");
                            }
                            self.set_error(Some(e.to_string()));
                            self.answer_scans(Err(e));
                            if fatal {
                                self.want = Want::Release;
                                continue;
                            }
                            backoff = self.next_backoff(backoff, &mut failing_since);
                            if !self.pause(backoff).await && self.commands.is_closed() {
                                return;
                            }
                        }
                        None => {
                            if self.commands.is_closed() {
                                return;
                            }
                        }
                    }
                }
                Want::Capture => {
                    let Some(address) = self.address() else {
                        self.want = Want::Release;
                        continue;
                    };
                    self.report(AvailabilityState::Capturing);
                    match self.connect_once(&address).await {
                        Some(Ok(handle)) => {
                            backoff = Duration::ZERO;
                            failing_since = None;
                            self.set_error(None);
                            if let Some(f) = &self.on_ready {
                                f(&address);
                            }
                            let dropped = self.hold(handle).await;
                            if dropped {
                                // Readiness is lost at once; reconnect right away.
                                self.report(AvailabilityState::NotReady);
                            }
                        }
                        Some(Err(e)) => {
                            // Loud once per outage, quiet while it lasts.
                            let first = self.status.borrow().failures == 0;
                            if first {
                                log::warn!(target: LOG, "{} {address}: {e}", self.label());
                            } else {
                                log::debug!(target: LOG, "{} {address}: {e}", self.label());
                            }
                            let fatal = self.transport.is_err();
                            self.set_error(Some(e));
                            if fatal {
                                self.want = Want::Release;
                                continue;
                            }
                            backoff = self.next_backoff(backoff, &mut failing_since);
                            log::debug!(target: LOG, "{} {address}: next attempt in {backoff:?}", self.label());
                            if !self.pause(backoff).await && self.commands.is_closed() {
                                return;
                            }
                        }
                        None => {
                            if self.commands.is_closed() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    fn next_backoff(&self, last: Duration, failing_since: &mut Option<Instant>) -> Duration {
        let since = *failing_since.get_or_insert_with(Instant::now);
        let cap = if since.elapsed() >= self.options.late_after {
            self.options.backoff_max_late
        } else {
            self.options.backoff_max
        };
        if last.is_zero() {
            self.options.backoff_first.min(cap)
        } else {
            (last * 2).min(cap)
        }
    }

    /// One scan; `None` if interrupted by a command.
    async fn seek_once(&mut self) -> Option<Result<(Address, Option<String>), LinkError>> {
        let transport = match &self.transport {
            Ok(t) => Arc::clone(t),
            Err(e) => return Some(Err(LinkError::NoTransport(e.clone()))),
        };
        let device = Arc::clone(&self.device);
        let duration = self.options.scan_timeout;
        let label = self.label();
        if self.status.borrow().failures == 0 {
            log::info!(target: LOG, "scanning for a {label}");
        } else {
            log::debug!(target: LOG, "scanning {duration:?} for a {label}");
        }
        let scan = async move {
            let mut stream = transport
                .scan(duration)
                .await
                .map_err(|e| LinkError::Scan(e.to_string()))?;
            while let Some(adv) = stream.next().await {
                if device.matches(&adv) {
                    return Ok((adv.address, adv.name));
                }
            }
            Err(LinkError::NotFound {
                label,
                after: duration,
            })
        };
        let r = self.interruptible(scan).await;
        if let Some(Ok((a, n))) = &r {
            log::info!(target: LOG, "found {label} {a} ({})", n.as_deref().unwrap_or("no name"));
        }
        r
    }

    /// Connects and initialises; `None` if interrupted by a command.
    async fn connect_once(&mut self, address: &Address) -> Option<Result<D::Handle, String>> {
        let transport = match &self.transport {
            Ok(t) => Arc::clone(t),
            Err(e) => return Some(Err(e.clone())),
        };
        let options = self.options;
        let label = self.label();
        let a = address.clone();
        let connect = async move {
            match tokio::time::timeout(options.connect_timeout, transport.connect(&a)).await {
                Ok(Ok(p)) => Ok(p),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "no connection within {:?}",
                    options.connect_timeout
                )),
            }
        };
        let peripheral = match self.interruptible(connect).await? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if let Some(name) = peripheral.name() {
            self.status
                .send_modify(|s| s.advertised_name = Some(name.clone()));
        }
        self.report(AvailabilityState::Captured);
        let start = self.device.start(Arc::clone(&peripheral));
        let started = async move {
            match tokio::time::timeout(options.start_timeout, start).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "{label} initialisation did not finish within {:?}",
                    options.start_timeout
                )),
            }
        };
        match self.interruptible(started).await {
            Some(Ok(h)) => Some(Ok(h)),
            Some(Err(e)) => {
                let _ = peripheral.disconnect().await;
                Some(Err(e))
            }
            None => {
                let _ = peripheral.disconnect().await;
                None
            }
        }
    }

    /// Serves a ready device until its link drops (true) or a command releases it
    /// (false).
    async fn hold(&mut self, handle: D::Handle) -> bool {
        let watch = D::link(&handle);
        self.current.send_replace(Some(handle.clone()));
        self.report(AvailabilityState::Ready);
        let dropped = loop {
            tokio::select! {
                reason = watch.down() => {
                    log::warn!(target: LOG, "{} link lost: {reason}", self.label());
                    self.set_error(Some(reason));
                    break true;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(c) => {
                        if self.apply(c) {
                            break false;
                        }
                    }
                    None => break false,
                },
            }
        };
        self.current.send_replace(None);
        if !dropped {
            self.report(AvailabilityState::Releasing);
            D::disconnect(&handle).await;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_errors_read_well() {
        assert_eq!(
            LinkError::NoAddress("DE1").to_string(),
            "no DE1 address set"
        );
        assert_eq!(
            LinkError::NotFound {
                label: "DE1",
                after: Duration::from_secs(5)
            }
            .to_string(),
            "no DE1 found within 5s"
        );
    }
}

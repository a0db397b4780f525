//! The simulator behind the `ble` traits: scanning, connections, GATT operations,
//! notification delivery and the transport-level faults.
//!
//! One background task advances the simulated world every mains half-cycle on tokio's clock
//! (drift-free: tick `k` happens at `origin + k / (2 × mains Hz)`), so under
//! `#[tokio::test(start_paused = true)]` a 30 s shot runs in milliseconds and in a
//! normal runtime the machine runs in real time. The task stops when the transport,
//! every peripheral handle and every [`crate::SimControl`] are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ble::{
    Address, Advertisement, AdvertisementStream, Error, ErrorKind, Link, LinkWatch, Notification,
    NotificationStream, Peripheral, Transport, Uuid, WriteKind,
};
use futures::future::BoxFuture;
use futures::stream::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::SimConfig;
use crate::world::{SimDevice, World};
use crate::GattError;

/// Per-device connection state and transport faults.
#[derive(Default)]
pub(crate) struct DeviceLink {
    pub link: Option<Arc<Link>>,
    pub generation: u64,
    pub subscribers: HashMap<Uuid, Vec<mpsc::UnboundedSender<Notification>>>,
    /// Notifications are not delivered (the link stays up).
    pub muted: bool,
    /// Extra time every write takes.
    pub write_delay: Duration,
    /// This many coming writes fail with a GATT error.
    pub failing_writes: u32,
    /// The device neither advertises nor accepts connections until then.
    pub unreachable_until: Option<Instant>,
}

pub(crate) struct Inner {
    pub world: World,
    pub de1: DeviceLink,
    pub scale: DeviceLink,
}

impl Inner {
    pub fn link_mut(&mut self, d: SimDevice) -> &mut DeviceLink {
        match d {
            SimDevice::De1 => &mut self.de1,
            SimDevice::Scale => &mut self.scale,
        }
    }

    fn link_ref(&self, d: SimDevice) -> &DeviceLink {
        match d {
            SimDevice::De1 => &self.de1,
            SimDevice::Scale => &self.scale,
        }
    }

    /// Deliver what the world has to notify, then carry out link drops it asked for.
    pub fn dispatch(&mut self) {
        let now = Instant::now();
        let outbox = std::mem::take(&mut self.world.outbox);
        for (dev, uuid, value) in outbox {
            let dl = self.link_mut(dev);
            if dl.muted || dl.link.as_ref().is_none_or(|l| l.is_down()) {
                continue;
            }
            if let Some(subs) = dl.subscribers.get_mut(&uuid) {
                subs.retain(|tx| {
                    tx.send(Notification {
                        value: value.clone(),
                        at: now,
                    })
                    .is_ok()
                });
            }
        }
        let drops = std::mem::take(&mut self.world.drops);
        for (dev, secs) in drops {
            self.drop_link(
                dev,
                "link lost (simulated fault)",
                Duration::from_secs_f64(secs),
            );
        }
    }

    /// Drop the device's link; it stays unreachable for `down_for`.
    pub fn drop_link(&mut self, dev: SimDevice, reason: &str, down_for: Duration) {
        let dl = self.link_mut(dev);
        if let Some(l) = dl.link.take() {
            l.set_down(reason);
        }
        dl.generation += 1;
        dl.subscribers.clear();
        if !down_for.is_zero() {
            dl.unreachable_until = Some(Instant::now() + down_for);
        }
    }
}

pub(crate) struct Hub {
    inner: Mutex<Inner>,
    cfg: SimConfig,
}

impl Hub {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // The world holds plain data; a panic elsewhere does not make it unusable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
}

/// The simulated radio: finds the simulated DE1 and scale and connects to them.
#[derive(Clone)]
pub struct SimTransport {
    pub(crate) hub: Arc<Hub>,
}

impl SimTransport {
    /// Build the world and start its clock. Must be called inside a tokio runtime.
    pub fn new(config: SimConfig) -> Self {
        let hub = Arc::new(Hub {
            inner: Mutex::new(Inner {
                world: World::new(config.clone()),
                de1: DeviceLink::default(),
                scale: DeviceLink::default(),
            }),
            cfg: config,
        });
        tokio::spawn(run_clock(Arc::downgrade(&hub)));
        Self { hub }
    }

    /// The handle for faults, physical actions and observation.
    pub fn control(&self) -> crate::SimControl {
        crate::SimControl {
            hub: Arc::clone(&self.hub),
        }
    }

    fn device_at(&self, address: &Address) -> Option<SimDevice> {
        let cfg = self.hub.config();
        if Address::new(&cfg.machine.address) == *address {
            return Some(SimDevice::De1);
        }
        match &cfg.scale {
            Some(s) if Address::new(&s.address) == *address => Some(SimDevice::Scale),
            _ => None,
        }
    }
}

async fn run_clock(hub: Weak<Hub>) {
    let (origin, hz) = match hub.upgrade() {
        Some(h) => (
            Instant::now(),
            u64::from(h.cfg.mains.half_cycles_per_second()),
        ),
        None => return,
    };
    let mut k: u64 = 0;
    loop {
        k += 1;
        let at = origin + Duration::from_nanos(k.saturating_mul(1_000_000_000) / hz);
        tokio::time::sleep_until(at).await;
        let Some(h) = hub.upgrade() else { return };
        let mut g = h.lock();
        g.world.tick();
        g.dispatch();
    }
}

fn reachable(dl: &DeviceLink) -> bool {
    dl.unreachable_until.is_none_or(|t| Instant::now() >= t)
}

impl Transport for SimTransport {
    fn scan(&self, duration: Duration) -> BoxFuture<'_, ble::Result<AdvertisementStream>> {
        let hub = Arc::clone(&self.hub);
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let end = Instant::now() + duration;
                let mut rssi_step: i16 = 0;
                loop {
                    let mut advs = Vec::new();
                    {
                        let g = hub.lock();
                        let cfg = hub.config();
                        if g.de1.link.is_none() && reachable(&g.de1) {
                            advs.push(Advertisement {
                                address: Address::new(&cfg.machine.address),
                                name: Some(cfg.machine.name.clone()),
                                rssi: Some(-58 - rssi_step),
                                services: vec![Uuid(de1_protocol::characteristic::SERVICE_UUID)],
                            });
                        }
                        if let Some(s) = &cfg.scale {
                            if g.world.scale.is_some()
                                && g.scale.link.is_none()
                                && reachable(&g.scale)
                            {
                                advs.push(Advertisement {
                                    address: Address::new(&s.address),
                                    name: Some(s.name.clone()),
                                    rssi: Some(-64 - rssi_step),
                                    services: vec![Uuid::from_u128(
                                        scale_protocol::skale2::SERVICE,
                                    )],
                                });
                            }
                        }
                    }
                    for a in advs {
                        if tx.send(a).is_err() {
                            return;
                        }
                    }
                    rssi_step = (rssi_step + 1) % 4;
                    let next = Instant::now() + Duration::from_millis(500);
                    if next >= end {
                        tokio::time::sleep_until(end).await;
                        return;
                    }
                    tokio::time::sleep_until(next).await;
                }
            });
            Ok(futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
            )
            .boxed())
        })
    }

    fn connect<'a>(
        &'a self,
        address: &'a Address,
    ) -> BoxFuture<'a, ble::Result<Arc<dyn Peripheral>>> {
        Box::pin(async move {
            let dev = self.device_at(address).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("{address}: no such device"))
            })?;
            let latency = self.hub.config().timing.gatt_latency;
            // Connection and service discovery take a few round trips.
            tokio::time::sleep(latency * 3).await;
            let mut g = self.hub.lock();
            if dev == SimDevice::Scale && g.world.scale.is_none() {
                return Err(Error::new(ErrorKind::NotFound, "no scale in range"));
            }
            let dl = g.link_mut(dev);
            if !reachable(dl) {
                return Err(Error::new(
                    ErrorKind::ConnectFailed,
                    format!("{address}: device not responding"),
                ));
            }
            if dl.link.as_ref().is_some_and(|l| !l.is_down()) {
                return Err(Error::new(
                    ErrorKind::ConnectFailed,
                    format!("{address}: already connected to another central"),
                ));
            }
            let link = Arc::new(Link::new());
            dl.link = Some(Arc::clone(&link));
            dl.generation += 1;
            dl.subscribers.clear();
            let generation = dl.generation;
            let characteristics = g.world.characteristics(dev);
            let cfg = self.hub.config();
            let name = match dev {
                SimDevice::De1 => cfg.machine.name.clone(),
                SimDevice::Scale => cfg
                    .scale
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
            };
            let p: Arc<dyn Peripheral> = Arc::new(SimPeripheral {
                hub: Arc::clone(&self.hub),
                dev,
                address: address.clone(),
                name,
                characteristics,
                link,
                generation,
            });
            Ok(p)
        })
    }
}

/// A connection to a simulated device.
pub(crate) struct SimPeripheral {
    hub: Arc<Hub>,
    dev: SimDevice,
    address: Address,
    name: String,
    characteristics: Vec<(Uuid, bool)>,
    link: Arc<Link>,
    generation: u64,
}

fn gatt_to_ble(e: GattError, uuid: Uuid) -> Error {
    match e {
        GattError::NotFound => Error::new(ErrorKind::NotFound, format!("no characteristic {uuid}")),
        GattError::ReadNotPermitted => {
            Error::new(ErrorKind::NotSupported, format!("{uuid} is not readable"))
        }
        GattError::WriteNotPermitted => {
            Error::new(ErrorKind::NotSupported, format!("{uuid} is not writable"))
        }
        GattError::InvalidValue(m) => Error::new(
            ErrorKind::Gatt,
            format!("{uuid}: invalid attribute value: {m}"),
        ),
        GattError::Failed(m) => Error::new(ErrorKind::Gatt, format!("{uuid}: {m}")),
    }
}

impl SimPeripheral {
    /// The link is up and still this connection's.
    fn check(&self, g: &Inner) -> ble::Result<()> {
        if let Some(reason) = self.link.watch().reason() {
            let kind = if reason.contains("this host") {
                ErrorKind::NotConnected
            } else {
                ErrorKind::Disconnected
            };
            return Err(Error::new(kind, reason));
        }
        if g.link_ref(self.dev).generation != self.generation {
            return Err(Error::new(ErrorKind::Disconnected, "link replaced"));
        }
        Ok(())
    }

    fn latency(&self) -> Duration {
        self.hub.config().timing.gatt_latency
    }
}

impl Peripheral for SimPeripheral {
    fn address(&self) -> &Address {
        &self.address
    }

    fn name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn characteristics(&self) -> Vec<Uuid> {
        self.characteristics.iter().map(|c| c.0).collect()
    }

    fn read(&self, characteristic: Uuid) -> BoxFuture<'_, ble::Result<Vec<u8>>> {
        Box::pin(async move {
            self.check(&self.hub.lock())?;
            tokio::time::sleep(self.latency()).await;
            let g = self.hub.lock();
            self.check(&g)?;
            g.world
                .read(self.dev, characteristic)
                .map_err(|e| gatt_to_ble(e, characteristic))
        })
    }

    fn write<'a>(
        &'a self,
        characteristic: Uuid,
        value: &'a [u8],
        kind: WriteKind,
    ) -> BoxFuture<'a, ble::Result<()>> {
        Box::pin(async move {
            let delay = {
                let g = self.hub.lock();
                self.check(&g)?;
                g.link_ref(self.dev).write_delay
            };
            let base = match kind {
                WriteKind::WithResponse => self.latency(),
                WriteKind::WithoutResponse => self.latency() / 2,
            };
            tokio::time::sleep(base + delay).await;
            let mut g = self.hub.lock();
            self.check(&g)?;
            let dl = g.link_mut(self.dev);
            if dl.failing_writes > 0 {
                dl.failing_writes -= 1;
                return Err(Error::new(
                    ErrorKind::Gatt,
                    format!("{characteristic}: write failed (simulated fault)"),
                ));
            }
            let r = g.world.write(self.dev, characteristic, value);
            g.dispatch();
            r.map_err(|e| gatt_to_ble(e, characteristic))
        })
    }

    fn subscribe(&self, characteristic: Uuid) -> BoxFuture<'_, ble::Result<NotificationStream>> {
        Box::pin(async move {
            match self.characteristics.iter().find(|c| c.0 == characteristic) {
                None => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no characteristic {characteristic}"),
                    ))
                }
                Some((_, false)) => {
                    return Err(Error::new(
                        ErrorKind::NotSupported,
                        format!("{characteristic} does not notify"),
                    ))
                }
                Some(_) => {}
            }
            self.check(&self.hub.lock())?;
            tokio::time::sleep(self.latency()).await;
            let mut g = self.hub.lock();
            self.check(&g)?;
            let (tx, rx) = mpsc::unbounded_channel();
            g.link_mut(self.dev)
                .subscribers
                .entry(characteristic)
                .or_default()
                .push(tx);
            Ok(futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
            )
            .boxed())
        })
    }

    fn link(&self) -> LinkWatch {
        self.link.watch()
    }

    fn disconnect(&self) -> BoxFuture<'_, ble::Result<()>> {
        Box::pin(async move {
            let mut g = self.hub.lock();
            let dl = g.link_mut(self.dev);
            if dl.generation == self.generation {
                dl.link = None;
                dl.generation += 1;
                dl.subscribers.clear();
            }
            self.link.set_down("disconnected by this host");
            Ok(())
        })
    }
}

impl Drop for SimPeripheral {
    /// Dropping the last handle of a connection closes it, as the OS would.
    fn drop(&mut self) {
        let mut g = self.hub.lock();
        let dl = g.link_mut(self.dev);
        if dl.generation == self.generation {
            dl.link = None;
            dl.generation += 1;
            dl.subscribers.clear();
        }
        self.link.set_down("disconnected by this host");
    }
}

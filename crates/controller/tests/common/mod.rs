//! Helpers shared by the controller's integration tests: a simulated DE1 (paused tokio
//! time) and a recording wrapper around its peripheral.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ble::{Address, LinkWatch, NotificationStream, Peripheral, Transport, Uuid, WriteKind};
use controller::bus::EventBus;
use controller::clock::Clock;
use controller::de1::{De1, De1Context, De1Notice, De1Options};
use de1_sim::{SimConfig, SimControl, SimTransport};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// Every write the controller made: (characteristic UUID, bytes).
pub type WriteLog = Arc<Mutex<Vec<(Uuid, Vec<u8>)>>>;

/// A peripheral that records every write before passing it on.
pub struct Recording {
    pub inner: Arc<dyn Peripheral>,
    pub log: WriteLog,
}

impl Peripheral for Recording {
    fn address(&self) -> &Address {
        self.inner.address()
    }
    fn name(&self) -> Option<String> {
        self.inner.name()
    }
    fn characteristics(&self) -> Vec<Uuid> {
        self.inner.characteristics()
    }
    fn read(&self, c: Uuid) -> BoxFuture<'_, ble::Result<Vec<u8>>> {
        self.inner.read(c)
    }
    fn write<'a>(
        &'a self,
        c: Uuid,
        value: &'a [u8],
        kind: WriteKind,
    ) -> BoxFuture<'a, ble::Result<()>> {
        Box::pin(async move {
            let r = self.inner.write(c, value, kind).await;
            if r.is_ok() {
                self.log.lock().expect("log").push((c, value.to_vec()));
            }
            r
        })
    }
    fn subscribe(&self, c: Uuid) -> BoxFuture<'_, ble::Result<NotificationStream>> {
        self.inner.subscribe(c)
    }
    fn link(&self) -> LinkWatch {
        self.inner.link()
    }
    fn disconnect(&self) -> BoxFuture<'_, ble::Result<()>> {
        self.inner.disconnect()
    }
}

/// A simulation with the given configuration tweaks.
pub fn sim(tweak: impl FnOnce(&mut SimConfig)) -> (SimTransport, SimControl) {
    let mut cfg = SimConfig::default();
    tweak(&mut cfg);
    de1_sim::simulator(cfg)
}

pub struct Connected {
    pub de1: De1,
    pub notices: mpsc::Receiver<De1Notice>,
    pub bus: EventBus,
    pub writes: WriteLog,
}

/// Connects to the simulated DE1 and runs the connect-time sequence.
pub async fn connect(transport: &SimTransport, options: De1Options) -> Connected {
    let p = transport
        .connect(&Address::new(de1_sim::DE1_ADDRESS))
        .await
        .expect("connect");
    let writes: WriteLog = Arc::default();
    let rec: Arc<dyn Peripheral> = Arc::new(Recording {
        inner: p,
        log: writes.clone(),
    });
    let bus = EventBus::new(4096);
    let (tx, notices) = mpsc::channel(4096);
    let ctx = De1Context {
        clock: Clock::starting_at(1_700_000_000.0),
        bus: bus.clone(),
        notices: Some(tx),
        simulated: true,
    };
    let de1 = tokio::time::timeout(Duration::from_secs(30), De1::start(rec, ctx, options))
        .await
        .expect("connect sequence in time")
        .expect("connect sequence");
    Connected {
        de1,
        notices,
        bus,
        writes,
    }
}

/// Test options: pyDE1's timeouts, firmware waits shortened for the simulator.
pub fn options() -> De1Options {
    De1Options::default()
}

/// Waits (tokio time) until the DE1 reports `pred`.
pub async fn wait_state(
    de1: &De1,
    timeout: Duration,
    pred: impl Fn(de1_protocol::packets::StateInfo) -> bool,
) -> Option<de1_protocol::packets::StateInfo> {
    let mut rx = de1.watch_state();
    let r = tokio::time::timeout(timeout, rx.wait_for(|s| s.is_some_and(&pred))).await;
    match r {
        Ok(Ok(s)) => *s,
        _ => None,
    }
}

/// A profile from the shared vectors, by file stem.
pub fn profile(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/vectors/profiles/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A transport whose peripherals record every write into one shared log.
#[derive(Clone)]
pub struct RecordingTransport {
    pub inner: SimTransport,
    pub log: WriteLog,
}

impl RecordingTransport {
    pub fn new(inner: SimTransport) -> Self {
        RecordingTransport {
            inner,
            log: Arc::default(),
        }
    }

    /// The writes to one characteristic, in order.
    pub fn writes_to(&self, c: de1_protocol::characteristic::Characteristic) -> Vec<Vec<u8>> {
        let uuid = Uuid(c.uuid());
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|(u, _)| *u == uuid)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Transport for RecordingTransport {
    fn scan(&self, d: Duration) -> BoxFuture<'_, ble::Result<ble::AdvertisementStream>> {
        self.inner.scan(d)
    }
    fn connect<'a>(&'a self, a: &'a Address) -> BoxFuture<'a, ble::Result<Arc<dyn Peripheral>>> {
        Box::pin(async move {
            let p = self.inner.connect(a).await?;
            let r: Arc<dyn Peripheral> = Arc::new(Recording {
                inner: p,
                log: self.log.clone(),
            });
            Ok(r)
        })
    }
}

//! The Bluetooth LE transport seam and its real (bluest) backend.
//!
//! Everything above this crate talks to a DE1 or a scale through two small traits:
//!
//! * [`Transport`] — the adapter: [`scan`](Transport::scan) for advertisements and
//!   [`connect`](Transport::connect) to an address;
//! * [`Peripheral`] — one connected device: read, write (with or without response),
//!   subscribe to notifications, and a [`LinkWatch`] that resolves when the link drops.
//!
//! Characteristics are addressed by [`Uuid`] only; services are an implementation
//! detail of the backend (both the DE1 and the scales use unique characteristic UUIDs).
//!
//! # Design choices
//!
//! * **Object-safe.** The traits return boxed futures and streams, so a controller holds
//!   an `Arc<dyn Transport>` and picks the backend at run time (real Bluetooth or the
//!   simulator) without generics spreading through its code.
//! * **`'static` streams.** Notification and scan streams own what they need, so they can
//!   be moved into spawned tasks. A notification stream ends when the link drops.
//! * **Time.** Notification arrival is stamped with [`tokio::time::Instant`], which
//!   follows tokio's clock; under `#[tokio::test(start_paused = true)]` everything is
//!   deterministic.
//! * **Cancellation.** Every future may be dropped at any point (e.g. by a
//!   `tokio::time::timeout`) without leaving the transport in a bad state. Callers apply
//!   their own timeouts; backends also bound each GATT operation so none hangs forever.
//!
//! The real backend ([`bluez::BluezTransport`], feature `bluez`, on by default) uses
//! `bluest`; the simulator backend lives in the `de1-sim` crate.

mod error;
mod link;
mod uuid;

#[cfg(all(feature = "bluez", target_os = "linux"))]
pub mod bluez;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};

pub use error::{Error, ErrorKind, Result};
pub use link::{Link, LinkWatch};
pub use uuid::{ParseUuidError, Uuid, BLUETOOTH_BASE};

/// A device address as the platform names it: `AA:BB:CC:DD:EE:FF` on Linux. Stored
/// upper-case so that addresses typed by users compare equal to scanned ones.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

impl Address {
    pub fn new(text: impl AsRef<str>) -> Self {
        Self(text.as_ref().trim().to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.0)
    }
}

impl From<&str> for Address {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// One advertisement seen while scanning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub address: Address,
    /// The advertised local name, if the packet carried one.
    pub name: Option<String>,
    /// Received signal strength in dBm, when the platform reports it.
    pub rssi: Option<i16>,
    /// Service UUIDs listed in the advertisement (often empty).
    pub services: Vec<Uuid>,
}

/// A notification (or indication) value and when it reached this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub value: Vec<u8>,
    pub at: tokio::time::Instant,
}

/// Acknowledged (ATT Write Request) or unacknowledged (Write Command) write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// The future completes when the peer acknowledged the write; a rejection is a
    /// [`ErrorKind::Gatt`] error. Use this for the DE1 (pacing of firmware uploads
    /// relies on it).
    WithResponse,
    /// The future completes when the write was queued locally.
    WithoutResponse,
}

/// Notifications of one characteristic, in arrival order, until the link drops.
pub type NotificationStream = BoxStream<'static, Notification>;
/// Advertisements until the scan's duration has elapsed. The same device may appear
/// more than once.
pub type AdvertisementStream = BoxStream<'static, Advertisement>;

/// A Bluetooth adapter (or a simulated radio).
pub trait Transport: Send + Sync {
    /// Start scanning for `duration`. The outer future fails at once if scanning cannot
    /// start (e.g. [`ErrorKind::NoAdapter`]); the stream ends when the duration is over
    /// or when it is dropped (which stops the scan).
    fn scan(&self, duration: Duration) -> BoxFuture<'_, Result<AdvertisementStream>>;

    /// Connect to `address` and discover its characteristics. A backend may need to
    /// scan first to find the device; this can take as long as the device takes to
    /// advertise, so callers wrap it in a timeout.
    fn connect<'a>(&'a self, address: &'a Address) -> BoxFuture<'a, Result<Arc<dyn Peripheral>>>;
}

/// A connected device.
pub trait Peripheral: Send + Sync {
    fn address(&self) -> &Address;

    /// The device's name, as advertised or read at connection.
    fn name(&self) -> Option<String>;

    /// The characteristics discovered at connection.
    fn characteristics(&self) -> Vec<Uuid>;

    /// GATT read of a characteristic's current value.
    fn read(&self, characteristic: Uuid) -> BoxFuture<'_, Result<Vec<u8>>>;

    /// GATT write.
    fn write<'a>(
        &'a self,
        characteristic: Uuid,
        value: &'a [u8],
        kind: WriteKind,
    ) -> BoxFuture<'a, Result<()>>;

    /// Enable notifications and return them as a stream. The future completes once the
    /// peer has them enabled (CCCD written); values notified after that are delivered.
    /// Calling it again gives another stream of the same notifications. The stream ends
    /// when the link drops.
    fn subscribe(&self, characteristic: Uuid) -> BoxFuture<'_, Result<NotificationStream>>;

    /// The link's up/down signal.
    fn link(&self) -> LinkWatch;

    /// Close the connection. Afterwards every operation fails with
    /// [`ErrorKind::NotConnected`] and the [`LinkWatch`] reports the link down.
    fn disconnect(&self) -> BoxFuture<'_, Result<()>>;
}

/// Scan for `duration` and return one entry per address (the last name seen and the
/// strongest RSSI), in order of first sighting.
pub async fn scan_collect(
    transport: &dyn Transport,
    duration: Duration,
) -> Result<Vec<Advertisement>> {
    let mut stream = transport.scan(duration).await?;
    let mut seen: Vec<Advertisement> = Vec::new();
    while let Some(adv) = stream.next().await {
        match seen.iter_mut().find(|a| a.address == adv.address) {
            Some(prev) => {
                if adv.name.is_some() {
                    prev.name = adv.name;
                }
                prev.rssi = match (prev.rssi, adv.rssi) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                for s in adv.services {
                    if !prev.services.contains(&s) {
                        prev.services.push(s);
                    }
                }
            }
            None => seen.push(adv),
        }
    }
    Ok(seen)
}

/// The default real transport for this build: [`bluez::BluezTransport`] when the
/// `bluez` feature is on (Linux), otherwise an error of kind [`ErrorKind::NoAdapter`].
/// Fails at once (never hangs) when the host has no adapter.
pub async fn default_transport() -> Result<Arc<dyn Transport>> {
    #[cfg(all(feature = "bluez", target_os = "linux"))]
    {
        let t = bluez::BluezTransport::new().await?;
        Ok(Arc::new(t))
    }
    #[cfg(not(all(feature = "bluez", target_os = "linux")))]
    {
        Err(Error::new(
            ErrorKind::NoAdapter,
            "this build has no real Bluetooth backend (feature `bluez` off or not Linux)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that replays a fixed list of advertisements.
    struct Replay(Vec<Advertisement>);

    impl Transport for Replay {
        fn scan(&self, _duration: Duration) -> BoxFuture<'_, Result<AdvertisementStream>> {
            let items = self.0.clone();
            Box::pin(async move { Ok(futures::stream::iter(items).boxed()) })
        }
        fn connect<'a>(
            &'a self,
            address: &'a Address,
        ) -> BoxFuture<'a, Result<Arc<dyn Peripheral>>> {
            Box::pin(async move { Err(Error::new(ErrorKind::NotFound, address.to_string())) })
        }
    }

    fn adv(addr: &str, name: Option<&str>, rssi: Option<i16>) -> Advertisement {
        Advertisement {
            address: Address::new(addr),
            name: name.map(str::to_string),
            rssi,
            services: vec![],
        }
    }

    #[tokio::test]
    async fn scan_collect_merges_repeated_sightings() {
        let t = Replay(vec![
            adv("aa:bb:cc:00:00:01", None, Some(-80)),
            adv("AA:BB:CC:00:00:02", Some("Skale"), None),
            adv("AA:BB:CC:00:00:01", Some("DE1"), Some(-60)),
            adv("AA:BB:CC:00:00:01", None, Some(-90)),
        ]);
        let found = scan_collect(&t, Duration::from_secs(1)).await.unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].address.as_str(), "AA:BB:CC:00:00:01");
        assert_eq!(found[0].name.as_deref(), Some("DE1"));
        assert_eq!(found[0].rssi, Some(-60));
        assert_eq!(found[1].name.as_deref(), Some("Skale"));
        let err = t
            .connect(&Address::new("00:00:00:00:00:00"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

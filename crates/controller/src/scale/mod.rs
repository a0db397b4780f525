//! Bluetooth scales: recognition by advertised name, a small async driver per model
//! over the [`ble`] seam, and the pure parts that turn reports into weight and flow
//! ([`estimator`]) and keep track of tares ([`tare`]).
//!
//! A [`Scale`] is a connected, initialised scale: commands go through its methods, and
//! what it reports arrives on the [`ScaleEvents`] stream returned with it (weights with
//! their arrival time, button presses). The stream ends when the link drops.
//! Decisions about those reports (estimation, auto-tare, stop-at-weight) are made by
//! the flow sequencer ([`crate::sequencer::Sequencer::on_weight`]).

pub mod estimator;
pub mod skale2;
pub mod tare;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ble::{Address, Peripheral, Transport};
use futures::stream::BoxStream;
use ipc_schema::event::{AvailabilityState, ScaleChange, ScaleClass, Sender, Stamp};
pub use scale_protocol::ScaleModel;

/// One weight report and when it reached this host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightReading {
    /// Arrival of the notification (not corrected for the sensor lag).
    pub arrival: Instant,
    /// Weight in grams.
    pub grams: f64,
}

/// Something a scale reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleEvent {
    Weight(WeightReading),
    /// A button was pressed (Skale II: 1 is the tare button).
    Button {
        arrival: Instant,
        button: u8,
    },
}

/// What a connected scale reports, until its link drops.
pub type ScaleEvents = BoxStream<'static, ScaleEvent>;

/// Why a scale could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("scale: {0}")]
    Ble(ble::Error),
    /// The device's name matches no supported scale.
    #[error("unsupported device {0:?}")]
    Unsupported(Option<String>),
    /// A characteristic the model needs is not on the device.
    #[error("scale is missing characteristic {0}")]
    MissingCharacteristic(ble::Uuid),
}

/// The scale model an advertised name belongs to (case-sensitive prefix match, as the
/// scanner does it).
pub fn recognise(advertised_name: &str) -> Option<ScaleModel> {
    ScaleModel::from_advertised_name(advertised_name)
}

/// The scale class a model is published as (`sender` of scale events).
pub fn scale_class(model: Option<ScaleModel>) -> ScaleClass {
    match model {
        Some(ScaleModel::SkaleII) => ScaleClass::AtomaxSkaleII,
        None => ScaleClass::Generic,
    }
}

/// pyDE1's class name for a model.
pub fn class_name(model: Option<ScaleModel>) -> &'static str {
    match scale_class(model) {
        ScaleClass::Generic => "GenericScale",
        ScaleClass::AtomaxSkaleII => "AtomaxSkaleII",
        ScaleClass::AcaiaAcaia => "AcaiaAcaia",
        ScaleClass::AcaiaLunar => "AcaiaLunar",
        ScaleClass::AcaiaProch => "AcaiaProch",
        ScaleClass::AcaiaPearlS => "AcaiaPearlS",
        ScaleClass::AcaiaPyxis => "AcaiaPyxis",
        ScaleClass::FelicitaArc => "FelicitaArc",
    }
}

/// The scale's published name: `"<class>: <advertised name or (unknown)>"`, e.g.
/// `"AtomaxSkaleII: Skale"`, `"GenericScale: (unknown)"`.
pub fn display_name(model: Option<ScaleModel>, advertised: Option<&str>) -> String {
    format!(
        "{}: {}",
        class_name(model),
        advertised.unwrap_or("(unknown)")
    )
}

/// A `ScaleChange` event for the scale object (for whoever assigns scales).
pub fn scale_change(
    stamp: Stamp,
    model: Option<ScaleModel>,
    address: Option<&Address>,
    advertised: Option<&str>,
    state: AvailabilityState,
) -> ScaleChange {
    ScaleChange {
        stamp,
        sender: Sender::Scale(scale_class(model)),
        state,
        id: address.map(|a| a.to_string()).unwrap_or_default(),
        name: display_name(model, advertised),
    }
}

/// A connected, initialised scale.
pub struct Scale {
    model: ScaleModel,
    peripheral: Arc<dyn Peripheral>,
}

impl std::fmt::Debug for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scale")
            .field("model", &self.model)
            .field("address", self.peripheral.address())
            .finish()
    }
}

impl Scale {
    /// Connect to `address` and initialise the scale. The model is recognised from the
    /// name the device reports once connected. Callers apply their own timeout.
    pub async fn connect(
        transport: &dyn Transport,
        address: &Address,
    ) -> Result<(Scale, ScaleEvents), ScaleError> {
        let peripheral = transport.connect(address).await.map_err(ScaleError::Ble)?;
        match Self::from_peripheral(peripheral.clone()).await {
            Ok(ok) => Ok(ok),
            Err(e) => {
                // Do not keep a half-initialised link (frees the scale for others).
                if let Err(d) = peripheral.disconnect().await {
                    log::debug!("scale disconnect after failed set-up: {d}");
                }
                Err(e)
            }
        }
    }

    /// Initialise an already connected device.
    pub async fn from_peripheral(
        peripheral: Arc<dyn Peripheral>,
    ) -> Result<(Scale, ScaleEvents), ScaleError> {
        let name = peripheral.name();
        let model = name
            .as_deref()
            .and_then(recognise)
            .ok_or_else(|| ScaleError::Unsupported(name.clone()))?;
        let events = match model {
            ScaleModel::SkaleII => skale2::initialise(&peripheral).await?,
        };
        Ok((Scale { model, peripheral }, events))
    }

    pub fn model(&self) -> ScaleModel {
        self.model
    }

    pub fn address(&self) -> &Address {
        self.peripheral.address()
    }

    pub fn advertised_name(&self) -> Option<String> {
        self.peripheral.name()
    }

    /// `"<class>: <name>"`.
    pub fn display_name(&self) -> String {
        display_name(Some(self.model), self.peripheral.name().as_deref())
    }

    pub fn sensor_lag(&self) -> Duration {
        self.model.sensor_lag()
    }

    pub fn report_period(&self) -> Duration {
        self.model.report_period()
    }

    /// The link's up/down signal.
    pub fn link(&self) -> ble::LinkWatch {
        self.peripheral.link()
    }

    /// Send a tare command now (rate limiting and confirmation are the sequencer's:
    /// ask it with [`crate::sequencer::Sequencer::request_tare`] and send when it says).
    pub async fn tare(&self) -> Result<(), ScaleError> {
        match self.model {
            ScaleModel::SkaleII => {
                skale2::send(
                    self.peripheral.as_ref(),
                    scale_protocol::skale2::Command::Tare,
                )
                .await
            }
        }
    }

    /// Display (and backlight) on or off. Skale II: on = `EC` then `ED`, off = `EE`.
    pub async fn set_display(&self, on: bool) -> Result<(), ScaleError> {
        use scale_protocol::skale2::Command;
        match self.model {
            ScaleModel::SkaleII => {
                if on {
                    skale2::send(self.peripheral.as_ref(), Command::ShowWeight).await?;
                    skale2::send(self.peripheral.as_ref(), Command::DisplayOn).await
                } else {
                    skale2::send(self.peripheral.as_ref(), Command::DisplayOff).await
                }
            }
        }
    }

    /// Any Skale II command (timer, units, LED/display …).
    pub async fn skale2_command(
        &self,
        command: scale_protocol::skale2::Command,
    ) -> Result<(), ScaleError> {
        match self.model {
            ScaleModel::SkaleII => skale2::send(self.peripheral.as_ref(), command).await,
        }
    }

    /// Close the link (the event stream then ends).
    pub async fn disconnect(&self) -> Result<(), ScaleError> {
        self.peripheral.disconnect().await.map_err(ScaleError::Ble)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognition_and_names() {
        assert_eq!(recognise("Skale"), Some(ScaleModel::SkaleII));
        assert_eq!(recognise("skale"), None);
        assert_eq!(
            display_name(Some(ScaleModel::SkaleII), Some("Skale")),
            "AtomaxSkaleII: Skale"
        );
        assert_eq!(display_name(None, None), "GenericScale: (unknown)");
        let c = scale_change(Stamp::at(1.0), None, None, None, AvailabilityState::Initial);
        assert_eq!(c.id, "");
        assert_eq!(c.sender, Sender::Scale(ScaleClass::Generic));
    }
}

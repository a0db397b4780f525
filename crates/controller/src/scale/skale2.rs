//! Atomax Skale II over the [`ble`] seam: set-up, notifications and commands.
//!
//! Set-up (as the reference controller does it): `EC` show weight, `ED` display on →
//! enable weight notifications (`EF81`) → enable button notifications (`EF82`) → `03`
//! grams. Commands are written with response. Packets come from
//! [`scale_protocol::skale2`]; a report that cannot be decoded is logged and skipped.

use std::sync::Arc;

use ble::{Peripheral, Uuid, WriteKind};
use futures::stream::{self, StreamExt};
use scale_protocol::skale2::{self, ButtonPress, Command, WeightReport};

use super::{ScaleError, ScaleEvent, ScaleEvents, WeightReading};

pub(super) const COMMAND: Uuid = Uuid::from_u128(skale2::COMMAND);
pub(super) const WEIGHT: Uuid = Uuid::from_u128(skale2::WEIGHT);
pub(super) const BUTTON: Uuid = Uuid::from_u128(skale2::BUTTON);

/// Write one command.
pub(super) async fn send(peripheral: &dyn Peripheral, command: Command) -> Result<(), ScaleError> {
    let bytes = command.encode();
    peripheral
        .write(COMMAND, &bytes, WriteKind::WithResponse)
        .await
        .map_err(ScaleError::Ble)
}

/// Bring a connected Skale II into service and return its event stream.
pub(super) async fn initialise(
    peripheral: &Arc<dyn Peripheral>,
) -> Result<ScaleEvents, ScaleError> {
    let chars = peripheral.characteristics();
    for needed in [COMMAND, WEIGHT] {
        if !chars.contains(&needed) {
            return Err(ScaleError::MissingCharacteristic(needed));
        }
    }
    for &cmd in skale2::INIT_BEFORE_SUBSCRIBE {
        send(peripheral.as_ref(), cmd).await?;
    }
    let weights = peripheral
        .subscribe(WEIGHT)
        .await
        .map_err(ScaleError::Ble)?
        .filter_map(|n| async move {
            match WeightReport::decode(&n.value) {
                Ok(r) => Some(ScaleEvent::Weight(WeightReading {
                    arrival: n.at.into_std(),
                    grams: r.grams,
                })),
                Err(e) => {
                    log::warn!("Skale II: {e}");
                    None
                }
            }
        })
        .boxed();
    // Buttons are optional: a scale without the characteristic still weighs.
    let buttons = if chars.contains(&BUTTON) {
        peripheral
            .subscribe(BUTTON)
            .await
            .map_err(ScaleError::Ble)?
            .filter_map(|n| async move {
                match ButtonPress::decode(&n.value) {
                    Ok(b) => Some(ScaleEvent::Button {
                        arrival: n.at.into_std(),
                        button: b.button,
                    }),
                    Err(e) => {
                        log::warn!("Skale II: {e}");
                        None
                    }
                }
            })
            .boxed()
    } else {
        stream::empty().boxed()
    };
    for &cmd in skale2::INIT_AFTER_SUBSCRIBE {
        send(peripheral.as_ref(), cmd).await?;
    }
    Ok(stream::select(weights, buttons).boxed())
}

//! The text stored for each enumerated value, and back.
//!
//! The database keeps what pyDE1 keeps: the payload fields as text (`"sequence_flow_begin"`,
//! `"not ready"`, `"AtomaxSkaleII"`…), so a row reads the same as the MQTT payload it came
//! from and databases written by pyDE1 read the same way. The reverse functions return
//! `None` for text they do not know; callers decide whether that is an error.

use ipc_schema::event::{
    AutoTareAction, AvailabilityState, ConnectivityState, DeviceRole, Gate, GateAction, ScaleClass,
    Sender, StopAtAction, StopAtKind, TemperatureUnits,
};

/// `sequence_start` … `sequence_complete`.
pub const fn gate_name(gate: Gate) -> &'static str {
    match gate {
        Gate::SequenceStart => "sequence_start",
        Gate::FlowBegin => "sequence_flow_begin",
        Gate::ExpectDrops => "sequence_expect_drops",
        Gate::ExitPreinfuse => "sequence_exit_preinfuse",
        Gate::FlowEnd => "sequence_flow_end",
        Gate::FlowStateExit => "sequence_flow_state_exit",
        Gate::LastDrops => "sequence_last_drops",
        Gate::SequenceComplete => "sequence_complete",
    }
}

pub fn gate_from(text: &str) -> Option<Gate> {
    Gate::ALL.into_iter().find(|g| gate_name(*g) == text)
}

pub const fn gate_action_name(action: GateAction) -> &'static str {
    match action {
        GateAction::Set => "set",
        GateAction::Clear => "clear",
    }
}

pub fn gate_action_from(text: &str) -> Option<GateAction> {
    match text {
        "set" => Some(GateAction::Set),
        "clear" => Some(GateAction::Clear),
        _ => None,
    }
}

const STOP_AT_KINDS: [StopAtKind; 5] = [
    StopAtKind::Time,
    StopAtKind::Volume,
    StopAtKind::Weight,
    StopAtKind::MoveOnByWeight,
    StopAtKind::SteamToTemperature,
];

pub const fn stop_at_name(kind: StopAtKind) -> &'static str {
    match kind {
        StopAtKind::Time => "time",
        StopAtKind::Volume => "volume",
        StopAtKind::Weight => "weight",
        StopAtKind::MoveOnByWeight => "move on by weight",
        StopAtKind::SteamToTemperature => "steam to temperature",
    }
}

pub fn stop_at_from(text: &str) -> Option<StopAtKind> {
    STOP_AT_KINDS.into_iter().find(|k| stop_at_name(*k) == text)
}

const STOP_AT_ACTIONS: [StopAtAction; 4] = [
    StopAtAction::Enabled,
    StopAtAction::Triggered,
    StopAtAction::Disabled,
    StopAtAction::De1Controlled,
];

pub const fn stop_at_action_name(action: StopAtAction) -> &'static str {
    match action {
        StopAtAction::Enabled => "enabled",
        StopAtAction::Triggered => "triggered",
        StopAtAction::Disabled => "disabled",
        StopAtAction::De1Controlled => "de1 controlled",
    }
}

pub fn stop_at_action_from(text: &str) -> Option<StopAtAction> {
    STOP_AT_ACTIONS
        .into_iter()
        .find(|a| stop_at_action_name(*a) == text)
}

pub const fn auto_tare_name(action: AutoTareAction) -> &'static str {
    match action {
        AutoTareAction::Enabled => "enabled",
        AutoTareAction::Disabled => "disabled",
    }
}

pub fn auto_tare_from(text: &str) -> Option<AutoTareAction> {
    match text {
        "enabled" => Some(AutoTareAction::Enabled),
        "disabled" => Some(AutoTareAction::Disabled),
        _ => None,
    }
}

pub const AVAILABILITY_STATES: [AvailabilityState; 8] = [
    AvailabilityState::Initial,
    AvailabilityState::Unknown,
    AvailabilityState::Capturing,
    AvailabilityState::Captured,
    AvailabilityState::Ready,
    AvailabilityState::NotReady,
    AvailabilityState::Releasing,
    AvailabilityState::Released,
];

pub const fn availability_name(state: AvailabilityState) -> &'static str {
    match state {
        AvailabilityState::Initial => "initial",
        AvailabilityState::Unknown => "unknown",
        AvailabilityState::Capturing => "capturing",
        AvailabilityState::Captured => "captured",
        AvailabilityState::Ready => "ready",
        AvailabilityState::NotReady => "not ready",
        AvailabilityState::Releasing => "releasing",
        AvailabilityState::Released => "released",
    }
}

pub fn availability_from(text: &str) -> Option<AvailabilityState> {
    AVAILABILITY_STATES
        .into_iter()
        .find(|s| availability_name(*s) == text)
}

pub const CONNECTIVITY_STATES: [ConnectivityState; 8] = [
    ConnectivityState::Initial,
    ConnectivityState::Unknown,
    ConnectivityState::Connecting,
    ConnectivityState::Connected,
    ConnectivityState::Ready,
    ConnectivityState::NotReady,
    ConnectivityState::Disconnecting,
    ConnectivityState::Disconnected,
];

pub const fn connectivity_name(state: ConnectivityState) -> &'static str {
    match state {
        ConnectivityState::Initial => "initial",
        ConnectivityState::Unknown => "unknown",
        ConnectivityState::Connecting => "connecting",
        ConnectivityState::Connected => "connected",
        ConnectivityState::Ready => "ready",
        ConnectivityState::NotReady => "not_ready",
        ConnectivityState::Disconnecting => "disconnecting",
        ConnectivityState::Disconnected => "disconnected",
    }
}

pub fn connectivity_from(text: &str) -> Option<ConnectivityState> {
    CONNECTIVITY_STATES
        .into_iter()
        .find(|s| connectivity_name(*s) == text)
}

pub const ROLES: [DeviceRole; 5] = [
    DeviceRole::De1,
    DeviceRole::Scale,
    DeviceRole::Thermometer,
    DeviceRole::Other,
    DeviceRole::Unknown,
];

pub const fn role_name(role: DeviceRole) -> &'static str {
    match role {
        DeviceRole::De1 => "de1",
        DeviceRole::Scale => "scale",
        DeviceRole::Thermometer => "thermometer",
        DeviceRole::Other => "other",
        DeviceRole::Unknown => "unknown",
    }
}

pub fn role_from(text: &str) -> Option<DeviceRole> {
    ROLES.into_iter().find(|r| role_name(*r) == text)
}

pub const SCALE_CLASSES: [ScaleClass; 8] = [
    ScaleClass::Generic,
    ScaleClass::AtomaxSkaleII,
    ScaleClass::AcaiaAcaia,
    ScaleClass::AcaiaLunar,
    ScaleClass::AcaiaProch,
    ScaleClass::AcaiaPearlS,
    ScaleClass::AcaiaPyxis,
    ScaleClass::FelicitaArc,
];

pub const fn scale_class_name(class: ScaleClass) -> &'static str {
    match class {
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

/// pyDE1's `sender`: a Python class name.
pub const fn sender_name(sender: Sender) -> &'static str {
    match sender {
        Sender::De1 => "DE1",
        Sender::ScaleProcessor => "ScaleProcessor",
        Sender::FlowSequencer => "FlowSequencerImpl",
        Sender::BluetoothScanner => "BluetoothScanner",
        Sender::BlueDot => "BlueDOT",
        Sender::Scale(class) => scale_class_name(class),
    }
}

pub fn sender_from(text: &str) -> Option<Sender> {
    Some(match text {
        "DE1" => Sender::De1,
        "ScaleProcessor" => Sender::ScaleProcessor,
        "FlowSequencerImpl" => Sender::FlowSequencer,
        "BluetoothScanner" => Sender::BluetoothScanner,
        "BlueDOT" => Sender::BlueDot,
        other => Sender::Scale(
            SCALE_CLASSES
                .into_iter()
                .find(|c| scale_class_name(*c) == other)?,
        ),
    })
}

pub const fn units_name(units: TemperatureUnits) -> &'static str {
    match units {
        TemperatureUnits::Celsius => "C",
        TemperatureUnits::Fahrenheit => "F",
    }
}

pub fn units_from(text: &str) -> Option<TemperatureUnits> {
    match text {
        "C" => Some(TemperatureUnits::Celsius),
        "F" => Some(TemperatureUnits::Fahrenheit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyde1_docs::payload as py;

    #[test]
    fn names_agree_with_the_payload_renderer_and_read_back() {
        for g in Gate::ALL {
            assert_eq!(gate_name(g), py::gate_name(g));
            assert_eq!(gate_from(gate_name(g)), Some(g));
        }
        for s in AVAILABILITY_STATES {
            assert_eq!(availability_name(s), py::availability_name(s));
            assert_eq!(availability_from(availability_name(s)), Some(s));
        }
        for s in CONNECTIVITY_STATES {
            assert_eq!(connectivity_name(s), py::connectivity_name(s));
            assert_eq!(connectivity_from(connectivity_name(s)), Some(s));
        }
        for r in ROLES {
            assert_eq!(role_name(r), py::role_name(r));
            assert_eq!(role_from(role_name(r)), Some(r));
        }
        let senders = [
            Sender::De1,
            Sender::ScaleProcessor,
            Sender::FlowSequencer,
            Sender::BluetoothScanner,
            Sender::BlueDot,
        ]
        .into_iter()
        .chain(SCALE_CLASSES.map(Sender::Scale));
        for s in senders {
            assert_eq!(sender_name(s), py::sender_name(s));
            assert_eq!(sender_from(sender_name(s)), Some(s));
        }
        for k in STOP_AT_KINDS {
            assert_eq!(stop_at_from(stop_at_name(k)), Some(k));
        }
        for a in STOP_AT_ACTIONS {
            assert_eq!(stop_at_action_from(stop_at_action_name(a)), Some(a));
        }
        for a in [AutoTareAction::Enabled, AutoTareAction::Disabled] {
            assert_eq!(auto_tare_from(auto_tare_name(a)), Some(a));
        }
        for a in [GateAction::Set, GateAction::Clear] {
            assert_eq!(gate_action_from(gate_action_name(a)), Some(a));
        }
        for u in [TemperatureUnits::Celsius, TemperatureUnits::Fahrenheit] {
            assert_eq!(units_from(units_name(u)), Some(u));
        }
        assert_eq!(sender_from("Nonsense"), None);
        assert_eq!(gate_from(""), None);
    }
}

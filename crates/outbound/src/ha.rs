//! Home Assistant MQTT discovery (`[mqtt] home_assistant = true`).
//!
//! One retained discovery document per sensor under
//! `<discovery prefix>/sensor/<node>/<object>/config`. The sensors read pyDE1's own
//! payloads (`value_json.…` templates on the pyDE1 topics); their availability follows
//! the retained `status/mqtt/notification` and `status/controller` topics.
//!
//! No pyDE1 payload carries the elapsed shot time, so [`ShotClock`] derives it from the
//! gate notifications and shot samples and publishes it retained on
//! `<root>/de1d/shot_time`.

use std::sync::Arc;

use ipc_schema::event::{Event, Gate, GateAction, MachineState, ProcessRole, SequenceId};
use serde_json::{json, Value};

use crate::render::{Class, Outgoing, StatusTopic, Topics};

/// Suffix (under the topic root) of the derived shot-time topic.
pub const SHOT_TIME_SUFFIX: &str = "de1d/shot_time";

/// Characters Home Assistant accepts in node and object ids.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One sensor description.
struct Sensor {
    object: &'static str,
    name: &'static str,
    /// Topic under the root.
    topic: TopicRef,
    template: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    icon: Option<&'static str>,
}

enum TopicRef {
    Class(Class),
    Suffix(&'static str),
}

fn sensors() -> Vec<Sensor> {
    let measurement = Some("measurement");
    let temp = |object, name, field| Sensor {
        object,
        name,
        topic: TopicRef::Class(Class::ShotSampleWithVolumesUpdate),
        template: field,
        unit: Some("°C"),
        device_class: Some("temperature"),
        state_class: measurement,
        icon: None,
    };
    let connectivity = |object, name, template| Sensor {
        object,
        name,
        topic: TopicRef::Class(Class::DeviceAvailability),
        template,
        unit: None,
        device_class: None,
        state_class: None,
        icon: Some("mdi:bluetooth-connect"),
    };
    vec![
        Sensor {
            object: "state",
            name: "State",
            topic: TopicRef::Class(Class::StateUpdate),
            template: "{{ value_json.state }}",
            unit: None,
            device_class: None,
            state_class: None,
            icon: Some("mdi:coffee-maker"),
        },
        Sensor {
            object: "substate",
            name: "Substate",
            topic: TopicRef::Class(Class::StateUpdate),
            template: "{{ value_json.substate }}",
            unit: None,
            device_class: None,
            state_class: None,
            icon: Some("mdi:coffee-maker-outline"),
        },
        temp(
            "group_temperature",
            "Group temperature",
            "{{ value_json.head_temp | round(1) }}",
        ),
        temp(
            "mix_temperature",
            "Mix temperature",
            "{{ value_json.mix_temp | round(1) }}",
        ),
        temp(
            "steam_temperature",
            "Steam temperature",
            "{{ value_json.steam_temp }}",
        ),
        Sensor {
            object: "pressure",
            name: "Pressure",
            topic: TopicRef::Class(Class::ShotSampleWithVolumesUpdate),
            template: "{{ value_json.group_pressure | round(2) }}",
            unit: Some("bar"),
            device_class: Some("pressure"),
            state_class: measurement,
            icon: None,
        },
        Sensor {
            object: "flow",
            name: "Flow",
            topic: TopicRef::Class(Class::ShotSampleWithVolumesUpdate),
            template: "{{ value_json.group_flow | round(2) }}",
            unit: Some("mL/s"),
            device_class: None,
            state_class: measurement,
            icon: Some("mdi:water-outline"),
        },
        Sensor {
            object: "weight",
            name: "Weight",
            topic: TopicRef::Class(Class::WeightAndFlowUpdate),
            template: "{{ value_json.current_weight | round(1) }}",
            unit: Some("g"),
            device_class: Some("weight"),
            state_class: measurement,
            icon: None,
        },
        Sensor {
            object: "water_level",
            name: "Water level",
            topic: TopicRef::Class(Class::WaterLevelUpdate),
            template: "{{ value_json.level | round(1) }}",
            unit: Some("mm"),
            device_class: Some("distance"),
            state_class: measurement,
            icon: Some("mdi:water-well-outline"),
        },
        Sensor {
            object: "shot_time",
            name: "Shot time",
            topic: TopicRef::Suffix(SHOT_TIME_SUFFIX),
            template: "{{ value_json.shot_time | round(1) }}",
            unit: Some("s"),
            device_class: Some("duration"),
            state_class: measurement,
            icon: Some("mdi:timer-outline"),
        },
        Sensor {
            object: "profile",
            name: "Current profile",
            topic: TopicRef::Suffix("update/de1/profile/id"),
            template: "{{ value_json.id }}",
            unit: None,
            device_class: None,
            state_class: None,
            icon: Some("mdi:chart-bell-curve"),
        },
        // DeviceAvailability carries every device: keep the previous state (`this`)
        // when a payload is about another role.
        connectivity(
            "de1_connectivity",
            "DE1 connectivity",
            "{{ value_json.state if value_json.role == 'de1' else this.state }}",
        ),
        connectivity(
            "scale_connectivity",
            "Scale connectivity",
            "{{ value_json.state if value_json.role == 'scale' else this.state }}",
        ),
    ]
}

/// The retained discovery documents for the device behind `topics`.
pub fn discovery(topics: &Topics, discovery_prefix: &str) -> Vec<Outgoing> {
    let root = topics.root();
    let node = sanitize(&format!("de1d_{root}"));
    let online_if_here = "{{ 'online' if value == 'Here' else 'offline' }}";
    let availability = json!([
        {"topic": topics.status(StatusTopic::Notification), "value_template": online_if_here},
        {"topic": topics.status(StatusTopic::Process(ProcessRole::Controller)),
         "value_template": online_if_here},
    ]);
    let device = json!({
        "identifiers": [node],
        "name": format!("DE1 ({root})"),
        "manufacturer": "Decent Espresso",
        "model": "DE1",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let origin = json!({"name": "de1d", "sw_version": env!("CARGO_PKG_VERSION")});
    sensors()
        .into_iter()
        .map(|s| {
            let state_topic = match s.topic {
                TopicRef::Class(c) => topics.class(c).to_string(),
                TopicRef::Suffix(suffix) => format!("{root}/{suffix}"),
            };
            let mut doc = json!({
                "name": s.name,
                "unique_id": format!("{node}_{}", s.object),
                "state_topic": state_topic,
                "value_template": s.template,
                "availability": availability,
                "availability_mode": "all",
                "device": device,
                "origin": origin,
            });
            if let Value::Object(map) = &mut doc {
                let optional = [
                    ("unit_of_measurement", s.unit),
                    ("device_class", s.device_class),
                    ("state_class", s.state_class),
                    ("icon", s.icon),
                ];
                for (key, value) in optional {
                    if let Some(v) = value {
                        map.insert(key.into(), Value::from(v));
                    }
                }
            }
            Outgoing {
                topic: format!("{discovery_prefix}/sensor/{node}/{}/config", s.object).into(),
                // A `Value` always serialises.
                payload: serde_json::to_vec(&doc).unwrap_or_default(),
                retain: true,
            }
        })
        .collect()
}

/// Derives the elapsed flow time of the current (or last) sequence.
#[derive(Debug, Clone)]
pub struct ShotClock {
    topic: Arc<str>,
    sequence: Option<SequenceId>,
    active_state: Option<MachineState>,
    flow_begin: Option<f64>,
    flowing: bool,
}

impl ShotClock {
    pub fn new(topics: &Topics) -> Self {
        ShotClock {
            topic: format!("{}/{SHOT_TIME_SUFFIX}", topics.root()).into(),
            sequence: None,
            active_state: None,
            flow_begin: None,
            flowing: false,
        }
    }

    /// Updates the clock from `event`; returns a retained publication when the shot
    /// time changed.
    pub fn observe(&mut self, event: &Event) -> Option<Outgoing> {
        let seconds = match event {
            Event::SequencerGateNotification(g) if g.action == GateAction::Set => match g.name {
                Gate::SequenceStart => {
                    self.sequence = Some(g.sequence_id);
                    self.active_state = g.active_state;
                    self.flow_begin = None;
                    self.flowing = false;
                    0.0
                }
                Gate::FlowBegin => {
                    self.sequence = Some(g.sequence_id);
                    self.active_state = g.active_state;
                    self.flow_begin = Some(g.stamp.event_time);
                    self.flowing = true;
                    0.0
                }
                Gate::FlowEnd if self.flowing => {
                    self.flowing = false;
                    let begin = self.flow_begin?;
                    (g.stamp.event_time - begin).max(0.0)
                }
                _ => return None,
            },
            Event::ShotSampleWithVolumesUpdate(s) if self.flowing => {
                (s.de1_time - self.flow_begin?).max(0.0)
            }
            _ => return None,
        };
        Some(self.payload(seconds))
    }

    fn payload(&self, seconds: f64) -> Outgoing {
        let mut buf = Vec::with_capacity(160);
        {
            let mut ser =
                serde_json::Serializer::with_formatter(&mut buf, crate::pyjson::PyFormatter);
            let doc = json!({
                "shot_time": (seconds * 1000.0).round() / 1000.0,
                "flowing": self.flowing,
                "sequence_id": self.sequence.map(|s| s.to_string()),
                "active_state": self.active_state.map(|s| s.as_str()),
            });
            // A `Value` always serialises.
            let _ = serde::Serialize::serialize(&doc, &mut ser);
        }
        Outgoing {
            topic: self.topic.clone(),
            payload: buf,
            retain: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::event::{SequencerGateNotification, Stamp};

    fn gate(name: Gate, t: f64) -> Event {
        Event::SequencerGateNotification(SequencerGateNotification {
            stamp: Stamp::at(t),
            name,
            action: GateAction::Set,
            sequence_id: SequenceId([1; 16]),
            active_state: Some(MachineState::Espresso),
        })
    }

    fn shot_time(o: &Outgoing) -> (f64, bool) {
        let v: Value = serde_json::from_slice(&o.payload).unwrap();
        (
            v["shot_time"].as_f64().unwrap(),
            v["flowing"].as_bool().unwrap(),
        )
    }

    #[test]
    fn discovery_documents_point_at_pyde1_topics() {
        let topics = Topics::new("pyDE1");
        let docs = discovery(&topics, "homeassistant");
        assert_eq!(docs.len(), 13);
        let state = docs
            .iter()
            .find(|d| &*d.topic == "homeassistant/sensor/de1d_pyDE1/state/config")
            .expect("state sensor");
        assert!(state.retain);
        let v: Value = serde_json::from_slice(&state.payload).unwrap();
        assert_eq!(v["state_topic"], "pyDE1/StateUpdate");
        assert_eq!(
            v["availability"][0]["topic"],
            "pyDE1/status/mqtt/notification"
        );
        assert_eq!(v["availability"][1]["topic"], "pyDE1/status/controller");
        assert_eq!(v["device"]["identifiers"][0], "de1d_pyDE1");
        let ids: std::collections::HashSet<_> = docs
            .iter()
            .map(|d| {
                let v: Value = serde_json::from_slice(&d.payload).unwrap();
                v["unique_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), docs.len(), "unique ids must differ");
    }

    #[test]
    fn shot_clock_runs_from_flow_begin_to_flow_end() {
        let topics = Topics::new("pyDE1");
        let mut clock = ShotClock::new(&topics);
        assert_eq!(
            shot_time(&clock.observe(&gate(Gate::SequenceStart, 100.0)).unwrap()),
            (0.0, false)
        );
        assert!(clock.observe(&gate(Gate::ExpectDrops, 100.2)).is_none());
        assert_eq!(
            shot_time(&clock.observe(&gate(Gate::FlowBegin, 100.5)).unwrap()),
            (0.0, true)
        );
        let end = clock.observe(&gate(Gate::FlowEnd, 125.75)).unwrap();
        assert_eq!(&*end.topic, "pyDE1/de1d/shot_time");
        assert_eq!(shot_time(&end), (25.25, false));
        // A second flow_end (there is none in pyDE1) does not restart anything.
        assert!(clock.observe(&gate(Gate::FlowEnd, 130.0)).is_none());
    }
}

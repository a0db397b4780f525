//! Event → MQTT publication: topic, pyDE1-shaped JSON payload, retain flag.
//!
//! The JSON is written by [`pyde1_docs::payload`] (re-exported here); this module adds the
//! topics, the plain-text `log` line and the status topics. Every publication is QoS 0,
//! as in pyDE1.

use std::io::Write;
use std::sync::Arc;

use ipc_schema::event::{Event, LogEntry, LogLevel, Presence, ProcessRole, SettingsArea};

use crate::localtime;

pub use pyde1_docs::payload::*;

/// The retained payload of a status topic.
pub const fn presence_payload(presence: Presence) -> &'static str {
    match presence {
        Presence::Here => "Here",
        Presence::Gone => "Gone",
        Presence::Died => "Died",
    }
}

/// A status topic (`<root>/status/…`), pyDE1-mqtt-api.md §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusTopic {
    /// `status/mqtt/notification`: this process's event connection.
    Notification,
    /// `status/mqtt/logging`: this process's log publishing.
    Logging,
    /// `status/controller`, `status/http`, `status/db_recorder`.
    Process(ProcessRole),
}

impl StatusTopic {
    pub const fn suffix(self) -> &'static str {
        match self {
            StatusTopic::Notification => "status/mqtt/notification",
            StatusTopic::Logging => "status/mqtt/logging",
            StatusTopic::Process(ProcessRole::Controller) => "status/controller",
            StatusTopic::Process(ProcessRole::Http) => "status/http",
            StatusTopic::Process(ProcessRole::Recorder) => "status/db_recorder",
        }
    }
}

/// One MQTT publication (QoS 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Full topic names, built once.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
    classes: Vec<Arc<str>>,
    log: Arc<str>,
    log_record: Arc<str>,
    control: Arc<str>,
    setting: Arc<str>,
    calibration: Arc<str>,
    profile_id: Arc<str>,
}

impl Topics {
    pub fn new(root: &str) -> Self {
        let t = |suffix: &str| -> Arc<str> { format!("{root}/{suffix}").into() };
        Topics {
            root: root.to_owned(),
            classes: Class::ALL.iter().map(|c| t(c.name())).collect(),
            log: t("log"),
            log_record: t("log/record"),
            control: t("update/de1/control"),
            setting: t("update/de1/setting"),
            calibration: t("update/de1/calibration"),
            profile_id: t("update/de1/profile/id"),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<root>/<class>`.
    pub fn class(&self, class: Class) -> &Arc<str> {
        // `classes` is built from `Class::ALL`, indexed by discriminant.
        &self.classes[class.index()]
    }

    pub fn status(&self, status: StatusTopic) -> String {
        format!("{}/{}", self.root, status.suffix())
    }

    pub fn log(&self) -> &Arc<str> {
        &self.log
    }

    pub fn log_record(&self) -> &Arc<str> {
        &self.log_record
    }

    pub fn area(&self, area: SettingsArea) -> &Arc<str> {
        match area {
            SettingsArea::Control => &self.control,
            SettingsArea::Setting => &self.setting,
            SettingsArea::Calibration => &self.calibration,
        }
    }

    pub fn profile_id(&self) -> &Arc<str> {
        &self.profile_id
    }
}

/// Turns events into publications.
#[derive(Debug, Clone)]
pub struct Renderer {
    topics: Topics,
    log_level: LogLevel,
}

impl Renderer {
    /// `log_level`: the lowest level of log records to publish.
    pub fn new(topic_root: &str, log_level: LogLevel) -> Self {
        Renderer {
            topics: Topics::new(topic_root),
            log_level,
        }
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Appends the publications for `event` to `out` (none for events that are not
    /// published, such as heartbeats, process status and filtered log records).
    pub fn render(&self, event: &Event, out: &mut Vec<Outgoing>) -> Result<(), RenderError> {
        let (topic, payload) = match event {
            Event::Heartbeat | Event::ProcessStatus(_) => return Ok(()),
            Event::Log(record) => return self.render_log(record, out),
            Event::AreaUpdate(u) => (
                self.topics.area(u.area()).clone(),
                area_payload(&u.document, u.timestamp)?,
            ),
            Event::ProfileIdUpdate(u) => (self.topics.profile_id().clone(), profile_id_payload(u)?),
            _ => {
                let mut payload = Vec::with_capacity(PAYLOAD_CAPACITY);
                let Some(class) = event_payload(event, &mut payload)? else {
                    return Ok(());
                };
                (self.topics.class(class).clone(), payload)
            }
        };
        out.push(Outgoing {
            topic,
            payload,
            retain: false,
        });
        Ok(())
    }

    /// Writes the JSON payload of an event class into `buf`; returns its class, or
    /// `None` for events that are not class payloads.
    pub fn render_event_payload(
        &self,
        event: &Event,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Class>, RenderError> {
        event_payload(event, buf)
    }

    fn render_log(&self, record: &LogEntry, out: &mut Vec<Outgoing>) -> Result<(), RenderError> {
        if record.level < self.log_level {
            return Ok(());
        }
        // `<root>/log`: "%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s"
        let mut text = Vec::with_capacity(64 + record.message.len());
        localtime::write_asctime(&mut text, record.created)?;
        write!(
            text,
            " {} [{}] {}: {}",
            level_name(record.level),
            record.process_name,
            record.name,
            record.message
        )?;
        out.push(Outgoing {
            topic: self.topics.log().clone(),
            payload: text,
            retain: false,
        });
        out.push(Outgoing {
            topic: self.topics.log_record().clone(),
            payload: log_record_payload(record)?,
            retain: false,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_topics_follow_the_root() {
        let t = Topics::new("KEpyDE1");
        assert_eq!(&**t.class(Class::BlueDotUpdate), "KEpyDE1/BlueDOTUpdate");
        assert_eq!(&**t.class(Class::StateUpdate), "KEpyDE1/StateUpdate");
        assert_eq!(&**t.profile_id(), "KEpyDE1/update/de1/profile/id");
        assert_eq!(
            t.status(StatusTopic::Process(ProcessRole::Recorder)),
            "KEpyDE1/status/db_recorder"
        );
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}

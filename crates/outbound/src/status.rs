//! Status topics other than this process's event connection (`status/mqtt/logging`,
//! `status/controller`, `status/http`, `status/db_recorder`).
//!
//! As in pyDE1, each status topic has its own MQTT connection whose will is a retained
//! `Died`, so the broker reports every one of them if de1d vanishes. The presence is
//! republished on every (re)connection.

use std::time::Duration;

use ipc_schema::event::Presence;
use paho_mqtt as mqtt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::link::{Backoff, Link, LinkError};
use crate::render::presence_payload;
use crate::settings::MqttSettings;

/// What a status link should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Command {
    /// The presence to keep published (`None`: nothing yet).
    presence: Option<Presence>,
    /// Publish `presence` one last time, disconnect in an orderly way, and end.
    stop: bool,
}

/// A running status link.
pub struct StatusLink {
    tx: watch::Sender<Command>,
    task: JoinHandle<()>,
}

impl StatusLink {
    /// Starts a link publishing `presence` (if any) on `topic`. Needs a tokio runtime.
    pub fn spawn(
        settings: &MqttSettings,
        id_suffix: &str,
        topic: String,
        presence: Option<Presence>,
    ) -> Result<Self, LinkError> {
        let link = Link::new(settings, id_suffix, &topic)?;
        let (tx, rx) = watch::channel(Command {
            presence,
            stop: false,
        });
        let backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
        let timeout = settings.shutdown_timeout;
        let task = tokio::spawn(run(link, topic, rx, backoff, timeout));
        Ok(StatusLink { tx, task })
    }

    /// The presence currently asked for.
    pub fn presence(&self) -> Option<Presence> {
        self.tx.borrow().presence
    }

    pub fn set(&self, presence: Presence) {
        self.tx.send_modify(|c| c.presence = Some(presence));
    }

    /// Publishes `last` (if any, else the current presence), disconnects, and waits
    /// for the link to end.
    pub async fn stop(self, last: Option<Presence>, timeout: Duration) {
        self.tx.send_modify(|c| {
            if last.is_some() {
                c.presence = last;
            }
            c.stop = true;
        });
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn run(
    link: Link,
    topic: String,
    mut rx: watch::Receiver<Command>,
    mut backoff: Backoff,
    timeout: Duration,
) {
    loop {
        // Connect, retrying until it works or we are told to stop.
        loop {
            if rx.borrow().stop {
                return;
            }
            let mut tok = link.connect();
            let connected = loop {
                tokio::select! {
                    res = &mut tok => break res,
                    res = rx.changed() => if res.is_err() || rx.borrow().stop {
                        return;
                    },
                }
            };
            match connected {
                Ok(_) => break,
                Err(e) => log::debug!("status link {topic}: connect failed: {e}"),
            }
            let sleep = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    res = rx.changed() => if res.is_err() || rx.borrow().stop {
                        return;
                    },
                }
            }
        }
        backoff.reset();
        let mut published = None;
        loop {
            let cmd = *rx.borrow_and_update();
            if cmd.presence != published {
                if let Some(p) = cmd.presence {
                    let msg = mqtt::Message::new_retained(
                        topic.as_str(),
                        presence_payload(p),
                        mqtt::QOS_0,
                    );
                    let tok = link.client.publish(msg);
                    if cmd.stop {
                        let _ = tokio::time::timeout(timeout, tok).await;
                    }
                }
                published = cmd.presence;
            }
            if cmd.stop {
                link.disconnect(timeout).await;
                return;
            }
            tokio::select! {
                res = rx.changed() => if res.is_err() {
                    // The owner is gone without stopping us: leave the will to the broker.
                    return;
                },
                _ = link.lost.notified() => {
                    if !link.client.is_connected() {
                        log::debug!("status link {topic}: connection lost");
                        break;
                    }
                }
            }
        }
    }
}

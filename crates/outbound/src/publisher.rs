//! The publisher: reads events, queues them, and publishes them to the broker.
//!
//! One task does everything on its own connection, so an event that arrives while the
//! link is up and idle is rendered and handed to the MQTT library at once (no hop
//! between tasks). While the broker is slow (too many publications not yet written to
//! the socket) or unreachable, events wait in the [`EventQueue`], which drops the
//! oldest high-rate measurements first. Connection attempts are retried with an
//! exponential backoff; after every (re)connection the retained publications (status,
//! Home Assistant discovery, shot time) are published again, in case the broker lost
//! them.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use ipc_schema::event::{Event, Presence, ProcessRole};
use paho_mqtt as mqtt;
use tokio::time::Instant;

use crate::ha::{self, ShotClock};
use crate::link::{Backoff, Link, LinkError};
use crate::queue::{DropCounts, EventQueue};
use crate::render::{presence_payload, Outgoing, Renderer, StatusTopic};
use crate::settings::{MqttSettings, SettingsError};
use crate::source::EventSource;
use crate::status::StatusLink;

/// At most one "dropped events" warning per this period.
const DROP_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// Live counters, readable while the publisher runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Publications handed to the MQTT library.
    pub published: AtomicU64,
    /// Measurements dropped by the queue.
    pub dropped_samples: AtomicU64,
    /// Other events dropped by the queue (only when it held no measurement).
    pub dropped_others: AtomicU64,
    /// Events that could not be rendered (logged).
    pub render_errors: AtomicU64,
    /// Successful connections so far.
    pub connections: AtomicU64,
    /// Whether the event connection is up.
    pub connected: AtomicBool,
}

impl Stats {
    pub fn dropped(&self) -> DropCounts {
        DropCounts {
            samples: self.dropped_samples.load(Ordering::Relaxed),
            others: self.dropped_others.load(Ordering::Relaxed),
        }
    }
}

/// How the publisher ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The shutdown future completed.
    Shutdown,
    /// The event source ended.
    SourceClosed,
}

/// Summary returned when the publisher ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub end: End,
    pub published: u64,
    pub dropped: DropCounts,
    /// Events still queued (not published) at the end.
    pub unsent: usize,
}

/// The outbound MQTT publisher.
pub struct Publisher {
    settings: MqttSettings,
    renderer: Renderer,
    link: Link,
    status_topic: Arc<str>,
    queue: EventQueue,
    /// Publications not yet written to the socket, oldest first.
    in_flight: VecDeque<mqtt::DeliveryToken>,
    /// Last retained payload per topic, republished on every connection.
    retained: Vec<(Arc<str>, Vec<u8>)>,
    retained_index: HashMap<Arc<str>, usize>,
    shot_clock: Option<ShotClock>,
    links: HashMap<StatusTopic, StatusLink>,
    scratch: Vec<Outgoing>,
    stats: Arc<Stats>,
    logged_drops: DropCounts,
    last_drop_log: Option<Instant>,
    up: bool,
}

impl Publisher {
    /// Checks the settings and creates the MQTT client; does not connect yet.
    pub fn new(settings: MqttSettings) -> Result<Self, PublishError> {
        settings.validate()?;
        let renderer = Renderer::new(&settings.topic_root, settings.log_level);
        let status_topic: Arc<str> = renderer.topics().status(StatusTopic::Notification).into();
        let link = Link::new(&settings, "", &status_topic)?;
        let mut p = Publisher {
            queue: EventQueue::new(settings.queue_capacity),
            in_flight: VecDeque::with_capacity(settings.max_in_flight),
            retained: Vec::new(),
            retained_index: HashMap::new(),
            shot_clock: settings
                .home_assistant
                .then(|| ShotClock::new(renderer.topics())),
            links: HashMap::new(),
            scratch: Vec::with_capacity(4),
            stats: Arc::new(Stats::default()),
            logged_drops: DropCounts::default(),
            last_drop_log: None,
            up: false,
            renderer,
            link,
            status_topic,
            settings,
        };
        p.remember_retained(Outgoing {
            topic: p.status_topic.clone(),
            payload: presence_payload(Presence::Here).into(),
            retain: true,
        });
        if p.settings.home_assistant {
            for doc in ha::discovery(p.renderer.topics(), &p.settings.discovery_prefix) {
                p.remember_retained(doc);
            }
        }
        Ok(p)
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Publishes events from `source` until it ends or `shutdown` completes, then
    /// flushes what it can, publishes retained `Gone` and disconnects.
    ///
    /// The `status/controller`, `status/http` and `status/db_recorder` topics follow the
    /// [`Event::ProcessStatus`] events of the source; if the source ends while the
    /// controller is `Here`, it becomes `Died`.
    pub async fn run<S, F>(mut self, mut source: S, shutdown: F) -> Report
    where
        S: EventSource,
        F: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        self.start_link(StatusTopic::Logging, Some(Presence::Here));

        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max);
        let mut connecting: Option<mqtt::Token> = Some(self.link.connect());
        let mut retry_at: Option<Instant> = None;
        let lost = Arc::clone(&self.link.lost);

        let end = loop {
            let wait_in_flight = self.up && self.in_flight.len() >= self.settings.max_in_flight;
            tokio::select! {
                biased;
                _ = &mut shutdown => break End::Shutdown,
                _ = lost.notified() => {
                    if self.up && !self.link.client.is_connected() {
                        log::warn!("MQTT broker connection lost; reconnecting");
                        self.set_up(false);
                        self.in_flight.clear();
                        retry_at = Some(Instant::now() + backoff.next_delay());
                    }
                }
                res = wait_on(connecting.as_mut()), if connecting.is_some() => {
                    connecting = None;
                    match res {
                        Ok(_) => {
                            backoff.reset();
                            self.stats.connections.fetch_add(1, Ordering::Relaxed);
                            log::info!("MQTT connected to {}", self.settings.server_uri());
                            self.set_up(true);
                            self.publish_retained();
                        }
                        Err(e) => {
                            let delay = backoff.next_delay();
                            log::warn!(
                                "MQTT connection to {} failed: {e}; retrying in {:.1} s",
                                self.settings.server_uri(),
                                delay.as_secs_f64()
                            );
                            retry_at = Some(Instant::now() + delay);
                        }
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    retry_at = None;
                    connecting = Some(self.link.connect());
                }
                res = wait_on(self.in_flight.front_mut()), if wait_in_flight => {
                    self.in_flight.pop_front();
                    if let Err(e) = res {
                        log::debug!("MQTT publish failed: {e}");
                    }
                }
                ev = source.recv() => match ev {
                    Some(ev) => self.accept(ev),
                    None => break End::SourceClosed,
                },
            }
            if self.up && !self.pump() {
                // The library refused a publication: the connection is gone.
                self.set_up(false);
                self.in_flight.clear();
                if connecting.is_none() && retry_at.is_none() {
                    retry_at = Some(Instant::now() + backoff.next_delay());
                }
            }
        };
        self.finish(end).await
    }

    /// Takes one event from the source.
    fn accept(&mut self, event: Event) {
        match event {
            Event::Heartbeat => {}
            Event::ProcessStatus(s) => {
                let topic = StatusTopic::Process(s.process);
                match self.links.get(&topic) {
                    Some(link) => link.set(s.presence),
                    None => self.start_link(topic, Some(s.presence)),
                }
            }
            ev => {
                self.queue.push(ev);
                self.note_drops();
            }
        }
    }

    fn start_link(&mut self, topic: StatusTopic, presence: Option<Presence>) {
        let suffix = match topic {
            StatusTopic::Notification => "",
            StatusTopic::Logging => "LogMQTT",
            StatusTopic::Process(ProcessRole::Controller) => "Controller",
            StatusTopic::Process(ProcessRole::Http) => "InboundAPI",
            StatusTopic::Process(ProcessRole::Recorder) => "DatabaseLogger",
        };
        let full = self.renderer.topics().status(topic);
        match StatusLink::spawn(&self.settings, suffix, full, presence) {
            Ok(link) => {
                self.links.insert(topic, link);
            }
            Err(e) => log::error!("cannot create MQTT client for {}: {e}", topic.suffix()),
        }
    }

    /// Publishes queued events while the in-flight limit allows. Returns `false` when the
    /// MQTT library refused a publication because the connection is gone.
    fn pump(&mut self) -> bool {
        // Forget publications already written out.
        while let Some(front) = self.in_flight.front_mut() {
            match front.now_or_never() {
                Some(res) => {
                    if let Err(e) = res {
                        log::debug!("MQTT publish failed: {e}");
                    }
                    self.in_flight.pop_front();
                }
                None => break,
            }
        }
        while self.in_flight.len() < self.settings.max_in_flight {
            let Some(event) = self.queue.pop() else {
                break;
            };
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            if let Err(e) = self.renderer.render(&event, &mut out) {
                self.stats.render_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("cannot publish {}: {e}", event_name(&event));
            }
            if let Some(clock) = &mut self.shot_clock {
                out.extend(clock.observe(&event));
            }
            let mut sent_any = false;
            let mut ok = true;
            for o in out.drain(..) {
                if o.retain {
                    self.remember_retained(o.clone());
                }
                if !self.send(o) {
                    ok = false;
                    break;
                }
                sent_any = true;
            }
            self.scratch = out;
            if !ok {
                if !sent_any {
                    self.queue.push_front(event);
                }
                return false;
            }
        }
        true
    }

    /// Hands one publication to the MQTT library; `false` if the client is not
    /// connected. Other refusals are logged and the publication is dropped.
    fn send(&mut self, o: Outgoing) -> bool {
        let msg = if o.retain {
            mqtt::Message::new_retained(&*o.topic, o.payload, mqtt::QOS_0)
        } else {
            mqtt::Message::new(&*o.topic, o.payload, mqtt::QOS_0)
        };
        match self.link.client.try_publish(msg) {
            Ok(tok) => {
                self.in_flight.push_back(tok);
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                if self.link.client.is_connected() {
                    log::warn!("MQTT publish on {} refused: {e}", o.topic);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn remember_retained(&mut self, o: Outgoing) {
        match self.retained_index.get(&o.topic) {
            Some(&i) => self.retained[i].1 = o.payload,
            None => {
                self.retained_index
                    .insert(o.topic.clone(), self.retained.len());
                self.retained.push((o.topic, o.payload));
            }
        }
    }

    /// Publishes every retained payload (after a connection).
    fn publish_retained(&mut self) {
        let all: Vec<Outgoing> = self
            .retained
            .iter()
            .map(|(topic, payload)| Outgoing {
                topic: topic.clone(),
                payload: payload.clone(),
                retain: true,
            })
            .collect();
        for o in all {
            if !self.send(o) {
                return;
            }
        }
    }

    fn set_up(&mut self, up: bool) {
        self.up = up;
        self.stats.connected.store(up, Ordering::Relaxed);
    }

    /// Logs new drops, at most once per [`DROP_LOG_PERIOD`].
    fn note_drops(&mut self) {
        let now = self.queue.dropped();
        self.stats
            .dropped_samples
            .store(now.samples, Ordering::Relaxed);
        self.stats
            .dropped_others
            .store(now.others, Ordering::Relaxed);
        if now == self.logged_drops {
            return;
        }
        let due = self
            .last_drop_log
            .is_none_or(|t| t.elapsed() >= DROP_LOG_PERIOD);
        if due {
            self.log_drops(now);
        }
    }

    fn log_drops(&mut self, now: DropCounts) {
        let new_samples = now.samples - self.logged_drops.samples;
        let new_others = now.others - self.logged_drops.others;
        log::warn!(
            "MQTT broker slow or unreachable: dropped {new_samples} measurement(s) and \
             {new_others} other event(s) ({} in total since start)",
            now.total()
        );
        self.logged_drops = now;
        self.last_drop_log = Some(Instant::now());
    }

    /// Orderly end: flush the queue (bounded by the shutdown timeout), publish `Gone`,
    /// disconnect, stop the status links.
    async fn finish(mut self, end: End) -> Report {
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        if self.up {
            while !self.queue.is_empty() && Instant::now() < deadline {
                if !self.pump() {
                    self.set_up(false);
                    break;
                }
                if let Some(front) = self.in_flight.front_mut() {
                    if tokio::time::timeout_at(deadline, front).await.is_err() {
                        break;
                    }
                    self.in_flight.pop_front();
                }
            }
        }
        if self.up {
            let gone = Outgoing {
                topic: self.status_topic.clone(),
                payload: presence_payload(Presence::Gone).into(),
                retain: true,
            };
            self.send(gone);
            while let Some(tok) = self.in_flight.pop_front() {
                if tokio::time::timeout_at(deadline, tok).await.is_err() {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.link
                .disconnect(left.max(Duration::from_millis(100)))
                .await;
            self.set_up(false);
        }
        let dropped = self.queue.dropped();
        if dropped != self.logged_drops {
            self.log_drops(dropped);
        }

        // The controller went away without saying goodbye: report it as pyDE1's
        // supervisor does. Otherwise every status we keep is left as "Gone".
        let controller = StatusTopic::Process(ProcessRole::Controller);
        let links: Vec<_> = self.links.drain().collect();
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        let stops = links.into_iter().map(|(topic, link)| {
            let last = match (topic, link.presence(), end) {
                (_, Some(Presence::Died), _) => Some(Presence::Died),
                (t, Some(Presence::Here), End::SourceClosed) if t == controller => {
                    Some(Presence::Died)
                }
                (_, Some(_), _) => Some(Presence::Gone),
                (_, None, _) => None,
            };
            link.stop(last, left)
        });
        futures::future::join_all(stops).await;

        Report {
            end,
            published: self.stats.published.load(Ordering::Relaxed),
            dropped,
            unsent: self.queue.len(),
        }
    }
}

/// Awaits `fut` if there is one (never completes otherwise).
async fn wait_on<F: Future + Unpin>(fut: Option<&mut F>) -> F::Output {
    match fut {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// A short name for log messages.
fn event_name(event: &Event) -> &'static str {
    match event {
        Event::AreaUpdate(_) => "settings update",
        Event::ProfileIdUpdate(_) => "profile id update",
        Event::Log(_) => "log record",
        _ => "event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::event::{Stamp, WaterLevelUpdate};

    fn level(t: f64) -> Event {
        Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(t),
            level: t,
            start_fill_level: 5.0,
        })
    }

    #[test]
    fn drops_are_counted_at_once_and_logged_at_most_every_ten_seconds() {
        let settings = MqttSettings {
            queue_capacity: 2,
            broker_host: "127.0.0.1".into(),
            broker_port: 9,
            ..MqttSettings::default()
        };
        let mut p = Publisher::new(settings).expect("publisher");
        for t in 0..5 {
            p.accept(level(f64::from(t)));
        }
        assert_eq!(p.stats().dropped().samples, 3);
        // The first drops were reported at once…
        assert_eq!(p.logged_drops.samples, 1);
        let first_log = p.last_drop_log.expect("logged");
        // …later ones wait for the period to pass.
        p.accept(level(9.0));
        assert_eq!(p.stats().dropped().samples, 4);
        assert_eq!(p.logged_drops.samples, 1);
        assert_eq!(p.last_drop_log, Some(first_log));
        p.last_drop_log = Some(first_log - DROP_LOG_PERIOD);
        p.accept(level(10.0));
        assert_eq!(p.logged_drops.samples, 5);
    }

    #[test]
    fn bad_settings_are_refused() {
        let settings = MqttSettings {
            topic_root: "pyDE1/#".into(),
            ..MqttSettings::default()
        };
        assert!(matches!(
            Publisher::new(settings),
            Err(PublishError::Settings(SettingsError::TopicRoot(_)))
        ));
    }
}

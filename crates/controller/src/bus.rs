//! The controller's event fan-out.
//!
//! [`EventBus::publish`] never waits: each subscriber has its own bounded queue, and a
//! full queue makes room by dropping its oldest *droppable* event (shot samples, weights,
//! water levels — [`Event::is_droppable`]), or, if it holds nothing droppable, its
//! oldest event. What a subscriber lost is reported to it as a count before the next
//! event it receives, so a slow consumer (an MQTT broker that stalls, a restarting
//! outbound process) never holds up the DE1 link or the other subscribers.
//!
//! Publishing a `Copy` event (the high-rate ones) allocates nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ipc_schema::event::Event;
use tokio::sync::Notify;

/// Events a subscriber may have queued by default.
pub const DEFAULT_QUEUE_LEN: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Queue {
    events: VecDeque<Event>,
    /// Dropped since the subscriber last received something.
    lagged: u64,
}

struct Subscriber {
    queue: Mutex<Queue>,
    notify: Notify,
    capacity: usize,
}

impl Subscriber {
    fn push(&self, event: &Event) {
        {
            let mut q = lock(&self.queue);
            if q.events.len() >= self.capacity {
                let victim = q.events.iter().position(Event::is_droppable).unwrap_or(0);
                q.events.remove(victim);
                q.lagged += 1;
            }
            q.events.push_back(event.clone());
        }
        self.notify.notify_one();
    }
}

/// What a subscriber receives.
// Boxing the event would cost an allocation per delivered sample.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// This many events were dropped before the next one.
    Lagged(u64),
    Event(Event),
}

/// The publishing side; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Weak<Subscriber>>>>,
    capacity: usize,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(DEFAULT_QUEUE_LEN)
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.subscriber_count())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl EventBus {
    /// A bus whose subscribers queue at most `capacity` events each.
    pub fn new(capacity: usize) -> EventBus {
        EventBus {
            subscribers: Arc::new(Mutex::new(Vec::new())),
            capacity: capacity.max(1),
        }
    }

    /// Hands `event` to every subscriber without waiting.
    pub fn publish(&self, event: Event) {
        let mut subs = lock(&self.subscribers);
        let mut dead = false;
        for weak in subs.iter() {
            match weak.upgrade() {
                Some(s) => s.push(&event),
                None => dead = true,
            }
        }
        if dead {
            subs.retain(|w| w.strong_count() > 0);
        }
    }

    /// A new subscriber; it sees events published from now on.
    pub fn subscribe(&self) -> Subscription {
        let sub = Arc::new(Subscriber {
            queue: Mutex::new(Queue {
                events: VecDeque::with_capacity(self.capacity.min(DEFAULT_QUEUE_LEN)),
                lagged: 0,
            }),
            notify: Notify::new(),
            capacity: self.capacity,
        });
        lock(&self.subscribers).push(Arc::downgrade(&sub));
        Subscription { sub }
    }

    /// Subscribers still alive.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.subscribers)
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// The receiving side; dropping it unsubscribes.
pub struct Subscription {
    sub: Arc<Subscriber>,
}

impl Subscription {
    /// The next delivery, waiting if there is none.
    pub async fn recv(&mut self) -> Delivery {
        loop {
            if let Some(d) = self.try_recv() {
                return d;
            }
            self.sub.notify.notified().await;
        }
    }

    /// The next delivery, if one is queued.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let mut q = lock(&self.sub.queue);
        if q.lagged > 0 {
            let n = std::mem::take(&mut q.lagged);
            return Some(Delivery::Lagged(n));
        }
        q.events.pop_front().map(Delivery::Event)
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        lock(&self.sub.queue).events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::event::{AutoTareAction, AutoTareNotification, Stamp, WaterLevelUpdate};

    fn water(level: f64) -> Event {
        Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(0.0),
            level,
            start_fill_level: 5.0,
        })
    }

    fn tare(t: f64) -> Event {
        Event::AutoTareNotification(AutoTareNotification {
            stamp: Stamp::at(t),
            action: AutoTareAction::Enabled,
        })
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_sample_not_state() {
        let bus = EventBus::new(3);
        let mut sub = bus.subscribe();
        bus.publish(tare(1.0));
        bus.publish(water(1.0));
        bus.publish(water(2.0));
        // Full: water(1.0) is the oldest droppable.
        bus.publish(tare(2.0));
        assert_eq!(sub.recv().await, Delivery::Lagged(1));
        assert_eq!(sub.recv().await, Delivery::Event(tare(1.0)));
        assert_eq!(sub.recv().await, Delivery::Event(water(2.0)));
        assert_eq!(sub.recv().await, Delivery::Event(tare(2.0)));
        assert!(sub.try_recv().is_none());
    }

    #[tokio::test]
    async fn without_droppable_events_the_oldest_goes() {
        let bus = EventBus::new(2);
        let mut sub = bus.subscribe();
        for t in 0..3 {
            bus.publish(tare(f64::from(t)));
        }
        assert_eq!(sub.recv().await, Delivery::Lagged(1));
        assert_eq!(sub.recv().await, Delivery::Event(tare(1.0)));
        assert_eq!(sub.recv().await, Delivery::Event(tare(2.0)));
    }

    #[tokio::test]
    async fn a_slow_subscriber_does_not_hold_up_a_fast_one() {
        let bus = EventBus::new(4);
        let slow = bus.subscribe();
        let mut fast = bus.subscribe();
        for i in 0..100 {
            bus.publish(water(f64::from(i)));
            assert_eq!(fast.recv().await, Delivery::Event(water(f64::from(i))));
        }
        assert_eq!(slow.len(), 4);
        drop(slow);
        bus.publish(water(0.0));
        assert_eq!(bus.subscriber_count(), 1);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken() {
        let bus = EventBus::new(8);
        let mut sub = bus.subscribe();
        let waiter = tokio::spawn(async move { sub.recv().await });
        tokio::task::yield_now().await;
        bus.publish(tare(5.0));
        assert_eq!(waiter.await.expect("join"), Delivery::Event(tare(5.0)));
    }
}

//! The bounded queue between the event source and the broker.
//!
//! Reading from the controller never waits for the broker: events are put here at once.
//! When the queue is full, the oldest high-rate measurement (shot sample, weight, water
//! level) makes room; state, gate, stop-at, availability and other events are dropped
//! only when nothing droppable is left, oldest first.

use std::collections::VecDeque;

use ipc_schema::event::Event;

/// Counts of events the queue had to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Shot samples, weights and water levels.
    pub samples: u64,
    /// Anything else (only when the queue held nothing droppable).
    pub others: u64,
}

impl DropCounts {
    pub fn total(&self) -> u64 {
        self.samples + self.others
    }
}

/// A FIFO of events with the drop policy described in the module documentation.
#[derive(Debug)]
pub struct EventQueue {
    items: VecDeque<Event>,
    capacity: usize,
    dropped: DropCounts,
}

impl EventQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        EventQueue {
            items: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            dropped: DropCounts::default(),
        }
    }

    /// Adds `event` at the back, dropping one event first if the queue is full.
    pub fn push(&mut self, event: Event) {
        if self.items.len() >= self.capacity {
            if let Some(i) = self.items.iter().position(Event::is_droppable) {
                self.items.remove(i);
                self.dropped.samples += 1;
            } else if event.is_droppable() {
                // Everything queued matters more than this newest sample.
                self.dropped.samples += 1;
                return;
            } else {
                self.items.pop_front();
                self.dropped.others += 1;
            }
        }
        self.items.push_back(event);
    }

    /// Puts an event that could not be sent back at the front (it keeps its place).
    pub fn push_front(&mut self, event: Event) {
        if self.items.len() >= self.capacity {
            if let Some(i) = self.items.iter().position(Event::is_droppable) {
                self.items.remove(i);
                self.dropped.samples += 1;
            } else if event.is_droppable() {
                self.dropped.samples += 1;
                return;
            } else {
                self.items.pop_back();
                self.dropped.others += 1;
            }
        }
        self.items.push_front(event);
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops counted since the queue was made.
    pub fn dropped(&self) -> DropCounts {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::event::{AutoTareAction, AutoTareNotification, Stamp, WaterLevelUpdate};

    fn sample(t: f64) -> Event {
        Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(t),
            level: t,
            start_fill_level: 5.0,
        })
    }

    fn important(t: f64) -> Event {
        Event::AutoTareNotification(AutoTareNotification {
            stamp: Stamp::at(t),
            action: AutoTareAction::Enabled,
        })
    }

    fn time(e: &Event) -> f64 {
        match e {
            Event::WaterLevelUpdate(w) => w.stamp.event_time,
            Event::AutoTareNotification(a) => a.stamp.event_time,
            _ => f64::NAN,
        }
    }

    fn drain(q: &mut EventQueue) -> Vec<f64> {
        std::iter::from_fn(|| q.pop()).map(|e| time(&e)).collect()
    }

    #[test]
    fn overflow_drops_oldest_samples_and_keeps_order() {
        let mut q = EventQueue::new(4);
        q.push(sample(1.0));
        q.push(important(2.0));
        q.push(sample(3.0));
        q.push(important(4.0));
        q.push(important(5.0)); // drops sample 1
        q.push(sample(6.0)); // drops sample 3
        assert_eq!(
            q.dropped(),
            DropCounts {
                samples: 2,
                others: 0
            }
        );
        assert_eq!(drain(&mut q), [2.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn full_of_important_events() {
        let mut q = EventQueue::new(2);
        q.push(important(1.0));
        q.push(important(2.0));
        q.push(sample(3.0)); // the newest sample is the least important
        q.push(important(4.0)); // then the oldest important event goes
        assert_eq!(
            q.dropped(),
            DropCounts {
                samples: 1,
                others: 1
            }
        );
        assert_eq!(drain(&mut q), [2.0, 4.0]);
    }

    #[test]
    fn push_front_keeps_place() {
        let mut q = EventQueue::new(3);
        q.push(important(2.0));
        q.push(sample(3.0));
        q.push_front(important(1.0));
        q.push_front(important(0.0)); // full: the sample goes
        assert_eq!(drain(&mut q), [0.0, 1.0, 2.0]);
        assert_eq!(q.dropped().total(), 1);
    }
}

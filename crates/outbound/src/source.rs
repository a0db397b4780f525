//! Where events come from: the controller link, or a channel in tests.

use std::future::Future;

use ipc_schema::client::LinkEvent;
use ipc_schema::event::{Event, Presence, ProcessRole, ProcessStatus};
use tokio::sync::mpsc;

/// A stream of events. `recv` must be cancel-safe (it is raced against timers and
/// broker notifications; an event must not be lost when the future is dropped).
pub trait EventSource {
    /// The next event; `None` once the producer has gone for good.
    fn recv(&mut self) -> impl Future<Output = Option<Event>>;
}

impl EventSource for mpsc::Receiver<Event> {
    fn recv(&mut self) -> impl Future<Output = Option<Event>> {
        mpsc::Receiver::recv(self)
    }
}

impl EventSource for mpsc::UnboundedReceiver<Event> {
    fn recv(&mut self) -> impl Future<Output = Option<Event>> {
        mpsc::UnboundedReceiver::recv(self)
    }
}

/// The controller's event subscription ([`ipc_schema::ChildEnv::controller_events`]).
///
/// The link's state becomes the controller's status topic: `Here` while connected,
/// `Died` when the connection drops unless the controller said `Gone` first (a
/// [`ProcessStatus`] for itself, sent before an orderly exit).
pub struct ControllerEvents {
    rx: mpsc::Receiver<LinkEvent>,
    /// The controller announced an orderly stop on the current connection.
    said_gone: bool,
    lagged: u64,
}

impl ControllerEvents {
    pub fn new(rx: mpsc::Receiver<LinkEvent>) -> Self {
        ControllerEvents {
            rx,
            said_gone: false,
            lagged: 0,
        }
    }

    /// Events the controller skipped because this process read too slowly.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    fn controller(presence: Presence) -> Event {
        Event::ProcessStatus(ProcessStatus {
            process: ProcessRole::Controller,
            presence,
        })
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await? {
                LinkEvent::Connected(_) => {
                    self.said_gone = false;
                    return Some(Self::controller(Presence::Here));
                }
                LinkEvent::Disconnected => {
                    if !self.said_gone {
                        return Some(Self::controller(Presence::Died));
                    }
                }
                LinkEvent::Event(ev) => {
                    if let Event::ProcessStatus(ProcessStatus {
                        process: ProcessRole::Controller,
                        presence,
                    }) = &ev
                    {
                        self.said_gone = *presence != Presence::Here;
                    }
                    return Some(ev);
                }
                LinkEvent::Lagged(n) => {
                    self.lagged += n;
                    log::warn!("missed {n} controller events ({} in total)", self.lagged);
                }
            }
        }
    }
}

impl EventSource for ControllerEvents {
    fn recv(&mut self) -> impl Future<Output = Option<Event>> {
        // `mpsc::Receiver::recv` is cancel-safe and `next` holds no state across it.
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::envelope::{Hello, Role};

    fn hello() -> Hello {
        Hello::new(Role::Controller)
    }

    fn status(e: Option<Event>) -> Option<Presence> {
        match e? {
            Event::ProcessStatus(s) if s.process == ProcessRole::Controller => Some(s.presence),
            _ => None,
        }
    }

    #[tokio::test]
    async fn link_state_becomes_controller_status() {
        let (tx, rx) = mpsc::channel(16);
        let mut src = ControllerEvents::new(rx);
        tx.send(LinkEvent::Connected(hello())).await.unwrap();
        tx.send(LinkEvent::Event(Event::Heartbeat)).await.unwrap();
        tx.send(LinkEvent::Lagged(3)).await.unwrap();
        tx.send(LinkEvent::Disconnected).await.unwrap();
        // Reconnected, then an orderly stop: no "Died" after the goodbye.
        tx.send(LinkEvent::Connected(hello())).await.unwrap();
        tx.send(LinkEvent::Event(ControllerEvents::controller(
            Presence::Gone,
        )))
        .await
        .unwrap();
        tx.send(LinkEvent::Disconnected).await.unwrap();
        drop(tx);

        assert_eq!(status(src.recv().await), Some(Presence::Here));
        assert_eq!(src.recv().await, Some(Event::Heartbeat));
        assert_eq!(status(src.recv().await), Some(Presence::Died));
        assert_eq!(src.lagged(), 3);
        assert_eq!(status(src.recv().await), Some(Presence::Here));
        assert_eq!(status(src.recv().await), Some(Presence::Gone));
        assert_eq!(src.recv().await, None);
    }
}

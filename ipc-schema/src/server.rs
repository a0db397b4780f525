//! The controller's side of the controller link.
//!
//! The controller is the socket server so that inbound and outbound can come and go (be
//! restarted) without disturbing it. [`serve`] accepts connections, runs the handshake,
//! hands every request to a dispatch function (concurrently, at most
//! [`MAX_IN_FLIGHT`] per connection), and streams events to subscribers. A connection that
//! sends garbage, lies in its handshake or vanishes is dropped with a log line; requests it
//! already sent still run to completion, only their replies are discarded.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::child::Shutdown;
use crate::command::{Command, CommandError, Reply};
use crate::envelope::{FromController, Role, ToController};
use crate::event::Event;
use crate::framing::{handshake, MAX_FRAME_LEN};
use crate::socket::{Listener, Stream};

const LOG_TARGET: &str = "ipc::server";
/// Requests of one connection being carried out at the same time; further ones wait.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages queued for one connection's socket.
const OUT_QUEUE_LEN: usize = 256;

/// The bound controller socket; the socket file is removed when this is dropped.
#[derive(Debug)]
pub struct ControllerListener {
    listener: Listener,
    path: PathBuf,
}

impl ControllerListener {
    /// Binds `path`, replacing a stale socket left by a previous (crashed) controller.
    /// Must be called inside a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<ControllerListener> {
        let listener = Listener::bind(path, true)?;
        Ok(ControllerListener {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the next raw connection (before the handshake).
    pub async fn accept(&self) -> io::Result<Stream> {
        self.listener.accept().await
    }
}

/// Produces the events a new subscriber should see first (the current state), so that a
/// restarted outbound loses nothing the controller knows.
pub type Snapshot = Arc<dyn Fn() -> Vec<Event> + Send + Sync>;

/// Serves the controller link until `shutdown` is requested; then stops accepting and closes
/// every connection.
///
/// `dispatch` carries out one command; `events` is the controller's event bus (each
/// subscriber gets its own receiver); `snapshot`, if given, is sent to each new subscriber
/// before live events (a live event may repeat part of the snapshot, never the reverse).
pub async fn serve<D, Fut>(
    listener: ControllerListener,
    dispatch: D,
    events: broadcast::Sender<Event>,
    snapshot: Option<Snapshot>,
    shutdown: Shutdown,
) where
    D: Fn(Command) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, CommandError>> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    conns.spawn(connection(stream, dispatch.clone(), events.clone(), snapshot.clone()));
                }
                Err(e) => {
                    // E.g. EMFILE: back off rather than spin.
                    log::error!(target: LOG_TARGET, "accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

async fn connection<D, Fut>(
    stream: Stream,
    dispatch: D,
    events: broadcast::Sender<Event>,
    snapshot: Option<Snapshot>,
) where
    D: Fn(Command) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, CommandError>> + Send + 'static,
{
    let allowed = [Role::Inbound, Role::Outbound, Role::Tool];
    let (hello, conn) = match handshake::<_, FromController, ToController>(
        stream,
        Role::Controller,
        &allowed,
        MAX_FRAME_LEN,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            log::warn!(target: LOG_TARGET, "refused a connection: {e}");
            return;
        }
    };
    let peer = format!("{} (pid {})", hello.role, hello.pid);
    log::debug!(target: LOG_TARGET, "{peer} connected");
    let (mut sink, mut stream) = conn.split();
    let (out_tx, mut out_rx) = mpsc::channel::<FromController>(OUT_QUEUE_LEN);

    let _writer = AbortOnDrop(tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(msg).await.is_err() {
                // The reader notices the broken connection and logs it.
                break;
            }
        }
    }));

    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut forwarder: Option<AbortOnDrop> = None;
    loop {
        match stream.next().await {
            Some(Ok(ToController::Request { id, command })) => {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let out = out_tx.clone();
                let dispatch = dispatch.clone();
                // Detached: a request that reached the controller completes even if its
                // requester goes away.
                tokio::spawn(async move {
                    let result = dispatch(command).await;
                    let _ = out.send(FromController::Response { id, result }).await;
                    drop(permit);
                });
            }
            Some(Ok(ToController::Subscribe)) => {
                if forwarder.is_none() {
                    forwarder = Some(AbortOnDrop(tokio::spawn(forward_events(
                        events.subscribe(),
                        snapshot.clone(),
                        out_tx.clone(),
                    ))));
                }
            }
            Some(Err(e)) => {
                if e.is_disconnect() {
                    log::info!(target: LOG_TARGET, "{peer} went away: {e}");
                } else {
                    log::warn!(target: LOG_TARGET, "dropping connection of {peer}: {e}");
                }
                break;
            }
            None => {
                log::debug!(target: LOG_TARGET, "{peer} disconnected");
                break;
            }
        }
    }
}

/// Aborts the task when dropped, so that a connection's helper tasks (which hold its socket)
/// end with the connection even when the connection task itself is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn forward_events(
    mut rx: broadcast::Receiver<Event>,
    snapshot: Option<Snapshot>,
    out: mpsc::Sender<FromController>,
) {
    if let Some(snap) = snapshot {
        for ev in snap() {
            if out.send(FromController::Event(ev)).await.is_err() {
                return;
            }
        }
    }
    loop {
        let msg = match rx.recv().await {
            Ok(ev) => FromController::Event(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => FromController::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if out.send(msg).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{CallError, ControllerClient, LinkEvent};
    use crate::command::CommandErrorKind;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_secs(5);

    async fn pong(cmd: Command) -> Result<Reply, CommandError> {
        if cmd == Command::Ping {
            Ok(Reply::Pong)
        } else {
            Err(CommandError {
                kind: CommandErrorKind::NotImplemented,
                message: "test server".into(),
                path: None,
            })
        }
    }

    fn start_server(
        path: &Path,
        events: broadcast::Sender<Event>,
        snapshot: Option<Snapshot>,
    ) -> (Shutdown, tokio::task::JoinHandle<()>) {
        let listener = ControllerListener::bind(path).expect("bind");
        let sd = Shutdown::new();
        let h = tokio::spawn(serve(listener, pong, events, snapshot, sd.clone()));
        (sd, h)
    }

    #[tokio::test]
    async fn calls_are_answered_and_errors_are_typed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let listener = ControllerListener::bind(&path).expect("bind");
        let sd = Shutdown::new();
        let (events, _) = broadcast::channel(16);
        let failing = |_c: Command| async {
            Err::<Reply, _>(CommandError {
                kind: CommandErrorKind::Conflict,
                message: "not connected".into(),
                path: None,
            })
        };
        tokio::spawn(serve(listener, failing, events, None, sd.clone()));
        let client = ControllerClient::start(path, Role::Tool);
        match client.call(Command::Ping, T).await {
            Err(CallError::Command(e)) => assert_eq!(e.kind, CommandErrorKind::Conflict),
            other => panic!("expected a command error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn many_concurrent_calls_each_get_their_reply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let (events, _) = broadcast::channel(16);
        let (_sd, _h) = start_server(&path, events, None);
        let client = ControllerClient::start(path, Role::Inbound);
        let calls = (0..200).map(|_| {
            let c = client.clone();
            async move { c.call(Command::Ping, T).await }
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(r, Ok(Reply::Pong));
        }
    }

    #[tokio::test]
    async fn a_client_reconnects_after_the_controller_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let (events, _) = broadcast::channel(16);
        let snap: Snapshot = Arc::new(|| vec![Event::Heartbeat]);
        let (sd, h) = start_server(&path, events.clone(), Some(snap.clone()));
        let (client, mut rx) = ControllerClient::start_subscribed(path.clone(), Role::Outbound);
        assert!(
            matches!(rx.recv().await, Some(LinkEvent::Connected(h)) if h.role == Role::Controller)
        );
        // The snapshot comes first, then live events.
        assert_eq!(rx.recv().await, Some(LinkEvent::Event(Event::Heartbeat)));
        events.send(Event::Heartbeat).expect("a subscriber");
        assert_eq!(rx.recv().await, Some(LinkEvent::Event(Event::Heartbeat)));

        // "Crash" the controller.
        sd.request(crate::child::ShutdownReason::Internal("test".into()));
        h.await.expect("server stopped");
        assert_eq!(rx.recv().await, Some(LinkEvent::Disconnected));
        assert!(!client.is_connected());
        // While it is down, a short call fails cleanly.
        assert_eq!(
            client.call(Command::Ping, Duration::from_millis(50)).await,
            Err(CallError::NotConnected)
        );

        let (events2, _) = broadcast::channel(16);
        let (_sd2, _h2) = start_server(&path, events2.clone(), None);
        assert!(matches!(rx.recv().await, Some(LinkEvent::Connected(_))));
        assert_eq!(client.call(Command::Ping, T).await, Ok(Reply::Pong));
        // Resubscribed on the new connection. The subscription races the first send,
        // so keep sending until one arrives (bounded: a lost subscription fails).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let _ = events2.send(Event::Heartbeat);
            match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                Ok(got) => {
                    assert_eq!(got, Some(LinkEvent::Event(Event::Heartbeat)));
                    break;
                }
                Err(_) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "no event after resubscribing"
                ),
            }
        }
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_drop_only_that_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let (events, _) = broadcast::channel(16);
        let (_sd, _h) = start_server(&path, events, None);

        // Not even a hello.
        let mut raw = crate::socket::connect(&path).await.expect("connect");
        raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(T, raw.read_to_end(&mut buf))
            .await
            .expect("server closes the connection")
            .expect("read");

        // A correct hello, then garbage.
        let raw = crate::socket::connect(&path).await.expect("connect");
        let (_, conn) = handshake::<_, ToController, FromController>(
            raw,
            Role::Tool,
            &[Role::Controller],
            MAX_FRAME_LEN,
        )
        .await
        .expect("handshake");
        let mut raw = conn.into_inner();
        raw.write_all(&[0, 0, 0, 2, 0xee, 0xee])
            .await
            .expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(T, raw.read_to_end(&mut buf))
            .await
            .expect("server closes the connection")
            .expect("read");

        // A peer that vanishes mid-frame.
        let raw = crate::socket::connect(&path).await.expect("connect");
        let (_, conn) = handshake::<_, ToController, FromController>(
            raw,
            Role::Tool,
            &[Role::Controller],
            MAX_FRAME_LEN,
        )
        .await
        .expect("handshake");
        let mut raw = conn.into_inner();
        raw.write_all(&[0, 0, 0, 50, 1]).await.expect("write");
        drop(raw);

        // The server still works.
        let client = ControllerClient::start(path, Role::Tool);
        assert_eq!(client.call(Command::Ping, T).await, Ok(Reply::Pong));
    }

    #[tokio::test]
    async fn the_launcher_role_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let (events, _) = broadcast::channel(16);
        let (_sd, _h) = start_server(&path, events, None);
        let raw = crate::socket::connect(&path).await.expect("connect");
        // Our side of the handshake succeeds (the server sends its hello first), but the
        // server hangs up instead of serving.
        let (_, mut conn) = handshake::<_, ToController, FromController>(
            raw,
            Role::Launcher,
            &[Role::Controller],
            MAX_FRAME_LEN,
        )
        .await
        .expect("handshake");
        let _ = conn
            .send(ToController::Request {
                id: crate::envelope::RequestId(1),
                command: Command::Ping,
            })
            .await;
        let next = tokio::time::timeout(T, conn.next()).await.expect("closed");
        assert!(!matches!(next, Some(Ok(FromController::Response { .. }))));
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let stale = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        drop(stale);
        let l = ControllerListener::bind(&path).expect("rebind over a stale socket");
        drop(l);
        assert!(!path.exists(), "removed on drop");
        // A regular file is never removed.
        std::fs::write(&path, "x").expect("write");
        assert!(ControllerListener::bind(&path).is_err());
        assert!(path.exists());
    }
}

//! What a child process (controller, inbound, outbound) gets from the launcher.
//!
//! The launcher starts each child as `de1d child <role>`; that entry point builds a
//! [`ChildEnv`] with [`ChildEnv::connect`] and hands it to the role's
//! `run(env: ChildEnv) -> ExitCode`. Through it a child:
//!
//! * knows its [`Role`], the private runtime directory and the effective [`Config`];
//! * reaches the controller: [`ChildEnv::controller_client`] (commands and replies, with
//!   automatic reconnection), [`ChildEnv::controller_events`] (event subscription), or, in
//!   the controller, [`ChildEnv::bind_controller`] and [`crate::server::serve`];
//! * logs with the `log` macros: records are forwarded to the launcher, which alone writes
//!   the log file (non-blocking: a bounded queue, drops are counted and reported);
//! * says it is up with [`ChildEnv::ready`];
//! * learns when to stop from [`ChildEnv::shutdown`] (launcher request, SIGTERM, or the
//!   launcher vanishing), and must then exit within the grace period.
//!
//! Children must not install signal handlers of their own: the `de1d child` entry point
//! turns SIGTERM/SIGINT into a [`Shutdown`] request.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interprocess::local_socket::traits::Stream as _;
use interprocess::TryClone;
use tokio::sync::watch;

use crate::client::{ControllerClient, LinkEvent};
use crate::config::{Config, ConfigError, LoggingConfig};
use crate::envelope::{FromLauncher, Role, ToLauncher};
use crate::framing::{
    encode_frame, handshake_blocking, read_frame, FrameError, HandshakeError, HANDSHAKE_TIMEOUT,
    MAX_FRAME_LEN,
};
use crate::log_record::LogRecord;
use crate::server::ControllerListener;
use crate::socket::{connect_blocking, BlockingStream};

/// File name of the launcher's socket in the runtime directory.
pub const LAUNCHER_SOCKET: &str = "launcher.sock";
/// File name of the controller's socket in the runtime directory.
pub const CONTROLLER_SOCKET: &str = "controller.sock";
/// File name of the effective configuration the launcher writes for its children.
pub const CONFIG_FILE: &str = "config.toml";
/// Log records a child may have queued for the launcher before it starts dropping them.
pub const LOG_QUEUE_LEN: usize = 4096;
/// Extra queue room kept for control messages (readiness, flush), so that a process
/// logging at full speed still reports readiness at once.
const CONTROL_RESERVE: usize = 64;

/// Why a child could not attach to its launcher.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot read the effective configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot connect to the launcher at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("launcher handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
}

/// Why a shutdown was requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownReason {
    /// The launcher asked; the process must be gone within `grace`.
    Launcher { grace: Duration },
    /// The launcher connection closed: the launcher died or is going away.
    LauncherGone,
    /// A signal arrived (its number).
    Signal(i32),
    /// The process decided itself (e.g. a fatal error), with a reason for the log.
    Internal(String),
}

/// A shared, one-shot "please stop" flag that can be awaited; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<Option<ShutdownReason>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            tx: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Requests the shutdown; returns false if it had already been requested (the first
    /// reason is kept). Callable from any thread, with or without an async runtime.
    pub fn request(&self, reason: ShutdownReason) -> bool {
        self.tx.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason);
                true
            } else {
                false
            }
        })
    }

    pub fn is_requested(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// The first reason given, if any.
    pub fn reason(&self) -> Option<ShutdownReason> {
        self.tx.borrow().clone()
    }

    /// Completes when a shutdown is requested (at once if it already was).
    pub async fn wait(&self) -> ShutdownReason {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        reason.unwrap_or(ShutdownReason::LauncherGone)
    }

    /// Blocks the calling thread until a shutdown is requested (for plain threads).
    pub fn wait_blocking(&self) -> ShutdownReason {
        futures::executor::block_on(self.wait())
    }
}

enum Outgoing {
    Msg(ToLauncher),
    Flush(mpsc::Sender<()>),
}

/// The child's end of the launcher link: a queue drained by a writer thread.
struct LauncherLink {
    tx: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
}

/// Log records queued and not yet written; kept at most [`LOG_QUEUE_LEN`] so that the
/// channel always has [`CONTROL_RESERVE`] free slots for control messages.
#[derive(Debug, Default)]
struct QueuedLogs(std::sync::atomic::AtomicUsize);

impl QueuedLogs {
    fn try_reserve(&self) -> bool {
        if self.0.fetch_add(1, Ordering::AcqRel) >= LOG_QUEUE_LEN {
            self.0.fetch_sub(1, Ordering::AcqRel);
            false
        } else {
            true
        }
    }

    fn release(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LauncherLink {
    /// Sends a control message, waiting at most `timeout` for room in the queue.
    fn send(&self, msg: Outgoing, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut msg = msg;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

struct Inner {
    role: Role,
    runtime_dir: PathBuf,
    config: Config,
    shutdown: Shutdown,
    link: Option<LauncherLink>,
}

/// Everything a child process needs from the launcher; cheap to clone.
#[derive(Clone)]
pub struct ChildEnv {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildEnv")
            .field("role", &self.inner.role)
            .field("runtime_dir", &self.inner.runtime_dir)
            .field("supervised", &self.inner.link.is_some())
            .finish_non_exhaustive()
    }
}

impl ChildEnv {
    /// Attaches to the launcher that started this process: reads the effective
    /// configuration from the runtime directory, connects to the launcher socket, and
    /// installs the forwarding logger (unless a logger is already installed).
    ///
    /// Call before creating an async runtime; it starts two plain threads.
    pub fn connect(role: Role, runtime_dir: PathBuf) -> Result<ChildEnv, ChildError> {
        let config_path = runtime_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|source| {
            ChildError::Config(ConfigError::Read {
                path: config_path.clone(),
                source,
            })
        })?;
        let config = Config::from_toml_str_named(&text, &config_path.display().to_string())?;

        let sock_path = runtime_dir.join(LAUNCHER_SOCKET);
        let connect_err = |source| ChildError::Connect {
            path: sock_path.clone(),
            source,
        };
        let mut stream = connect_blocking(&sock_path).map_err(connect_err)?;
        stream
            .set_recv_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(connect_err)?;
        handshake_blocking(&mut stream, role, &[Role::Launcher], MAX_FRAME_LEN)?;
        stream.set_recv_timeout(None).map_err(connect_err)?;
        let reader = stream.try_clone().map_err(connect_err)?;

        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::sync_channel(LOG_QUEUE_LEN + CONTROL_RESERVE);
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let queued = Arc::new(QueuedLogs::default());
        {
            let alive = alive.clone();
            let queued = queued.clone();
            std::thread::Builder::new()
                .name("launcher-tx".into())
                .spawn(move || writer_thread(stream, rx, alive, queued))
                .map_err(connect_err)?;
        }
        {
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("launcher-rx".into())
                .spawn(move || reader_thread(reader, shutdown))
                .map_err(connect_err)?;
        }
        let link = LauncherLink {
            tx: tx.clone(),
            dropped: dropped.clone(),
            alive,
        };
        let logger = ForwardingLogger {
            tx,
            dropped,
            queued,
            filter: config.logging.clone(),
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(config.logging.max_level().to_log());
        }
        Ok(ChildEnv {
            inner: Arc::new(Inner {
                role,
                runtime_dir,
                config,
                shutdown,
                link: Some(link),
            }),
        })
    }

    /// An environment without a launcher, for tests and tools: readiness and log forwarding
    /// do nothing (install any logger you like), shutdown is requested by the caller.
    pub fn standalone(role: Role, runtime_dir: PathBuf, config: Config) -> ChildEnv {
        ChildEnv {
            inner: Arc::new(Inner {
                role,
                runtime_dir,
                config,
                shutdown: Shutdown::new(),
                link: None,
            }),
        }
    }

    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The private runtime directory (mode 0700) holding the sockets.
    pub fn runtime_dir(&self) -> &Path {
        &self.inner.runtime_dir
    }

    /// The effective configuration (file, environment and command line already merged).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Requested when this process should stop; see [`ShutdownReason`].
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// True when started by a launcher (as opposed to [`ChildEnv::standalone`]).
    pub fn is_supervised(&self) -> bool {
        self.inner.link.is_some()
    }

    /// Path of the controller's socket.
    pub fn controller_socket_path(&self) -> PathBuf {
        self.inner.runtime_dir.join(CONTROLLER_SOCKET)
    }

    /// Tells the launcher that this process is up. Call once, when the process serves what
    /// it is meant to serve (controller: socket listening; inbound: HTTP listening; outbound:
    /// ready to publish). Calling it again is harmless.
    pub fn ready(&self) {
        if let Some(link) = &self.inner.link {
            if !link.send(Outgoing::Msg(ToLauncher::Ready), Duration::from_secs(1)) {
                // Not a log call: the log goes through the same link. Write errors are
                // ignored (stderr is a pipe to the launcher, which may be gone).
                let _ = writeln!(
                    std::io::stderr(),
                    "de1d {}: cannot report readiness",
                    self.inner.role.as_str()
                );
            }
        }
    }

    /// Waits until every log record queued so far has been written to the launcher socket.
    /// Returns false on timeout or if the link is gone. Called by the `de1d child` entry
    /// point after `run` returns; roles need not call it.
    pub fn flush_logs(&self, timeout: Duration) -> bool {
        let Some(link) = &self.inner.link else {
            return true;
        };
        let start = Instant::now();
        let (ack_tx, ack_rx) = mpsc::channel();
        if !link.send(Outgoing::Flush(ack_tx), timeout) {
            return false;
        }
        let left = timeout.saturating_sub(start.elapsed());
        ack_rx.recv_timeout(left).is_ok()
    }

    /// Log records dropped so far and not yet reported to the launcher.
    pub fn dropped_log_records(&self) -> u64 {
        self.inner
            .link
            .as_ref()
            .map_or(0, |l| l.dropped.load(Ordering::Relaxed))
    }

    /// False once writing to the launcher failed (the launcher is gone).
    pub fn launcher_alive(&self) -> bool {
        self.inner
            .link
            .as_ref()
            .is_some_and(|l| l.alive.load(Ordering::Relaxed))
    }

    /// A client for commands to the controller, reconnecting by itself whenever the
    /// controller restarts. Must be called inside a tokio runtime.
    pub fn controller_client(&self) -> ControllerClient {
        ControllerClient::start(self.controller_socket_path(), self.inner.role)
    }

    /// Like [`ChildEnv::controller_client`], and also subscribes to the controller's
    /// events; the receiver sees [`LinkEvent::Connected`]/[`LinkEvent::Disconnected`]
    /// around each connection. Must be called inside a tokio runtime.
    pub fn controller_events(&self) -> (ControllerClient, tokio::sync::mpsc::Receiver<LinkEvent>) {
        ControllerClient::start_subscribed(self.controller_socket_path(), self.inner.role)
    }

    /// Binds the controller's socket (controller only). Must be called inside a tokio
    /// runtime.
    pub fn bind_controller(&self) -> std::io::Result<ControllerListener> {
        ControllerListener::bind(&self.controller_socket_path())
    }
}

/// Drains the queue onto the socket, batching whatever is queued into one write.
fn writer_thread(
    stream: BlockingStream,
    rx: Receiver<Outgoing>,
    alive: Arc<AtomicBool>,
    queued: Arc<QueuedLogs>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, stream);
    let mut buf = bytes::BytesMut::new();
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Outgoing::Msg(msg) => {
                    if matches!(msg, ToLauncher::Log(_)) {
                        queued.release();
                    }
                    buf.clear();
                    // A record too big to encode is dropped rather than kill the link.
                    if encode_frame(&msg, &mut buf, MAX_FRAME_LEN).is_ok()
                        && w.write_all(&buf).is_err()
                    {
                        alive.store(false, Ordering::Relaxed);
                        return;
                    }
                }
                Outgoing::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if w.flush().is_err() {
            alive.store(false, Ordering::Relaxed);
            return;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Waits for the launcher's messages; its silence ending means the launcher is gone.
fn reader_thread(mut stream: BlockingStream, shutdown: Shutdown) {
    loop {
        match read_frame::<_, FromLauncher>(&mut stream, MAX_FRAME_LEN) {
            Ok(Some(FromLauncher::Shutdown { grace_ms })) => {
                shutdown.request(ShutdownReason::Launcher {
                    grace: Duration::from_millis(u64::from(grace_ms)),
                });
            }
            Ok(None) => {
                shutdown.request(ShutdownReason::LauncherGone);
                return;
            }
            Err(e) => {
                if !matches!(e, FrameError::Io(_)) || !e.is_disconnect() {
                    let _ = writeln!(
                        std::io::stderr(),
                        "de1d: bad message from the launcher: {e}"
                    );
                }
                shutdown.request(ShutdownReason::LauncherGone);
                return;
            }
        }
    }
}

/// The `log` implementation of children: filters by the configured levels and queues the
/// record for the launcher without ever blocking.
struct ForwardingLogger {
    tx: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
    queued: Arc<QueuedLogs>,
    filter: LoggingConfig,
}

impl log::Log for ForwardingLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target()).to_log()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if !self.queued.try_reserve() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut rec = LogRecord::from_log(record);
        let before = self.dropped.swap(0, Ordering::Relaxed);
        rec.dropped_before = before;
        if self
            .tx
            .try_send(Outgoing::Msg(ToLauncher::Log(rec)))
            .is_err()
        {
            // Only if the link is gone. Put the count back, plus this record.
            self.queued.release();
            self.dropped.fetch_add(before + 1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn shutdown_keeps_the_first_reason_and_wakes_waiters() {
        let s = Shutdown::new();
        assert!(!s.is_requested());
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_blocking())
        };
        assert!(s.request(ShutdownReason::Signal(15)));
        assert!(!s.request(ShutdownReason::LauncherGone));
        assert_eq!(waiter.join().expect("join"), ShutdownReason::Signal(15));
        assert_eq!(s.reason(), Some(ShutdownReason::Signal(15)));
    }

    /// A fake launcher: accepts one child, answers the handshake, and returns its socket.
    fn fake_launcher(dir: &Path) -> std::thread::JoinHandle<UnixStream> {
        std::fs::write(dir.join(CONFIG_FILE), "[logging]\nlevel = \"debug\"\n").expect("config");
        let listener = UnixListener::bind(dir.join(LAUNCHER_SOCKET)).expect("bind");
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let hello =
                handshake_blocking(&mut s, Role::Launcher, &[Role::Outbound], MAX_FRAME_LEN)
                    .expect("handshake");
            assert_eq!(hello.role, Role::Outbound);
            s
        })
    }

    #[test]
    fn a_child_reports_readiness_and_obeys_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let launcher = fake_launcher(dir.path());
        let env = ChildEnv::connect(Role::Outbound, dir.path().to_owned()).expect("connect");
        let mut sock = launcher.join().expect("launcher");
        assert_eq!(
            env.config().logging.level,
            crate::config::LevelFilter::Debug
        );
        assert!(env.is_supervised());

        env.ready();
        assert!(env.flush_logs(Duration::from_secs(2)));
        // Log records from the global logger may precede it (other tests log too).
        loop {
            match read_frame::<_, ToLauncher>(&mut sock, MAX_FRAME_LEN).expect("frame") {
                Some(ToLauncher::Ready) => break,
                Some(ToLauncher::Log(_)) => {}
                None => panic!("link closed"),
            }
        }

        crate::framing::write_frame(
            &mut sock,
            &FromLauncher::Shutdown { grace_ms: 1500 },
            MAX_FRAME_LEN,
        )
        .expect("send shutdown");
        assert_eq!(
            env.shutdown().wait_blocking(),
            ShutdownReason::Launcher {
                grace: Duration::from_millis(1500)
            }
        );
    }

    #[test]
    fn a_vanished_launcher_requests_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let launcher = fake_launcher(dir.path());
        let env = ChildEnv::connect(Role::Outbound, dir.path().to_owned()).expect("connect");
        drop(launcher.join().expect("launcher"));
        assert_eq!(env.shutdown().wait_blocking(), ShutdownReason::LauncherGone);
    }

    #[test]
    fn a_missing_launcher_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CONFIG_FILE), "").expect("config");
        let err = ChildEnv::connect(Role::Inbound, dir.path().to_owned()).expect_err("no socket");
        assert!(err.to_string().contains(LAUNCHER_SOCKET), "{err}");
    }

    #[test]
    fn the_forwarding_logger_counts_what_it_drops() {
        let (tx, rx) = mpsc::sync_channel(LOG_QUEUE_LEN + CONTROL_RESERVE);
        let queued = Arc::new(QueuedLogs::default());
        // Leave room for exactly two records.
        queued.0.store(LOG_QUEUE_LEN - 2, Ordering::Relaxed);
        let logger = ForwardingLogger {
            tx: tx.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
            queued: queued.clone(),
            filter: LoggingConfig::default(),
        };
        let rec = |msg: &str| {
            log::Log::log(
                &logger,
                &log::Record::builder()
                    .level(log::Level::Info)
                    .target("t")
                    .args(format_args!("{msg}"))
                    .build(),
            )
        };
        for i in 0..5 {
            rec(&format!("m{i}"));
        }
        // Filtered out: below the configured level, not counted as dropped.
        log::Log::log(
            &logger,
            &log::Record::builder()
                .level(log::Level::Debug)
                .target("t")
                .args(format_args!("quiet"))
                .build(),
        );
        assert_eq!(logger.dropped.load(Ordering::Relaxed), 3);
        let got: Vec<LogRecord> = rx
            .try_iter()
            .filter_map(|o| match o {
                Outgoing::Msg(ToLauncher::Log(r)) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(
            got.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ["m0", "m1"]
        );
        // A full log queue still leaves room for control messages.
        let link = LauncherLink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            alive: Arc::new(AtomicBool::new(true)),
        };
        assert!(link.send(Outgoing::Msg(ToLauncher::Ready), Duration::ZERO));
        assert!(matches!(
            rx.try_recv(),
            Ok(Outgoing::Msg(ToLauncher::Ready))
        ));
        // The writer took two records off the queue; the next record carries the count.
        queued.release();
        queued.release();
        rec("m5");
        match rx.try_recv() {
            Ok(Outgoing::Msg(ToLauncher::Log(r))) => {
                assert_eq!(r.message, "m5");
                assert_eq!(r.dropped_before, 3);
            }
            _ => panic!("expected a record"),
        }
        assert_eq!(logger.dropped.load(Ordering::Relaxed), 0);
    }
}

//! `de1d` without a command: the launcher.
//!
//! It starts the same executable (`/proc/self/exe`, so a binary replaced on disk cannot mix
//! versions) as `de1d child <role>` for the controller, inbound and outbound (and mosquitto
//! if asked), supervises them, writes the combined log, and shuts everything down in order
//! on SIGINT, SIGQUIT, SIGABRT or SIGTERM. SIGHUP reopens the log file.
//!
//! Shutdown order: inbound and controller are asked to stop first (no new requests; the
//! controller finishes what it is writing and may put the DE1 to sleep), then outbound (so it
//! can still publish the controller's last events, then its "Gone" status), then the broker.
//! Whatever is still running when `[launcher] shutdown_timeout` expires is killed.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipc_schema::child::{CONFIG_FILE, LAUNCHER_SOCKET};
use ipc_schema::config::{seconds, Config};
use ipc_schema::envelope::{FromLauncher, Role, ToLauncher};
use ipc_schema::framing::{handshake, MAX_FRAME_LEN};
use ipc_schema::log_record::{Level, LogRecord};
use ipc_schema::socket::{peer_pid, Listener, Stream};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cli::ConfigArgs;
use crate::logging::{start_writer, LauncherLogger, LogHandle, Sinks};
use crate::runtime_dir::RuntimeDir;
use crate::supervisor::{RestartHistory, RestartPolicy};
use crate::{broker, notify, settings, EXIT_RESTART_LIMIT, EXIT_STARTUP};

/// Time kept for outbound (publish "Gone", flush) at the end of the shutdown budget.
const OUTBOUND_BUDGET: Duration = Duration::from_millis(1500);
/// Time kept for the broker after outbound.
const BROKER_BUDGET: Duration = Duration::from_millis(300);
/// How long to wait for killed processes to be reaped.
const KILL_WAIT: Duration = Duration::from_millis(500);
/// Longest line accepted from a child's stdout/stderr; longer ones are split.
const MAX_PIPE_LINE: usize = 16 * 1024;

pub fn run(args: &ConfigArgs) -> ExitCode {
    let started = Instant::now();
    let config = match settings::effective_config(args) {
        Ok(c) => c,
        Err(e) => return settings::report_config_error(&e),
    };
    let sinks = match Sinks::open(&config.logging) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "de1d: cannot open the log file {}: {e}",
                config.logging.file.display()
            );
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let (log, _writer) = match start_writer(sinks) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("de1d: cannot start the log writer: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    LauncherLogger::install(log.clone(), config.logging.clone());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            log.flush_blocking(Duration::from_secs(1));
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let code = rt.block_on(launch(config, args.debug_log_flood, log.clone(), started));
    drop(rt);
    log.flush_blocking(Duration::from_secs(2));
    ExitCode::from(code)
}

/// A supervised process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Child(Role),
    Broker,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Child(r) => r.process_name(),
            Kind::Broker => "Mosquitto",
        }
    }
}

/// What the helper tasks tell the supervisor.
enum SupEvent {
    Exited {
        kind: Kind,
        generation: u64,
        status: io::Result<ExitStatus>,
    },
    LinkUp {
        role: Role,
        pid: u32,
        tx: mpsc::Sender<FromLauncher>,
    },
    ChildReady {
        role: Role,
        pid: u32,
    },
    BrokerReady {
        generation: u64,
    },
}

#[derive(Default)]
struct Slot {
    generation: u64,
    pid: Option<u32>,
    running: bool,
    ready: bool,
    started: Option<Instant>,
    /// Signals for the process, delivered by its waiter task (which owns the handle, so a
    /// signal never reaches a reused pid).
    ctl: Option<mpsc::UnboundedSender<Signal>>,
    link: Option<mpsc::Sender<FromLauncher>>,
    history: RestartHistory,
    restart_at: Option<Instant>,
    stop_requested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Inbound and controller asked to stop.
    Front,
    /// Outbound asked to stop.
    Outbound,
    /// Broker asked to stop.
    Broker,
    /// Everything left was sent SIGKILL.
    Kill,
    Done,
}

struct Stopping {
    code: u8,
    deadline: Instant,
    kill_deadline: Option<Instant>,
    stage: Stage,
}

struct Launcher {
    config: Config,
    runtime: RuntimeDir,
    exe: PathBuf,
    log_flood: bool,
    log: LogHandle,
    events: mpsc::UnboundedSender<SupEvent>,
    policy: RestartPolicy,
    slots: HashMap<Kind, Slot>,
    started: Instant,
    all_ready_once: bool,
    broker_port: Option<u16>,
    broker_conf: Option<PathBuf>,
    /// Outbound waits for the private broker at start (until this deadline).
    outbound_pending: Option<Instant>,
    stopping: Option<Stopping>,
}

async fn launch(config: Config, log_flood: bool, log: LogHandle, started: Instant) -> u8 {
    let runtime = match RuntimeDir::create(config.launcher.runtime_dir.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot create the runtime directory: {e}");
            return EXIT_STARTUP;
        }
    };
    launch_in(config, runtime, log_flood, log, started).await
}

async fn launch_in(
    mut config: Config,
    runtime: RuntimeDir,
    log_flood: bool,
    log: LogHandle,
    started: Instant,
) -> u8 {
    log::info!(
        "de1d {} starting (pid {}), runtime directory {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        runtime.path().display()
    );
    // A socket file already there is not replaced: it may belong to a running launcher.
    let listener = match Listener::bind(&runtime.join(LAUNCHER_SOCKET), false) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {LAUNCHER_SOCKET}: {e}");
            runtime.cleanup();
            return EXIT_STARTUP;
        }
    };

    let mut broker_port = None;
    let mut broker_conf = None;
    if config.mqtt.spawn_broker && !config.mqtt.mosquitto_path.is_file() {
        log::error!(
            "[mqtt] spawn_broker is set but {} does not exist (set [mqtt] mosquitto_path)",
            config.mqtt.mosquitto_path.display()
        );
        runtime.cleanup();
        return EXIT_STARTUP;
    }
    if config.mqtt.spawn_broker {
        let prepared = broker::pick_free_port()
            .and_then(|port| broker::write_config(runtime.path(), port).map(|p| (port, p)));
        match prepared {
            Ok((port, path)) => {
                config.mqtt.broker_host = "127.0.0.1".to_owned();
                config.mqtt.broker_port = port;
                config.mqtt.tls = false;
                broker_port = Some(port);
                broker_conf = Some(path);
            }
            Err(e) => {
                log::error!("cannot prepare the private broker: {e}");
                runtime.cleanup();
                return EXIT_STARTUP;
            }
        }
    }
    config.launcher.runtime_dir = Some(runtime.path().to_owned());
    if let Err(e) =
        crate::runtime_dir::write_private(&runtime.join(CONFIG_FILE), &config.to_toml_string())
    {
        log::error!("cannot write the effective configuration: {e}");
        runtime.cleanup();
        return EXIT_STARTUP;
    }

    let exe = if std::path::Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                log::error!("cannot find the de1d executable: {e}");
                runtime.cleanup();
                return EXIT_STARTUP;
            }
        }
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(accept_links(listener, events_tx.clone(), log.clone()));

    let mut launcher = Launcher {
        policy: RestartPolicy::from_config(&config.launcher),
        config,
        runtime,
        exe,
        log_flood,
        log,
        events: events_tx,
        slots: HashMap::new(),
        started,
        all_ready_once: false,
        broker_port,
        broker_conf,
        outbound_pending: None,
        stopping: None,
    };
    let code = launcher.run(events_rx).await;
    launcher.runtime.cleanup();
    log::info!("de1d stopped (exit status {code})");
    code
}

impl Launcher {
    async fn run(&mut self, mut events: mpsc::UnboundedReceiver<SupEvent>) -> u8 {
        let signals = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::quit(),
            SignalKind::from_raw(Signal::SIGABRT as i32),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::new();
        for kind in signals {
            match signal(kind) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    log::error!("cannot handle signal {}: {e}", kind.as_raw_value());
                    return EXIT_STARTUP;
                }
            }
        }
        let [term, int, quit, abrt, hup] = &mut streams[..] else {
            return EXIT_STARTUP;
        };

        if self.broker_conf.is_some() {
            self.spawn(Kind::Broker);
            self.outbound_pending = Some(Instant::now() + Duration::from_secs(2));
        }
        self.spawn(Kind::Child(Role::Controller));
        self.spawn(Kind::Child(Role::Inbound));
        if self.outbound_pending.is_none() {
            self.spawn(Kind::Child(Role::Outbound));
        }

        loop {
            self.advance();
            if let Some(s) = &self.stopping {
                if s.stage == Stage::Done {
                    return s.code;
                }
            }
            let wake = self.next_wakeup();
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    // Unreachable: `self.events` keeps the channel open.
                    None => return EXIT_STARTUP,
                },
                _ = term.recv() => self.on_signal(Signal::SIGTERM),
                _ = int.recv() => self.on_signal(Signal::SIGINT),
                _ = quit.recv() => self.on_signal(Signal::SIGQUIT),
                _ = abrt.recv() => self.on_signal(Signal::SIGABRT),
                _ = hup.recv() => {
                    log::info!("SIGHUP: reopening the log file");
                    self.log.reopen().await;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Slot {
        self.slots.entry(kind).or_default()
    }

    fn is_running(&self, kind: Kind) -> bool {
        self.slots.get(&kind).is_some_and(|s| s.running)
    }

    fn any_running(&self) -> bool {
        self.slots.values().any(|s| s.running)
    }

    fn spawn(&mut self, kind: Kind) {
        let mut cmd = match kind {
            Kind::Child(role) => {
                let mut cmd = tokio::process::Command::new(&self.exe);
                cmd.arg0("de1d")
                    .arg("child")
                    .arg(role.as_str())
                    .arg("--runtime-dir")
                    .arg(self.runtime.path())
                    .arg("--launcher-pid")
                    .arg(std::process::id().to_string());
                if self.log_flood {
                    cmd.arg("--log-flood");
                }
                cmd
            }
            Kind::Broker => {
                let mut cmd = tokio::process::Command::new(&self.config.mqtt.mosquitto_path);
                if let Some(conf) = &self.broker_conf {
                    cmd.arg("-c").arg(conf);
                }
                cmd
            }
        };
        let launcher_pid = nix::unistd::getpid();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            // Its own process group: a Ctrl-C in the terminal reaches only the launcher,
            // which then stops the children in order.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: runs in the forked child before exec; prctl and getppid are
        // async-signal-safe system calls and nothing here allocates or takes locks.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the launcher (the runtime runs on the main thread, which lives
                // as long as the launcher, so the "parent thread" is the right one).
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
                if nix::unistd::getppid() != launcher_pid {
                    return Err(io::Error::other("launcher already gone"));
                }
                Ok(())
            });
        }
        let now = Instant::now();
        let slot = self.slots.entry(kind).or_default();
        slot.generation += 1;
        let generation = slot.generation;
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                if let Some(out) = child.stdout.take() {
                    tokio::spawn(forward_pipe(
                        out,
                        kind.name(),
                        Level::Info,
                        "stdout",
                        self.log.clone(),
                    ));
                }
                if let Some(err) = child.stderr.take() {
                    tokio::spawn(forward_pipe(
                        err,
                        kind.name(),
                        Level::Warn,
                        "stderr",
                        self.log.clone(),
                    ));
                }
                let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
                tokio::spawn(wait_child(
                    child,
                    ctl_rx,
                    self.events.clone(),
                    kind,
                    generation,
                ));
                let slot = self.slot(kind);
                slot.pid = Some(pid);
                slot.running = true;
                slot.ready = false;
                slot.started = Some(now);
                slot.ctl = Some(ctl_tx);
                slot.link = None;
                slot.stop_requested = false;
                log::info!("{} started (pid {pid})", kind.name());
                if let (Kind::Broker, Some(port)) = (kind, self.broker_port) {
                    let tx = self.events.clone();
                    tokio::spawn(async move {
                        if broker::wait_listening(port, Duration::from_secs(5)).await {
                            let _ = tx.send(SupEvent::BrokerReady { generation });
                        }
                    });
                }
            }
            Err(e) => {
                log::error!("cannot start {}: {e}", kind.name());
                self.on_crash(kind, now);
            }
        }
    }

    fn on_event(&mut self, ev: SupEvent) {
        match ev {
            SupEvent::Exited {
                kind,
                generation,
                status,
            } => {
                let slot = self.slot(kind);
                if slot.generation != generation {
                    return;
                }
                slot.running = false;
                slot.ready = false;
                slot.pid = None;
                slot.ctl = None;
                slot.link = None;
                let how = describe_exit(&status);
                if self.stopping.is_some() {
                    log::info!("{} stopped ({how})", kind.name());
                } else {
                    log::error!("{} {how}", kind.name());
                    self.on_crash(kind, Instant::now());
                }
            }
            SupEvent::LinkUp { role, pid, tx } => {
                let stopping = self.stopping.is_some();
                let grace = self.grace_ms();
                let slot = self.slot(Kind::Child(role));
                if slot.running && slot.pid == Some(pid) {
                    if stopping && slot.stop_requested {
                        let _ = tx.try_send(FromLauncher::Shutdown { grace_ms: grace });
                    }
                    slot.link = Some(tx);
                } else {
                    // Dropping `tx` closes the link, and the stray process exits.
                    log::warn!(
                        "refusing a launcher link from {role} pid {pid}: not a current child"
                    );
                }
            }
            SupEvent::ChildReady { role, pid } => {
                let kind = Kind::Child(role);
                let slot = self.slot(kind);
                if slot.pid != Some(pid) || slot.ready {
                    return;
                }
                slot.ready = true;
                let ms = slot.started.map_or(0, |t| t.elapsed().as_millis());
                log::info!("{} ready (pid {pid}) {ms} ms after its start", kind.name());
                self.check_all_ready();
            }
            SupEvent::BrokerReady { generation } => {
                let slot = self.slot(Kind::Broker);
                if slot.generation != generation || !slot.running {
                    return;
                }
                slot.ready = true;
                let ms = slot.started.map_or(0, |t| t.elapsed().as_millis());
                log::info!(
                    "Mosquitto ready on 127.0.0.1:{} {ms} ms after its start",
                    self.broker_port.unwrap_or(0)
                );
            }
        }
    }

    fn check_all_ready(&mut self) {
        if self.all_ready_once || self.stopping.is_some() {
            return;
        }
        let all = Role::CHILDREN
            .iter()
            .all(|r| self.slots.get(&Kind::Child(*r)).is_some_and(|s| s.ready));
        if all {
            self.all_ready_once = true;
            log::info!(
                "all processes ready {} ms after start",
                self.started.elapsed().as_millis()
            );
            notify::notify("READY=1");
        }
    }

    fn on_crash(&mut self, kind: Kind, now: Instant) {
        let policy = self.policy;
        let slot = self.slot(kind);
        match slot.history.on_crash(&policy, now.into_std()) {
            Some(delay) => {
                slot.restart_at = Some(now + delay);
                let n = slot.history.recent();
                log::warn!(
                    "restarting {} in {} ms (restart {n} of at most {} within {:?})",
                    kind.name(),
                    delay.as_millis(),
                    policy.limit,
                    policy.window
                );
            }
            None => {
                log::error!(
                    "{} failed more than {} times within {:?}; giving up",
                    kind.name(),
                    policy.limit,
                    policy.window
                );
                self.begin_shutdown(EXIT_RESTART_LIMIT, "restart limit reached");
            }
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        if self.stopping.is_some() {
            log::warn!("{sig} during shutdown: killing what is left");
            self.kill_all();
            return;
        }
        let code = match sig {
            Signal::SIGTERM | Signal::SIGINT => 0,
            other => 128u8.saturating_add(other as u8),
        };
        self.begin_shutdown(code, sig.as_str());
    }

    fn grace_ms(&self) -> u32 {
        self.stopping.as_ref().map_or(0, |s| {
            let left = s.deadline.saturating_duration_since(Instant::now());
            u32::try_from(left.as_millis()).unwrap_or(u32::MAX)
        })
    }

    fn begin_shutdown(&mut self, code: u8, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        log::info!("shutting down ({why})");
        notify::notify("STOPPING=1");
        let timeout = seconds(self.config.launcher.shutdown_timeout);
        self.stopping = Some(Stopping {
            code,
            deadline: Instant::now() + timeout,
            kill_deadline: None,
            stage: Stage::Front,
        });
        self.outbound_pending = None;
        for slot in self.slots.values_mut() {
            slot.restart_at = None;
        }
        self.request_stop(Kind::Child(Role::Inbound));
        self.request_stop(Kind::Child(Role::Controller));
    }

    /// Asks a process to stop: a Shutdown message on its link and SIGTERM (whichever it
    /// notices first; children handle both the same way).
    fn request_stop(&mut self, kind: Kind) {
        let grace = self.grace_ms();
        let slot = self.slot(kind);
        if !slot.running {
            return;
        }
        slot.stop_requested = true;
        if let Some(link) = &slot.link {
            let _ = link.try_send(FromLauncher::Shutdown { grace_ms: grace });
        }
        if let Some(ctl) = &slot.ctl {
            let _ = ctl.send(Signal::SIGTERM);
        }
    }

    fn kill_all(&mut self) {
        for (kind, slot) in &self.slots {
            if slot.running {
                log::warn!("killing {} (pid {})", kind.name(), slot.pid.unwrap_or(0));
                if let Some(ctl) = &slot.ctl {
                    let _ = ctl.send(Signal::SIGKILL);
                }
            }
        }
        if let Some(s) = &mut self.stopping {
            s.stage = Stage::Kill;
            s.kill_deadline = Some(Instant::now() + KILL_WAIT);
        }
    }

    /// Acts on whatever is due: restarts, the delayed outbound start, shutdown stages.
    fn advance(&mut self) {
        let now = Instant::now();
        if self.stopping.is_none() {
            let due: Vec<Kind> = self
                .slots
                .iter()
                .filter(|(_, s)| s.restart_at.is_some_and(|t| t <= now))
                .map(|(k, _)| *k)
                .collect();
            for kind in due {
                self.slot(kind).restart_at = None;
                self.spawn(kind);
            }
            if let Some(deadline) = self.outbound_pending {
                let broker_ready = self.slots.get(&Kind::Broker).is_some_and(|s| s.ready);
                if broker_ready || now >= deadline {
                    if !broker_ready {
                        log::warn!(
                            "the private broker is not answering yet; starting outbound anyway"
                        );
                    }
                    self.outbound_pending = None;
                    self.spawn(Kind::Child(Role::Outbound));
                }
            }
            return;
        }
        loop {
            let Some(s) = &self.stopping else { return };
            let (stage, deadline) = (s.stage, s.deadline);
            let next = match stage {
                Stage::Front => {
                    let front_done = !self.is_running(Kind::Child(Role::Inbound))
                        && !self.is_running(Kind::Child(Role::Controller));
                    if front_done || now + OUTBOUND_BUDGET >= deadline {
                        self.request_stop(Kind::Child(Role::Outbound));
                        Some(Stage::Outbound)
                    } else {
                        None
                    }
                }
                Stage::Outbound => {
                    let children_done = Role::CHILDREN
                        .iter()
                        .all(|r| !self.is_running(Kind::Child(*r)));
                    if children_done || now + BROKER_BUDGET >= deadline {
                        self.request_stop(Kind::Broker);
                        Some(Stage::Broker)
                    } else {
                        None
                    }
                }
                Stage::Broker => {
                    if !self.any_running() {
                        Some(Stage::Done)
                    } else if now >= deadline {
                        self.kill_all();
                        None
                    } else {
                        None
                    }
                }
                Stage::Kill => {
                    let expired = self
                        .stopping
                        .as_ref()
                        .and_then(|s| s.kill_deadline)
                        .is_some_and(|t| now >= t);
                    if !self.any_running() || expired {
                        if expired {
                            log::error!("some processes did not die");
                        }
                        Some(Stage::Done)
                    } else {
                        None
                    }
                }
                Stage::Done => None,
            };
            match (next, &mut self.stopping) {
                (Some(n), Some(s)) => s.stage = n,
                _ => return,
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut t = far;
        if let Some(s) = &self.stopping {
            t = t.min(match s.stage {
                Stage::Front => s
                    .deadline
                    .checked_sub(OUTBOUND_BUDGET)
                    .unwrap_or(s.deadline),
                Stage::Outbound => s.deadline.checked_sub(BROKER_BUDGET).unwrap_or(s.deadline),
                Stage::Broker => s.deadline,
                Stage::Kill => s.kill_deadline.unwrap_or(s.deadline),
                Stage::Done => Instant::now(),
            });
        } else {
            for s in self.slots.values() {
                if let Some(r) = s.restart_at {
                    t = t.min(r);
                }
            }
            if let Some(p) = self.outbound_pending {
                t = t.min(p);
            }
        }
        t
    }
}

fn describe_exit(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(sig) => format!("was killed by {sig}"),
                Err(_) => format!("was killed by signal {sig}"),
            },
            _ => format!("ended ({s})"),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

/// Owns a child process: reaps it, and delivers signals while it is known to be alive.
async fn wait_child(
    mut child: tokio::process::Child,
    mut ctl: mpsc::UnboundedReceiver<Signal>,
    events: mpsc::UnboundedSender<SupEvent>,
    kind: Kind,
    generation: u64,
) {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            sig = ctl.recv() => match sig {
                Some(sig) => {
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig);
                    }
                }
                None => {
                    let _ = child.start_kill();
                    break child.wait().await;
                }
            },
        }
    };
    let _ = events.send(SupEvent::Exited {
        kind,
        generation,
        status,
    });
}

/// Turns a child's stdout or stderr into log lines (a panic message, mosquitto's log).
async fn forward_pipe<R: AsyncRead + Unpin>(
    pipe: R,
    process: &'static str,
    level: Level,
    target: &'static str,
    log: LogHandle,
) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_PIPE_LINE as u64);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if !text.is_empty() {
                    log.send(process, LogRecord::new(level, target, text.to_owned()))
                        .await;
                }
            }
        }
    }
}

/// Serves the launcher socket: one task per child connection.
async fn accept_links(listener: Listener, events: mpsc::UnboundedSender<SupEvent>, log: LogHandle) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                tokio::spawn(link(stream, events.clone(), log.clone()));
            }
            Err(e) => {
                log::error!("launcher socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn link(stream: Stream, events: mpsc::UnboundedSender<SupEvent>, log: LogHandle) {
    let cred_pid = peer_pid(&stream);
    let (hello, conn) = match handshake::<_, FromLauncher, ToLauncher>(
        stream,
        Role::Launcher,
        &Role::CHILDREN,
        MAX_FRAME_LEN,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            log::warn!("launcher socket: refused a connection: {e}");
            return;
        }
    };
    // The kernel's word over the peer's.
    let pid = cred_pid.unwrap_or(hello.pid);
    let role = hello.role;
    let name = role.process_name();
    let (tx, mut rx) = mpsc::channel::<FromLauncher>(4);
    if events.send(SupEvent::LinkUp { role, pid, tx }).is_err() {
        return;
    }
    let (mut sink, mut frames) = conn.split();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(msg) => {
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                // The supervisor does not (or no longer) want this process.
                None => break,
            },
            frame = frames.next() => match frame {
                Some(Ok(ToLauncher::Log(rec))) => log.send(name, rec).await,
                Some(Ok(ToLauncher::Ready)) => {
                    let _ = events.send(SupEvent::ChildReady { role, pid });
                }
                Some(Err(e)) => {
                    if e.is_disconnect() {
                        log::debug!("{name} (pid {pid}) link closed: {e}");
                    } else {
                        log::warn!("dropping the link of {name} (pid {pid}): {e}");
                    }
                    break;
                }
                None => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions_name_the_signal() {
        let killed = ExitStatus::from_raw(9);
        assert_eq!(describe_exit(&Ok(killed)), "was killed by SIGKILL");
        let code = ExitStatus::from_raw(3 << 8);
        assert_eq!(describe_exit(&Ok(code)), "exited with status 3");
    }
}

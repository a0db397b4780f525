//! `de1d child <role>` (hidden): one child process, started by the launcher.
//!
//! Process-level duties handled here, so that a role's `run` only does its job:
//! the process name, signals (SIGTERM/SIGINT become a shutdown request, SIGHUP is
//! ignored), attaching to the launcher ([`ChildEnv::connect`]), logging panics, a watchdog
//! that ends the process if it overstays its shutdown grace period, and flushing the log
//! records before exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use ipc_schema::child::{ChildEnv, Shutdown, ShutdownReason};
use ipc_schema::envelope::Role;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// Grace period when the shutdown was not requested by the launcher (which gives its own).
const DEFAULT_GRACE: Duration = Duration::from_millis(4500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChildRole {
    Controller,
    Inbound,
    Outbound,
}

impl From<ChildRole> for Role {
    fn from(r: ChildRole) -> Role {
        match r {
            ChildRole::Controller => Role::Controller,
            ChildRole::Inbound => Role::Inbound,
            ChildRole::Outbound => Role::Outbound,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The role to run
    #[arg(value_enum)]
    pub role: ChildRole,

    /// The launcher's runtime directory
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: PathBuf,

    /// The launcher's pid; the child exits at once if its parent is another process
    #[arg(long, value_name = "PID")]
    pub launcher_pid: Option<u32>,

    /// Log as fast as possible until shutdown (tests of the log pipeline)
    #[arg(long)]
    pub log_flood: bool,
}

pub fn run(args: Args) -> ExitCode {
    let role = Role::from(args.role);
    if let Some(expected) = args.launcher_pid {
        if nix::unistd::getppid().as_raw() as u32 != expected {
            let _ = writeln!(
                std::io::stderr(),
                "de1d {}: the launcher is gone",
                role.as_str()
            );
            return ExitCode::FAILURE;
        }
    }
    if let Ok(name) = std::ffi::CString::new(format!("de1d-{}", role.as_str())) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    // Block the shutdown signals before any thread exists, so every thread inherits the
    // mask and only the signal thread below receives them.
    let mut shutdown_signals = SigSet::empty();
    shutdown_signals.add(Signal::SIGTERM);
    shutdown_signals.add(Signal::SIGINT);
    if let Err(e) =
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&shutdown_signals), None)
    {
        let _ = writeln!(
            std::io::stderr(),
            "de1d {}: cannot block signals: {e}",
            role.as_str()
        );
        return ExitCode::FAILURE;
    }
    // SAFETY: SIG_IGN installs no handler code; ignoring SIGHUP is always sound.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGHUP, nix::sys::signal::SigHandler::SigIgn) };

    let env = match ChildEnv::connect(role, args.runtime_dir) {
        Ok(env) => env,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "de1d {}: {e}", role.as_str());
            return ExitCode::FAILURE;
        }
    };
    install_panic_hook();
    start_signal_thread(shutdown_signals, env.shutdown().clone());
    start_watchdog(env.clone());
    if args.log_flood {
        start_flood(env.shutdown().clone());
    }
    log::debug!("started (pid {})", std::process::id());

    let code = match args.role {
        ChildRole::Controller => controller::run(env.clone()),
        ChildRole::Inbound => inbound::run(env.clone()),
        ChildRole::Outbound => outbound::run(env.clone()),
    };
    log::debug!("exiting");
    env.flush_logs(Duration::from_secs(1));
    code
}

fn start_signal_thread(set: SigSet, shutdown: Shutdown) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => {
                    if shutdown.request(ShutdownReason::Signal(sig as i32)) {
                        log::info!("{sig}: shutting down");
                    }
                }
                Err(e) => {
                    log::error!("waiting for signals failed: {e}");
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the signal thread: {e}");
    }
}

/// Ends the process if it is still alive when its shutdown grace period is over.
fn start_watchdog(env: ChildEnv) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let grace = match env.shutdown().wait_blocking() {
                ShutdownReason::Launcher { grace } => grace,
                _ => DEFAULT_GRACE,
            };
            std::thread::sleep(grace);
            log::error!(
                "still running {} ms after the shutdown request; exiting",
                grace.as_millis()
            );
            env.flush_logs(Duration::from_millis(200));
            // No atexit handlers, no destructors: other threads may hold any lock.
            let _ = nix::sys::signal::raise(Signal::SIGKILL);
        });
    if let Err(e) = spawned {
        log::error!("cannot start the shutdown watchdog: {e}");
    }
}

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("{info}");
        default(info);
    }));
}

/// Logs numbered lines as fast as possible until shutdown.
fn start_flood(shutdown: Shutdown) {
    let _ = std::thread::Builder::new()
        .name("log-flood".into())
        .spawn(move || {
            let mut seq: u64 = 0;
            while !shutdown.is_requested() {
                log::info!(target: "de1d::flood", "seq={seq}");
                seq += 1;
            }
            log::info!(target: "de1d::flood", "end seq={seq}");
        });
}

//! End-to-end tests of the launcher: they run the real `de1d` executable with a private
//! runtime directory, log file and broker (mosquitto) in a temporary directory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipc_schema::command::{Command as IpcCommand, Reply};
use ipc_schema::envelope::Role;
use ipc_schema::framing::{handshake_blocking, MAX_FRAME_LEN};
use ipc_schema::ControllerClient;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXE: &str = env!("CARGO_BIN_EXE_de1d");
const CHILDREN: [&str; 3] = ["Controller", "Inbound", "Outbound"];
/// The default `[mqtt] mosquitto_path`. Where it is missing, the tests run without a
/// broker (outbound is pointed at a closed port, never at a system broker).
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

fn have_mosquitto() -> bool {
    Path::new(MOSQUITTO).is_file()
}

/// The processes the launcher supervises in these tests.
fn supervised() -> Vec<&'static str> {
    let mut v = CHILDREN.to_vec();
    if have_mosquitto() {
        v.push("Mosquitto");
    }
    v
}

/// These tests measure time and load the machine: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// A `de1d` command without any `DE1D_*` variables inherited from the environment.
fn de1d() -> Command {
    let mut cmd = Command::new(EXE);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DE1D_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; zombies count as dead.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A parsed log line: level, process, target, message.
fn parse_line(line: &str) -> Option<(&str, &str, &str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let b = time.as_bytes();
    let time_ok = time.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && time.chars().filter(char::is_ascii_digit).count() == 17;
    if !time_ok {
        return None;
    }
    let (level, rest) = rest.split_once(' ')?;
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('[')?;
    let (process, rest) = rest.split_once("] ")?;
    let (target, message) = rest.split_once(": ")?;
    Some((level, process, target, message))
}

struct Instance {
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
    rt: PathBuf,
    http_port: u16,
}

impl Instance {
    /// Starts `de1d` with a private configuration; `set` adds `(section, key, value)`.
    fn start(set: &[(&str, &str, toml::Value)], args: &[&str]) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log/combined.log");
        let rt = dir.path().join("rt");
        let http_port = free_port();
        let mut cfg = toml::Table::new();
        let mut put = |section: &str, key: &str, value: toml::Value| {
            let t = cfg
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = t {
                t.insert(key.to_owned(), value);
            }
        };
        let path_value = |p: &Path| toml::Value::String(p.display().to_string());
        put("launcher", "runtime_dir", path_value(&rt));
        put("bluetooth", "simulate", toml::Value::Boolean(true));
        put("http", "port", toml::Value::Integer(i64::from(http_port)));
        if have_mosquitto() {
            put("mqtt", "spawn_broker", toml::Value::Boolean(true));
        } else {
            put(
                "mqtt",
                "broker_port",
                toml::Value::Integer(i64::from(free_port())),
            );
        }
        put("logging", "file", path_value(&log));
        put("logging", "stderr", toml::Value::String("never".into()));
        for (s, k, v) in set {
            put(s, k, v.clone());
        }
        let cfg_path = dir.path().join("de1d.toml");
        std::fs::write(&cfg_path, toml::to_string(&cfg).expect("toml")).expect("config");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = de1d()
            .arg("--config")
            .arg(&cfg_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn de1d");
        Instance {
            child,
            dir,
            log,
            rt,
            http_port,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// The first line after byte `from` satisfying `pred`, waiting up to `timeout`.
    fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            let text = self.log_text();
            found = text
                .get(from..)
                .and_then(|t| t.lines().find(|l| pred(l)).map(str::to_owned));
            found.is_some()
        });
        found
    }

    fn wait_all_ready(&self) {
        let line = self.wait_line(0, Duration::from_secs(10), |l| {
            l.contains("all processes ready")
        });
        assert!(line.is_some(), "not ready; log:\n{}", self.diagnostics());
    }

    /// Pids announced by the launcher ("X ready (pid N)" / "X started (pid N)"), latest
    /// per process.
    fn pids(&self) -> HashMap<String, u32> {
        let mut out = HashMap::new();
        for line in self.log_text().lines() {
            let Some((_, "Launcher", _, msg)) = parse_line(line) else {
                continue;
            };
            for marker in [" ready (pid ", " started (pid "] {
                if let Some((name, rest)) = msg.split_once(marker) {
                    if marker.contains("started") && name != "Mosquitto" {
                        continue;
                    }
                    if let Some(pid) = rest.split(')').next().and_then(|p| p.parse().ok()) {
                        out.insert(name.to_owned(), pid);
                    }
                }
            }
        }
        out
    }

    fn ping_controller(&self) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let path = self.rt.join(ipc_schema::child::CONTROLLER_SOCKET);
        rt.block_on(async move {
            let client = ControllerClient::start(path, Role::Tool);
            client.call(IpcCommand::Ping, Duration::from_secs(3)).await == Ok(Reply::Pong)
        })
    }

    fn http_answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, self.http_port).into(),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /version HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut head = [0u8; 8];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("signal de1d");
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    fn diagnostics(&self) -> String {
        let stderr = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        format!(
            "stderr:\n{stderr}\nlog (last lines):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(6)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

#[test]
fn starts_fast_and_stops_in_order_on_sigterm() {
    let _g = serial();
    let t0 = Instant::now();
    let mut de1d = Instance::start(&[], &[]);
    assert!(
        wait_until(Duration::from_secs(5), || de1d.http_answers()),
        "HTTP never answered; {}",
        de1d.diagnostics()
    );
    let http_after = t0.elapsed();
    de1d.wait_all_ready();
    assert!(
        http_after < Duration::from_secs(1),
        "HTTP answered only after {http_after:?}"
    );
    let mode = std::fs::metadata(&de1d.rt)
        .expect("runtime dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(de1d.ping_controller(), "{}", de1d.diagnostics());

    let pids = de1d.pids();
    for name in CHILDREN.iter().chain(&["Mosquitto"]) {
        let pid = pids
            .get(*name)
            .copied()
            .unwrap_or_else(|| panic!("no pid for {name}"));
        assert!(alive(pid), "{name} not running");
    }

    let t = Instant::now();
    de1d.signal(Signal::SIGTERM);
    let status = de1d.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        de1d.diagnostics()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    for (name, pid) in &pids {
        assert!(
            wait_until(Duration::from_secs(1), || !alive(*pid)),
            "{name} (pid {pid}) outlived the launcher"
        );
    }
    assert!(!de1d.rt.exists(), "runtime directory left behind");
    let log = de1d.log_text();
    // Inbound and controller stop before outbound, outbound before the broker.
    let pos = |what: &str| {
        log.find(&format!("] de1d::commands::launch: {what} stopped"))
            .unwrap_or_else(|| panic!("{what} stop not logged"))
    };
    assert!(pos("Inbound") < pos("Outbound"));
    assert!(pos("Controller") < pos("Outbound"));
    if have_mosquitto() {
        assert!(pos("Outbound") < pos("Mosquitto"));
    }
    assert!(log.contains("de1d stopped (exit status 0)"));
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn sigint_is_a_clean_stop_and_sigquit_is_not() {
    let _g = serial();
    for (sig, code) in [(Signal::SIGINT, 0), (Signal::SIGQUIT, 128 + 3)] {
        let mut de1d = Instance::start(&[], &[]);
        de1d.wait_all_ready();
        de1d.signal(sig);
        let status = de1d.wait_exit(Duration::from_secs(5));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(code),
            "{sig}: {}",
            de1d.diagnostics()
        );
    }
}

#[test]
fn a_killed_child_is_restarted_within_a_second_and_the_others_keep_working() {
    let _g = serial();
    let de1d = Instance::start(&[], &[]);
    de1d.wait_all_ready();
    for victim in ["Inbound", "Outbound", "Controller"] {
        let before = de1d.pids();
        let old = before[victim];
        let from = de1d.log_len();
        kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill");
        let t = Instant::now();
        let marker = format!("{victim} ready (pid ");
        let line = de1d
            .wait_line(from, Duration::from_secs(3), |l| l.contains(&marker))
            .unwrap_or_else(|| panic!("{victim} not restarted; {}", de1d.diagnostics()));
        let restarted_after = t.elapsed();
        assert!(
            restarted_after < Duration::from_secs(1),
            "{victim} ready again only after {restarted_after:?}"
        );
        let after = de1d.pids();
        assert_ne!(after[victim], old, "{line}");
        assert!(!alive(old));
        for other in CHILDREN
            .iter()
            .chain(&["Mosquitto"])
            .filter(|n| **n != victim)
        {
            assert_eq!(after[*other], before[*other], "{other} was disturbed");
            assert!(alive(after[*other]), "{other} died");
        }
        assert!(de1d.http_answers(), "HTTP after killing {victim}");
        assert!(de1d.ping_controller(), "controller after killing {victim}");
        if victim == "Controller" {
            // The clients reconnect to the new controller by themselves.
            for client in ["Inbound", "Outbound"] {
                let want = format!(
                    "[{client}] ipc::client: connected to the controller (pid {})",
                    after[victim]
                );
                assert!(
                    de1d.wait_line(from, Duration::from_secs(2), |l| l.contains(&want))
                        .is_some(),
                    "{client} did not reconnect; {}",
                    de1d.diagnostics()
                );
            }
        }
    }
    assert!(!de1d.log_text().contains("panicked"));
}

#[test]
fn the_restart_limit_makes_de1d_exit_non_zero() {
    let _g = serial();
    let mut de1d = Instance::start(
        &[("launcher", "restart_limit", toml::Value::Integer(2))],
        &[],
    );
    de1d.wait_all_ready();
    let all = de1d.pids();
    for round in 0..3 {
        let pid = de1d.pids()["Inbound"];
        let from = de1d.log_len();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
        if round < 2 {
            assert!(
                de1d.wait_line(from, Duration::from_secs(3), |l| l
                    .contains("Inbound ready (pid "))
                    .is_some(),
                "restart {round}; {}",
                de1d.diagnostics()
            );
        }
    }
    let status = de1d.wait_exit(Duration::from_secs(6));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(70),
        "{}",
        de1d.diagnostics()
    );
    assert!(de1d.log_text().contains("Inbound failed more than 2 times"));
    for (name, pid) in all {
        assert!(
            wait_until(Duration::from_secs(1), || !alive(pid)),
            "{name} survived"
        );
    }
}

#[test]
fn children_die_with_the_launcher() {
    let _g = serial();
    let mut de1d = Instance::start(&[], &[]);
    de1d.wait_all_ready();
    let pids = de1d.pids();
    assert_eq!(pids.len(), supervised().len(), "{pids:?}");
    de1d.child.kill().expect("SIGKILL the launcher");
    let _ = de1d.child.wait();
    for (name, pid) in pids {
        assert!(
            wait_until(Duration::from_secs(6), || !alive(pid)),
            "{name} (pid {pid}) survived its launcher"
        );
    }
}

#[test]
fn sighup_reopens_the_log_file_without_losing_or_garbling_lines() {
    let _g = serial();
    let mut de1d = Instance::start(&[], &["--debug-log-flood"]);
    de1d.wait_all_ready();
    // Every child floods.
    for name in CHILDREN {
        let tag = format!("[{name}] de1d::flood: seq=");
        assert!(
            de1d.wait_line(0, Duration::from_secs(5), |l| l.contains(&tag))
                .is_some(),
            "{name} does not flood"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let rotated = de1d.log.with_extension("log.1");
    std::fs::rename(&de1d.log, &rotated).expect("rotate");
    de1d.signal(Signal::SIGHUP);
    // The next lines land in a new file.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let t = de1d.log_text();
            CHILDREN
                .iter()
                .all(|n| t.contains(&format!("[{n}] de1d::flood: seq=")))
        }),
        "no flood in the new file; {}",
        de1d.diagnostics()
    );
    std::thread::sleep(Duration::from_millis(200));
    de1d.signal(Signal::SIGTERM);
    let status = de1d.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        de1d.diagnostics()
    );

    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    let new = de1d.log_text();
    assert!(old.contains("SIGHUP: reopening the log file"));
    assert!(!new.contains("SIGHUP: reopening the log file"));
    let first_new = new.lines().next().expect("new file has lines");
    assert!(
        first_new.ends_with("de1d::log: log file reopened"),
        "{first_new}"
    );

    // Every line is whole, and per process the flood's sequence numbers only grow, with
    // every gap accounted for by reported drops (a full queue in the child).
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut gaps: HashMap<&str, u64> = HashMap::new();
    let mut dropped: HashMap<&str, u64> = HashMap::new();
    let mut per_file = [HashMap::new(), HashMap::new()];
    for (i, text) in [&old, &new].into_iter().enumerate() {
        assert!(text.ends_with('\n'), "file {i} ends mid-line");
        for line in text.lines() {
            let (_, process, target, message) =
                parse_line(line).unwrap_or_else(|| panic!("garbled line in file {i}: {line:?}"));
            match target {
                "de1d::flood" => {
                    let Some(seq) = message.strip_prefix("seq=") else {
                        continue;
                    };
                    let seq: i64 = seq.parse().unwrap_or_else(|_| panic!("bad seq {line:?}"));
                    let prev = last.insert(process, seq).unwrap_or(-1);
                    assert!(seq > prev, "{process}: seq {seq} after {prev}");
                    *gaps.entry(process).or_default() += (seq - prev - 1) as u64;
                    *per_file[i].entry(process).or_insert(0u64) += 1;
                }
                "de1d::log" => {
                    if let Some(n) = message.strip_suffix(" log records dropped (queue full)") {
                        *dropped.entry(process).or_default() += n.parse::<u64>().expect("count");
                    }
                }
                _ => {}
            }
        }
    }
    for name in CHILDREN {
        assert!(
            per_file[0].get(name).copied().unwrap_or(0) > 0,
            "{name} not in old file"
        );
        assert!(
            per_file[1].get(name).copied().unwrap_or(0) > 0,
            "{name} not in new file"
        );
        let gap = gaps.get(name).copied().unwrap_or(0);
        let drop = dropped.get(name).copied().unwrap_or(0);
        assert!(
            gap <= drop,
            "{name}: {gap} records missing but only {drop} reported dropped"
        );
    }
}

#[test]
fn malformed_frames_drop_the_connection_and_nothing_else() {
    let _g = serial();
    let de1d = Instance::start(&[], &[]);
    de1d.wait_all_ready();
    let before = de1d.pids();
    let closed_by_peer = |mut s: UnixStream| {
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    for sock in [
        ipc_schema::child::LAUNCHER_SOCKET,
        ipc_schema::child::CONTROLLER_SOCKET,
    ] {
        let path = de1d.rt.join(sock);
        // Garbage instead of a hello, and an absurd length prefix.
        for junk in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[0xff, 0xff, 0xff, 0xff, 1, 2][..],
        ] {
            let mut s = UnixStream::connect(&path).expect("connect");
            s.write_all(junk).expect("write");
            assert!(closed_by_peer(s), "{sock} kept a garbage connection");
        }
    }
    // A proper client that then sends garbage, or an oversized frame, or vanishes mid-frame.
    let path = de1d.rt.join(ipc_schema::child::CONTROLLER_SOCKET);
    for junk in [&[0, 0, 0, 2, 0xee, 0xee][..], &[0x7f, 0xff, 0xff, 0xff][..]] {
        let mut s = UnixStream::connect(&path).expect("connect");
        handshake_blocking(&mut s, Role::Tool, &[Role::Controller], MAX_FRAME_LEN)
            .expect("handshake");
        s.write_all(junk).expect("write");
        assert!(closed_by_peer(s), "controller kept a garbled connection");
    }
    let mut s = UnixStream::connect(&path).expect("connect");
    handshake_blocking(&mut s, Role::Tool, &[Role::Controller], MAX_FRAME_LEN).expect("handshake");
    s.write_all(&[0, 0, 1, 0, 1, 2, 3]).expect("write");
    drop(s);

    assert!(de1d.ping_controller());
    assert!(de1d.http_answers());
    assert_eq!(de1d.pids(), before, "a process was restarted");
    let log = de1d.log_text();
    assert!(
        log.contains("launcher socket: refused a connection"),
        "{log}"
    );
    assert!(!log.contains("panicked"));
    assert!(!log.contains("restarting"));
}

fn run_de1d(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = de1d()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run de1d");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nprot = 8080\n").expect("write");
    let bad = bad.to_str().expect("utf-8 path");
    let rt = dir.path().join("rt");
    let rt = rt.to_str().expect("utf-8 path");

    let (code, _, err) = run_de1d(&["--config", bad, "config", "show"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("prot") && err.contains("bad.toml") && err.contains("line 2"),
        "{err}"
    );

    // The launcher refuses to start, before creating anything.
    let (code, _, err) = run_de1d(&["--config", bad, "--runtime-dir", rt], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("prot"), "{err}");
    assert!(!Path::new(rt).exists());

    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").expect("write");
    let empty = empty.to_str().expect("utf-8 path");
    let (code, _, err) = run_de1d(
        &["--config", empty, "config", "show"],
        &[("DE1D_HTTP__PROT", "1")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("DE1D_HTTP__PROT"), "{err}");

    let (code, _, err) = run_de1d(
        &["--config", empty, "config", "show"],
        &[("DE1D_DE1__LINE_FREQUENCY", "55")],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("DE1D_DE1__LINE_FREQUENCY") && err.contains("de1.line_frequency"),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run_de1d(
        &[
            "--config",
            missing.to_str().expect("utf-8"),
            "config",
            "show",
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("missing.toml"), "{err}");

    let (code, _, _) = run_de1d(&["--http-port", "not-a-port", "config", "show"], &[]);
    assert_eq!(code, Some(2));
}

#[test]
fn config_show_prints_the_merged_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("de1d.toml");
    std::fs::write(
        &file,
        "[http]\nport = 8081\n[mqtt]\nusername = \"u\"\npassword = \"s3cret\"\ntopic_root = \"file\"\n",
    )
    .expect("write");
    let file = file.to_str().expect("utf-8");
    let env = [("DE1D_MQTT__TOPIC_ROOT", "fromenv")];
    let (code, out, err) = run_de1d(
        &[
            "--config",
            file,
            "config",
            "show",
            "--http-port",
            "9000",
            "--simulate",
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    let shown = ipc_schema::Config::from_toml_str(&out).expect("output reads back");
    assert_eq!(shown.http.port, 9000);
    assert_eq!(shown.mqtt.topic_root, "fromenv");
    assert!(shown.bluetooth.simulate);
    assert_eq!(shown.mqtt.username.as_deref(), Some("u"));
    assert_ne!(shown.mqtt.password.as_deref(), Some("s3cret"));
    assert!(!out.contains("s3cret"));

    let (code, out, _) = run_de1d(
        &["--config", file, "config", "show", "--reveal-secrets"],
        &[],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("s3cret"));
}

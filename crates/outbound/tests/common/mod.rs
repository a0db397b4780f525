//! A private mosquitto broker and a paho subscriber for tests and benchmarks.
#![allow(dead_code)] // each test binary uses a different part

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paho_mqtt as mqtt;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A mosquitto process on a free loopback port, killed when dropped. Optionally with a
/// password file (anonymous clients stay allowed).
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    passwords: Option<PathBuf>,
}

impl Broker {
    /// A started broker on a free port.
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// A started broker on a free port with extra configuration lines.
    pub fn start_with(extra: &str) -> Broker {
        let mut b = Broker::new(free_port(), None);
        let mut conf = std::fs::read_to_string(b.conf_path()).expect("read conf");
        conf.push_str(extra);
        std::fs::write(b.conf_path(), conf).expect("write conf");
        b.spawn();
        b
    }

    /// A broker (not started) on `port`; with `Some((user, password))`, that user must
    /// authenticate with that password.
    pub fn new(port: u16, user: Option<(&str, &str)>) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let passwords = user.map(|_| dir.path().join("passwd"));
        let mut b = Broker {
            port,
            child: None,
            dir,
            passwords,
        };
        if let Some((u, p)) = user {
            b.set_password(u, p);
        }
        // DE1D_TEST_BROKER_LOG=1 shows the broker's log on stderr.
        let log = if verbose() { "stderr" } else { "none" };
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest {log}\n"
        );
        if let Some(p) = &b.passwords {
            conf.push_str(&format!("password_file {}\n", p.display()));
        }
        std::fs::write(b.conf_path(), conf).expect("write mosquitto.conf");
        b
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    /// Replaces the password file with one entry (takes effect at start or on
    /// [`Broker::reload`]).
    pub fn set_password(&mut self, user: &str, password: &str) {
        let file = self.passwords.as_ref().expect("broker made with a user");
        let _ = std::fs::remove_file(file);
        let status = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(file)
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd failed");
    }

    /// Starts the process and waits until it accepts connections.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if verbose() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: connections drop without any MQTT goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: our own child; a stopped process must be continued to die promptly.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGHUP: re-reads the password file.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGSTOP: the broker stops reading; senders fill their socket buffers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "signal {sig} to mosquitto");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn verbose() -> bool {
    std::env::var_os("DE1D_TEST_BROKER_LOG").is_some()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A paho subscriber collecting messages.
pub struct Sub {
    client: mqtt::AsyncClient,
    stream: mqtt::AsyncReceiver<Option<mqtt::Message>>,
}

impl Sub {
    pub async fn connect(port: u16, filters: &[&str]) -> Sub {
        let mut client = mqtt::CreateOptionsBuilder::new()
            .server_uri(format!("tcp://127.0.0.1:{port}"))
            .client_id(format!("test-sub-{}", rand_suffix()))
            .mqtt_version(mqtt::MQTT_VERSION_5)
            .persistence(mqtt::PersistenceType::None)
            .create_client()
            .expect("subscriber client");
        let stream = client.get_stream(100_000);
        let opts = mqtt::ConnectOptionsBuilder::new_v5()
            .clean_start(true)
            .finalize();
        client.connect(opts).await.expect("subscriber connect");
        let qos = vec![mqtt::QOS_0; filters.len()];
        client
            .subscribe_many(filters, &qos)
            .await
            .expect("subscribe");
        Sub { client, stream }
    }

    /// The next message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<mqtt::Message> {
        match tokio::time::timeout(timeout, self.stream.recv()).await {
            Ok(Ok(Some(m))) => Some(m),
            _ => None,
        }
    }

    /// Messages until `done` says so (or `timeout` passes).
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[mqtt::Message]) -> bool,
    ) -> Vec<mqtt::Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next(left).await {
                Some(m) => got.push(m),
                None => break,
            }
        }
        got
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect(None).await;
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

//! TLS to the broker (crate feature `ssl`): a private CA, a mosquitto TLS listener, and a
//! publisher that verifies the broker's certificate.
#![cfg(feature = "ssl")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{free_port, Broker, Sub};
use ipc_schema::event::{AutoTareAction, AutoTareNotification, Event, Stamp};
use outbound::{MqttSettings, Publisher, TlsSettings};
use tokio::sync::mpsc;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1, in `dir`.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=de1d test CA",
            "-days",
            "2",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    // mosquitto started as root reads them after dropping to its own user.
    use std::os::unix::fs::PermissionsExt;
    let readable = |p: &Path, mode| std::fs::set_permissions(p, PermissionsExt::from_mode(mode));
    readable(dir, 0o755).expect("chmod dir");
    for f in ["ca.crt", "server.crt", "server.key"] {
        readable(&dir.join(f), 0o644).expect("chmod file");
    }
}

fn start(
    settings: MqttSettings,
) -> (
    std::sync::Arc<outbound::Stats>,
    mpsc::UnboundedSender<Event>,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<outbound::Report>,
) {
    let p = Publisher::new(settings).expect("publisher");
    let stats = p.stats();
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(p.run(rx, async {
                let _ = stopped.await;
            }))
    });
    (stats, tx, stop, thread)
}

#[tokio::test]
async fn publishes_over_verified_tls() {
    let certs = tempfile::tempdir().expect("temp dir");
    make_certs(certs.path());
    let tls_port = free_port();
    let c = certs.path();
    let broker = Broker::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        c.join("ca.crt").display(),
        c.join("server.crt").display(),
        c.join("server.key").display()
    ));
    let mut sub = Sub::connect(broker.port, &["pyDE1/AutoTareNotification"]).await;

    let settings = |ca: Option<&Path>| MqttSettings {
        broker_host: "127.0.0.1".into(),
        broker_port: tls_port,
        tls: Some(TlsSettings {
            ca_certs: ca.map(Path::to_path_buf),
            verify: true,
            ..TlsSettings::default()
        }),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ..MqttSettings::default()
    };

    // Without our CA the broker's certificate is not trusted: no connection.
    let (untrusting, _tx0, stop0, t0) = start(settings(None));
    // With it, events flow.
    let (stats, tx, stop, t) = start(settings(Some(&c.join("ca.crt"))));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stats.connected.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "no TLS connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(Event::AutoTareNotification(AutoTareNotification {
        stamp: Stamp::at(1.0),
        action: AutoTareAction::Enabled,
    }))
    .expect("send");
    let m = sub
        .next(Duration::from_secs(10))
        .await
        .expect("event over TLS");
    assert!(m.payload_str().contains("\"action\": \"enabled\""));

    assert_eq!(untrusting.connections.load(Ordering::Relaxed), 0);
    let _ = stop0.send(());
    let _ = stop.send(());
    t0.join().expect("untrusting publisher");
    t.join().expect("publisher");
}

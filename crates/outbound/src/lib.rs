//! The outbound MQTT API process: publishes the controller's events on MQTT exactly as
//! pyDE1 2.0 does (`pyde1-mqtt-api.md`), plus optional Home Assistant discovery.
//!
//! * [`render`]: event → topic and pyDE1-shaped JSON (pure; the JSON is `pyde1-docs`').
//! * [`queue`]: the bounded queue that keeps the controller from ever waiting on MQTT.
//! * [`publisher`]: the connection, reconnection, retained state and status topics.
//! * [`ha`]: Home Assistant discovery documents and the derived shot time.

pub mod ha;
pub mod link;
pub mod localtime;
pub mod publisher;
pub mod queue;
pub mod render;
pub mod settings;
pub mod source;
pub mod status;

/// Python-compatible JSON (kept here for the benchmarks and existing callers).
pub use pyde1_docs::pyjson;

use std::future::Future;
use std::process::ExitCode;

use ipc_schema::child::ChildEnv;

pub use publisher::{End, PublishError, Publisher, Report, Stats};
pub use settings::{MqttSettings, TlsSettings, Transport};
pub use source::{ControllerEvents, EventSource};

/// The outbound process: publishes the controller's events with the `[mqtt]` settings of
/// the effective configuration until the launcher asks it to stop.
pub fn run(env: ChildEnv) -> ExitCode {
    let settings = MqttSettings::from(&env.config().mqtt);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let publisher = match Publisher::new(settings) {
            Ok(p) => p,
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let (_client, events) = env.controller_events();
        // Ready to publish; the broker may still be unreachable (it is retried).
        env.ready();
        let shutdown = env.shutdown().clone();
        finish(
            publisher
                .run(ControllerEvents::new(events), async move {
                    shutdown.wait().await;
                })
                .await,
        )
    })
}

/// Runs a publisher with `settings` on a small single-threaded runtime until `source`
/// ends or `shutdown` completes (for tools and tests without a launcher).
pub fn run_with<S, F>(settings: MqttSettings, source: S, shutdown: F) -> ExitCode
where
    S: EventSource,
    F: Future<Output = ()>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match Publisher::new(settings) {
            Ok(p) => finish(p.run(source, shutdown).await),
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn finish(report: Report) -> ExitCode {
    log::info!(
        "stopped ({:?}): {} publications, {} events dropped, {} unsent",
        report.end,
        report.published,
        report.dropped.total(),
        report.unsent
    );
    ExitCode::SUCCESS
}

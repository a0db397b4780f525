//! The inbound HTTP API process: pyDE1 2.0's HTTP resources, served over axum/hyper,
//! answered by the controller over IPC.
//!
//! Pure parts, one concern each:
//! * [`routes`]: the route table (paths, what each method does);
//! * [`mapping`] (from `pyde1-docs`): every document's keys, types, and how PATCH values
//!   become typed changes;
//! * [`validate`]: request bodies → typed [`ipc_schema::command::Command`]s, with field
//!   paths (the PATCH walk itself is `pyde1_docs::patch`);
//! * [`render`]: typed replies → response text (documents from `pyde1_docs::document`);
//! * [`error`]: every failure → one JSON error response with pyDE1's status;
//! * [`openapi`]: the OpenAPI document, from the route table and the mapping;
//! * [`logs`]: the log directory.
//!
//! [`server`] is the glue: router, authentication, CORS, body limits, the controller round
//! trip and the connection loop. [`run`] is the process entry point.

use std::process::ExitCode;
use std::time::Duration;

use ipc_schema::child::{ChildEnv, ShutdownReason};

pub mod error;
pub mod logs;
pub mod openapi;
pub mod render;
pub mod routes;
pub mod server;
pub mod validate;

/// The resource mapping, shared with the PATCH parser of [`pyde1_docs`].
pub use pyde1_docs::mapping;

const LOG_TARGET: &str = "inbound";

/// Runs the HTTP API until a shutdown is requested. Reports readiness once the socket
/// listens; exits non-zero if it cannot listen.
pub fn run(env: ChildEnv) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("inbound")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(target: LOG_TARGET, "cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve_until_shutdown(env));
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn serve_until_shutdown(env: ChildEnv) -> ExitCode {
    let config = env.config();
    let addr = server::listen_address(config);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            log::error!(target: LOG_TARGET, "cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = server::Settings::from_config(config, env.runtime_dir());
    let root = settings.root.clone();
    if settings.bearer_token.is_none() && !addr.ip().is_loopback() {
        log::warn!(
            target: LOG_TARGET,
            "the HTTP API listens on {addr} without a bearer token: anyone on the network can \
             control the machine"
        );
    }
    let router = server::router(settings, env.controller_client());
    log::info!(target: LOG_TARGET, "HTTP API listening on http://{addr}{root}");
    env.ready();

    let shutdown = env.shutdown().clone();
    server::serve(
        listener,
        router,
        server::ConnectionLimits::default(),
        shutdown.clone(),
    )
    .await;
    log::info!(
        target: LOG_TARGET,
        "HTTP API stopped ({:?})",
        shutdown.reason().unwrap_or(ShutdownReason::LauncherGone)
    );
    ExitCode::SUCCESS
}

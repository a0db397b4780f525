//! The HTTP glue: router built from the route table, authentication, CORS, body limits,
//! the controller round trip, and the connection loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipc_schema::child::{Shutdown, ShutdownReason};
use ipc_schema::client::ControllerClient;
use ipc_schema::command::{Change, Command, ControlChange, DeviceSelection, PatchOutput, Reply};
use ipc_schema::config::{seconds, Config};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::error::ApiError;
use crate::routes::{self, Action, Get, Patch, Put, Route};
use crate::{logs, openapi, render, validate};

const LOG_TARGET: &str = "inbound::http";

/// Time allowed to receive a JSON body (profiles, settings) once the headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to receive a firmware image.
pub const FIRMWARE_BODY_TIMEOUT: Duration = Duration::from_secs(120);
/// Extra time granted on top of the controller's own timeouts for the IPC round trip.
const MARGIN: Duration = Duration::from_millis(500);

/// The controller's timeouts, from which inbound derives how long it waits for a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub async_op: Duration,
    pub profile: Duration,
    pub firmware: Duration,
    pub scan: Duration,
    pub connect: Duration,
    pub disconnect: Duration,
    /// Wait for the characteristic lock while a firmware upload runs.
    pub lock_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::from_config(&Config::default())
    }
}

impl Timeouts {
    pub fn from_config(c: &Config) -> Timeouts {
        Timeouts {
            async_op: seconds(c.http.async_timeout),
            profile: seconds(c.http.profile_timeout),
            firmware: seconds(c.http.firmware_timeout),
            scan: seconds(c.bluetooth.scan_timeout),
            connect: seconds(c.bluetooth.connect_timeout),
            disconnect: seconds(c.bluetooth.disconnect_timeout),
            lock_wait: seconds(c.de1.cuuid_lock_wait_timeout),
        }
    }

    /// How long the controller may take for one change (pyDE1's setter timeouts, §2.4).
    pub fn change(&self, c: &Change) -> Duration {
        let tenth = Duration::from_millis(100);
        match c {
            Change::SelectDevice { selection, .. } => match selection {
                DeviceSelection::Scan => {
                    self.scan + self.disconnect + self.connect + self.async_op + tenth
                }
                DeviceSelection::Address(_) => {
                    self.disconnect + self.connect + self.async_op + tenth
                }
                DeviceSelection::Forget => self.disconnect + self.async_op + tenth,
            },
            Change::Connectivity { .. } => self.connect + self.async_op + 2 * tenth,
            Change::Control(ControlChange::RinseStopAtTime(_)) => 2 * self.async_op,
            _ => self.async_op,
        }
    }

    /// How long inbound waits for the reply to `cmd`.
    pub fn call(&self, cmd: &Command) -> Duration {
        let base = match cmd {
            Command::Ping | Command::Get(_) => 2 * self.async_op,
            Command::Patch { changes, .. } => changes
                .iter()
                .map(|c| self.change(c))
                .sum::<Duration>()
                .max(self.async_op),
            Command::UploadProfile { .. }
            | Command::StoreProfile { .. }
            | Command::SelectProfile { .. } => self.profile,
            Command::UploadFirmware { .. } => self.firmware,
            Command::CancelFirmwareUpload | Command::Scan { .. } => self.async_op,
        };
        base + self.lock_wait + MARGIN
    }
}

/// Everything the HTTP API is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path prefix, starting and ending with `/`.
    pub root: String,
    pub bearer_token: Option<String>,
    /// Allowed CORS origins (`*` for any); no CORS headers at all when empty.
    pub cors_origins: Vec<String>,
    pub body_limit: usize,
    pub firmware_body_limit: usize,
    pub prune_empty_nodes: bool,
    pub timeouts: Timeouts,
    /// Directory served by `logs` and `log/{id}`; none when de1d writes no log file.
    pub log_dir: Option<PathBuf>,
    /// Where uploaded firmware images are written (the private runtime directory).
    pub upload_dir: PathBuf,
    pub body_timeout: Duration,
    pub firmware_body_timeout: Duration,
}

impl Settings {
    pub fn from_config(config: &Config, runtime_dir: &Path) -> Settings {
        let h = &config.http;
        Settings {
            root: h.root.clone(),
            bearer_token: h.bearer_token.clone(),
            cors_origins: h.cors_origins.clone(),
            body_limit: h.body_limit,
            firmware_body_limit: h.firmware_body_limit,
            prune_empty_nodes: h.prune_empty_nodes,
            timeouts: Timeouts::from_config(config),
            log_dir: config
                .logging
                .file_path()
                .and_then(Path::parent)
                .map(Path::to_owned),
            upload_dir: runtime_dir.to_owned(),
            body_timeout: BODY_TIMEOUT,
            firmware_body_timeout: FIRMWARE_BODY_TIMEOUT,
        }
    }
}

/// Limits of the connection loop.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once; further ones wait in the listen queue.
    pub max_connections: usize,
    /// Time allowed for a request's headers (and for an idle keep-alive connection).
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown request.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(2),
        }
    }
}

/// The state every handler shares.
#[derive(Clone)]
struct App {
    settings: Arc<Settings>,
    client: ControllerClient,
    /// One firmware image at a time (it is held in memory while it is checked).
    firmware: Arc<Semaphore>,
    uploads: Arc<AtomicU64>,
}

/// Builds the router: one route per entry of [`routes::ROUTES`] under the root, 404 for
/// anything else.
pub fn router(settings: Settings, client: ControllerClient) -> Router {
    let app = App {
        settings: Arc::new(settings),
        client,
        firmware: Arc::new(Semaphore::new(1)),
        uploads: Arc::new(AtomicU64::new(0)),
    };
    let mut inner: Router<App> = Router::new();
    for route in routes::ROUTES {
        inner = inner.route(
            &format!("/{}", route.path),
            any(move |State(app): State<App>, req: Request| handle(app, route, req)),
        );
    }
    let root = app.settings.root.trim_end_matches('/').to_owned();
    let routed = if root.is_empty() {
        inner
    } else {
        Router::new().nest(&root, inner)
    };
    routed
        .fallback(|req: Request| async move {
            let e = not_found(&req);
            discard(req).await;
            e.into_response()
        })
        .layer(middleware::from_fn_with_state(app.clone(), outer))
        .with_state(app)
}

fn not_found(req: &Request) -> ApiError {
    ApiError::not_found(format!("no resource {} {}", req.method(), req.uri().path()))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Compares in time independent of where the first difference is.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    diff == 0
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let bytes = value.as_bytes();
    let given = match bytes.get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"bearer ") => &bytes[7..],
        _ => return false,
    };
    same_secret(given, token.as_bytes())
}

/// The `Access-Control-Allow-Origin` value for a request's origin, if CORS allows it.
fn cors_origin(settings: &Settings, headers: &HeaderMap) -> Option<HeaderValue> {
    if settings.cors_origins.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    if settings.cors_origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let text = origin.to_str().ok()?;
    settings
        .cors_origins
        .iter()
        .any(|o| o == text)
        .then(|| origin.clone())
}

/// Runs around every request: authentication, CORS, the pyDE1 timestamp headers and the
/// access log.
async fn outer(State(app): State<App>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let allow_origin = cors_origin(&app.settings, req.headers());
    let preflight = method == Method::OPTIONS
        && allow_origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);

    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PATCH, PUT"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else if app
        .settings
        .bearer_token
        .as_deref()
        .is_some_and(|t| !authorized(req.headers(), t))
    {
        discard(req).await;
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    } else {
        next.run(req).await
    };

    let t = now();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&render::timestamp_header(t)) {
        h.insert("x-pyde1-timestamp", v);
    }
    if let Ok(v) = HeaderValue::from_str(&render::http_date(t)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(origin) = allow_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-pyde1-timestamp"),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    log::info!(
        target: LOG_TARGET,
        "{:.0} {} {method} {path}",
        start.elapsed().as_secs_f64() * 1000.0,
        resp.status().as_u16()
    );
    resp
}

/// A 200 with pyDE1's JSON text.
fn json_ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        render::body(v),
    )
        .into_response()
}

async fn handle(app: App, route: &'static Route, req: Request) -> Response {
    match serve_route(&app, route, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                log::warn!(target: LOG_TARGET, "{e}");
            } else {
                log::debug!(target: LOG_TARGET, "{e}");
            }
            e.into_response()
        }
    }
}

async fn serve_route(app: &App, route: &'static Route, req: Request) -> Result<Response, ApiError> {
    // pyDE1 matches the whole target, query included: `/de1/id?x=1` is not a resource.
    if req.uri().query().is_some() {
        let e = not_found(&req);
        discard(req).await;
        return Err(e);
    }
    let action = match route.action(req.method()) {
        Ok(a) => a,
        Err(e) => {
            discard(req).await;
            return Err(e);
        }
    };
    let s = &app.settings;
    match action {
        Action::Get(get) => match get {
            Get::Controller(resource, _) => {
                let reply = call(app, Command::Get(resource)).await?;
                match reply {
                    Reply::Document(doc) => Ok(json_ok(&render::document(
                        resource,
                        &doc,
                        s.prune_empty_nodes,
                    )?)),
                    other => Err(unexpected(&other)),
                }
            }
            Get::Empty => Ok(json_ok(&json!({}))),
            Get::Version => Ok(json_ok(&render::version())),
            Get::Logs => Ok(json_ok(&logs::list(s.log_dir.as_deref()).await?)),
            Get::Log => {
                let path = req.uri().path();
                let id = path.rsplit('/').next().unwrap_or("");
                logs::file(s.log_dir.as_deref(), id).await
            }
            Get::OpenApi => Ok(json_ok(&openapi::document(
                &s.root,
                s.bearer_token.is_some(),
            ))),
            Get::No | Get::NotImplemented => Err(ApiError::internal("unreachable GET")),
        },
        Action::Patch(patch) => {
            let body = read_body(req, s.body_limit, s.body_timeout).await?;
            match patch {
                Patch::Controller(resource, node) => {
                    let changes = validate::patch(node, &body)?;
                    match call(app, Command::Patch { resource, changes }).await? {
                        Reply::Patched(out) => {
                            let list: Vec<Value> = out
                                .into_iter()
                                .map(|o| match o {
                                    PatchOutput::Address(a) => Value::String(a),
                                })
                                .collect();
                            Ok(json_ok(&Value::Array(list)))
                        }
                        other => Err(unexpected(&other)),
                    }
                }
                Patch::Local(node) => {
                    validate::patch(node, &body)?;
                    Ok(json_ok(&json!([])))
                }
                Patch::No | Patch::NotImplemented => Err(ApiError::internal("unreachable PATCH")),
            }
        }
        Action::Put(put) => put_route(app, put, req).await,
    }
}

async fn put_route(app: &App, put: Put, req: Request) -> Result<Response, ApiError> {
    let s = &app.settings;
    let done = |reply: Reply| match reply {
        Reply::Done => Ok(json_ok(&json!([]))),
        other => Err(unexpected(&other)),
    };
    match put {
        Put::Profile | Put::ProfileStore => {
            let body = read_body(req, s.body_limit, s.body_timeout).await?;
            validate::profile(&body)?;
            let cmd = if put == Put::Profile {
                Command::UploadProfile { source: body }
            } else {
                Command::StoreProfile { source: body }
            };
            match call(app, cmd).await? {
                Reply::Profile(p) => Ok(json_ok(&json!([{
                    "fingerprint": hex::encode(p.fingerprint),
                    "id": hex::encode(p.id),
                }]))),
                other => Err(unexpected(&other)),
            }
        }
        Put::ProfileId => {
            let body = read_body(req, s.body_limit, s.body_timeout).await?;
            let id = validate::profile_id(&body)?;
            done(call(app, Command::SelectProfile { id }).await?)
        }
        Put::FirmwareCancel => {
            let body = read_body(req, s.body_limit, s.body_timeout).await?;
            if body.is_empty() {
                return Err(ApiError::bad_request(
                    "empty_body",
                    "the body is empty; send any text to cancel the upload",
                ));
            }
            done(call(app, Command::CancelFirmwareUpload).await?)
        }
        Put::Scan => {
            let body = read_body(req, s.body_limit, s.body_timeout).await?;
            let role = validate::scan_role(&body)?;
            done(call(app, Command::Scan { role }).await?)
        }
        Put::Firmware => {
            let Ok(_permit) = app.firmware.clone().try_acquire_owned() else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "busy",
                    "another firmware image is being received",
                ));
            };
            let upload = receive_firmware(app, req).await?;
            validate::firmware(&upload.bytes)?;
            let reply = call(
                app,
                Command::UploadFirmware {
                    path: upload.file.path.clone(),
                },
            )
            .await;
            // The controller has read the file once it answers; `upload` removes it.
            drop(upload);
            done(reply?)
        }
        Put::No | Put::NotImplemented => Err(ApiError::internal("unreachable PUT")),
    }
}

fn unexpected(reply: &Reply) -> ApiError {
    let name = match reply {
        Reply::Pong => "Pong",
        Reply::Document(_) => "Document",
        Reply::Patched(_) => "Patched",
        Reply::Profile(_) => "Profile",
        Reply::Done => "Done",
    };
    ApiError::internal(format!("unexpected reply {name} from the controller"))
}

async fn call(app: &App, cmd: Command) -> Result<Reply, ApiError> {
    let timeout = app.settings.timeouts.call(&cmd);
    let name = cmd.name();
    app.client.call(cmd, timeout).await.map_err(|e| {
        log::debug!(target: LOG_TARGET, "{name}: {e}");
        ApiError::from(e)
    })
}

/// The announced body length; pyDE1 requires it on PATCH and PUT.
fn content_length(req: &Request, limit: usize) -> Result<usize, ApiError> {
    let Some(v) = req.headers().get(header::CONTENT_LENGTH) else {
        return Err(ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        ));
    };
    let len: usize = v
        .to_str()
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("bad_request", "Content-Length is not a number"))?;
    if len > limit {
        return Err(too_large(limit));
    }
    Ok(len)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

fn body_timeout(t: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("the body did not arrive within {} s", t.as_secs()),
    )
}

/// Reads the whole body: at most `limit` bytes, within `timeout`.
async fn read_body(req: Request, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let len = match content_length(&req, limit) {
        Ok(len) => len,
        Err(e) => {
            discard(req).await;
            return Err(e);
        }
    };
    let mut stream = req.into_body().into_data_stream();
    let read = async {
        let mut buf = Vec::with_capacity(len);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("bad_body", format!("the body could not be read: {e}"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| body_timeout(timeout))?
}

/// Most bytes of a refused request's body that are read (and dropped) before answering.
const DISCARD_MAX: usize = 1024 * 1024;
/// Longest time spent doing so.
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// Reads and drops what is left of a refused request's body (within limits), so that the
/// connection closes cleanly after the answer: closing a socket with unread data makes the
/// kernel reset the connection, and the client may then lose the answer.
async fn discard(req: Request) {
    // A client waiting for `100 Continue` sends nothing unless the body is read.
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    let mut stream = req.into_body().into_data_stream();
    let _ = tokio::time::timeout(DISCARD_TIME, async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DISCARD_MAX {
                break;
            }
        }
    })
    .await;
}

/// A file in the upload directory, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Upload {
    file: TempFile,
    bytes: Vec<u8>,
}

/// Streams a firmware image into a private file (and memory, for the checks).
async fn receive_firmware(app: &App, req: Request) -> Result<Upload, ApiError> {
    let s = &app.settings;
    let limit = s.firmware_body_limit;
    let len = match content_length(&req, limit) {
        Ok(len) => len,
        Err(e) => {
            discard(req).await;
            return Err(e);
        }
    };
    let n = app.uploads.fetch_add(1, Ordering::Relaxed);
    let path = s
        .upload_dir
        .join(format!("firmware-upload-{}-{n}.bin", std::process::id()));
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the firmware image: {e}")))?;
    let file = TempFile { path };
    let mut stream = req.into_body().into_data_stream();
    let timeout = s.firmware_body_timeout;
    let read = async {
        let mut bytes = Vec::with_capacity(len);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("bad_body", format!("the body could not be read: {e}"))
            })?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| ApiError::internal(format!("cannot store the firmware image: {e}")))?;
            bytes.extend_from_slice(&chunk);
        }
        out.flush()
            .await
            .map_err(|e| ApiError::internal(format!("cannot store the firmware image: {e}")))?;
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| body_timeout(timeout))??;
    Ok(Upload { file, bytes })
}

/// Serves HTTP/1.1 on `listener` until `shutdown` is requested; then stops accepting, lets
/// in-flight requests finish for at most `limits.drain`, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. EMFILE: back off rather than spin.
                    log::warn!(target: LOG_TARGET, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut drain = drain_rx.clone();
        let header_timeout = limits.header_timeout;
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async move { drain.wait_for(|d| *d).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                log::debug!(target: LOG_TARGET, "connection from {peer}: {e}");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = drain_tx.send(true);
    // Leave part of the launcher's grace period for the process to exit.
    let drain = match shutdown.reason() {
        Some(ShutdownReason::Launcher { grace }) => limits.drain.min(grace.mul_f64(0.6)),
        _ => limits.drain,
    };
    let drained =
        tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        log::warn!(
            target: LOG_TARGET,
            "{} connection(s) still open after {drain:?}; closing them",
            conns.len()
        );
        conns.shutdown().await;
    }
}

/// The address the configuration asks to listen on.
pub fn listen_address(config: &Config) -> SocketAddr {
    SocketAddr::new(config.http.bind, config.http.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::command::{CaptureRequest, Device, Resource};

    #[test]
    fn secrets_compare_by_content_only() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert!(authorized(&h, "tok"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert!(authorized(&h, "tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic tok"));
        assert!(!authorized(&h, "tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert!(!authorized(&h, "tok"));
    }

    #[test]
    fn call_timeouts_follow_pyde1_setter_timeouts() {
        let t = Timeouts::default();
        let scan = Command::Patch {
            resource: Resource::De1Id,
            changes: vec![Change::SelectDevice {
                device: Device::De1,
                selection: DeviceSelection::Scan,
            }],
        };
        // 5 + 5 + 10 + 1 + 0.1 s, plus the lock wait and the margin.
        assert_eq!(t.call(&scan), Duration::from_millis(21_100 + 2_000 + 500));
        let connect = Command::Patch {
            resource: Resource::De1Connectivity,
            changes: vec![Change::Connectivity {
                device: Device::De1,
                request: CaptureRequest::Capture,
            }],
        };
        assert_eq!(t.call(&connect), Duration::from_millis(11_200 + 2_500));
        let empty = Command::Patch {
            resource: Resource::De1,
            changes: vec![],
        };
        assert_eq!(t.call(&empty), Duration::from_millis(1_000 + 2_500));
        assert_eq!(
            t.call(&Command::UploadProfile { source: vec![] }),
            Duration::from_millis(4_500 + 2_500)
        );
    }

    #[test]
    fn cors_only_when_configured() {
        let mut s = Settings::from_config(&Config::default(), Path::new("."));
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static("http://a"));
        assert_eq!(cors_origin(&s, &h), None);
        s.cors_origins = vec!["http://b".into()];
        assert_eq!(cors_origin(&s, &h), None);
        s.cors_origins.push("http://a".into());
        assert_eq!(
            cors_origin(&s, &h),
            Some(HeaderValue::from_static("http://a"))
        );
        s.cors_origins = vec!["*".into()];
        assert_eq!(cors_origin(&s, &h), Some(HeaderValue::from_static("*")));
        assert_eq!(cors_origin(&s, &HeaderMap::new()), None);
    }
}

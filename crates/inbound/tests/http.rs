//! The HTTP API's behaviour at its edges: bad input, methods, limits, timeouts,
//! authentication, CORS, uploads, the OpenAPI document. Every refused request must get
//! exactly one 4xx response with a JSON error body and send nothing to the controller.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use de1_protocol::firmware::{FirmwareHeader, BOARD_MARKER};
use inbound::routes::ROUTES;
use ipc_schema::command::{Change, Command, ControlChange, ModeRequest, Resource, SettingChange};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Asserts one 4xx JSON error response of this kind and that the controller got nothing.
async fn refused(h: &Harness, resp: Resp, before: usize, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert!(resp.extra.is_empty(), "a second response: {:?}", resp.extra);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["error"], kind, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body.get("path").is_some());
    assert_eq!(
        h.commands(),
        before,
        "a refused request reached the controller"
    );
    body
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_with_the_field_named() {
    let h = start(|_, _| {}).await;
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("/de1/control/espresso", "{bad", "invalid_json", None),
        ("/de1/control/espresso", "{\"a\": 1,}", "invalid_json", None),
        ("/de1/control/espresso", "\u{feff}{}", "invalid_json", None),
        ("/de1/control/espresso", "{} {}", "invalid_json", None),
        ("/de1/control/espresso", "   ", "empty_body", None),
        (
            "/de1/control/espresso",
            "[1, 2]",
            "wrong_type",
            Some("body"),
        ),
        ("/de1/control/espresso", "\"x\"", "wrong_type", Some("body")),
        (
            "/de1/control/espresso",
            r#"{"stop_at_weight": "36"}"#,
            "wrong_type",
            Some("stop_at_weight"),
        ),
        (
            "/de1/control/espresso",
            r#"{"stop_at_weight": true}"#,
            "wrong_type",
            Some("stop_at_weight"),
        ),
        (
            "/de1/control/espresso",
            r#"{"stop_at_weight": -1}"#,
            "out_of_range",
            Some("stop_at_weight"),
        ),
        (
            "/de1/control/espresso",
            r#"{"stop_at_weight": 1e400}"#,
            "invalid_json",
            None,
        ),
        (
            "/de1/control/espresso",
            r#"{"no_such_key": 1}"#,
            "unknown_key",
            Some("no_such_key"),
        ),
        (
            "/de1/control/espresso",
            r#"{"stop_at_weight": 1, "stop_at_weight": 2}"#,
            "invalid_json",
            None,
        ),
        (
            "/de1",
            r#"{"setting": {"nope": {"x": 1}}}"#,
            "unknown_key",
            Some("setting:nope"),
        ),
        (
            "/de1",
            r#"{"control": {"espresso": {"stop_at_weight": {}}}}"#,
            "wrong_type",
            Some("control:espresso:stop_at_weight"),
        ),
        (
            "/de1",
            r#"{"read_once": {}}"#,
            "read_only",
            Some("read_once"),
        ),
        (
            "/de1/setting",
            r#"{"steam": 5}"#,
            "wrong_type",
            Some("steam"),
        ),
        (
            "/de1/setting/fan_threshold",
            r#"{"temperature": 45.5}"#,
            "wrong_type",
            Some("temperature"),
        ),
        (
            "/de1/setting/steam",
            r#"{"temperature": 170}"#,
            "out_of_range",
            Some("temperature"),
        ),
        ("/de1/id", r#"{"name": "x"}"#, "read_only", Some("name")),
        (
            "/de1/mode",
            r#"{"mode": "espresso"}"#,
            "bad_value",
            Some("mode"),
        ),
        ("/de1/mode", r#"{"mode": null}"#, "wrong_type", Some("mode")),
        (
            "/de1/availability",
            r#"{"mode": "capture"}"#,
            "bad_value",
            Some("mode"),
        ),
        (
            "/de1/calibration/line_frequency",
            r#"{"hz": 55}"#,
            "bad_value",
            Some("hz"),
        ),
        ("/de1/parameters", r#"{"x": 1}"#, "unknown_key", Some("x")),
        (
            "/flow_sequencer/settings",
            r#"{"x": {}}"#,
            "unknown_key",
            Some("x"),
        ),
    ];
    for (path, body, kind, field) in cases {
        let before = h.commands();
        let resp = h.patch(path, body).await;
        let b = refused(&h, resp, before, 400, kind).await;
        assert_eq!(b["path"].as_str(), *field, "{path} {body}");
    }
    // Not UTF-8.
    let before = h.commands();
    let resp = h
        .request(
            "PATCH",
            "/de1/control/espresso",
            Some(&[0x7b, 0xff, 0xfe, 0x7d]),
            &[],
        )
        .await;
    refused(&h, resp, before, 400, "invalid_json").await;
    // Nested very deeply.
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let before = h.commands();
    let resp = h.patch("/de1", &deep).await;
    refused(&h, resp, before, 400, "invalid_json").await;
}

#[tokio::test]
async fn a_body_that_fails_late_changes_nothing() {
    let h = start(|_, _| {}).await;
    let before = h.commands();
    let resp = h
        .patch(
            "/de1",
            r#"{"control": {"espresso": {"stop_at_weight": 30}}, "setting": {"steam": {"temperature": 200}}}"#,
        )
        .await;
    let b = refused(&h, resp, before, 400, "out_of_range").await;
    assert_eq!(b["path"], "setting:steam:temperature");
    let e = h.get("/de1/control/espresso").await.json();
    assert_eq!(e["stop_at_weight"], Value::Null);
}

#[tokio::test]
async fn bodies_are_limited_and_need_a_length() {
    let h = start(|s, _| s.firmware_body_limit = 4096).await;
    // 16 KiB + 1 for JSON.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(16 * 1024));
    let before = h.commands();
    let resp = h.patch("/de1/control/espresso", &big).await;
    refused(&h, resp, before, 413, "payload_too_large").await;
    // A length far beyond anything, announced but never sent.
    let raw = b"PATCH /de1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1000000000000\r\n\r\n{}";
    let resp = parse(&exchange(h.addr, raw).await);
    refused(&h, resp, before, 413, "payload_too_large").await;
    // A client that waits for `100 Continue` is refused at once, without sending the body.
    let raw = b"PUT /de1/profile HTTP/1.1\r\nHost: t\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 20000\r\n\r\n";
    let t0 = std::time::Instant::now();
    let resp = parse(&exchange(h.addr, raw).await);
    refused(&h, resp, before, 413, "payload_too_large").await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // The firmware limit is separate.
    let resp = h.put("/de1/firmware", &vec![0u8; 5000]).await;
    refused(&h, resp, before, 413, "payload_too_large").await;
    // No Content-Length (chunked or no body at all).
    let raw = b"PATCH /de1/control/espresso HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let resp = parse(&exchange(h.addr, raw).await);
    refused(&h, resp, before, 411, "length_required").await;
    let raw = b"PUT /scan HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let resp = parse(&exchange(h.addr, raw).await);
    refused(&h, resp, before, 411, "length_required").await;
    // Empty bodies.
    for (method, path) in [
        ("PATCH", "/de1/control/espresso"),
        ("PUT", "/de1/profile"),
        ("PUT", "/de1/profile/store"),
        ("PUT", "/de1/profile/id"),
        ("PUT", "/de1/firmware"),
        ("PUT", "/de1/firmware/cancel"),
        ("PUT", "/scan"),
    ] {
        let resp = h.request(method, path, Some(b""), &[]).await;
        refused(&h, resp, before, 400, "empty_body").await;
    }
}

#[tokio::test]
async fn methods_and_paths_get_one_clear_answer() {
    let h = start(|_, _| {}).await;
    let before = h.commands();
    let resp = h.get("/de1/mode").await;
    refused(&h, resp.clone(), before, 405, "method_not_allowed").await;
    assert_eq!(resp.header("allow"), Some("PATCH"));
    let resp = h.patch("/de1/state", r#"{"state": "x"}"#).await;
    refused(&h, resp.clone(), before, 405, "method_not_allowed").await;
    assert_eq!(resp.header("allow"), Some("GET"));
    let resp = h.patch("/scan", r#"{"x": 1}"#).await;
    refused(&h, resp, before, 405, "method_not_allowed").await;
    let resp = h.get("/de1/firmware/cancel").await;
    refused(&h, resp, before, 405, "method_not_allowed").await;
    let resp = h
        .put("/de1/control/espresso", b"{\"stop_at_weight\": 1}")
        .await;
    refused(&h, resp, before, 501, "not_implemented").await;
    for method in ["POST", "DELETE", "OPTIONS", "TRACE"] {
        let resp = h.request(method, "/de1", Some(b"{}"), &[]).await;
        refused(&h, resp, before, 501, "not_implemented").await;
    }
    // HEAD: the same status, no body.
    let raw = exchange(
        h.addr,
        b"HEAD /de1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        raw.starts_with(b"HTTP/1.1 501 "),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(h.commands(), before);
    for path in [
        "/no/such/resource",
        "/de1/",
        "/de1//id",
        "/de1/id?x=1",
        "/log/..",
        "/log/",
        "/DE1",
    ] {
        let resp = h.get(path).await;
        refused(&h, resp, before, 404, "not_found").await;
    }
    let resp = h.patch("/nope", "{}").await;
    refused(&h, resp, before, 404, "not_found").await;
}

#[tokio::test]
async fn responses_carry_pyde1s_headers_and_text() {
    let h = start(|_, _| {}).await;
    let resp = h.get("/de1/control/espresso").await;
    assert_eq!(resp.status, 200);
    let t: f64 = resp
        .header("x-pyde1-timestamp")
        .and_then(|v| v.parse().ok())
        .expect("x-pyde1-timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - t).abs() < 5.0, "{t} vs {now}");
    assert!(resp
        .header("last-modified")
        .is_some_and(|v| v.ends_with("+0000")));
    let text = resp.text();
    assert!(
        text.starts_with("{\n    \"disable_auto_tare\": false,\n"),
        "{text}"
    );
    assert!(text.ends_with("}\n"));
    // Errors carry them too.
    assert!(h.get("/nope").await.header("x-pyde1-timestamp").is_some());
    // No CORS unless configured.
    let resp = h
        .request("GET", "/de1/id", None, &[("Origin", "http://evil.example")])
        .await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn patch_sends_typed_changes_in_body_order() {
    let h = start(|_, _| {}).await;
    let resp = h
        .patch(
            "/de1",
            r#"{"setting": {"fan_threshold": {"temperature": 42}},
                "control": {"espresso": {"stop_at_weight": 33.3, "stop_at_time": 0}},
                "mode": {"mode": "Sleep"}}"#,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!([]));
    assert_eq!(
        h.fake().commands().last(),
        Some(&Command::Patch {
            resource: Resource::De1,
            changes: vec![
                Change::Setting(SettingChange::FanThreshold(42)),
                Change::Control(ControlChange::EspressoStopAtWeight(Some(33.3))),
                Change::Control(ControlChange::EspressoStopAtTime(None)),
                Change::Mode(ModeRequest::Sleep),
            ],
        })
    );
    // The id setter's result is the PATCH result.
    let resp = h.patch("/scale/id", r#"{"id": null}"#).await;
    assert_eq!(resp.json(), json!([""]));
    // Local placeholders answer without the controller.
    let before = h.commands();
    assert_eq!(h.patch("/flow_sequencer", "{}").await.json(), json!([]));
    assert_eq!(h.get("/de1/parameters").await.json(), json!({}));
    assert_eq!(h.commands(), before);
}

#[tokio::test]
async fn controller_errors_keep_pyde1_statuses() {
    let h = start(|_, _| {}).await;
    h.fake().with(|s| s.ghc_active = true);
    let resp = h.patch("/de1/mode", r#"{"mode": "Espresso"}"#).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.error_kind(), "device_cannot");
    h.fake().with(|s| s.ghc_active = false);
    let resp = h.patch("/de1/mode", r#"{"mode": "SkipToNext"}"#).await;
    assert_eq!(resp.status, 409);
    assert_eq!(resp.error_kind(), "conflict");
    h.fake().with(|s| s.de1_ready = false);
    let resp = h.get("/de1/state").await;
    assert_eq!(resp.status, 409);
    assert_eq!(resp.error_kind(), "not_connected");
    let resp = h
        .put(
            "/de1/profile/id",
            br#"{"id": "0000000000000000000000000000000000000000"}"#,
        )
        .await;
    assert_eq!(resp.status, 409);
    h.fake().with(|s| s.de1_ready = true);
    let resp = h
        .put(
            "/de1/profile/id",
            br#"{"id": "0000000000000000000000000000000000000000"}"#,
        )
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.error_kind(), "not_found");
}

#[tokio::test]
async fn a_slow_controller_is_a_408_and_a_missing_one_a_503() {
    let h = start(|s, _| {
        s.timeouts.async_op = Duration::from_millis(50);
        s.timeouts.lock_wait = Duration::ZERO;
    })
    .await;
    *h.fake().delay.lock().expect("lock") = Duration::from_secs(3);
    let t0 = std::time::Instant::now();
    let resp = h.get("/de1/state").await;
    assert_eq!(resp.status, 408);
    assert_eq!(resp.error_kind(), "timeout");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // No controller at all.
    let dir = tempfile::tempdir().expect("tempdir");
    let client = ipc_schema::client::ControllerClient::start(
        dir.path().join("nobody.sock"),
        ipc_schema::envelope::Role::Inbound,
    );
    let mut settings =
        inbound::server::Settings::from_config(&ipc_schema::config::Config::default(), dir.path());
    settings.timeouts.async_op = Duration::from_millis(50);
    settings.timeouts.lock_wait = Duration::ZERO;
    let router = inbound::server::router(settings, client);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let sd = ipc_schema::child::Shutdown::new();
    tokio::spawn(inbound::server::serve(
        tcp,
        router,
        inbound::server::ConnectionLimits::default(),
        sd.clone(),
    ));
    let resp = request(addr, "GET", "/de1/id", None, &[]).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.error_kind(), "controller_unavailable");
    // What needs no controller still works.
    assert_eq!(
        request(addr, "GET", "/version", None, &[]).await.status,
        200
    );
    sd.request(ipc_schema::child::ShutdownReason::Internal("done".into()));
}

#[tokio::test]
async fn slow_clients_cannot_hold_the_server() {
    let h = start(|s, limits| {
        s.body_timeout = Duration::from_millis(300);
        limits.header_timeout = Duration::from_millis(300);
    })
    .await;
    // Headers, then a body that never arrives.
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(
        b"PATCH /de1/control/espresso HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"stop",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let resp = parse(&buf);
    assert_eq!(resp.status, 408);
    assert_eq!(resp.error_kind(), "body_timeout");
    // Half a request line, then silence: the connection is closed.
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(b"GET /de1/id HT").await.expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the silent connection stays open");
    // The server still serves.
    assert_eq!(h.get("/version").await.status, 200);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let h = start(|_, _| {}).await;
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(
        b"GET /version HTTP/1.1\r\nHost: t\r\n\r\nPATCH /de1/control/espresso HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("closed")
        .expect("read");
    let first = parse(&buf);
    assert_eq!(first.status, 200);
    let second = parse(&first.extra);
    assert_eq!(second.status, 200);
    let third = parse(&second.extra);
    assert_eq!(third.status, 404);
    assert!(third.extra.is_empty());
}

#[tokio::test]
async fn a_bearer_token_guards_every_request() {
    let h = start(|s, _| s.bearer_token = Some("s3cret".into())).await;
    let before = h.commands();
    for (path, headers) in [
        ("/de1/id", vec![]),
        ("/openapi.json", vec![]),
        ("/de1/id", vec![("Authorization", "Bearer wrong")]),
        ("/de1/id", vec![("Authorization", "Bearer s3cret2")]),
        ("/de1/id", vec![("Authorization", "Basic s3cret")]),
    ] {
        let resp = h.request("GET", path, None, &headers).await;
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        refused(&h, resp, before, 401, "unauthorized").await;
    }
    let resp = h
        .request(
            "PATCH",
            "/de1/control/espresso",
            Some(b"{\"stop_at_weight\": 30}"),
            &[],
        )
        .await;
    refused(&h, resp, before, 401, "unauthorized").await;
    let resp = h
        .request(
            "GET",
            "/de1/id",
            None,
            &[("Authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn cors_when_configured() {
    let h = start(|s, _| s.cors_origins = vec!["http://kitchen.local".into()]).await;
    let resp = h
        .request(
            "GET",
            "/de1/id",
            None,
            &[("Origin", "http://kitchen.local")],
        )
        .await;
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("http://kitchen.local")
    );
    let resp = h
        .request("GET", "/de1/id", None, &[("Origin", "http://elsewhere")])
        .await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
    let resp = h
        .request(
            "OPTIONS",
            "/de1/control/espresso",
            None,
            &[
                ("Origin", "http://kitchen.local"),
                ("Access-Control-Request-Method", "PATCH"),
            ],
        )
        .await;
    assert_eq!(resp.status, 204);
    assert!(resp
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PATCH")));
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let h = start(|s, _| s.root = "/api/".into()).await;
    let doc = h.get("/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), ROUTES.len());
    for (path, item) in paths {
        let concrete = path.replace("{id}", "missing.log");
        for (key, method) in [("get", "GET"), ("patch", "PATCH"), ("put", "PUT")] {
            let resp = h.request(method, &concrete, Some(b"{}"), &[]).await;
            let documented = item.get(key).is_some();
            // A documented method is served (whatever the outcome); an undocumented one
            // is refused by the method check.
            if documented {
                assert!(
                    ![405, 501].contains(&resp.status) && resp.error_kind() != "not_found"
                        || path.ends_with("{id}"),
                    "{method} {path}: {} {}",
                    resp.status,
                    resp.text()
                );
            } else {
                assert!(
                    [405, 501].contains(&resp.status),
                    "{method} {path} is served but not documented: {}",
                    resp.status
                );
            }
        }
    }
    // Without the root nothing is found.
    assert_eq!(h.get("/de1/id").await.status, 404);
    assert_eq!(h.get("/api/de1/id").await.status, 200);
}

fn firmware_image(len: usize) -> Vec<u8> {
    let header = FirmwareHeader {
        checksum: 0,
        board_marker: BOARD_MARKER,
        version: 1352,
        byte_count: (len - 64) as u32,
        cpu_bytes: 16,
        unused: 0,
        dc_sum: 0,
        iv: [7; 32],
        header_sum: 0,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend((0..len - 64).map(|i| (i * 31 % 251) as u8));
    out
}

#[tokio::test]
async fn firmware_is_checked_stored_privately_and_handed_over() {
    let h = start(|_, _| {}).await;
    let before = h.commands();
    // Not a DE1 image.
    let resp = h.put("/de1/firmware", &vec![0u8; 1000]).await;
    refused(&h, resp, before, 400, "invalid_firmware").await;

    let image = firmware_image(100_000);
    let resp = h.put("/de1/firmware", &image).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!([]));
    let received = h.fake().with(|s| s.firmware_images.clone());
    assert_eq!(received, vec![image.clone()]);
    let leftovers: Vec<_> = std::fs::read_dir(&h.runtime_dir)
        .expect("runtime dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("firmware"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let progress = h.get("/de1/firmware").await.json();
    assert_eq!(progress["running"], true);
    assert_eq!(progress["state"], "starting");
    assert_eq!(progress["total"], 100_000);
    // A second upload while one runs.
    let resp = h.put("/de1/firmware", &image).await;
    assert_eq!(resp.status, 409);
    assert_eq!(resp.error_kind(), "busy");
    assert_eq!(h.put("/de1/firmware/cancel", b"x").await.status, 200);
    assert_eq!(h.get("/de1/firmware").await.json()["state"], "canceled");
    let resp = h.put("/de1/firmware/cancel", b"x").await;
    assert_eq!(resp.status, 409);
}

#[tokio::test]
async fn profiles_are_validated_before_the_controller_sees_them() {
    let h = start(|_, _| {}).await;
    let before = h.commands();
    let resp = h
        .put(
            "/de1/profile",
            br#"{"version": "2", "title": "x", "target_volume": 0, "target_volume_count_start": 0,
                "steps": [{"name": "a", "temperature": 92, "sensor": "coffee", "pump": "turbo",
                "transition": "fast", "pressure": 9, "seconds": 10, "volume": 0}]}"#,
        )
        .await;
    let b = refused(&h, resp, before, 400, "invalid_profile").await;
    assert!(
        b["path"].as_str().is_some_and(|p| p.contains("pump")),
        "{b}"
    );
    assert!(
        b["message"].as_str().is_some_and(|m| m.contains("turbo")),
        "{b}"
    );
}

#[tokio::test]
async fn scan_takes_a_plain_role_name() {
    let h = start(|_, _| {}).await;
    assert_eq!(h.put("/scan", b"scale").await.status, 200);
    assert!(matches!(
        h.fake().commands().last(),
        Some(Command::Scan {
            role: ipc_schema::event::DeviceRole::Scale
        })
    ));
    let before = h.commands();
    let resp = h.put("/scan", b"\"de1\"").await;
    refused(&h, resp, before, 400, "bad_value").await;
    let resp = h.put("/scan", b"toaster").await;
    refused(&h, resp, before, 400, "bad_value").await;
}

#[tokio::test]
async fn logs_are_listed_and_served_from_the_log_directory_only() {
    let h = start(|_, _| {}).await;
    std::fs::write(h.log_dir.join("combined.log"), "line one\nline two\n").expect("write");
    std::fs::write(h.runtime_dir.join("secret.txt"), "no").expect("write");
    let list = h.get("/logs").await.json();
    assert_eq!(list[0]["name"], "combined.log");
    assert_eq!(list[0]["size"], 18);
    let resp = h.get("/log/combined.log").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.text(), "line one\nline two\n");
    assert_eq!(h.get("/log/secret.txt").await.status, 404);
    assert_eq!(h.get("/log/..%2Fsecret.txt").await.status, 404);
}

#[tokio::test]
async fn unpruned_documents_show_declared_keys_as_null() {
    let h = start(|s, _| s.prune_empty_nodes = false).await;
    let de1 = h.get("/de1").await.json();
    assert_eq!(de1["mode"], json!({ "mode": null }));
    assert_eq!(de1["parameter_set"], json!({}));
    let scale = h.get("/scale").await.json();
    assert_eq!(scale["tare"], json!({ "tare": null }));
    let pruned = start(|_, _| {}).await;
    assert!(pruned.get("/de1").await.json().get("mode").is_none());
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let h = start(|_, _| {}).await;
    assert_eq!(h.get("/version").await.status, 200);
    h.shutdown
        .request(ipc_schema::child::ShutdownReason::Internal("test".into()));
    let mut refused_at = None;
    for i in 0..50 {
        if TcpStream::connect(h.addr).await.is_err() {
            refused_at = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused_at.is_some(), "still accepting after shutdown");
}

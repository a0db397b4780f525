//! Error mapping: every failure becomes one [`ApiError`], rendered as one JSON response
//! `{"error": KIND, "message": …, "path": …}` with pyDE1's status code for it.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipc_schema::client::CallError;
use ipc_schema::command::{CommandError, CommandErrorKind};

/// A request that ends in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine-readable class, e.g. `unknown_key`, `not_connected`.
    pub kind: &'static str,
    /// For people.
    pub message: String,
    /// The offending field of the body (`control:espresso:stop_at_weight`), if any.
    pub path: Option<String>,
    /// For 405 and 501: the methods the resource accepts (the `Allow` header).
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            path: None,
            allow: None,
        }
    }

    /// A 400 about one field of the body.
    pub fn field(kind: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            path: Some(path.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, kind, message)
        }
    }

    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, kind, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 405: the resource exists but not with this method.
    pub fn method_not_allowed(method: &str, resource: &str, allow: String) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} not permitted for {resource}"),
            )
        }
    }

    /// 501: a method de1d (like pyDE1) does not implement.
    pub fn not_implemented(message: impl Into<String>, allow: String) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let v = serde_json::json!({
            "error": self.kind,
            "message": self.message,
            "path": self.path,
        });
        let mut s = crate::render::to_pretty(&v);
        s.push('\n');
        s
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )?;
        if let Some(p) = &self.path {
            write!(f, " (at {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body(),
        )
            .into_response();
        if let Some(allow) = &self.allow {
            if let Ok(v) = HeaderValue::from_str(allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

/// The status pyDE1 answers for each class of controller error.
pub fn status_of(kind: CommandErrorKind) -> StatusCode {
    match kind {
        CommandErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        CommandErrorKind::NotFound => StatusCode::NOT_FOUND,
        CommandErrorKind::NotConnected | CommandErrorKind::Conflict | CommandErrorKind::Busy => {
            StatusCode::CONFLICT
        }
        CommandErrorKind::DeviceCannot => StatusCode::IM_A_TEAPOT,
        CommandErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
        CommandErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        CommandErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        ApiError {
            path: e.path,
            ..ApiError::new(status_of(e.kind), e.kind.as_str(), e.message)
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Command(c) => c.into(),
            CallError::Timeout(t) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the controller did not answer within {:.1} s",
                    t.as_secs_f64()
                ),
            ),
            CallError::NotConnected | CallError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "controller_unavailable",
                "the controller process is not running",
            ),
            CallError::ConnectionLost => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "controller_unavailable",
                "the controller went away before answering; the request may or may not have \
                 been carried out",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn controller_errors_get_pyde1_statuses() {
        let cases = [
            (CommandErrorKind::BadRequest, 400),
            (CommandErrorKind::NotFound, 404),
            (CommandErrorKind::NotConnected, 409),
            (CommandErrorKind::Conflict, 409),
            (CommandErrorKind::Busy, 409),
            (CommandErrorKind::DeviceCannot, 418),
            (CommandErrorKind::Timeout, 408),
            (CommandErrorKind::NotImplemented, 501),
            (CommandErrorKind::Internal, 500),
        ];
        assert_eq!(cases.len(), CommandErrorKind::ALL.len());
        for (kind, status) in cases {
            let e: ApiError = CommandError::new(kind, "m").into();
            assert_eq!(e.status.as_u16(), status, "{kind:?}");
            assert_eq!(e.kind, kind.as_str());
        }
        let e: ApiError = CallError::Timeout(Duration::from_millis(1500)).into();
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT);
        assert!(e.message.contains("1.5 s"), "{}", e.message);
    }

    #[test]
    fn the_body_names_kind_message_and_path() {
        let e = ApiError::field("wrong_type", "control:espresso:stop_at_weight", "expected");
        let v: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(v["error"], "wrong_type");
        assert_eq!(v["path"], "control:espresso:stop_at_weight");
        assert_eq!(v["message"], "expected");
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::not_found("x").body()).expect("json");
        assert!(v["path"].is_null());
    }
}

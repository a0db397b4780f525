//! `GET logs` and `GET log/{id}`: the files of the log directory, served by inbound itself.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::error::ApiError;

/// Bytes read from a log file per chunk of the response.
const CHUNK: usize = 64 * 1024;

/// True for a name `log/{id}` may name: `[a-zA-Z0-9._-]+`, and not `.` or `..`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn epoch(secs: i64, nanos: i64) -> f64 {
    secs as f64 + nanos as f64 / 1e9
}

/// `[{"id", "name", "size", "atime", "mtime", "ctime"}, …]` for the regular files of `dir`,
/// sorted by name; `[]` when de1d writes no log file.
pub async fn list(dir: Option<&Path>) -> Result<Value, ApiError> {
    let Some(dir) = dir else {
        return Ok(json!([]));
    };
    let cannot = |e: std::io::Error| {
        ApiError::internal(format!(
            "cannot read the log directory {}: {e}",
            dir.display()
        ))
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(cannot)?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(cannot)? {
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        files.push(json!({
            "atime": epoch(meta.atime(), meta.atime_nsec()),
            "ctime": epoch(meta.ctime(), meta.ctime_nsec()),
            "id": name,
            "mtime": epoch(meta.mtime(), meta.mtime_nsec()),
            "name": name,
            "size": meta.len(),
        }));
    }
    files.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Value::Array(files))
}

/// The content type pyDE1 gives a log file, by suffix.
pub fn content_type(name: &str) -> &'static str {
    let suffix = name.rsplit_once('.').map_or("", |(_, s)| s);
    match suffix {
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/gz",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        _ => "application/octet-stream",
    }
}

/// The file `id` of `dir`, streamed.
pub async fn file(dir: Option<&Path>, id: &str) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no log file {id:?}"));
    if !is_valid_id(id) {
        return Err(missing());
    }
    let dir = dir.ok_or_else(missing)?;
    let path = dir.join(id);
    let file = tokio::fs::File::open(&path).await.map_err(|_| missing())?;
    let meta = file.metadata().await.map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let stream = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(id)),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_the_directory() {
        assert!(is_valid_id("combined.log"));
        assert!(is_valid_id("pyde1.log.1"));
        assert!(!is_valid_id(".."));
        assert!(!is_valid_id("."));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("x y"));
    }

    #[test]
    fn content_types_follow_the_suffix() {
        assert_eq!(content_type("a.log"), "text/plain");
        assert_eq!(content_type("a.json"), "application/json");
        assert_eq!(content_type("a.tar.xz"), "application/x-xz");
        assert_eq!(content_type("a"), "application/octet-stream");
    }

    #[tokio::test]
    async fn listing_and_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.log"), "hello\n").expect("write");
        std::fs::write(dir.path().join("a.json"), "{}").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let v = list(Some(dir.path())).await.expect("list");
        let names: Vec<&str> = v
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(names, ["a.json", "b.log"]);
        assert_eq!(v[1]["size"], 6);
        assert!(v[1]["mtime"].as_f64().expect("mtime") > 1.0e9);

        assert!(file(Some(dir.path()), "b.log").await.is_ok());
        assert_eq!(
            file(Some(dir.path()), "nope.log")
                .await
                .map(|_| ())
                .map_err(|e| e.status),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            file(Some(dir.path()), "sub")
                .await
                .map(|_| ())
                .map_err(|e| e.status),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(list(None).await.expect("empty"), json!([]));
        assert!(list(Some(&dir.path().join("missing"))).await.is_err());
    }
}

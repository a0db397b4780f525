//! `GET /openapi.json`: the API described in OpenAPI 3.0, generated from the route table
//! and the resource mapping.

use serde_json::{json, Map, Value};

use crate::mapping::{Node, Read, Ty};
use crate::routes::{Get, Patch, Put, Route, ROUTES};

/// The OpenAPI document for a server whose resources live under `root` (`/` or `/x/`).
pub fn document(root: &str, bearer: bool) -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        paths.insert(format!("{root}{}", route.path), path_item(route));
    }
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "de1d HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Control of a Decent Espresso DE1 and its scale, compatible with \
                pyDE1 2.0 (resource version 5.0.0, mapping version 7.0.0). Errors are JSON \
                documents {\"error\", \"message\", \"path\"}.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message", "path"],
                    "properties": {
                        "error": { "type": "string", "description": "class, e.g. unknown_key, not_connected" },
                        "message": { "type": "string" },
                        "path": { "type": "string", "nullable": true, "description": "offending field, keys joined by ':'" },
                    },
                },
                "Profile": {
                    "type": "object",
                    "required": ["fingerprint", "id"],
                    "properties": {
                        "fingerprint": { "type": "string", "description": "SHA-1 of the bytes sent to the DE1" },
                        "id": { "type": "string", "description": "SHA-1 of the profile source" },
                    },
                },
            },
        },
    });
    if bearer {
        doc["components"]["securitySchemes"] = json!({
            "bearer": { "type": "http", "scheme": "bearer" }
        });
        doc["security"] = json!([{ "bearer": [] }]);
    }
    doc
}

fn path_item(route: &Route) -> Value {
    let mut item = Map::new();
    item.insert("summary".into(), json!(route.summary));
    if let Some(op) = get_op(route) {
        item.insert("get".into(), op);
    }
    if let Some(op) = patch_op(route) {
        item.insert("patch".into(), op);
    }
    if let Some(op) = put_op(route) {
        item.insert("put".into(), op);
    }
    if route.path.contains("{id}") {
        item.insert(
            "parameters".into(),
            json!([{
                "name": "id",
                "in": "path",
                "required": true,
                "schema": { "type": "string", "pattern": "^[a-zA-Z0-9._-]+$" },
            }]),
        );
    }
    Value::Object(item)
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } },
    })
}

fn controller_errors(responses: &mut Map<String, Value>) {
    responses.insert("408".into(), error("the controller did not finish in time"));
    responses.insert(
        "409".into(),
        error("the device is not connected or its state does not permit this"),
    );
    responses.insert("500".into(), error("internal error, e.g. Bluetooth"));
    responses.insert("503".into(), error("the controller process is not running"));
}

fn body_errors(responses: &mut Map<String, Value>) {
    responses.insert(
        "400".into(),
        error("the body is not valid (the path names the field)"),
    );
    responses.insert("411".into(), error("Content-Length is missing"));
    responses.insert("413".into(), error("the body is too large"));
}

fn get_op(route: &Route) -> Option<Value> {
    let mut responses = Map::new();
    match route.get {
        Get::No | Get::NotImplemented => return None,
        Get::Controller(_, node) => {
            responses.insert(
                "200".into(),
                json_response("the document", read_schema(node)),
            );
            controller_errors(&mut responses);
        }
        Get::Empty => {
            responses.insert(
                "200".into(),
                json_response("always empty", json!({ "type": "object" })),
            );
        }
        Get::Version => {
            responses.insert(
                "200".into(),
                json_response(
                    "versions",
                    json!({
                        "type": "object",
                        "properties": {
                            "de1d_version": { "type": "string" },
                            "mapping_version": { "type": "string" },
                            "module_versions": { "type": "object", "additionalProperties": { "type": "string", "nullable": true } },
                            "platform": { "type": "string" },
                            "resource_version": { "type": "string" },
                            "source_data": { "type": "object", "nullable": true },
                        },
                    }),
                ),
            );
        }
        Get::Logs => {
            responses.insert(
                "200".into(),
                json_response(
                    "the regular files of the log directory",
                    json!({
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "atime": { "type": "number" },
                                "ctime": { "type": "number" },
                                "id": { "type": "string" },
                                "mtime": { "type": "number" },
                                "name": { "type": "string" },
                                "size": { "type": "integer" },
                            },
                        },
                    }),
                ),
            );
            responses.insert("500".into(), error("the log directory cannot be read"));
        }
        Get::Log => {
            responses.insert(
                "200".into(),
                json!({
                    "description": "the file; the type follows its suffix",
                    "content": { "text/plain": {}, "application/octet-stream": {} },
                }),
            );
            responses.insert("404".into(), error("no such file"));
        }
        Get::OpenApi => {
            responses.insert(
                "200".into(),
                json_response("this document", json!({ "type": "object" })),
            );
        }
    }
    Some(json!({ "summary": route.summary, "responses": responses }))
}

fn patch_op(route: &Route) -> Option<Value> {
    let node = match route.patch {
        Patch::No | Patch::NotImplemented => return None,
        Patch::Controller(_, node) | Patch::Local(node) => node,
    };
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json_response(
            "done; what the setters returned (an address after an id change)",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
    );
    body_errors(&mut responses);
    if matches!(route.patch, Patch::Controller(..)) {
        controller_errors(&mut responses);
        responses.insert(
            "418".into(),
            error("the DE1 cannot do this (start at the group head)"),
        );
    }
    Some(json!({
        "summary": route.summary,
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": write_schema(node) } },
        },
        "responses": responses,
    }))
}

fn put_op(route: &Route) -> Option<Value> {
    let (content_type, schema, ok): (&str, Value, Value) = match route.put {
        Put::No | Put::NotImplemented => return None,
        Put::Profile | Put::ProfileStore => (
            "application/json",
            json!({ "type": "object", "description": "a JSON v2 profile, sent as is (at most the body limit)" }),
            json_response(
                "stored (and uploaded)",
                json!({ "type": "array", "items": { "$ref": "#/components/schemas/Profile" } }),
            ),
        ),
        Put::ProfileId => (
            "application/json",
            json!({
                "type": "object",
                "required": ["id"],
                "additionalProperties": false,
                "properties": { "id": { "type": "string", "pattern": "^[0-9a-fA-F]{40}$" } },
            }),
            json_response("uploaded", json!({ "type": "array", "maxItems": 0 })),
        ),
        Put::Firmware => (
            "application/octet-stream",
            json!({ "type": "string", "format": "binary" }),
            json_response("upload started", json!({ "type": "array", "maxItems": 0 })),
        ),
        Put::FirmwareCancel => (
            "text/plain",
            json!({ "type": "string", "minLength": 1 }),
            json_response("canceled", json!({ "type": "array", "maxItems": 0 })),
        ),
        Put::Scan => (
            "text/plain",
            json!({ "type": "string", "enum": ["de1", "scale", "thermometer", "other", "unknown"] }),
            json_response("scan started", json!({ "type": "array", "maxItems": 0 })),
        ),
    };
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    body_errors(&mut responses);
    controller_errors(&mut responses);
    if route.put == Put::ProfileId {
        responses.insert("404".into(), error("no stored profile with this id"));
    }
    Some(json!({
        "summary": route.summary,
        "requestBody": { "required": true, "content": { content_type: { "schema": schema } } },
        "responses": responses,
    }))
}

fn ty_schema(ty: Ty, nullable: bool, doc: &str) -> Value {
    let mut s = match ty {
        Ty::Number { min, max } => json!({ "type": "number", "minimum": min, "maximum": max }),
        Ty::Integer { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::String => json!({ "type": "string" }),
        Ty::Enum(names) => json!({ "type": "string", "enum": names }),
        Ty::NumberList { max_len, min, max } => json!({
            "type": "array",
            "maxItems": max_len,
            "items": { "type": "number", "nullable": true, "minimum": min, "maximum": max },
        }),
    };
    if nullable {
        s["nullable"] = json!(true);
    }
    if !doc.is_empty() {
        s["description"] = json!(doc);
    }
    s
}

/// The schema of a GET document.
pub fn read_schema(node: &Node) -> Value {
    match node {
        Node::Leaf(l) => ty_schema(l.ty, l.nullable, l.doc),
        Node::Object(fields) => {
            let mut props = Map::new();
            let mut required = Vec::new();
            for f in *fields {
                let readable = match &f.node {
                    Node::Leaf(l) => l.read != Read::Never,
                    // pyDE1 prunes write-only and empty aggregates.
                    Node::Object(inner) => !inner.is_empty() && has_readable(&f.node),
                };
                if !readable {
                    continue;
                }
                if !matches!(&f.node, Node::Leaf(l) if l.read == Read::WhenKnown) {
                    required.push(f.name);
                }
                props.insert(f.name.into(), read_schema(&f.node));
            }
            json!({
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": false,
            })
        }
    }
}

fn has_readable(node: &Node) -> bool {
    match node {
        Node::Leaf(l) => l.read != Read::Never,
        Node::Object(fields) => fields.iter().any(|f| has_readable(&f.node)),
    }
}

/// The schema of a PATCH body.
pub fn write_schema(node: &Node) -> Value {
    match node {
        Node::Leaf(l) => ty_schema(l.input_ty(), l.nullable, l.doc),
        Node::Object(fields) => {
            let mut props = Map::new();
            for f in *fields {
                if f.node.is_writable() || matches!(&f.node, Node::Object(i) if i.is_empty()) {
                    props.insert(f.name.into(), write_schema(&f.node));
                }
            }
            json!({ "type": "object", "properties": props, "additionalProperties": false })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_method_is_documented() {
        let doc = document("/", false);
        let paths = doc["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), ROUTES.len());
        for r in ROUTES {
            let item = &paths[&format!("/{}", r.path)];
            let allow = r.allow();
            for (method, key) in [("GET", "get"), ("PATCH", "patch"), ("PUT", "put")] {
                assert_eq!(
                    allow.split(", ").any(|m| m == method),
                    item.get(key).is_some(),
                    "{} {method}",
                    r.path
                );
            }
        }
        let espresso = &paths["/de1/control/espresso"]["patch"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            espresso["properties"]["stop_at_weight"]["nullable"],
            json!(true)
        );
        let id =
            &paths["/de1/id"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(id["required"], json!(["id", "name"]));
        let id_patch =
            &paths["/de1/id"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(id_patch["properties"].get("name").is_none());
    }

    #[test]
    fn the_root_prefixes_every_path() {
        let doc = document("/api/", true);
        assert!(doc["paths"].get("/api/de1").is_some());
        assert!(doc["security"].is_array());
    }
}

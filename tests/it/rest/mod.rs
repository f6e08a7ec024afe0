//! Tests: the REST layer of the fake API server (`apiserver_fake::rest`): paths and discovery,
//! reads (GET, LIST with selectors, pages and resourceVersion semantics), watches (lines,
//! bookmarks, timeouts, 410 as an ERROR event, selectors), writes (POST, PUT, DELETE with
//! options, the PATCH types), `Status` errors, JSON patch, strategic merge, a fuzz suite, and
//! the model-based API test run through REST agreeing with the Rust verbs step for step.
//!
//! This file holds the helpers the files share.

mod apply;
mod fuzz;
mod json_patch;
mod paths;
mod reads;
mod strategic;
mod watches;
mod writes;

use apiserver_fake::rest::{Request, Response};
use apiserver_fake::{ApiServer, KindInfo, Registry, ServerConfig};
use serde_json::{Value, json};
use sim_core::{Outcome, Simulation};

/// Runs `body` once inside a simulation (seed 0); it must complete.
fn in_sim(body: impl Fn() + 'static) {
    let mut sim = Simulation::default();
    let outcome = sim.run(0, body);
    assert_eq!(outcome, Outcome::Completed);
}

/// A server with the built-in kinds and the custom resource `widgets.example.com`.
fn server() -> ApiServer {
    let server = ApiServer::new(Registry::builtin(), ServerConfig::default());
    server.register(KindInfo::custom("example.com/v1", "Widget", "widgets", true));
    server
}

/// `METHOD uri` with a JSON body.
fn json_request(method: &str, uri: &str, body: &Value) -> Request {
    Request::new(method, uri).with_json(body)
}

/// Sends `request`; the body as JSON (watch responses have none).
fn send(server: &ApiServer, request: Request) -> (u16, Value) {
    let response = server.handle(&request);
    (response.status, response.value().unwrap_or(Value::Null))
}

/// Creates ConfigMap `name` in `namespace` with labels.
fn create_cm(server: &ApiServer, namespace: &str, name: &str, labels: Value) -> Value {
    let uri = format!("/api/v1/namespaces/{namespace}/configmaps");
    let body = json!({ "metadata": { "name": name, "labels": labels }, "data": { "k": "v" } });
    let (status, object) = send(server, json_request("POST", &uri, &body));
    assert_eq!(status, 201, "{object}");
    object
}

/// A Status failure body: checks its shape and returns (code, reason, message).
fn status_of(response: &Response) -> (u16, String, String) {
    let body = response.value().expect("a Status body is JSON");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], response.status, "{body}");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (response.status, text(&body["reason"]), text(&body["message"]))
}

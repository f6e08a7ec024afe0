//! Tests: watches through REST. Newline-delimited `{"type","object"}` lines; a watch from "now"
//! starts with ADDED events; from resourceVersion N it replays what came after N; 410 Gone as
//! an ERROR event carrying a `Status`, after which the stream ends; BOOKMARKs when asked for,
//! and the initial-events-end bookmark with `sendInitialEvents`; `timeoutSeconds` ends the
//! stream in virtual time; a label selector turns an object that stops matching into DELETED.

use std::time::Duration;

use apiserver_fake::rest::{Request, WatchStream};
use apiserver_fake::{ApiServer, Registry, ServerConfig};
use serde_json::{Value, json};

use super::{create_cm, in_sim, send, server};

fn watch(server: &ApiServer, uri: &str) -> WatchStream {
    let response = server.handle(&Request::get(uri));
    assert_eq!(response.status, 200, "{uri}: {response:?}");
    response.into_watch().expect("a watch stream")
}

/// The lines ready now, as (type, object).
fn ready(stream: &mut WatchStream) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Some(line) = stream.try_next_line() {
        assert_eq!(line.last(), Some(&b'\n'));
        let event: Value = serde_json::from_slice(&line).expect("a JSON line");
        out.push((event["type"].as_str().unwrap().to_string(), event["object"].clone()));
    }
    out
}

fn summary(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(t, o)| format!("{t} {}", o["metadata"]["name"].as_str().unwrap_or("-")))
        .collect()
}

/// From "now": the current objects as ADDED, then changes; from N: the changes after N.
#[test]
fn watch_lines_from_now_and_from_a_resource_version() {
    in_sim(|| {
        let server = server();
        create_cm(&server, "default", "a", json!({}));
        let from = server.resource_version();
        let mut now = watch(&server, "/api/v1/namespaces/default/configmaps?watch=1");
        create_cm(&server, "default", "b", json!({}));
        let uri = "/api/v1/namespaces/default/configmaps/a";
        assert_eq!(send(&server, Request::new("DELETE", uri)).0, 200);
        assert_eq!(summary(&ready(&mut now)), ["ADDED a", "ADDED b", "DELETED a"]);
        let mut replay = watch(
            &server,
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}"),
        );
        assert_eq!(summary(&ready(&mut replay)), ["ADDED b", "DELETED a"]);
    });
}

/// A start older than the history: one ERROR line with a 410 `Status`, then the end.
#[test]
fn a_compacted_start_is_an_error_event_with_a_410_status() {
    in_sim(|| {
        let server =
            ApiServer::new(Registry::builtin(), ServerConfig::default().with_history_max(2));
        for index in 0..5 {
            create_cm(&server, "default", &format!("cm-{index}"), json!({}));
        }
        let mut stream =
            watch(&server, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1");
        let events = ready(&mut stream);
        assert_eq!(events.len(), 1);
        let (event_type, status) = &events[0];
        assert_eq!(event_type, "ERROR");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert!(stream.is_ended());
        assert_eq!(stream.try_next_line(), None);
    });
}

/// BOOKMARK lines carry only kind, apiVersion and the resourceVersion; with
/// `sendInitialEvents=true` the initial ADDED events end with the annotated bookmark.
#[test]
fn bookmarks_and_the_initial_events_end_bookmark() {
    in_sim(|| {
        let server = server();
        create_cm(&server, "default", "a", json!({}));
        create_cm(&server, "default", "b", json!({}));
        let at = server.resource_version().to_string();
        let uri = "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true\
                   &sendInitialEvents=true&resourceVersionMatch=NotOlderThan";
        let mut stream = watch(&server, uri);
        let events = ready(&mut stream);
        assert_eq!(summary(&events), ["ADDED a", "ADDED b", "BOOKMARK -"]);
        let bookmark = &events[2].1;
        assert_eq!(bookmark["kind"], "ConfigMap");
        assert_eq!(bookmark["metadata"]["resourceVersion"], at);
        assert_eq!(bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
        server.send_bookmarks();
        let events = ready(&mut stream);
        assert_eq!(summary(&events), ["BOOKMARK -"]);
        assert_eq!(
            events[0].1,
            json!({ "kind": "ConfigMap", "apiVersion": "v1",
                                        "metadata": { "resourceVersion": at } })
        );
        let bad = server.handle(&Request::get(
            "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true",
        ));
        assert_eq!(bad.status, 400);
    });
}

/// `timeoutSeconds` ends the stream after that much virtual time.
#[test]
fn timeout_seconds_ends_the_stream_in_virtual_time() {
    let mut sim = sim_core::Simulation::default();
    let outcome = sim.run(0, || {
        let server = server();
        sim_core::spawn("watcher", async move {
            let start = sim_core::now();
            let response =
                server.handle(&Request::get("/api/v1/configmaps?watch=1&timeoutSeconds=30"));
            let mut stream = response.into_watch().expect("a watch");
            assert_eq!(stream.next_line().await, None);
            assert_eq!(sim_core::now().saturating_duration_since(start), Duration::from_secs(30));
        });
    });
    assert_eq!(outcome, sim_core::Outcome::Completed);
}

/// With a label selector, an object that starts matching is ADDED and one that stops matching
/// is DELETED, as the watch cache filters.
#[test]
fn a_label_selector_watch_sees_objects_enter_and_leave() {
    in_sim(|| {
        let server = server();
        let mut stream =
            watch(&server, "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dweb");
        create_cm(&server, "default", "a", json!({ "app": "db" }));
        let uri = "/api/v1/namespaces/default/configmaps/a";
        let patch = |labels: Value| {
            let body = json!({ "metadata": { "labels": labels } }).to_string();
            let request =
                Request::new("PATCH", uri).with_body("application/merge-patch+json", body);
            assert_eq!(server.handle(&request).status, 200);
        };
        patch(json!({ "app": "web" }));
        patch(json!({ "tier": "x" }));
        patch(json!({ "app": "db" }));
        let events = ready(&mut stream);
        assert_eq!(summary(&events), ["ADDED a", "MODIFIED a", "DELETED a"]);
        assert_eq!(events[2].1["metadata"]["labels"]["app"], "web", "the last matching state");
    });
}

/// A watch opened through `Client::request` is subject to the client's `drop_watch` fault:
/// the stream ends, and the trace names the fault.
#[test]
fn a_client_watch_ends_at_an_injected_drop() {
    use apiserver_fake::{Client, ClientConfig, Faults};
    let mut sim = sim_core::Simulation::default();
    let outcome = sim.run(0, || {
        let server = server();
        let faults = Faults { drop_watch: 1.0, ..Faults::NONE };
        let client = Client::new(&server, "watcher", ClientConfig::default().with_faults(faults));
        sim_core::spawn("watcher", async move {
            let response =
                client.request(Request::get("/api/v1/namespaces/default/configmaps?watch=1")).await;
            assert_eq!(response.status, 200);
            let mut stream = response.into_watch().expect("a watch");
            create_cm(client.server(), "default", "a", json!({}));
            assert_eq!(stream.next_line().await, None, "dropped before its first event");
        });
    });
    assert_eq!(outcome, sim_core::Outcome::Completed);
    let dropped = sim.trace().events().iter().any(|e| {
        matches!(&e.kind, sim_core::EventKind::Message(m)
            if m == "fault: watch of ConfigMap (REST) by watcher dropped")
    });
    assert!(dropped, "the trace names the dropped watch");
}

//! Tests: server-side apply and `managedFields`. Two managers owning different fields; a
//! conflict without `force` (409 naming the manager and the field, one `FieldManagerConflict`
//! cause each); a forced apply taking ownership; a manager that stops applying a field removes
//! it (unless another manager owns it too); shared ownership of an equal value; apply creating
//! an object; a PUT moving ownership to its manager, so that the applier then conflicts with an
//! `Update` entry; containers as a granular list keyed by name; `fieldManager` required and
//! `force` refused for other patch types.

use apiserver_fake::ApiServer;
use apiserver_fake::rest::{Request, Response};
use serde_json::{Value, json};

use super::{in_sim, json_request, send, server, status_of};

const CM: &str = "/api/v1/namespaces/default/configmaps/cfg";

fn apply(server: &ApiServer, uri: &str, manager: &str, force: bool, body: Value) -> Response {
    let force = if force { "&force=true" } else { "" };
    let uri = format!("{uri}?fieldManager={manager}{force}");
    server.handle(
        &Request::new("PATCH", &uri).with_body("application/apply-patch+yaml", body.to_string()),
    )
}

fn config(data: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": data })
}

/// The managers and the field sets of an object's `managedFields`.
fn managers(object: &Value) -> Vec<(String, String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    let text = |f: &str| e[f].as_str().unwrap_or_default().to_string();
                    (text("manager"), text("operation"), e["fieldsV1"].clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Apply creates the object (201); a second manager's fields join it; each owns its own.
#[test]
fn two_managers_own_different_fields() {
    in_sim(|| {
        let server = server();
        let response = apply(&server, CM, "alice", false, config(json!({ "a": "1" })));
        assert_eq!(response.status, 201, "{response:?}");
        let response = apply(&server, CM, "bob", false, config(json!({ "b": "2" })));
        assert_eq!(response.status, 200, "{response:?}");
        let object = response.value().unwrap();
        assert_eq!(object["data"], json!({ "a": "1", "b": "2" }));
        assert_eq!(
            managers(&object),
            [
                ("alice".into(), "Apply".into(), json!({ "f:data": { "f:a": {} } })),
                ("bob".into(), "Apply".into(), json!({ "f:data": { "f:b": {} } })),
            ]
        );
    });
}

/// Applying another manager's field with a different value is 409 without `force`, naming
/// the manager and the field; nothing is written.
#[test]
fn a_conflict_without_force_is_409_naming_manager_and_field() {
    in_sim(|| {
        let server = server();
        apply(&server, CM, "alice", false, config(json!({ "a": "1" })));
        let rv = server.resource_version();
        let response = apply(&server, CM, "bob", false, config(json!({ "a": "2" })));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert_eq!(message, "Apply failed with 1 conflict: conflict with \"alice\": .data.a");
        let body = response.value().unwrap();
        assert_eq!(
            body["details"]["causes"],
            json!([{ "reason": "FieldManagerConflict", "message": "conflict with \"alice\"",
                     "field": ".data.a" }])
        );
        assert_eq!(server.resource_version(), rv, "a conflict writes nothing");
        let response = apply(&server, CM, "bob", false, config(json!({ "a": "2", "c": "3" })));
        assert_eq!(status_of(&response).0, 409);
    });
}

/// A forced apply takes the field: the value changes and the other manager loses it.
#[test]
fn a_forced_apply_takes_ownership() {
    in_sim(|| {
        let server = server();
        apply(&server, CM, "alice", false, config(json!({ "a": "1", "keep": "k" })));
        let response = apply(&server, CM, "bob", true, config(json!({ "a": "2" })));
        assert_eq!(response.status, 200, "{response:?}");
        let object = response.value().unwrap();
        assert_eq!(object["data"], json!({ "a": "2", "keep": "k" }));
        assert_eq!(
            managers(&object),
            [
                ("alice".into(), "Apply".into(), json!({ "f:data": { "f:keep": {} } })),
                ("bob".into(), "Apply".into(), json!({ "f:data": { "f:a": {} } })),
            ]
        );
    });
}

/// A field a manager no longer applies is removed, unless another manager owns it too (an
/// equal value applied by two managers is shared, without a conflict).
#[test]
fn a_manager_dropping_a_field_removes_it_unless_shared() {
    in_sim(|| {
        let server = server();
        apply(&server, CM, "alice", false, config(json!({ "x": "1", "y": "2", "z": "3" })));
        let response = apply(&server, CM, "bob", false, config(json!({ "z": "3" })));
        assert_eq!(response.status, 200, "an equal value is shared: {response:?}");
        let response = apply(&server, CM, "alice", false, config(json!({ "x": "1" })));
        assert_eq!(response.status, 200);
        let object = response.value().unwrap();
        assert_eq!(object["data"], json!({ "x": "1", "z": "3" }), "y removed, z kept for bob");
    });
}

/// A PUT moves the fields it changes to its manager's Update entry; re-applying the old value
/// then conflicts with that entry, named with its apiVersion and time.
#[test]
fn an_update_takes_the_fields_it_changes() {
    in_sim(|| {
        let server = server();
        apply(&server, CM, "alice", false, config(json!({ "a": "1", "b": "1" })));
        let (_, mut object) = send(&server, Request::get(CM));
        object["data"]["a"] = json!("edited");
        let put = json_request("PUT", &format!("{CM}?fieldManager=kubectl-edit"), &object);
        let (code, updated) = send(&server, put);
        assert_eq!(code, 200);
        assert_eq!(
            managers(&updated),
            [
                ("alice".into(), "Apply".into(), json!({ "f:data": { "f:b": {} } })),
                ("kubectl-edit".into(), "Update".into(), json!({ "f:data": { "f:a": {} } })),
            ]
        );
        let response = apply(&server, CM, "alice", false, config(json!({ "a": "1", "b": "1" })));
        let (code, _, message) = status_of(&response);
        assert_eq!(code, 409);
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1 at \
             2026-01-01T00:00:00Z: .data.a"
        );
        // A PUT that changes nothing leaves managedFields alone (and writes nothing).
        let rv = server.resource_version();
        let put = json_request("PUT", &format!("{CM}?fieldManager=other"), &updated);
        let (code, same) = send(&server, put);
        assert_eq!(code, 200);
        assert_eq!(same["metadata"]["managedFields"], updated["metadata"]["managedFields"]);
        assert_eq!(server.resource_version(), rv);
    });
}

/// Containers are a list keyed by name: two managers each own their container; a manager
/// dropping its container removes only that one.
#[test]
fn containers_merge_by_name_under_apply() {
    in_sim(|| {
        let server = server();
        let pod = |containers: Value| {
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
                    "spec": { "containers": containers } })
        };
        let uri = "/api/v1/namespaces/default/pods/p";
        let response =
            apply(&server, uri, "app", false, pod(json!([{ "name": "web", "image": "nginx:1" }])));
        assert_eq!(response.status, 201, "{response:?}");
        let response =
            apply(&server, uri, "mesh", false, pod(json!([{ "name": "proxy", "image": "envoy" }])));
        assert_eq!(response.status, 200, "{response:?}");
        let object = response.value().unwrap();
        let names: Vec<&str> = object["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "proxy"]);
        let (_, _, app_fields) = managers(&object).remove(0);
        assert_eq!(
            app_fields,
            json!({ "f:spec": { "f:containers": { "k:{\"name\":\"web\"}": {
                ".": {}, "f:image": {}, "f:name": {} } } } })
        );
        let response = apply(&server, uri, "mesh", false, pod(json!([])));
        assert_eq!(response.status, 200);
        let object = response.value().unwrap();
        assert_eq!(object["spec"]["containers"], json!([{ "name": "web", "image": "nginx:1" }]));
        let response =
            apply(&server, uri, "mesh", false, pod(json!([{ "name": "web", "image": "nginx:2" }])));
        let (code, _, message) = status_of(&response);
        assert_eq!(code, 409);
        assert!(message.ends_with(".spec.containers[name=\"web\"].image"), "{message}");
    });
}

/// `fieldManager` is required for apply; `force` only goes with apply.
#[test]
fn field_manager_is_required_and_force_is_apply_only() {
    in_sim(|| {
        let server = server();
        let body = config(json!({ "a": "1" })).to_string();
        let request = Request::new("PATCH", CM).with_body("application/apply-patch+yaml", body);
        let (code, reason, message) = status_of(&server.handle(&request));
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(message.contains("fieldManager: Required value"), "{message}");
        apply(&server, CM, "alice", false, config(json!({ "a": "1" })));
        let request = Request::new("PATCH", &format!("{CM}?force=true"))
            .with_body("application/merge-patch+json", "{}");
        let (code, _, message) = status_of(&server.handle(&request));
        assert_eq!(code, 422);
        assert!(message.contains("force: Forbidden"), "{message}");
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  y: \"2\"\n";
        let request = Request::new("PATCH", &format!("{CM}?fieldManager=yaml"))
            .with_body("application/apply-patch+yaml", yaml);
        let response = server.handle(&request);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.value().unwrap()["data"], json!({ "a": "1", "y": "2" }));
    });
}

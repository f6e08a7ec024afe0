//! Tests: writes through REST. POST (201, `generateName`, the path's namespace, 400 for a body
//! that disagrees with the path), PUT (409 with upstream's `Status` for a stale
//! resourceVersion), the `status` subresource, DELETE with a `DeleteOptions` body (propagation,
//! a uid precondition, `Status` Success once removed, the object while finalizers hold it),
//! the PATCH media types (merge, strategic for built-in kinds and 415 for custom resources),
//! objects keeping unknown metadata and
//! `managedFields`, and `Status` bodies byte for byte.

use apiserver_fake::rest::Request;
use serde_json::{Value, json};

use super::{create_cm, in_sim, json_request, send, server, status_of};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// POST answers 201 with the stored object; `generateName` gives a five-character suffix; the
/// namespace comes from the path.
#[test]
fn post_creates_with_generate_name_and_the_paths_namespace() {
    in_sim(|| {
        let server = server();
        let body = json!({ "metadata": { "generateName": "job-" } });
        let (code, made) = send(&server, json_request("POST", CMS, &body));
        assert_eq!(code, 201, "{made}");
        let name = made["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("job-") && name.len() == 9, "{name}");
        assert_eq!(made["metadata"]["namespace"], "default");
        assert_eq!(made["apiVersion"], "v1");
        assert_eq!(made["kind"], "ConfigMap");
        let again = json!({ "metadata": { "name": name } });
        let response = server.handle(&json_request("POST", CMS, &again));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(message, format!("configmaps \"{name}\" already exists"));
    });
}

/// A body whose namespace, apiVersion or kind disagrees with the path is 400; a body that is
/// not JSON, or not an object, is 400; an unknown media type is 415.
#[test]
fn bodies_that_disagree_with_the_path_are_400() {
    in_sim(|| {
        let server = server();
        let cases = [
            json!({ "metadata": { "name": "a", "namespace": "kube-system" } }),
            json!({ "apiVersion": "v2", "metadata": { "name": "a" } }),
            json!({ "kind": "Secret", "metadata": { "name": "a" } }),
            json!([1, 2]),
            json!({ "metadata": 5 }),
        ];
        for body in cases {
            let response = server.handle(&json_request("POST", CMS, &body));
            assert_eq!(status_of(&response).0, 400, "{body}");
        }
        let response = server.handle(&Request::new("POST", CMS).with_body("application/json", "{"));
        assert_eq!(status_of(&response).0, 400);
        let response = server.handle(
            &Request::new("POST", CMS).with_body("application/vnd.kubernetes.protobuf", "x"),
        );
        assert_eq!(status_of(&response).0, 415);
        let yaml = "metadata:\n  name: from-yaml\n";
        let response =
            server.handle(&Request::new("POST", CMS).with_body("application/yaml", yaml));
        assert_eq!(response.status, 201);
    });
}

/// PUT with a stale resourceVersion is 409 Conflict with upstream's message and details.
#[test]
fn put_with_a_stale_resource_version_is_409() {
    in_sim(|| {
        let server = server();
        let mut object = create_cm(&server, "default", "a", json!({}));
        object["data"] = json!({ "k": "w" });
        let (code, updated) = send(&server, json_request("PUT", &format!("{CMS}/a"), &object));
        assert_eq!(code, 200);
        assert_ne!(updated["metadata"]["resourceVersion"], object["metadata"]["resourceVersion"]);
        let response = server.handle(&json_request("PUT", &format!("{CMS}/a"), &object));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert_eq!(
            message,
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        let body = response.value().unwrap();
        assert_eq!(body["details"], json!({ "name": "a", "kind": "configmaps" }));
        let renamed = json!({ "metadata": { "name": "b" } });
        let response = server.handle(&json_request("PUT", &format!("{CMS}/a"), &renamed));
        assert_eq!(status_of(&response).0, 400);
    });
}

/// The bytes of a 404 `Status`, as kube-apiserver writes them.
#[test]
fn a_not_found_status_is_byte_for_byte_upstreams() {
    in_sim(|| {
        let server = server();
        let response = server.handle(&Request::get(&format!("{CMS}/missing")));
        assert_eq!(response.status, 404);
        assert_eq!(
            String::from_utf8(response.bytes().to_vec()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"configmaps"},"code":404}"#
        );
        let error = response.api_error().expect("an error");
        assert!(error.is_not_found());
        assert_eq!(error.message, "configmaps \"missing\" not found");
    });
}

/// The status subresource writes only status; the main resource ignores status.
#[test]
fn the_status_subresource_writes_only_status() {
    in_sim(|| {
        let server = server();
        let widgets = "/apis/example.com/v1/namespaces/default/widgets";
        let body = json!({ "metadata": { "name": "w" }, "spec": { "size": 1 } });
        let (code, made) = send(&server, json_request("POST", widgets, &body));
        assert_eq!(code, 201);
        let mut object = made.clone();
        object["spec"] = json!({ "size": 2 });
        object["status"] = json!({ "ready": true });
        let (code, main) = send(&server, json_request("PUT", &format!("{widgets}/w"), &object));
        assert_eq!(code, 200);
        assert_eq!(main["spec"]["size"], 2);
        assert_eq!(main["status"], Value::Null);
        object["metadata"]["resourceVersion"] = main["metadata"]["resourceVersion"].clone();
        object["spec"] = json!({ "size": 9 });
        let (code, status) =
            send(&server, json_request("PUT", &format!("{widgets}/w/status"), &object));
        assert_eq!(code, 200);
        assert_eq!(status["spec"]["size"], 2);
        assert_eq!(status["status"]["ready"], true);
    });
}

/// DELETE: `Status` Success naming the object once it is gone; the object with its
/// deletionTimestamp while a finalizer holds it; Foreground from the body adds
/// `foregroundDeletion`; a uid precondition that does not match is 409.
#[test]
fn delete_with_options_answers_as_upstream() {
    in_sim(|| {
        let server = server();
        let made = create_cm(&server, "default", "a", json!({}));
        let (code, gone) = send(&server, Request::new("DELETE", &format!("{CMS}/a")));
        assert_eq!(code, 200);
        assert_eq!(
            gone,
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": { "name": "a", "kind": "configmaps", "uid": made["metadata"]["uid"] } })
        );
        let body = json!({ "metadata": { "name": "b", "finalizers": ["example.com/keep"] } });
        assert_eq!(send(&server, json_request("POST", CMS, &body)).0, 201);
        let wrong_uid = json!({ "kind": "DeleteOptions", "apiVersion": "v1",
                                "preconditions": { "uid": "not-it" } });
        let response = server.handle(&json_request("DELETE", &format!("{CMS}/b"), &wrong_uid));
        assert_eq!(status_of(&response).0, 409);
        let foreground = json!({ "kind": "DeleteOptions", "apiVersion": "v1",
                                 "propagationPolicy": "Foreground" });
        let (code, pending) =
            send(&server, json_request("DELETE", &format!("{CMS}/b"), &foreground));
        assert_eq!(code, 200);
        assert!(pending["metadata"]["deletionTimestamp"].is_string(), "{pending}");
        assert_eq!(
            pending["metadata"]["finalizers"],
            json!(["example.com/keep", "foregroundDeletion"])
        );
        let bad = json!({ "propagationPolicy": "Sideways" });
        let response = server.handle(&json_request("DELETE", &format!("{CMS}/b"), &bad));
        assert_eq!(status_of(&response).0, 422);
        let response = server.handle(&Request::new(
            "DELETE",
            &format!("{CMS}/b?propagationPolicy=Orphan&dryRun=All"),
        ));
        assert_eq!(status_of(&response).0, 400);
    });
}

/// Merge patch and strategic merge patch work on built-in kinds; strategic merge is 415 for a
/// custom resource, naming what is accepted; an unknown patch type is 415.
#[test]
fn patch_media_types() {
    in_sim(|| {
        let server = server();
        create_cm(&server, "default", "a", json!({ "app": "web" }));
        let patch = |uri: &str, media: &str, body: Value| {
            server.handle(&Request::new("PATCH", uri).with_body(media, body.to_string()))
        };
        let response = patch(
            &format!("{CMS}/a"),
            "application/merge-patch+json",
            json!({ "metadata": { "labels": { "app": null, "tier": "x" } } }),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.value().unwrap()["metadata"]["labels"], json!({ "tier": "x" }));
        let response = patch(
            &format!("{CMS}/a"),
            "application/strategic-merge-patch+json; charset=utf-8",
            json!({ "data": { "k2": "v2" } }),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.value().unwrap()["data"], json!({ "k": "v", "k2": "v2" }));
        let widgets = "/apis/example.com/v1/namespaces/default/widgets";
        assert_eq!(
            send(&server, json_request("POST", widgets, &json!({ "metadata": { "name": "w" } }))).0,
            201
        );
        let response =
            patch(&format!("{widgets}/w"), "application/strategic-merge-patch+json", json!({}));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
        assert!(message.contains("application/json-patch+json"), "{message}");
        let response = patch(&format!("{CMS}/a"), "text/plain", json!({}));
        assert_eq!(status_of(&response).0, 415);
        let response = patch(&format!("{CMS}/missing"), "application/merge-patch+json", json!({}));
        assert_eq!(status_of(&response).0, 404);
    });
}

/// Unknown metadata fields and `managedFields` come back as written.
#[test]
fn objects_keep_unknown_metadata_and_managed_fields() {
    in_sim(|| {
        let server = server();
        let managed = json!([{ "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": { "f:data": { "f:k": {} } } }]);
        let body = json!({ "metadata": { "name": "a", "managedFields": managed,
                                         "selfLink": "/x", "futureField": { "n": 1 } },
                           "immutable": true });
        let (code, made) = send(&server, json_request("POST", CMS, &body));
        assert_eq!(code, 201);
        let (_, got) = send(&server, Request::get(&format!("{CMS}/a")));
        assert_eq!(got, made);
        assert_eq!(got["metadata"]["managedFields"], managed);
        assert_eq!(got["metadata"]["futureField"], json!({ "n": 1 }));
        assert_eq!(got["metadata"]["selfLink"], "/x");
        assert_eq!(got["immutable"], true);
    });
}

/// A body over 3 MiB is 413.
#[test]
fn a_body_over_the_limit_is_413() {
    in_sim(|| {
        let server = server();
        let body = vec![b' '; apiserver_fake::rest::MAX_BODY_BYTES + 1];
        let response =
            server.handle(&Request::new("POST", CMS).with_body("application/json", body));
        let (code, reason, _) = status_of(&response);
        assert_eq!((code, reason.as_str()), (413, "RequestEntityTooLarge"));
    });
}

/// Events are writable and listable in both APIs, `v1` and `events.k8s.io/v1`, with their
/// field selectors (`involvedObject.name`, `regarding.name`, `reason`).
#[test]
fn events_in_both_apis() {
    in_sim(|| {
        let server = server();
        let core = json!({ "metadata": { "name": "e1" }, "reason": "Created",
                           "involvedObject": { "kind": "Pod", "name": "web" } });
        assert_eq!(
            send(&server, json_request("POST", "/api/v1/namespaces/default/events", &core)).0,
            201
        );
        let new = json!({ "metadata": { "name": "e2" }, "reason": "Pulled",
                          "regarding": { "kind": "Pod", "name": "web" }, "reportingController": "kubelet" });
        let uri = "/apis/events.k8s.io/v1/namespaces/default/events";
        assert_eq!(send(&server, json_request("POST", uri, &new)).0, 201);
        let (_, list) =
            send(&server, Request::get("/api/v1/events?fieldSelector=involvedObject.name%3Dweb"));
        assert_eq!(list["kind"], "EventList");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (_, list) = send(
            &server,
            Request::get(&format!("{uri}?fieldSelector=regarding.name%3Dweb,reason%3DPulled")),
        );
        assert_eq!(list["items"][0]["metadata"]["name"], "e2");
        let (code, _) =
            send(&server, Request::get(&format!("{uri}?fieldSelector=involvedObject.name%3Dweb")));
        assert_eq!(code, 400, "involvedObject is the core API's field");
    });
}

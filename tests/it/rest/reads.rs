//! Tests: reads. GET; LIST's `<Kind>List` with `metadata.resourceVersion`; label and field
//! selectors (`metadata.name`, `metadata.namespace`, a Pod's `status.phase`; 400 for a field
//! the kind does not support); pages with `limit` and `continue` (every item once, in order,
//! from one snapshot; 410 for a token older than the history); `resourceVersion` with
//! `resourceVersionMatch` (Exact, NotOlderThan, 504 for a version not reached, 400 for a match
//! without a version).

use apiserver_fake::rest::Request;
use apiserver_fake::{ApiServer, ServerConfig};
use serde_json::{Value, json};

use super::{create_cm, in_sim, json_request, send, server, status_of};

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn namespace(server: &ApiServer, name: &str) {
    let body = json!({ "metadata": { "name": name } });
    assert_eq!(send(server, json_request("POST", "/api/v1/namespaces", &body)).0, 201);
}

/// GET answers the stored object; LIST a `ConfigMapList` at the server's resourceVersion.
#[test]
fn get_and_list_answer_upstream_shapes() {
    in_sim(|| {
        let server = server();
        let created = create_cm(&server, "default", "a", json!({ "app": "web" }));
        let (code, got) = send(&server, Request::get("/api/v1/namespaces/default/configmaps/a"));
        assert_eq!(code, 200);
        assert_eq!(got, created);
        assert_eq!(got["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
        let (code, list) = send(&server, Request::get("/api/v1/namespaces/default/configmaps"));
        assert_eq!(code, 200);
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["metadata"]["resourceVersion"], server.resource_version().to_string());
        assert_eq!(names(&list), ["default/a"]);
    });
}

/// Label and field selectors filter a LIST; unsupported field labels are 400 as upstream.
#[test]
fn list_filters_by_label_and_field_selectors() {
    in_sim(|| {
        let server = server();
        namespace(&server, "other");
        create_cm(&server, "default", "a", json!({ "app": "web" }));
        create_cm(&server, "default", "b", json!({ "app": "db" }));
        create_cm(&server, "other", "a", json!({ "app": "web" }));
        let list = |query: &str| {
            let (code, body) = send(&server, Request::get(&format!("/api/v1/configmaps?{query}")));
            assert_eq!(code, 200, "{query}: {body}");
            names(&body)
        };
        assert_eq!(list("labelSelector=app%3Dweb"), ["default/a", "other/a"]);
        assert_eq!(list("labelSelector=app+in+(db)"), ["default/b"]);
        assert_eq!(list("fieldSelector=metadata.name%3Da"), ["default/a", "other/a"]);
        assert_eq!(list("fieldSelector=metadata.namespace!%3Ddefault"), ["other/a"]);
        assert_eq!(list("fieldSelector=metadata.name=a,metadata.namespace=other"), ["other/a"]);
        assert_eq!(
            list("labelSelector=app=web&fieldSelector=metadata.namespace=default"),
            ["default/a"]
        );
        let response =
            server.handle(&Request::get("/api/v1/configmaps?fieldSelector=spec.foo%3Dx"));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (400, "BadRequest"));
        assert_eq!(message, "field label not supported: spec.foo");
        let response = server.handle(&Request::get("/api/v1/configmaps?labelSelector=%3Dweb"));
        assert_eq!(status_of(&response).0, 400);
    });
}

/// A Pod's `status.phase` is a supported field.
#[test]
fn pod_phase_is_a_field_selector() {
    in_sim(|| {
        let server = server();
        for (name, phase) in [("p", "Running"), ("q", "Pending")] {
            let pod = json!({ "metadata": { "name": name }, "spec": { "containers": [] } });
            let uri = "/api/v1/namespaces/default/pods";
            assert_eq!(send(&server, json_request("POST", uri, &pod)).0, 201);
            let status = json!({ "status": { "phase": phase } });
            let request = Request::new("PATCH", &format!("{uri}/{name}/status"))
                .with_body("application/merge-patch+json", status.to_string());
            assert_eq!(server.handle(&request).status, 200);
        }
        let (_, list) =
            send(&server, Request::get("/api/v1/pods?fieldSelector=status.phase%3DRunning"));
        assert_eq!(names(&list), ["default/p"]);
    });
}

/// Pages of `limit` items, continued by token, return every item once, in order, from one
/// snapshot: an object created between pages does not appear.
#[test]
fn limit_and_continue_page_through_one_snapshot() {
    in_sim(|| {
        let server = server();
        for index in 0..7 {
            create_cm(&server, "default", &format!("cm-{index}"), json!({}));
        }
        let snapshot = server.resource_version().to_string();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let uri = match &token {
                None => "/api/v1/namespaces/default/configmaps?limit=3".to_string(),
                Some(t) => format!("/api/v1/namespaces/default/configmaps?limit=3&continue={t}"),
            };
            let (code, page) = send(&server, Request::get(&uri));
            assert_eq!(code, 200, "{page}");
            assert_eq!(page["metadata"]["resourceVersion"], snapshot);
            pages += 1;
            seen.extend(names(&page));
            if pages == 1 {
                assert_eq!(page["metadata"]["remainingItemCount"], 4);
                create_cm(&server, "default", "cm-late", json!({}));
            }
            match page["metadata"]["continue"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..7).map(|i| format!("default/cm-{i}")).collect();
        assert_eq!(seen, expected);
    });
}

/// A continue token whose resourceVersion left the history is 410 Expired; a garbled one 400.
#[test]
fn an_expired_continue_token_is_410() {
    in_sim(|| {
        let server = ApiServer::new(
            apiserver_fake::Registry::builtin(),
            ServerConfig::default().with_history_max(4),
        );
        for index in 0..3 {
            create_cm(&server, "default", &format!("cm-{index}"), json!({}));
        }
        let (_, page) =
            send(&server, Request::get("/api/v1/namespaces/default/configmaps?limit=1"));
        let token = page["metadata"]["continue"].as_str().expect("a token").to_string();
        for index in 0..8 {
            create_cm(&server, "default", &format!("more-{index}"), json!({}));
        }
        let uri = format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}");
        let response = server.handle(&Request::get(&uri));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (410, "Expired"));
        assert!(message.starts_with("The provided continue parameter is too old"), "{message}");
        let response =
            server.handle(&Request::get("/api/v1/namespaces/default/configmaps?continue=%21%21"));
        assert_eq!(status_of(&response).0, 400);
    });
}

/// Exact reads the state at N; NotOlderThan and "0" read the cache; a version the server has
/// not reached is 504; a match without a version, or an unknown match, is 400; Exact of a
/// compacted version is 410.
#[test]
fn resource_version_match_semantics() {
    in_sim(|| {
        let server = ApiServer::new(
            apiserver_fake::Registry::builtin(),
            ServerConfig::default().with_history_max(6),
        );
        create_cm(&server, "default", "a", json!({}));
        let after_a = server.resource_version();
        create_cm(&server, "default", "b", json!({}));
        let base = "/api/v1/namespaces/default/configmaps";
        let (code, exact) = send(
            &server,
            Request::get(&format!("{base}?resourceVersion={after_a}&resourceVersionMatch=Exact")),
        );
        assert_eq!(code, 200);
        assert_eq!(names(&exact), ["default/a"]);
        assert_eq!(exact["metadata"]["resourceVersion"], after_a.to_string());
        let (code, cached) = send(&server, Request::get(&format!("{base}?resourceVersion=0")));
        assert_eq!(code, 200);
        assert_eq!(names(&cached), ["default/a", "default/b"], "stale_reads is 0");
        let (code, not_older) = send(
            &server,
            Request::get(&format!(
                "{base}?resourceVersion={after_a}&resourceVersionMatch=NotOlderThan"
            )),
        );
        assert_eq!(code, 200);
        assert_eq!(names(&not_older), ["default/a", "default/b"]);
        let ahead = server.resource_version() + 5;
        let response = server.handle(&Request::get(&format!("{base}?resourceVersion={ahead}")));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (504, "Timeout"));
        assert!(message.starts_with("Too large resource version"), "{message}");
        let response = server.handle(&Request::get(&format!("{base}?resourceVersionMatch=Exact")));
        assert_eq!(status_of(&response).0, 400);
        let response = server
            .handle(&Request::get(&format!("{base}?resourceVersion=1&resourceVersionMatch=Soon")));
        assert_eq!(status_of(&response).0, 400);
        for index in 0..8 {
            create_cm(&server, "default", &format!("more-{index}"), json!({}));
        }
        let response = server.handle(&Request::get(&format!(
            "{base}?resourceVersion={after_a}&resourceVersionMatch=Exact"
        )));
        let (code, reason, _) = status_of(&response);
        assert_eq!((code, reason.as_str()), (410, "Expired"));
    });
}

//! Tests: paths and discovery. Core and group paths, namespaced and cluster-scoped, items and
//! the `status` and `finalize` subresources, 404 for paths that name nothing, 405 for methods a
//! path does not take, 406 for an `Accept` without JSON, and the discovery documents (CRDs
//! created at run time appear, with `/status` only if the CRD has `subresources.status`).

use apiserver_fake::rest::Request;
use serde_json::json;

use super::{create_cm, in_sim, json_request, send, server, status_of};

/// Items and collections resolve in both API roots and both scopes.
#[test]
fn core_and_group_paths_namespaced_and_cluster_scoped() {
    in_sim(|| {
        let server = server();
        create_cm(&server, "default", "a", json!({}));
        let cases = [
            ("/api/v1/namespaces/default/configmaps/a", 200),
            ("/api/v1/namespaces/default/configmaps", 200),
            ("/api/v1/configmaps", 200),
            ("/api/v1/namespaces/default", 200),
            ("/api/v1/namespaces", 200),
            ("/api/v1/namespaces/default/status", 200),
            ("/apis/apps/v1/namespaces/default/statefulsets", 200),
            ("/apis/apps/v1/statefulsets", 200),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", 200),
            ("/apis/example.com/v1/namespaces/default/widgets", 200),
            // Wrong scope, unknown names, bad shapes.
            ("/api/v1/configmaps/a", 404),
            ("/api/v1/namespaces/default/nodes", 404),
            ("/api/v1/namespaces/default/configmaps/a/scale", 404),
            ("/api/v1/namespaces/default/configmaps/b", 404),
            ("/api/v1/namespaces/default/gizmos", 404),
            ("/apis/nope.io/v1/things", 404),
            ("/api/v2/pods", 404),
            ("/api/v1//configmaps", 404),
            ("/", 404),
            ("relative", 404),
        ];
        for (path, code) in cases {
            let response = server.handle(&Request::get(path));
            assert_eq!(response.status, code, "GET {path}: {response:?}");
            if code == 404 {
                let (_, reason, _) = status_of(&response);
                assert_eq!(reason, "NotFound", "{path}");
            }
        }
    });
}

/// A method a path does not take is 405 MethodNotAllowed; POST to all namespaces too.
#[test]
fn methods_a_path_does_not_take_are_405() {
    in_sim(|| {
        let server = server();
        create_cm(&server, "default", "a", json!({}));
        let cases = [
            ("POST", "/api/v1/namespaces/default/configmaps/a"),
            ("PATCH", "/api/v1/namespaces/default/configmaps"),
            ("PUT", "/api/v1/namespaces/default/configmaps"),
            ("DELETE", "/api/v1/namespaces/default/configmaps"),
            ("POST", "/api/v1/configmaps"),
            ("BREW", "/api/v1/namespaces/default/configmaps/a"),
            ("DELETE", "/api/v1/namespaces/default/status"),
            ("POST", "/api"),
        ];
        for (method, path) in cases {
            let response = server.handle(&json_request(method, path, &json!({})));
            let (code, reason, _) = status_of(&response);
            assert_eq!((code, reason.as_str()), (405, "MethodNotAllowed"), "{method} {path}");
        }
    });
}

/// An Accept header that allows no JSON is 406; JSON, wildcards and parameters are fine.
#[test]
fn accept_without_json_is_406() {
    in_sim(|| {
        let server = server();
        for (accept, code) in [
            ("application/vnd.kubernetes.protobuf", 406),
            ("text/html", 406),
            ("application/json", 200),
            ("application/json;as=Table;g=meta.k8s.io;v=v1, application/json", 200),
            ("*/*", 200),
            ("application/vnd.kubernetes.protobuf, application/json", 200),
        ] {
            let request = Request::get("/api/v1/namespaces").with_accept(accept);
            let response = server.handle(&request);
            assert_eq!(response.status, code, "Accept: {accept}");
        }
    });
}

/// `/api`, `/apis`, `/apis/{g}` and `/apis/{g}/{v}` list what the registry serves.
#[test]
fn discovery_lists_the_registry() {
    in_sim(|| {
        let server = server();
        let (_, versions) = send(&server, Request::get("/api"));
        assert_eq!(versions["kind"], "APIVersions");
        assert_eq!(versions["versions"], json!(["v1"]));
        let (_, core) = send(&server, Request::get("/api/v1"));
        assert_eq!(core["kind"], "APIResourceList");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for name in ["configmaps", "pods", "pods/status", "namespaces", "namespaces/finalize"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let pods =
            core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
        let (_, groups) = send(&server, Request::get("/apis"));
        assert_eq!(groups["kind"], "APIGroupList");
        let apps =
            groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "apps").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        let (code, group) = send(&server, Request::get("/apis/example.com"));
        assert_eq!(code, 200);
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(send(&server, Request::get("/apis/nope.io")).0, 404);
        assert_eq!(send(&server, Request::get("/apis/nope.io/v1")).0, 404);
    });
}

/// A CRD created through REST serves its kind at once; `/status` exists only when the CRD's
/// version declares `subresources.status`.
#[test]
fn a_crd_created_at_run_time_is_served_with_its_subresources() {
    in_sim(|| {
        let server = server();
        let crd = |plural: &str, kind: &str, status: bool| {
            let subresources = if status { json!({ "status": {} }) } else { json!({}) };
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": { "name": format!("{plural}.stable.example.com") },
                "spec": {
                    "group": "stable.example.com",
                    "scope": "Namespaced",
                    "names": { "plural": plural, "kind": kind },
                    "versions": [{ "name": "v1", "served": true, "storage": true,
                                   "subresources": subresources }],
                },
            })
        };
        let uri = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        assert_eq!(send(&server, Request::get("/apis/stable.example.com/v1/crontabs")).0, 404);
        assert_eq!(
            send(&server, json_request("POST", uri, &crd("crontabs", "CronTab", true))).0,
            201
        );
        assert_eq!(send(&server, json_request("POST", uri, &crd("plain", "Plain", false))).0, 201);
        let tab = json!({ "metadata": { "name": "t" }, "spec": { "cron": "* * * * *" } });
        let collection = "/apis/stable.example.com/v1/namespaces/default/crontabs";
        assert_eq!(send(&server, json_request("POST", collection, &tab)).0, 201);
        assert_eq!(send(&server, Request::get(&format!("{collection}/t/status"))).0, 200);
        let plain = "/apis/stable.example.com/v1/namespaces/default/plain";
        assert_eq!(send(&server, json_request("POST", plain, &tab)).0, 201);
        assert_eq!(send(&server, Request::get(&format!("{plain}/t/status"))).0, 404);
        let (_, resources) = send(&server, Request::get("/apis/stable.example.com/v1"));
        let names: Vec<&str> = resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["crontabs", "crontabs/status", "plain"]);
    });
}

//! Manifests: multi-document YAML, `kind: List` and JSON; errors naming the document; loading
//! creates namespaces first and keeps the manifests' uids; objects serialise with Kubernetes'
//! field names.

use std::time::Duration;

use apiserver_fake::{
    DeleteOptions, Object, OwnerReference, Time, TimeParseError, parse_manifests,
};
use serde_json::{Value, json};
use sim_core::{sleep, spawn};

use super::{KEEP, NS, cm, delete, pending, run_seeds, server};

const OWNER_UID: &str = "6f1c2f8e-0000-4000-8000-000000000001";

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: child
  namespace: team
  creationTimestamp: "2025-12-31T23:59:00Z"
  labels:
    app: web
  ownerReferences:
    - apiVersion: v1
      kind: ConfigMap
      name: owner
      uid: 6f1c2f8e-0000-4000-8000-000000000001
      controller: true
      blockOwnerDeletion: true
data:
  key: value
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: owner
      namespace: team
      uid: 6f1c2f8e-0000-4000-8000-000000000001
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: team
---
{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "type": "Opaque"}
"#;

/// Manifests: multi-document YAML with `---`, an empty document, a `kind: List` and JSON.
#[test]
fn parse_manifests_reads_multi_document_yaml_lists_and_json() {
    run_seeds(|| {
        let objects = parse_manifests(MANIFESTS).expect("valid manifests");
        let names: Vec<_> = objects.iter().map(|o| (o.kind.as_str(), o.key())).collect();
        let expected = [
            ("ConfigMap", "team/child".to_string()),
            ("ConfigMap", "team/owner".to_string()),
            ("Namespace", "team".to_string()),
            ("Secret", "team/s".to_string()),
        ];
        assert_eq!(names, expected);
        let child = &objects[0];
        assert_eq!(
            child.metadata.owner_references,
            [OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: OWNER_UID.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        );
        let created = child.metadata.creation_timestamp.expect("creationTimestamp");
        assert_eq!(created, Time::parse("2025-12-31T23:59:00Z").unwrap());
        assert_eq!(created.nanos, -60_000_000_000, "one minute before the simulation's start");
        assert_eq!(child.metadata.labels["app"], "web");
        assert_eq!(child.other["data"], json!({ "key": "value" }));
        let json = child.to_json();
        assert_eq!(json["metadata"]["creationTimestamp"], "2025-12-31T23:59:00Z");
        assert_eq!(json["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
        assert_eq!(Object::from_json(json).expect("round trip"), *child);
        assert_eq!(objects[1].metadata.uid, OWNER_UID);
        assert_eq!(objects[3].other["type"], "Opaque");

        let only_json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "d", "namespace": "x"}, "spec": {"replicas": 2}}]}"#;
        let objects = parse_manifests(only_json).expect("JSON");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].spec["replicas"], 2);
        assert!(parse_manifests("").expect("empty").is_empty());
    });
}

/// Manifests: a malformed or incomplete document is an error naming its (1-based) number.
#[test]
fn malformed_manifest_names_the_document() {
    run_seeds(|| {
        let good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n";
        let cases = [
            (format!("{good}---\napiVersion: v1\nkind: [unclosed\n"), 2, None),
            (format!("{good}---\n{good}---\nkind: ConfigMap\nmetadata: {{name: b}}\n"), 3, {
                Some("apiVersion is missing")
            }),
            (
                format!("{good}---\napiVersion: v1\nmetadata: {{name: b}}\n"),
                2,
                Some("kind is missing"),
            ),
            ("apiVersion: v1\nkind: ConfigMap\n".to_string(), 1, {
                Some("ConfigMap has no metadata.name")
            }),
            (format!("{good}---\njust text\n"), 2, None),
            (format!("{good}---\nkind: List\nitems: 3\n"), 2, None),
        ];
        for (text, document, message) in cases {
            let error = parse_manifests(&text).expect_err(&text);
            assert_eq!(error.document, document, "{text}: {error}");
            assert!(error.to_string().starts_with(&format!("manifest document {document}: ")));
            if let Some(message) = message {
                assert_eq!(error.message, message, "{text}");
            }
        }
    });
}

/// Manifests: JSON of the wrong shape is an error that prints as the JSON decoder's message.
#[test]
fn object_from_json_of_the_wrong_shape_is_an_error() {
    let value = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": "x"}});
    let error = Object::from_json(value.clone()).expect_err("finalizers must be a list");
    let decoder = serde_json::from_value::<Object>(value).expect_err("the same error");
    assert_eq!(error.message, decoder.to_string());
    assert_eq!(error.to_string(), decoder.to_string());
}

/// Manifests: `load_manifests` creates namespaces first and keeps the manifests' uids.
#[test]
fn load_manifests_creates_namespaces_first_and_keeps_uids() {
    run_seeds(|| {
        let server = server();
        let created = server.load_manifests(MANIFESTS).expect("load");
        let kinds: Vec<_> = created.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap", "ConfigMap", "Secret"]);
        let owner = server.get("v1", "ConfigMap", "team", "owner").expect("owner");
        let child = server.get("v1", "ConfigMap", "team", "child").expect("child");
        assert_eq!(owner.metadata.uid, OWNER_UID);
        assert_eq!(child.metadata.owner_references[0].uid, owner.metadata.uid);
        assert!(!child.metadata.uid.is_empty());
        // Like any create, the server stamps its own creationTimestamp.
        assert_eq!(child.metadata.creation_timestamp, Some(Time::now()));
        let error = server.load_manifests(MANIFESTS).expect_err("everything exists already");
        assert!(error.contains("already exists"), "{error}");
    });
}

/// Manifests: objects serialise back with Kubernetes' camelCase field names.
#[test]
fn objects_serialise_with_kubernetes_field_names() {
    fn keys(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    found.push(key.clone());
                    keys(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| keys(item, found)),
            _ => {}
        }
    }
    run_seeds(|| {
        let server = server();
        spawn("writer", async move {
            sleep(Duration::from_secs(90)).await;
            let owner = server.create(cm(NS, "owner")).expect("create");
            let child = cm(NS, "child")
                .with_owner(OwnerReference::controller_of(&owner))
                .with_finalizer(KEEP);
            let child = server.create(child).expect("create");
            let child = pending(delete(&server, &child, &DeleteOptions::default()));
            let json = child.to_json();
            let meta = &json["metadata"];
            assert_eq!(meta["resourceVersion"], child.metadata.resource_version.as_str());
            assert_eq!(meta["deletionTimestamp"], "2026-01-01T00:01:30Z");
            assert_eq!(meta["creationTimestamp"], "2026-01-01T00:01:30Z");
            assert_eq!(meta["deletionGracePeriodSeconds"], 0);
            assert_eq!(
                meta["ownerReferences"],
                json!([{
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner.metadata.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }])
            );
            let mut found = Vec::new();
            keys(&json, &mut found);
            assert!(found.iter().all(|key| !key.contains('_')), "snake_case key in {found:?}");
            assert_eq!(Object::from_json(json).expect("round trip"), child);
        });
    });
}

/// A timestamp that is not RFC 3339 is a `TimeParseError` naming the text, printed as before.
#[test]
fn time_parse_error_names_the_text() {
    let error = Time::parse("2026-13-01T00:00:00Z").unwrap_err();
    assert_eq!(error, TimeParseError { text: "2026-13-01T00:00:00Z".to_string() });
    assert_eq!(
        error.to_string(),
        "invalid timestamp \"2026-13-01T00:00:00Z\": expected RFC 3339, e.g. 2026-01-01T00:00:00Z"
    );
    let error: Box<dyn std::error::Error> = Box::new(Time::parse("yesterday").unwrap_err());
    assert!(error.to_string().starts_with("invalid timestamp \"yesterday\""));
}

//! Tests: JSON Patch (RFC 6902, `application/json-patch+json`) through the REST layer. The
//! examples of RFC 6902 Appendix A (A.1 to A.16) applied under a custom resource's free-form
//! `spec` (a ConfigMap's `data` must be a string map upstream, a Widget's `spec` may hold
//! anything): a success answers 200 with exactly the patched document; a failed operation is
//! 422 Invalid naming the path, an undecodable patch is 400, and neither changes the stored
//! object. Then `kube::runtime::finalizer`'s patches on a ConfigMap (a `test` of a missing
//! member against `null`, a stale `test`, the removal of a finalizer, also of the last one of an
//! object being deleted), and upstream's limit of 10,000 operations (413 above it).

use apiserver_fake::ApiServer;
use apiserver_fake::rest::{Request, Response};
use serde_json::{Value, json};

use super::{in_sim, json_request, send, server, status_of};

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON_PATCH: &str = "application/json-patch+json";

/// `PATCH uri` with a JSON patch body of raw bytes.
fn patch_bytes(server: &ApiServer, uri: &str, body: &[u8]) -> Response {
    server.handle(&Request::new("PATCH", uri).with_body(JSON_PATCH, body.to_vec()))
}

/// `PATCH uri` with the JSON patch `operations`.
fn patch(server: &ApiServer, uri: &str, operations: &Value) -> Response {
    patch_bytes(server, uri, &serde_json::to_vec(operations).unwrap())
}

/// The stored object's bytes, as GET answers them.
fn stored(server: &ApiServer, uri: &str) -> Vec<u8> {
    let response = server.handle(&Request::get(uri));
    assert_eq!(response.status, 200, "{response:?}");
    response.bytes().to_vec()
}

/// Creates Widget `w` whose `spec` is `document`; its URI.
fn widget(server: &ApiServer, document: &Value) -> String {
    let body = json!({ "metadata": { "name": "w" }, "spec": document });
    let (code, made) = send(server, json_request("POST", WIDGETS, &body));
    assert_eq!(code, 201, "{made}");
    assert_eq!(&made["spec"], document);
    format!("{WIDGETS}/w")
}

/// Applies `operations` to a Widget whose spec is `document`: 200, the answer's and the
/// stored spec are exactly `expected`.
fn rfc_success(document: Value, operations: Value, expected: Value) {
    in_sim(move || {
        let server = server();
        let uri = widget(&server, &document);
        let response = patch(&server, &uri, &operations);
        assert_eq!(response.status, 200, "{response:?}");
        let patched = response.value().unwrap();
        assert_eq!(patched["spec"], expected);
        let after: Value = serde_json::from_slice(&stored(&server, &uri)).unwrap();
        assert_eq!(after["spec"], expected);
        assert_eq!(after["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"]);
    });
}

/// Applies `body` to a Widget whose spec is `document`: a `Status` with `code` and `reason`
/// whose message contains `mentions`, and the stored object is unchanged, byte for byte.
fn rfc_failure(document: Value, body: Vec<u8>, code: u16, reason: &'static str, mentions: &str) {
    let mentions = mentions.to_string();
    in_sim(move || {
        let server = server();
        let uri = widget(&server, &document);
        let before = stored(&server, &uri);
        let response = patch_bytes(&server, &uri, &body);
        let (status, why, message) = status_of(&response);
        assert_eq!((status, why.as_str()), (code, reason), "{message}");
        assert!(message.contains(&mentions), "{message:?} should mention {mentions:?}");
        assert_eq!(stored(&server, &uri), before, "a failed patch changed the object");
    });
}

fn bytes(operations: &Value) -> Vec<u8> {
    serde_json::to_vec(operations).unwrap()
}

/// A.1: adding an object member.
#[test]
fn a01_add_an_object_member() {
    rfc_success(
        json!({ "foo": "bar" }),
        json!([{ "op": "add", "path": "/spec/baz", "value": "qux" }]),
        json!({ "baz": "qux", "foo": "bar" }),
    );
}

/// A.2: adding an array element before the index.
#[test]
fn a02_add_an_array_element() {
    rfc_success(
        json!({ "foo": ["bar", "baz"] }),
        json!([{ "op": "add", "path": "/spec/foo/1", "value": "qux" }]),
        json!({ "foo": ["bar", "qux", "baz"] }),
    );
}

/// A.3: removing an object member.
#[test]
fn a03_remove_an_object_member() {
    rfc_success(
        json!({ "baz": "qux", "foo": "bar" }),
        json!([{ "op": "remove", "path": "/spec/baz" }]),
        json!({ "foo": "bar" }),
    );
}

/// A.4: removing an array element shifts the ones after it.
#[test]
fn a04_remove_an_array_element() {
    rfc_success(
        json!({ "foo": ["bar", "qux", "baz"] }),
        json!([{ "op": "remove", "path": "/spec/foo/1" }]),
        json!({ "foo": ["bar", "baz"] }),
    );
}

/// A.5: replacing a value.
#[test]
fn a05_replace_a_value() {
    rfc_success(
        json!({ "baz": "qux", "foo": "bar" }),
        json!([{ "op": "replace", "path": "/spec/baz", "value": "boo" }]),
        json!({ "baz": "boo", "foo": "bar" }),
    );
}

/// A.6: moving a value between objects.
#[test]
fn a06_move_a_value() {
    rfc_success(
        json!({ "foo": { "bar": "baz", "waldo": "fred" }, "qux": { "corge": "grault" } }),
        json!([{ "op": "move", "from": "/spec/foo/waldo", "path": "/spec/qux/thud" }]),
        json!({ "foo": { "bar": "baz" }, "qux": { "corge": "grault", "thud": "fred" } }),
    );
}

/// A.7: moving an array element (removed first, then inserted at the index).
#[test]
fn a07_move_an_array_element() {
    rfc_success(
        json!({ "foo": ["all", "grass", "cows", "eat"] }),
        json!([{ "op": "move", "from": "/spec/foo/1", "path": "/spec/foo/3" }]),
        json!({ "foo": ["all", "cows", "eat", "grass"] }),
    );
}

/// A.8: `test` operations that hold leave the document as it was.
#[test]
fn a08_test_operations_that_hold() {
    rfc_success(
        json!({ "baz": "qux", "foo": ["a", 2, "c"] }),
        json!([
            { "op": "test", "path": "/spec/baz", "value": "qux" },
            { "op": "test", "path": "/spec/foo/1", "value": 2 },
        ]),
        json!({ "baz": "qux", "foo": ["a", 2, "c"] }),
    );
}

/// A.9: a `test` that does not hold is 422 Invalid naming the path.
#[test]
fn a09_a_failed_test_is_422() {
    rfc_failure(
        json!({ "baz": "qux" }),
        bytes(&json!([{ "op": "test", "path": "/spec/baz", "value": "bar" }])),
        422,
        "Invalid",
        "/spec/baz",
    );
}

/// A.10: adding a nested member object.
#[test]
fn a10_add_a_nested_member_object() {
    rfc_success(
        json!({ "foo": "bar" }),
        json!([{ "op": "add", "path": "/spec/child", "value": { "grandchild": {} } }]),
        json!({ "foo": "bar", "child": { "grandchild": {} } }),
    );
}

/// A.11: members of an operation that RFC 6902 does not define are ignored.
#[test]
fn a11_unrecognized_elements_are_ignored() {
    rfc_success(
        json!({ "foo": "bar" }),
        json!([{ "op": "add", "path": "/spec/baz", "value": "qux", "xyz": 123 }]),
        json!({ "foo": "bar", "baz": "qux" }),
    );
}

/// A.12: adding under a member that does not exist is an error (422, the path named).
#[test]
fn a12_add_to_a_nonexistent_target_is_422() {
    rfc_failure(
        json!({ "foo": "bar" }),
        bytes(&json!([{ "op": "add", "path": "/spec/baz/bat", "value": "qux" }])),
        422,
        "Invalid",
        "/spec/baz/bat",
    );
}

/// A.13: an operation with two `op` members is not a patch document: 400.
#[test]
fn a13_an_invalid_patch_document_is_400() {
    let body = br#"[{ "op": "add", "path": "/spec/baz", "value": "qux", "op": "remove" }]"#;
    rfc_failure(json!({ "foo": "bar" }), body.to_vec(), 400, "BadRequest", "patch");
}

/// A.14: `~01` is `~1` (unescape `~1` before `~0`), so the test reads member `~1`.
#[test]
fn a14_tilde_escapes_unescape_in_order() {
    rfc_success(
        json!({ "/": 9, "~1": 10 }),
        json!([{ "op": "test", "path": "/spec/~01", "value": 10 }]),
        json!({ "/": 9, "~1": 10 }),
    );
}

/// A.15: the string "10" is not the number 10: the test fails, 422.
#[test]
fn a15_a_string_does_not_equal_a_number() {
    rfc_failure(
        json!({ "/": 9, "~1": 10 }),
        bytes(&json!([{ "op": "test", "path": "/spec/~01", "value": "10" }])),
        422,
        "Invalid",
        "/spec/~01",
    );
}

/// A.16: `-` appends; an array value is added as one element.
#[test]
fn a16_add_an_array_value() {
    rfc_success(
        json!({ "foo": ["bar"] }),
        json!([{ "op": "add", "path": "/spec/foo/-", "value": ["abc", "def"] }]),
        json!({ "foo": ["bar", ["abc", "def"]] }),
    );
}

/// A patch whose later operation fails applies none of its operations.
#[test]
fn a_failing_operation_undoes_the_earlier_ones() {
    rfc_failure(
        json!({ "foo": "bar" }),
        bytes(&json!([
            { "op": "replace", "path": "/spec/foo", "value": "changed" },
            { "op": "remove", "path": "/spec/missing" },
        ])),
        422,
        "Invalid",
        "/spec/missing",
    );
}

/// A body that is JSON but not an array of operations is 400.
#[test]
fn a_patch_that_is_not_an_array_is_400() {
    rfc_failure(
        json!({ "foo": "bar" }),
        bytes(&json!({ "op": "add", "path": "/spec/baz", "value": 1 })),
        400,
        "BadRequest",
        "patch",
    );
}

/// Creates ConfigMap `a`, with `finalizers`; its URI.
fn config_map(server: &ApiServer, finalizers: &[&str]) -> String {
    let body = json!({ "metadata": { "name": "a", "finalizers": finalizers } });
    let (code, made) = send(server, json_request("POST", CMS, &body));
    assert_eq!(code, 201, "{made}");
    format!("{CMS}/a")
}

/// kube-rs' finalizer add on an object without finalizers: `test` of the missing
/// `/metadata/finalizers` against `null` holds (upstream's json-patch treats a missing member as
/// null), then `add` creates the list.
#[test]
fn finalizer_add_tests_a_missing_list_against_null() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &[]);
        let operations = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": ["x"] },
        ]);
        let response = patch(&server, &uri, &operations);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.value().unwrap()["metadata"]["finalizers"], json!(["x"]));
        let after: Value = serde_json::from_slice(&stored(&server, &uri)).unwrap();
        assert_eq!(after["metadata"]["finalizers"], json!(["x"]));
    });
}

/// The finalizer add whose `test` expected no finalizers, on an object that has gained one
/// meanwhile: 422, and the object keeps only the other finalizer.
#[test]
fn finalizer_add_against_null_fails_once_another_finalizer_exists() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &["other"]);
        let before = stored(&server, &uri);
        let operations = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": ["x"] },
        ]);
        let response = patch(&server, &uri, &operations);
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
        assert!(message.contains("/metadata/finalizers"), "{message}");
        assert_eq!(stored(&server, &uri), before);
    });
}

/// kube-rs' finalizer add on an object with finalizers tests the whole list it read, then
/// appends; with a stale list (another writer appended meanwhile) the test fails: 422.
#[test]
fn finalizer_add_with_a_stale_list_is_422() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &["a"]);
        let append = json!([{ "op": "add", "path": "/metadata/finalizers/-", "value": "b" }]);
        assert_eq!(patch(&server, &uri, &append).status, 200);
        let before = stored(&server, &uri);
        let stale = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": ["a"] },
            { "op": "add", "path": "/metadata/finalizers/-", "value": "x" },
        ]);
        let response = patch(&server, &uri, &stale);
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
        assert!(message.contains("/metadata/finalizers"), "{message}");
        assert_eq!(stored(&server, &uri), before);
        let fresh = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": ["a", "b"] },
            { "op": "add", "path": "/metadata/finalizers/-", "value": "x" },
        ]);
        let response = patch(&server, &uri, &fresh);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.value().unwrap()["metadata"]["finalizers"], json!(["a", "b", "x"]));
    });
}

/// kube-rs' finalizer removal: `test` the element at its index, then `remove` it.
#[test]
fn finalizer_removal_tests_then_removes_the_element() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &["x", "y"]);
        let operations = json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": "x" },
            { "op": "remove", "path": "/metadata/finalizers/0" },
        ]);
        let response = patch(&server, &uri, &operations);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.value().unwrap()["metadata"]["finalizers"], json!(["y"]));
        let after: Value = serde_json::from_slice(&stored(&server, &uri)).unwrap();
        assert_eq!(after["metadata"]["finalizers"], json!(["y"]));
    });
}

/// The removal of an object's last finalizer while it is being deleted removes the object.
#[test]
fn removing_the_last_finalizer_of_a_deleted_object_removes_it() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &["x"]);
        let (code, pending) = send(&server, Request::new("DELETE", &uri));
        assert_eq!(code, 200, "{pending}");
        assert!(pending["metadata"]["deletionTimestamp"].is_string(), "{pending}");
        let operations = json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": "x" },
            { "op": "remove", "path": "/metadata/finalizers/0" },
        ]);
        let response = patch(&server, &uri, &operations);
        assert_eq!(response.status, 200, "{response:?}");
        let response = server.handle(&Request::get(&uri));
        assert_eq!(status_of(&response).0, 404);
    });
}

/// A removal whose `test` names a finalizer no longer at that index is 422; nothing changes.
#[test]
fn finalizer_removal_at_a_stale_index_is_422() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &["y", "x"]);
        let before = stored(&server, &uri);
        let operations = json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": "x" },
            { "op": "remove", "path": "/metadata/finalizers/0" },
        ]);
        let response = patch(&server, &uri, &operations);
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
        assert!(message.contains("/metadata/finalizers/0"), "{message}");
        assert_eq!(stored(&server, &uri), before);
    });
}

/// `count` operations that all hold on ConfigMap `a`.
fn tests_of_the_name(count: usize) -> Value {
    Value::Array(vec![json!({ "op": "test", "path": "/metadata/name", "value": "a" }); count])
}

/// Exactly 10,000 operations are allowed.
#[test]
fn ten_thousand_operations_are_allowed() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &[]);
        let response = patch(&server, &uri, &tests_of_the_name(10_000));
        assert_eq!(response.status, 200, "{response:?}");
    });
}

/// More than 10,000 operations is 413 RequestEntityTooLarge, with upstream's message.
#[test]
fn more_than_ten_thousand_operations_is_413() {
    in_sim(|| {
        let server = server();
        let uri = config_map(&server, &[]);
        let before = stored(&server, &uri);
        let response = patch(&server, &uri, &tests_of_the_name(10_001));
        let (code, reason, message) = status_of(&response);
        assert_eq!((code, reason.as_str()), (413, "RequestEntityTooLarge"));
        assert_eq!(
            message, "The allowed maximum operations in a JSON patch is 10000, got 10001",
            "{message}"
        );
        assert_eq!(stored(&server, &uri), before);
    });
}

/// `copy` operations that together copy more than 3 MiB are 422 (upstream arms the json-patch
/// library's `AccumulatedCopySizeLimit` with `JSONPatchMaxCopyBytes`, 3 MiB), so that a small
/// patch cannot grow an object without bound; the object is unchanged.
#[test]
fn copies_of_more_than_three_mib_are_422() {
    let big = "x".repeat(1024 * 1024);
    let operations = json!([
        { "op": "copy", "from": "/spec/big", "path": "/spec/a" },
        { "op": "copy", "from": "/spec/big", "path": "/spec/b" },
        { "op": "copy", "from": "/spec/big", "path": "/spec/c" },
        { "op": "copy", "from": "/spec/big", "path": "/spec/d" },
    ]);
    rfc_failure(json!({ "big": big }), bytes(&operations), 422, "Invalid", "copy");
}

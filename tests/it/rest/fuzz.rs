//! Tests: a fuzz-style suite for the REST layer. A fixed-seed generator (splitmix64) makes
//! 20,000 requests mixing valid traffic (creates in `default`, then GET, LIST, WATCH, PUT, the
//! four PATCH types and DELETE of those objects) with hostile input: malformed and odd paths
//! (empty segments, `..`, percent-escapes, unicode, very long, unknown groups and resources,
//! the wrong scope, missing subresources, too many segments), every method and unknown ones,
//! bad query values and escapes, 100 parameters, garbage selectors, every content type and odd
//! ones, and bodies that are empty, truncated, not objects, 10,000 levels deep, out of range,
//! of the wrong field types, or one byte over the 3 MiB limit. Every answer must be one of the
//! codes the layer uses; a failure must be a well-formed `Status` whose `code` is the status; a
//! success must be JSON, or a watch whose every line is one JSON event ending in `\n`. The
//! server's object count stays bounded, and the same sequence answers the same bytes twice.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use apiserver_fake::rest::{Body, MAX_BODY_BYTES, Request, Response};
use apiserver_fake::{ApiServer, KindInfo, Registry, ServerConfig};
use serde_json::Value;

use super::in_sim;

/// Requests per run.
const REQUESTS: usize = 20_000;

/// The bound on stored objects (the name pools allow far fewer).
const OBJECTS_MAX: usize = 5_000;

/// The status codes the layer answers.
const CODES: [u16; 15] =
    [200, 201, 202, 400, 403, 404, 405, 406, 409, 410, 413, 415, 422, 500, 504];

/// splitmix64: a fixed-seed generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A kind the valid traffic writes: its collection, apiVersion, kind and the body's fields
/// besides `metadata`.
struct Kind {
    collection: &'static str,
    api_version: &'static str,
    kind: &'static str,
    fields: &'static str,
}

const KINDS: [Kind; 10] = [
    Kind {
        collection: "/api/v1/namespaces/default/configmaps",
        api_version: "v1",
        kind: "ConfigMap",
        fields: r#""data":{"k":"v"}"#,
    },
    Kind {
        collection: "/api/v1/namespaces/default/secrets",
        api_version: "v1",
        kind: "Secret",
        fields: r#""type":"Opaque","data":{"k":"djE="}"#,
    },
    Kind {
        collection: "/apis/example.com/v1/namespaces/default/widgets",
        api_version: "example.com/v1",
        kind: "Widget",
        fields: r#""spec":{"size":1,"tags":["a","b"]}"#,
    },
    Kind {
        collection: "/api/v1/namespaces/default/pods",
        api_version: "v1",
        kind: "Pod",
        fields: r#""spec":{"containers":[{"name":"c","image":"busybox"}]}"#,
    },
    Kind {
        collection: "/api/v1/namespaces/default/persistentvolumeclaims",
        api_version: "v1",
        kind: "PersistentVolumeClaim",
        fields: concat!(
            r#""spec":{"accessModes":["ReadWriteOnce"],"#,
            r#""resources":{"requests":{"storage":"1Gi"}}}"#
        ),
    },
    Kind {
        collection: "/apis/apps/v1/namespaces/default/deployments",
        api_version: "apps/v1",
        kind: "Deployment",
        fields: concat!(
            r#""spec":{"replicas":1,"selector":{"matchLabels":{"app":"a"}},"#,
            r#""template":{"metadata":{"labels":{"app":"a"}},"#,
            r#""spec":{"containers":[{"name":"c","image":"i"}]}}}"#
        ),
    },
    Kind {
        collection: "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        fields: r#""spec":{"holderIdentity":"fuzz"}"#,
    },
    Kind {
        collection: "/api/v1/namespaces/fz-ns/configmaps",
        api_version: "v1",
        kind: "ConfigMap",
        fields: r#""data":{"k":"v"}"#,
    },
    Kind { collection: "/api/v1/namespaces", api_version: "v1", kind: "Namespace", fields: "" },
    Kind { collection: "/api/v1/nodes", api_version: "v1", kind: "Node", fields: "" },
];

/// Names of the valid traffic's objects.
const NAMES: usize = 24;

const METHODS: [&str; 24] = [
    "GET", "GET", "GET", "GET", "POST", "POST", "POST", "PUT", "PUT", "PATCH", "PATCH", "PATCH",
    "DELETE", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "", "get", "FOO", "PÖST", "DELETE ",
    "G\0T",
];

const ODD_PATHS: [&str; 52] = [
    "",
    "/",
    "//",
    "///",
    "/api/",
    "/api//v1",
    "/api/v1/",
    "/api/v1/namespaces//configmaps",
    "/api/v1/namespaces/default/configmaps/",
    "/api/v1/namespaces/default//configmaps",
    "/api/v1/../v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/..",
    "/api/v1/namespaces/default/configmaps/.",
    "/api/v1/namespaces/../configmaps",
    "/api/v1/namespaces/default/configmaps/%2e%2e",
    "/api/v1/namespaces/default/configmaps/a%2Fb",
    "/api/v1/namespaces/default/configmaps/%zz",
    "/api/v1/namespaces/default/configmaps/%",
    "/api/v1/namespaces/ünïcødé/configmaps/名前",
    "/api/v1/namespaces/default/configmaps/名前",
    "/api/v1/namespaces/default/configmaps/a\0b",
    "/api/v1/namespaces/default/configmaps/UPPER",
    "/api/v1/namespaces/default/configmaps/a b",
    "/api/v2/namespaces/default/configmaps",
    "/API/V1/configmaps",
    "api/v1/configmaps",
    "/apis/nope.example.com/v1/things",
    "/apis/nope.example.com",
    "/apis/example.com/v2/widgets",
    "/apis/example.com/v1/widgets/fz-1",
    "/apis/example.com/v1/things",
    "/api/v1/namespaces/default/namespaces",
    "/api/v1/namespaces/default/nodes/fz-1",
    "/api/v1/configmaps/fz-1",
    "/api/v1/namespaces/default/configmaps/fz-1/status",
    "/api/v1/namespaces/default/configmaps/fz-1/finalize",
    "/api/v1/namespaces/default/pods/fz-1/log",
    "/api/v1/namespaces/default/pods/fz-1/exec",
    "/api/v1/namespaces/default/deployments/fz-1/scale",
    "/api/v1/namespaces/default/configmaps/a/b/c/d/e/f",
    "/apis/example.com/v1/namespaces/default/widgets/fz-1/status/x",
    "/api/v1/namespaces/default/finalize",
    "/api/v1/namespaces/fz-ns/status/x",
    "/api/v1/namespaces/fz-ns/finalize",
    "/api/v1/namespaces/fz-ns/status",
    "/version",
    "/healthz",
    "/openapi/v2",
    "/apis/apps/v1/deployments",
    "/api/v1/configmaps",
    "/api/v1/watch/configmaps",
    "/api/v1/namespaces/default/configmaps#frag",
];

const DISCOVERY: [&str; 7] = [
    "/api",
    "/api/v1",
    "/apis",
    "/apis/apps",
    "/apis/apps/v1",
    "/apis/example.com",
    "/apis/example.com/v1",
];

const SEGMENTS: [&str; 36] = [
    "api",
    "apis",
    "v1",
    "v2",
    "example.com",
    "apps",
    "namespaces",
    "default",
    "kube-system",
    "configmaps",
    "widgets",
    "pods",
    "nodes",
    "status",
    "finalize",
    "",
    "..",
    ".",
    "%2e%2e",
    "%2F",
    "%zz",
    "%",
    "ünï",
    "名前",
    "fz-1",
    "fz-2",
    "watch",
    "proxy",
    "UPPER",
    "-",
    "a b",
    "\0",
    "?",
    "#",
    "fz-ns",
    "secrets",
];

const SUBRESOURCES: [&str; 9] =
    ["status", "finalize", "scale", "log", "exec", "eviction", "binding", "proxy", "x/y/z"];

const PARAM_NAMES: [&str; 24] = [
    "watch",
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "labelSelector",
    "fieldSelector",
    "timeoutSeconds",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "fieldManager",
    "force",
    "dryRun",
    "propagationPolicy",
    "orphanDependents",
    "gracePeriodSeconds",
    "pretty",
    "fieldValidation",
    "unknown",
    "",
    "%zz",
    "%",
    "wa%74ch",
    "ünï",
];

const PARAM_VALUES: [&str; 40] = [
    "",
    "1",
    "0",
    "true",
    "false",
    "maybe",
    "-1",
    "abc",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "%zz",
    "%",
    "%4",
    "%C3%28",
    "%00",
    "a%3Db",
    "app%3Da",
    "app!%3Da",
    "a+in+(b,c)",
    "a+in+(",
    "!!!",
    "metadata.name%3Dfz-1",
    "metadata.namespace!%3Ddefault",
    "spec.nodeName%3Dx",
    "status.phase%3DRunning",
    "bogus%3D1",
    "%3D%3D",
    "Exact",
    "NotOlderThan",
    "Foreground",
    "Background",
    "Orphan",
    "Sideways",
    "All",
    "ünï",
    "eyJydiI6MX0",
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJmei0xXHUwMDAwIn0",
    "%2B%2B",
    "1e3",
];

const ODD_QUERIES: [&str; 44] = [
    "limit=-1",
    "limit=abc",
    "limit=",
    "limit=99999999999999999999999",
    "watch=maybe",
    "watch=1&watch=maybe",
    "resourceVersion=abc",
    "resourceVersion=-5",
    "resourceVersion=99999999",
    "resourceVersion=99999999&watch=1",
    "resourceVersion=abc&watch=1",
    "resourceVersionMatch=Exact",
    "resourceVersionMatch=NotOlderThan",
    "resourceVersionMatch=Bogus&resourceVersion=1",
    "resourceVersion=0&resourceVersionMatch=Exact",
    "resourceVersion=1&resourceVersionMatch=Exact",
    "continue=garbage",
    "continue=%%%",
    "continue=eyJydiI6MX0",
    "continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJmei0xXHUwMDAwIn0&limit=1",
    "%zz=1",
    "a=%",
    "a=%z",
    "=",
    "&&&",
    "=&=",
    "labelSelector=!!!",
    "labelSelector=a+in+(",
    "labelSelector=a%20notin%20(b",
    "labelSelector=a%3D%3D%3Db",
    "fieldSelector=spec.nodeName%3Dx",
    "fieldSelector=bogus.field%3D1",
    "fieldSelector=metadata.name%3D%3D%3D",
    "fieldSelector=metadata.name",
    "timeoutSeconds=-1",
    "timeoutSeconds=18446744073709551615&watch=1",
    "gracePeriodSeconds=abc",
    "propagationPolicy=Sideways",
    "orphanDependents=maybe",
    "dryRun=All",
    "force=true",
    "force=maybe",
    "sendInitialEvents=true&watch=1",
    "x=%C3%28",
];

const CONTENT_TYPES: [&str; 20] = [
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "garbage",
    "",
    "*/*",
    "application/merge-patch+json",
    "application/merge-patch+json; charset=utf-8",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/apply-patch+yaml; charset=utf-8",
    ";",
    "application/json;;;",
    "ü/ü",
    "application/x-www-form-urlencoded",
];

const ACCEPTS: [&str; 8] = [
    "application/json",
    "application/vnd.kubernetes.protobuf",
    "text/html",
    "*/*",
    "application/json;as=Table;v=v1;g=meta.k8s.io",
    "garbage",
    "application/yaml, application/json;q=0.5",
    ",,,",
];

const ODD_BODIES: [&str; 58] = [
    "{",
    r#"{"metadata":"#,
    r#"{"metadata":{"name":"fz-1""#,
    "[",
    r#""x""#,
    "5",
    "null",
    "true",
    "[]",
    "[1,2]",
    "{}",
    r#"{"metadata":5}"#,
    r#"{"metadata":null}"#,
    r#"{"metadata":{"name":"fz-1","finalizers":"x"}}"#,
    r#"{"metadata":{"name":5}}"#,
    r#"{"metadata":{"name":"fz-1","labels":{"a":5}}}"#,
    r#"{"metadata":{"name":"fz-1","labels":[]}}"#,
    r#"{"metadata":{"name":"fz-1","ownerReferences":"x"}}"#,
    r#"{"metadata":{"name":"fz-1","ownerReferences":[{"uid":5}]}}"#,
    r#"{"metadata":{"name":"fz-1","resourceVersion":5}}"#,
    r#"{"metadata":{"name":"fz-1","resourceVersion":"abc"}}"#,
    r#"{"metadata":{"name":"fz-1","resourceVersion":"1"}}"#,
    r#"{"metadata":{"name":"fz-1","uid":"not-the-uid"}}"#,
    r#"{"metadata":{"name":"fz-1","creationTimestamp":"yesterday"}}"#,
    r#"{"metadata":{"name":"fz-1","deletionTimestamp":"2020-01-01T00:00:00Z"}}"#,
    r#"{"metadata":{"name":"fz-1","generation":1e400}}"#,
    r#"{"metadata":{"name":"fz-1","generation":18446744073709551616}}"#,
    r#"{"metadata":{"name":"fz-1","generation":-1}}"#,
    r#"{"metadata":{"name":"fz-1"},"data":{"k":1e999}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"replicas":-0.0,"size":1.5e308}}"#,
    r#"{"apiVersion":5,"metadata":{"name":"fz-1"}}"#,
    r#"{"kind":[],"metadata":{"name":"fz-1"}}"#,
    r#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"fz-1"}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":"x"}"#,
    r#"{"metadata":{"name":"fz-1"},"status":[1]}"#,
    r#"{"metadata":{"name":"fz-1"},"data":5}"#,
    r#"{"metadata":{"name":""}}"#,
    r#"{"metadata":{"name":"UPPER"}}"#,
    r#"{"metadata":{"name":"a..b"}}"#,
    r#"{"metadata":{"name":"ünï"}}"#,
    r#"{"metadata":{"name":"fz-1","namespace":"elsewhere"}}"#,
    r#"{"metadata":{"generateName":"fz-gen-"}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"resources":{"requests":{"storage":"1e999Ei"}}}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"resources":{"requests":{"storage":"-1Gi"}}}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"resources":{"requests":{"storage":5}}}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"containers":"x"}}"#,
    r#"{"metadata":{"name":"fz-1"},"spec":{"containers":[{"$patch":"delete"}]}}"#,
    r#"{"$patch":"replace"}"#,
    r#"{"$patch":"delete"}"#,
    r#"{"metadata":{"$retainKeys":5}}"#,
    r#"{"metadata":{"$setElementOrder/finalizers":"x"}}"#,
    r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":5}}"#,
    r#"{"propagationPolicy":5}"#,
    r#"{"preconditions":{"uid":"nope"}}"#,
    r#"{"gracePeriodSeconds":"x","orphanDependents":"y"}"#,
    r#"{"dryRun":["All"]}"#,
    "metadata:\n  name: fz-1\n  labels: [1, 2]\n",
    // Aliases expanding to 9^8 scalars.
    concat!(
        "a: &a [x, x, x, x, x, x, x, x, x]\n",
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
        "h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n",
    ),
];

const PATCH_OPS: [&str; 8] = ["add", "remove", "replace", "move", "copy", "test", "bogus", ""];

const PATCH_PATHS: [&str; 16] = [
    "/metadata/labels",
    "/metadata/labels/app",
    "/metadata/finalizers",
    "/metadata/finalizers/0",
    "/metadata/finalizers/-",
    "/metadata/name",
    "/metadata",
    "/data/k",
    "/spec/size",
    "/spec/tags/1",
    "",
    "/",
    "no-slash",
    "/data/~2",
    "/spec/tags/99",
    "/kind",
];

const PATCH_VALUES: [&str; 10] = [
    r#""x""#,
    r#"{"app":"b"}"#,
    r#"["fuzz.kdst.io/hold"]"#,
    "null",
    "5",
    r#""fuzz.kdst.io/hold""#,
    "{}",
    "[]",
    r#""v2""#,
    "1e999",
];

const QUANTITIES: [&str; 12] = [
    "1Gi",
    "10Gi",
    "1e3",
    "-2k",
    "1.5Ti",
    "abc",
    "",
    "99999999999999999999999Ei",
    "0.000000001m",
    "1e-999",
    "+1",
    "１Gi",
];

/// The generator: requests from the seed alone, and from what it kept of the last response
/// (a continue token, the last object written or read) and the server's resourceVersion, which
/// the same sequence reproduces.
struct Fuzz {
    rng: Rng,
    /// The last LIST's continue token.
    continue_token: Option<String>,
    /// The last object answered: its URI and body.
    object: Option<(String, Value)>,
}

/// Percent-encodes all but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    let mut text = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        text.push_str(open);
    }
    text.push_str(inner);
    for _ in 0..depth {
        text.push_str(close);
    }
    text
}

impl Fuzz {
    fn new(seed: u64) -> Self {
        Fuzz { rng: Rng(seed), continue_token: None, object: None }
    }

    /// Keeps what later requests use of a response's body.
    fn observe(&mut self, status: u16, body: &Value) {
        if let Some(token) = body["metadata"]["continue"].as_str().filter(|t| !t.is_empty()) {
            self.continue_token = Some(token.to_string());
        }
        if !(200..300).contains(&status) {
            return;
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (api_version, kind) = (text(&body["apiVersion"]), text(&body["kind"]));
        let (namespace, name) =
            (text(&body["metadata"]["namespace"]), text(&body["metadata"]["name"]));
        let known = KINDS.iter().find(|k| {
            k.api_version == api_version
                && k.kind == kind
                && (namespace.is_empty()
                    || k.collection.contains(&format!("/namespaces/{namespace}/")))
        });
        if let Some(known) = known
            && !name.is_empty()
        {
            self.object = Some((format!("{}/{name}", known.collection), body.clone()));
        }
    }

    /// A request about the last object answered: a PUT of it (with its resourceVersion, which
    /// may have gone stale), a DELETE with its resourceVersion as precondition, a status write.
    fn about_the_last_object(&mut self) -> Option<Request> {
        let (uri, mut object) = self.object.clone()?;
        let label = self.rng.pick(&["a", "b", "c"]);
        object["metadata"]["labels"]["app"] = Value::String(label.to_string());
        let rv = object["metadata"]["resourceVersion"].clone();
        Some(match self.rng.below(4) {
            0 | 1 => Request::new("PUT", &uri).with_json(&object),
            2 => {
                let options = serde_json::json!({ "preconditions": { "resourceVersion": rv } });
                Request::new("DELETE", &uri).with_json(&options)
            }
            _ => {
                object["status"] = serde_json::json!({ "phase": label });
                Request::new("PUT", &format!("{uri}/status")).with_json(&object)
            }
        })
    }

    fn name(&mut self) -> String {
        format!("fz-{}", self.rng.below(NAMES))
    }

    /// A valid object body of `kind` named `name`.
    fn object(&mut self, kind: &Kind, name: &str) -> String {
        let label = self.rng.pick(&["a", "b", "c"]);
        let finalizers =
            if self.rng.one_in(10) { r#","finalizers":["fuzz.kdst.io/hold"]"# } else { "" };
        let head = if self.rng.one_in(2) {
            format!(r#""apiVersion":"{}","kind":"{}","#, kind.api_version, kind.kind)
        } else {
            String::new()
        };
        let name_field = if self.rng.one_in(20) {
            r#""generateName":"fz-gen-""#.to_string()
        } else {
            format!(r#""name":"{name}""#)
        };
        let fields = if kind.kind == "PersistentVolumeClaim" {
            let quantity = self.rng.pick(&QUANTITIES);
            let spec = r#""accessModes":["ReadWriteOnce"],"resources":{"requests":"#;
            format!(r#","spec":{{{spec}{{"storage":"{quantity}"}}}}}}"#)
        } else if kind.fields.is_empty() {
            String::new()
        } else {
            format!(",{}", kind.fields)
        };
        let meta = format!(r#"{name_field},"labels":{{"app":"{label}"}}{finalizers}"#);
        format!(r#"{{{head}"metadata":{{{meta}}}{fields}}}"#)
    }

    /// The object as YAML.
    fn yaml_object(&mut self, kind: &Kind, name: &str) -> String {
        let mut text = format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: {name}\n  labels:\n    app: y\n",
            kind.api_version, kind.kind
        );
        match kind.kind {
            "ConfigMap" => text.push_str("data:\n  k: from-yaml\n"),
            "Widget" => text.push_str("spec:\n  size: 2\n"),
            _ => {}
        }
        text
    }

    /// A random JSON patch of 1 to 4 operations.
    fn json_patch(&mut self) -> String {
        let count = 1 + self.rng.below(4);
        let ops: Vec<String> = (0..count)
            .map(|_| {
                let op = self.rng.pick(&PATCH_OPS);
                let path = self.rng.pick(&PATCH_PATHS);
                let value = self.rng.pick(&PATCH_VALUES);
                match op {
                    // Leaves only: a copy of a parent into its child would double the object.
                    "move" | "copy" => {
                        let from = self.rng.pick(&["/metadata/name", "/data/k", "/spec/size"]);
                        format!(r#"{{"op":"{op}","from":"{from}","path":"{path}"}}"#)
                    }
                    "remove" => format!(r#"{{"op":"remove","path":"{path}"}}"#),
                    _ => format!(r#"{{"op":"{op}","path":"{path}","value":{value}}}"#),
                }
            })
            .collect();
        format!("[{}]", ops.join(","))
    }

    /// A valid-looking patch: (content type, body, query).
    fn patch(&mut self, kind: &Kind, name: &str) -> (&'static str, String, String) {
        let body = |text: &str| text.to_string();
        match self.rng.below(9) {
            0 => (
                "application/merge-patch+json",
                body(r#"{"metadata":{"labels":{"app":"m"}}}"#),
                String::new(),
            ),
            1 => (
                "application/merge-patch+json",
                body(r#"{"metadata":{"finalizers":null}}"#),
                String::new(),
            ),
            2 => (
                "application/merge-patch+json",
                body(r#"{"data":{"k":"m"},"spec":{"size":3}}"#),
                String::new(),
            ),
            3 => {
                let quantity = self.rng.pick(&QUANTITIES);
                let text = format!(
                    r#"{{"spec":{{"resources":{{"requests":{{"storage":"{quantity}"}}}}}}}}"#
                );
                ("application/merge-patch+json", text, String::new())
            }
            4 => (
                "application/json-patch+json",
                body(concat!(
                    r#"[{"op":"test","path":"/metadata/finalizers","value":null},"#,
                    r#"{"op":"add","path":"/metadata/finalizers","#,
                    r#""value":["fuzz.kdst.io/hold"]}]"#
                )),
                String::new(),
            ),
            5 => ("application/json-patch+json", self.json_patch(), String::new()),
            6 => (
                "application/strategic-merge-patch+json",
                body(concat!(
                    r#"{"metadata":{"labels":{"s":"1"},"#,
                    r#""$deleteFromPrimitiveList/finalizers":["fuzz.kdst.io/hold"]}}"#
                )),
                String::new(),
            ),
            7 => (
                "application/strategic-merge-patch+json",
                body(r#"{"metadata":{"finalizers":[]}}"#),
                String::new(),
            ),
            _ => {
                let query = if self.rng.one_in(3) {
                    "fieldManager=fuzz&force=true"
                } else {
                    "fieldManager=fuzz"
                };
                ("application/apply-patch+yaml", self.yaml_object(kind, name), query.to_string())
            }
        }
    }

    /// A valid LIST or WATCH query.
    fn list_query(&mut self, rv: u64, watch: bool) -> String {
        let mut query = match self.rng.below(10) {
            0 => String::new(),
            1 => format!("limit={}", 1 + self.rng.below(5)),
            2 => "labelSelector=app%3Da".to_string(),
            3 => "labelSelector=app+in+(a,b),!missing".to_string(),
            4 => format!("fieldSelector=metadata.name%3Dfz-{}", self.rng.below(NAMES)),
            5 => "resourceVersion=0".to_string(),
            8 | 9 if !watch && self.continue_token.is_some() => {
                let mut token = self.continue_token.clone().unwrap_or_default();
                if self.rng.one_in(4) {
                    // A corrupted token.
                    let at = self.rng.below(token.len());
                    token.replace_range(at..=at, "_");
                }
                format!("limit={}&continue={}", 1 + self.rng.below(3), encode(&token))
            }
            6 if watch => {
                format!("resourceVersion={}", rv.saturating_sub(self.rng.below(2_000) as u64))
            }
            6 => {
                let at = rv.saturating_sub(self.rng.below(2_000) as u64).max(1);
                format!("resourceVersion={at}&resourceVersionMatch=Exact")
            }
            _ if watch => {
                "allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                    .to_string()
            }
            // Ahead of the server: 504 (too large resource version).
            _ if self.rng.one_in(4) => format!("resourceVersion={}", rv + 1_000),
            _ => format!(
                "resourceVersion={}&resourceVersionMatch=NotOlderThan",
                rv.saturating_sub(3)
            ),
        };
        if watch {
            let sep = if query.is_empty() { "" } else { "&" };
            query = format!("watch=1&timeoutSeconds=5{sep}{query}");
        }
        query
    }

    /// DELETE's query and body.
    fn delete_options(&mut self) -> (String, String) {
        let query = self.rng.pick(&[
            "",
            "",
            "propagationPolicy=Foreground",
            "propagationPolicy=Background",
            "propagationPolicy=Orphan",
            "orphanDependents=false",
            "gracePeriodSeconds=0",
        ]);
        let body = self.rng.pick(&[
            "",
            "",
            r#"{"propagationPolicy":"Background"}"#,
            r#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}"#,
            r#"{"preconditions":{"uid":"nope"}}"#,
        ]);
        (query.to_string(), body.to_string())
    }

    /// A request of the valid traffic.
    fn valid(&mut self, rv: u64) -> Request {
        let kind = &KINDS[self.rng.below(KINDS.len())];
        let name = if kind.kind == "Namespace" {
            self.rng.pick(&["fz-ns", "fz-1", "fz-2"]).to_string()
        } else {
            self.name()
        };
        let item = format!("{}/{name}", kind.collection);
        let with_query = |path: &str, query: &str| {
            if query.is_empty() { path.to_string() } else { format!("{path}?{query}") }
        };
        if self.rng.one_in(8)
            && let Some(request) = self.about_the_last_object()
        {
            return request;
        }
        match self.rng.below(13) {
            0..=2 => {
                let body = self.object(kind, &name);
                Request::new("POST", kind.collection).with_body("application/json", body)
            }
            3 => {
                let body = self.yaml_object(kind, &name);
                Request::new("POST", kind.collection).with_body("application/yaml", body)
            }
            4 | 5 => Request::get(&item),
            6 => {
                let query = self.list_query(rv, false);
                Request::get(&with_query(kind.collection, &query))
            }
            7 => {
                let query = self.list_query(rv, true);
                Request::get(&with_query(kind.collection, &query))
            }
            8 | 9 => {
                let (content_type, body, query) = self.patch(kind, &name);
                let subresource =
                    if kind.kind == "Widget" && self.rng.one_in(4) { "/status" } else { "" };
                Request::new("PATCH", &with_query(&format!("{item}{subresource}"), &query))
                    .with_body(content_type, body)
                    .with_user_agent("fuzz/v1")
            }
            10 => {
                let body = self
                    .object(kind, &name)
                    .replace(r#""generateName":"fz-gen-""#, &format!(r#""name":"{name}""#));
                Request::new("PUT", &item).with_body("application/json", body)
            }
            _ => {
                let (query, body) = self.delete_options();
                let request = Request::new("DELETE", &with_query(&item, &query));
                if body.is_empty() { request } else { request.with_body("application/json", body) }
            }
        }
    }

    fn path(&mut self) -> String {
        match self.rng.below(20) {
            0..=5 => {
                let kind = &KINDS[self.rng.below(KINDS.len())];
                match self.rng.below(3) {
                    0 => kind.collection.to_string(),
                    1 => format!("{}/{}", kind.collection, self.name()),
                    _ => {
                        let sub = self.rng.pick(&SUBRESOURCES);
                        format!("{}/{}/{sub}", kind.collection, self.name())
                    }
                }
            }
            6..=11 => self.rng.pick(&ODD_PATHS).to_string(),
            12 | 13 => self.rng.pick(&DISCOVERY).to_string(),
            14..=18 => {
                let count = self.rng.below(13);
                let segments: Vec<&str> = (0..count).map(|_| self.rng.pick(&SEGMENTS)).collect();
                let lead = if self.rng.one_in(10) { "" } else { "/" };
                format!("{lead}{}", segments.join("/"))
            }
            _ => match self.rng.below(3) {
                0 => format!("/api/v1/namespaces/default/configmaps/{}", "x".repeat(70_000)),
                1 => "/a".repeat(5_000),
                _ => format!("/api/v1/namespaces/{}/configmaps", "ü".repeat(1_000)),
            },
        }
    }

    fn query(&mut self, rv: u64) -> String {
        match self.rng.below(20) {
            0..=6 => String::new(),
            7..=9 => {
                let watch = self.rng.one_in(3);
                self.list_query(rv, watch)
            }
            10..=15 => self.rng.pick(&ODD_QUERIES).to_string(),
            16..=18 => {
                let count = 1 + self.rng.below(6);
                let pairs: Vec<String> = (0..count)
                    .map(|_| {
                        let name = self.rng.pick(&PARAM_NAMES);
                        let value = self.rng.pick(&PARAM_VALUES);
                        if self.rng.one_in(8) {
                            name.to_string()
                        } else {
                            format!("{name}={value}")
                        }
                    })
                    .collect();
                pairs.join("&")
            }
            _ => match self.rng.below(3) {
                0 => (0..100).map(|i| format!("p{i}={i}")).collect::<Vec<_>>().join("&"),
                1 => vec!["limit=1"; 100].join("&"),
                _ => format!("labelSelector={}", "a".repeat(20_000)),
            },
        }
    }

    fn body(&mut self) -> Vec<u8> {
        let kind = &KINDS[self.rng.below(KINDS.len())];
        match self.rng.below(40) {
            0..=5 => Vec::new(),
            6..=13 => {
                let name = self.name();
                self.object(kind, &name).into_bytes()
            }
            14..=16 => {
                let name = self.name();
                self.patch(kind, &name).1.into_bytes()
            }
            17..=30 => self.rng.pick(&ODD_BODIES).as_bytes().to_vec(),
            31 => {
                // Truncated JSON.
                let name = self.name();
                let text = self.object(kind, &name);
                let cut = self.rng.below(text.len());
                text.as_bytes()[..cut].to_vec()
            }
            32 => (0..self.rng.below(64)).map(|_| self.rng.next() as u8).collect(),
            33 => match self.rng.below(4) {
                0 => nested("[", "", "]", 10_000).into_bytes(),
                1 => nested(r#"{"a":"#, "1", "}", 10_000).into_bytes(),
                2 => {
                    let deep = nested("[", "", "]", 10_000);
                    format!(r#"{{"metadata":{{"name":"fz-deep"}},"spec":{deep}}}"#).into_bytes()
                }
                _ => nested("- ", "x", "", 1).into_bytes(),
            },
            34 => {
                // Deep but under the decoders' limits: stored.
                let deep = nested(r#"{"a":"#, "1", "}", 100);
                format!(r#"{{"metadata":{{"name":"fz-deep"}},"spec":{deep}}}"#).into_bytes()
            }
            35 => nested("[", "", "]", 10_000).replace("[]", "[\"x\"]").into_bytes(),
            36 => {
                // YAML flow collections 10,000 deep.
                nested("{a: ", "1", "}", 10_000).into_bytes()
            }
            37 if self.rng.one_in(20) => {
                // One byte over the limit.
                let mut body = vec![b' '; MAX_BODY_BYTES + 1];
                body[0] = b'{';
                body[MAX_BODY_BYTES] = b'}';
                body
            }
            37 if self.rng.one_in(20) => {
                // Exactly the limit: a valid object padded with spaces.
                let mut body = br#"{"metadata":{"name":"fz-big"}}"#.to_vec();
                body.resize(MAX_BODY_BYTES, b' ');
                body
            }
            37 if self.rng.one_in(10) => {
                // More than 10,000 JSON patch operations.
                let op = r#"{"op":"test","path":"/metadata/name","value":"fz-1"}"#;
                format!("[{}]", vec![op; 10_001].join(",")).into_bytes()
            }
            37 => {
                let name = self.name();
                let huge = "h".repeat(256 * 1024);
                format!(r#"{{"metadata":{{"name":"{name}"}},"data":{{"k":"{huge}"}}}}"#)
                    .into_bytes()
            }
            38 => {
                let huge = "n".repeat(70_000);
                let field = self.rng.pick(&["name", "generateName", "namespace"]);
                format!(r#"{{"metadata":{{"{field}":"{huge}","labels":{{"{huge}":"{huge}"}}}}}}"#)
                    .into_bytes()
            }
            _ => {
                let name = self.name();
                let mut body = self.object(kind, &name).into_bytes();
                let at = self.rng.below(body.len());
                body[at] = self.rng.pick(&["\u{0}", "\u{ff}", "\"", "}", "\\"]).as_bytes()[0];
                body
            }
        }
    }

    /// A request of hostile input (with valid parts mixed in).
    fn odd(&mut self, rv: u64) -> Request {
        let method = self.rng.pick(&METHODS);
        let path = self.path();
        let query = self.query(rv);
        let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
        let content_type = self.rng.pick(&CONTENT_TYPES);
        let body = self.body();
        let mut request = Request::new(method, &uri).with_body(content_type, body);
        if self.rng.one_in(15) {
            request = request.with_accept(self.rng.pick(&ACCEPTS));
        }
        if self.rng.one_in(10) {
            request =
                request.with_user_agent(self.rng.pick(&["", "/", "kubectl/v1.30", "ü", "a/b/c"]));
        }
        request
    }

    fn request(&mut self, rv: u64) -> Request {
        if self.rng.below(100) < 45 { self.valid(rv) } else { self.odd(rv) }
    }
}

/// FNV-1a, 64 bits.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for byte in bytes {
        *hash ^= u64::from(*byte);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
}

/// The request for messages: its line, shortened.
fn describe(step: usize, request: &Request) -> String {
    let line: String = request.line().chars().take(200).collect();
    let body: String = String::from_utf8_lossy(&request.body).chars().take(200).collect();
    format!(
        "step {step}: {line} ({:?}, {} body bytes: {body:?})",
        request.content_type,
        request.body.len()
    )
}

/// Checks a failure body: a `Status` with `code` equal to the status.
fn check_status(what: &str, status: u16, body: &Value) {
    assert_eq!(body["kind"], "Status", "{what}: {body}");
    assert_eq!(body["apiVersion"], "v1", "{what}: {body}");
    assert_eq!(body["status"], "Failure", "{what}: {body}");
    assert_eq!(body["code"], status, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: an empty message: {body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{what}: an empty reason: {body}");
}

/// What one checked response leaves.
struct Checked {
    /// The hash of its status, headers and body bytes (or watch lines).
    hash: u64,
    /// The body, unless it was a watch.
    body: Option<Value>,
    /// The watch's lines, and how many were ERROR events.
    lines: usize,
    errors: usize,
}

/// Checks one response.
fn check(what: &str, request: &Request, response: Response) -> Checked {
    let mut hash = 0xCBF2_9CE4_8422_2325;
    let status = response.status;
    assert!(CODES.contains(&status), "{what}: status {status}: {response:?}");
    fnv(&mut hash, &status.to_le_bytes());
    for (name, value) in &response.headers {
        fnv(&mut hash, name.as_bytes());
        fnv(&mut hash, value.as_bytes());
    }
    let content_type = response.headers.iter().find(|(name, _)| name == "Content-Type");
    assert_eq!(content_type.map(|(_, v)| v.as_str()), Some("application/json"), "{what}");
    match response.body {
        Body::Full(bytes) => {
            fnv(&mut hash, &bytes);
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                panic!("{what}: status {status}: a body that is not JSON ({error}): {text}")
            });
            if (200..300).contains(&status) {
                let kind = body["kind"].as_str().unwrap_or_default();
                assert!(!kind.is_empty(), "{what}: a success without a kind: {body}");
            } else {
                check_status(what, status, &body);
            }
            let method = request.method.as_str();
            match status {
                201 => {
                    assert!(matches!(method, "POST" | "PATCH"), "{what}: 201 for a {method}");
                    let meta = &body["metadata"];
                    for field in ["name", "uid", "resourceVersion", "creationTimestamp"] {
                        let value = meta[field].as_str().unwrap_or_default();
                        assert!(!value.is_empty(), "{what}: created without {field}: {body}");
                    }
                }
                202 => assert_eq!(method, "DELETE", "{what}: 202 for a {method}"),
                _ => {}
            }
            Checked { hash, body: Some(body), lines: 0, errors: 0 }
        }
        Body::Watch(stream) => {
            let mut stream = *stream;
            assert_eq!(status, 200, "{what}: a watch that is not 200");
            assert_eq!(request.method, "GET", "{what}: a watch for a {}", request.method);
            let (mut lines, mut errors) = (0, 0);
            while let Some(line) = stream.try_next_line() {
                fnv(&mut hash, &line);
                lines += 1;
                assert!(lines < 100_000, "{what}: a watch that does not stop");
                let (last, text) = line.split_last().expect("a line is not empty");
                assert_eq!(*last, b'\n', "{what}: a line without its newline");
                assert!(!text.contains(&b'\n'), "{what}: two lines in one");
                let event: Value = serde_json::from_slice(text).unwrap_or_else(|error| {
                    panic!("{what}: a watch line that is not JSON ({error})")
                });
                let event_type = event["type"].as_str().unwrap_or_default();
                let known = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"];
                assert!(known.contains(&event_type), "{what}: event type {event_type:?}");
                assert!(event["object"].is_object(), "{what}: {event}");
                if event_type == "ERROR" {
                    errors += 1;
                    let code = event["object"]["code"].as_u64().unwrap_or_default() as u16;
                    check_status(what, code, &event["object"]);
                    assert!(stream.is_ended(), "{what}: the stream goes on after an ERROR");
                }
            }
            stream.stop();
            Checked { hash, body: None, lines, errors }
        }
    }
}

/// What a run answered.
#[derive(Default)]
struct Run {
    /// The hash of each response, in order.
    hashes: Vec<u64>,
    /// How many responses had each status.
    codes: BTreeMap<u16, usize>,
    /// Watch responses, their lines, and the ERROR lines among them.
    watches: usize,
    lines: usize,
    errors: usize,
}

/// Runs `count` generated requests against a fresh server, checking every response.
fn run(seed: u64, count: usize) -> Run {
    let result = Rc::new(RefCell::new(Run::default()));
    let out = result.clone();
    in_sim(move || {
        // A short history, so that old resourceVersions and continue tokens expire (410).
        let config = ServerConfig::default().with_history_max(1_000);
        let server = ApiServer::new(Registry::builtin(), config);
        server.register(KindInfo::custom("example.com/v1", "Widget", "widgets", true));
        let mut fuzz = Fuzz::new(seed);
        let mut run = Run::default();
        for step in 0..count {
            let request = fuzz.request(server.resource_version());
            let what = describe(step, &request);
            let response = catch_unwind(AssertUnwindSafe(|| server.handle(&request)))
                .unwrap_or_else(|_| panic!("{what}: the server panicked"));
            let status = response.status;
            let checked = check(&what, &request, response);
            run.hashes.push(checked.hash);
            *run.codes.entry(status).or_default() += 1;
            match &checked.body {
                Some(body) => fuzz.observe(status, body),
                None => run.watches += 1,
            }
            run.lines += checked.lines;
            run.errors += checked.errors;
            assert!(server.len() < OBJECTS_MAX, "{what}: {} objects", server.len());
        }
        *out.borrow_mut() = run;
    });
    result.take()
}

/// 20,000 generated requests: every answer is a known code, every failure a `Status` of that
/// code, every success JSON or a watch of JSON lines; no panic; bounded objects. The sequence
/// reaches every code but 500, and watches that replay history and that expire (410 ERROR).
#[test]
fn generated_requests_answer_well_formed_responses() {
    let run = run(0x6b64_7374, REQUESTS);
    assert_eq!(run.hashes.len(), REQUESTS);
    let reached: Vec<u16> = run.codes.keys().copied().collect();
    let expected: Vec<u16> = CODES.iter().copied().filter(|&code| code != 500).collect();
    assert_eq!(reached, expected, "{:?}", run.codes);
    assert!(run.watches > 100 && run.lines > 1_000, "{} watches, {} lines", run.watches, run.lines);
    assert!(run.errors > 0, "no watch ended in an ERROR event");
    // The valid traffic made objects, and the hostile input did not all fail alike.
    let distinct: BTreeSet<u64> = run.hashes.iter().copied().collect();
    assert!(distinct.len() > REQUESTS / 10, "{} distinct responses", distinct.len());
}

/// The same generated sequence, run twice, answers the same bytes in the same order.
#[test]
fn the_same_sequence_answers_the_same_bytes() {
    let first = run(7, REQUESTS).hashes;
    let second = run(7, REQUESTS).hashes;
    assert_eq!(first.len(), REQUESTS);
    assert_eq!(second.len(), REQUESTS);
    let diverged = first.iter().zip(&second).position(|(a, b)| a != b);
    assert_eq!(diverged, None, "the runs diverge at step {diverged:?}");
}

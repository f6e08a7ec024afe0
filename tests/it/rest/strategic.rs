//! Tests: strategic merge patch.
//!
//! The expected results are those of upstream's `strategicpatch.StrategicMergePatch` for the kind,
//! except where a test says otherwise. Note that, as upstream, the elements a patch adds to a
//! merged list land before the original's elements unless `$setElementOrder` says otherwise.

use apiserver_fake::rest::{StrategicMergeError, strategic_merge_patch};
use serde_json::{Value, json};

fn apply(original: &Value, patch: Value) -> Value {
    let (api_version, kind) = (original["apiVersion"].as_str(), original["kind"].as_str());
    strategic_merge_patch(original, &patch, api_version.unwrap(), kind.unwrap())
        .unwrap_or_else(|e| panic!("patch {patch} failed: {e}"))
}

fn apply_err(original: &Value, patch: Value) -> String {
    let (api_version, kind) = (original["apiVersion"].as_str(), original["kind"].as_str());
    match strategic_merge_patch(original, &patch, api_version.unwrap(), kind.unwrap()) {
        Ok(v) => panic!("patch {patch} succeeded with {v}"),
        Err(StrategicMergeError { message }) => message,
    }
}

/// A pod with two containers and one volume.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
        "spec": {
            "containers": [
                {
                    "name": "app", "image": "app:1", "args": ["--a", "--b"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]
                },
                {"name": "sidecar", "image": "proxy:1"}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    })
}

#[test]
fn containers_merge_by_name_leaving_the_others_alone() {
    let patched =
        apply(&pod(), json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}}));
    assert_eq!(
        patched,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "containers": [
                    {
                        "name": "app", "image": "app:2", "args": ["--a", "--b"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]
                    },
                    {"name": "sidecar", "image": "proxy:1"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }
        })
    );
}

#[test]
fn a_new_container_is_added_before_the_untouched_ones() {
    let patched =
        apply(&pod(), json!({"spec": {"containers": [{"name": "debug", "image": "busybox"}]}}));
    let names: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debug", "app", "sidecar"]);
    assert_eq!(patched["spec"]["containers"][0], json!({"name": "debug", "image": "busybox"}));
    assert_eq!(patched["spec"]["containers"][1], pod()["spec"]["containers"][0]);
    // A new element after a patched one follows it: server-only elements come after both.
    let patched = apply(
        &pod(),
        json!({"spec": {"containers": [{"name": "app", "image": "app:2"}, {"name": "debug"}]}}),
    );
    let names: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "debug", "sidecar"]);
}

#[test]
fn env_merges_by_name_inside_a_container() {
    let patched = apply(
        &pod(),
        json!({"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]}}),
    );
    assert_eq!(
        patched["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(patched["spec"]["containers"][1], json!({"name": "sidecar", "image": "proxy:1"}));
}

#[test]
fn patch_delete_removes_a_container() {
    let patched =
        apply(&pod(), json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}));
    assert_eq!(patched["spec"]["containers"], json!([pod()["spec"]["containers"][0]]));
    // Deleting an element that is not there changes nothing.
    let patched =
        apply(&pod(), json!({"spec": {"containers": [{"name": "nope", "$patch": "delete"}]}}));
    assert_eq!(patched, pod());
}

#[test]
fn patch_replace_replaces_a_map() {
    let patched =
        apply(&pod(), json!({"metadata": {"labels": {"$patch": "replace", "app": "api"}}}));
    assert_eq!(patched["metadata"]["labels"], json!({"app": "api"}));
    assert_eq!(patched["metadata"]["name"], "web");
}

#[test]
fn patch_replace_replaces_a_list() {
    let patched = apply(
        &pod(),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}),
    );
    assert_eq!(patched["spec"]["containers"], json!([{"name": "only", "image": "x"}]));
    assert_eq!(patched["spec"]["volumes"], pod()["spec"]["volumes"]);
}

#[test]
fn patch_delete_in_a_map_empties_it() {
    let patched = apply(&pod(), json!({"metadata": {"labels": {"$patch": "delete"}}}));
    assert_eq!(patched["metadata"], json!({"name": "web", "namespace": "default", "labels": {}}));
    // On a field the original lacks, it adds nothing.
    let patched = apply(&pod(), json!({"metadata": {"annotations": {"$patch": "delete"}}}));
    assert_eq!(patched, pod());
}

#[test]
fn owner_references_merge_by_uid() {
    let mut original = pod();
    original["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}
    ]);
    let patched = apply(
        &original,
        json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": null, "blockOwnerDeletion": true},
            {"uid": "u2", "apiVersion": "v1", "kind": "ConfigMap", "name": "cm"}
        ]}}),
    );
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "blockOwnerDeletion": true},
            {"uid": "u2", "apiVersion": "v1", "kind": "ConfigMap", "name": "cm"}
        ])
    );
}

#[test]
fn finalizers_merge_as_an_ordered_set() {
    let mut original = pod();
    original["metadata"]["finalizers"] = json!(["a/x", "b/y"]);
    let patched = apply(&original, json!({"metadata": {"finalizers": ["b/y", "c/z"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["a/x", "b/y", "c/z"]));
    // Only new values: upstream puts them first.
    let patched = apply(&original, json!({"metadata": {"finalizers": ["c/z", "a/x"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["c/z", "a/x", "b/y"]));
    let patched = apply(&original, json!({"metadata": {"finalizers": ["c/z"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["c/z", "a/x", "b/y"]));
    // On an object without finalizers the patch's list is taken.
    let patched = apply(&pod(), json!({"metadata": {"finalizers": ["c/z"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["c/z"]));
}

#[test]
fn delete_from_primitive_list_removes_finalizers() {
    let mut original = pod();
    original["metadata"]["finalizers"] = json!(["a/x", "b/y", "c/z"]);
    let patched = apply(
        &original,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b/y", "q/q"]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["a/x", "c/z"]));
    // With an addition in the same patch, and as kubectl sends it, with $setElementOrder.
    let patched = apply(
        &original,
        json!({"metadata": {
            "$setElementOrder/finalizers": ["c/z", "a/x", "d/w"],
            "$deleteFromPrimitiveList/finalizers": ["b/y"],
            "finalizers": ["d/w"]
        }}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["c/z", "a/x", "d/w"]));
    // On a list the original lacks it does nothing.
    let patched =
        apply(&pod(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}}));
    assert_eq!(patched, pod());
}

#[test]
fn set_element_order_orders_containers() {
    let patched = apply(
        &pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "debug"}, {"name": "app"}],
            "containers": [{"name": "debug", "image": "busybox"}]
        }}),
    );
    assert_eq!(
        patched["spec"]["containers"],
        json!([
            {"name": "sidecar", "image": "proxy:1"},
            {"name": "debug", "image": "busybox"},
            pod()["spec"]["containers"][0]
        ])
    );
    // Elements the order list leaves out keep their place relative to the original's.
    let patched = apply(
        &pod(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "debug"}], "containers": [{"name": "debug"}]}}),
    );
    let names: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debug", "app", "sidecar"]);
}

#[test]
fn a_kubectl_apply_patch_keeps_server_only_containers_in_place() {
    // The live pod has `keep`, which the applied config never had; the config replaced `old`
    // with `new`. Upstream sorts by the live list as `mergeSlice` left it, so `keep` stays first.
    let mut original = pod();
    original["spec"]["containers"] =
        json!([{"name": "old", "image": "o"}, {"name": "keep", "image": "k"}]);
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "new"}],
        "containers": [{"name": "new", "image": "n"}, {"$patch": "delete", "name": "old"}]
    }});
    let patched = apply(&original, patch);
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "keep", "image": "k"}, {"name": "new", "image": "n"}])
    );
    // Without $setElementOrder the new container goes first.
    let patch = json!({"spec": {"containers": [{"name": "new", "image": "n"}, {"$patch": "delete", "name": "old"}]}});
    let patched = apply(&original, patch);
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "new", "image": "n"}, {"name": "keep", "image": "k"}])
    );
}

#[test]
fn pod_spec_lists_merge_by_their_keys() {
    let mut original = pod();
    original["spec"]["imagePullSecrets"] = json!([{"name": "reg"}]);
    original["spec"]["hostAliases"] = json!([{"ip": "10.0.0.1", "hostnames": ["a"]}]);
    original["spec"]["initContainers"] = json!([
        {"name": "init", "volumeMounts": [{"mountPath": "/data", "name": "data"}]}
    ]);
    let patched = apply(
        &original,
        json!({"spec": {
            "imagePullSecrets": [{"name": "reg"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
            "initContainers": [{"name": "init", "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}],
            "volumes": [{"name": "cache", "emptyDir": {}}]
        }}),
    );
    assert_eq!(patched["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
    assert_eq!(patched["spec"]["hostAliases"], json!([{"ip": "10.0.0.1", "hostnames": ["b"]}]));
    assert_eq!(
        patched["spec"]["initContainers"],
        json!([{"name": "init", "volumeMounts": [{"mountPath": "/data", "name": "data", "readOnly": true}]}])
    );
    assert_eq!(
        patched["spec"]["volumes"],
        json!([{"name": "cache", "emptyDir": {}}, {"name": "data", "emptyDir": {}}])
    );
}

#[test]
fn set_element_order_must_agree_with_the_patch_list() {
    let message = apply_err(
        &pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "s"}, {"name": "app", "image": "a"}]
        }}),
    );
    assert!(message.contains("doesn't match $setElementOrder list"), "{message}");
}

#[test]
fn retain_keys_clears_a_volumes_other_source() {
    let patched = apply(
        &pod(),
        json!({"spec": {"volumes": [
            {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/srv"}}
        ]}}),
    );
    assert_eq!(patched["spec"]["volumes"], json!([{"name": "data", "hostPath": {"path": "/srv"}}]));
    // A field the patch sets but does not retain is an error.
    let message = apply_err(
        &pod(),
        json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["name"], "hostPath": {"path": "/srv"}}]}}),
    );
    assert!(message.starts_with("invalid patch format of retainKeys"), "{message}");
}

#[test]
fn deployment_template_containers_merge_by_name() {
    let spec = pod()["spec"].clone();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}
    });
    let patched = apply(
        &deployment,
        json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"}]}}}}),
    );
    let mut expected = deployment.clone();
    expected["spec"]["replicas"] = json!(3);
    expected["spec"]["template"]["spec"]["containers"][1]["image"] = json!("proxy:2");
    assert_eq!(patched, expected);
}

#[test]
fn cron_job_template_containers_merge_by_name() {
    let spec = pod()["spec"].clone();
    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": spec}}}}
    });
    let patched = apply(
        &cron_job,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:9"}]}}}}}}),
    );
    let mut expected = cron_job.clone();
    expected["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("app:9");
    assert_eq!(patched, expected);
}

#[test]
fn atomic_lists_are_replaced() {
    let patched =
        apply(&pod(), json!({"spec": {"containers": [{"name": "app", "args": ["--c"]}]}}));
    assert_eq!(patched["spec"]["containers"][0]["args"], json!(["--c"]));
    assert_eq!(patched["spec"]["containers"][0]["env"], pod()["spec"]["containers"][0]["env"]);
    // A list of maps without a merge key is atomic too (tolerations).
    let mut original = pod();
    original["spec"]["tolerations"] = json!([{"key": "a", "operator": "Exists"}]);
    let patched =
        apply(&original, json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}));
    assert_eq!(patched["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
}

#[test]
fn null_deletes_a_key() {
    let patched = apply(
        &pod(),
        json!({"metadata": {"labels": {"tier": null}}, "spec": {"volumes": null, "containers": [{"name": "app", "args": null}]}}),
    );
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
    assert!(patched["spec"].get("volumes").is_none());
    assert!(patched["spec"]["containers"][0].get("args").is_none());
    // Null for a key the original lacks adds nothing.
    let patched = apply(&pod(), json!({"metadata": {"annotations": null}}));
    assert_eq!(patched, pod());
}

#[test]
fn labels_and_annotations_merge_key_by_key() {
    let patched = apply(
        &pod(),
        json!({"metadata": {"labels": {"tier": "be", "track": "canary"}, "annotations": {"note": "hi"}}}),
    );
    assert_eq!(
        patched["metadata"],
        json!({
            "name": "web", "namespace": "default",
            "labels": {"app": "web", "tier": "be", "track": "canary"},
            "annotations": {"note": "hi"}
        })
    );
}

#[test]
fn service_ports_merge_by_port() {
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443}
        ]}
    });
    let patched = apply(&service, json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}));
    assert_eq!(
        patched["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 9443}])
    );
    assert_eq!(patched["spec"]["selector"], json!({"app": "web"}));
}

#[test]
fn status_conditions_merge_by_type() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False"}
        ]}
    });
    let patched =
        apply(&node, json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "False", "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False"}
        ])
    );
    let mut original = pod();
    original["status"] =
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]});
    let patched = apply(
        &original,
        json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        patched["status"],
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}
        ]})
    );
}

#[test]
fn workload_and_other_status_conditions_merge_by_type() {
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
        ("v1", "Namespace"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Service"),
    ] {
        let object = json!({
            "apiVersion": api_version, "kind": kind, "metadata": {"name": "x"},
            "status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}
        });
        let patched =
            apply(&object, json!({"status": {"conditions": [{"type": "B", "status": "False"}]}}));
        assert_eq!(
            patched["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]),
            "{api_version} {kind}"
        );
    }
}

#[test]
fn lists_of_unmodelled_kinds_are_atomic() {
    let widget = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["a"]},
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}
    });
    let patched = apply(
        &widget,
        json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "a", "image": "2"}]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["b", "a"]));
    assert_eq!(patched["spec"]["containers"], json!([{"name": "a", "image": "2"}]));
}

#[test]
fn new_values_carry_no_directives() {
    // Upstream keeps the directives and nulls of an added element (its typed decoding drops most
    // of them later) and drops a new map that says `$patch: replace`; here both are cleaned.
    let patched = apply(
        &pod(),
        json!({"spec": {
            "containers": [{"name": "new", "image": null, "env": [
                {"name": "X", "$patch": "delete"}, {"name": "Y", "value": "y"}
            ], "resources": {"$patch": "replace", "limits": {"cpu": "1"}}}],
            "nodeSelector": {"$patch": "replace", "disk": "ssd"},
            "affinity": {"$patch": "delete"}
        }}),
    );
    assert_eq!(
        patched["spec"]["containers"][0],
        json!({"name": "new", "env": [{"name": "Y", "value": "y"}], "resources": {"limits": {"cpu": "1"}}})
    );
    assert_eq!(patched["spec"]["nodeSelector"], json!({"disk": "ssd"}));
    assert!(patched["spec"].get("affinity").is_none());
    assert!(!patched.to_string().contains('$'), "{patched}");
}

#[test]
fn a_missing_merge_key_is_an_error() {
    let message = apply_err(&pod(), json!({"spec": {"containers": [{"image": "x"}]}}));
    assert_eq!(message, r#"map: {"image":"x"} does not contain declared merge key: name"#);
    let message =
        apply_err(&pod(), json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}));
    assert!(message.ends_with("does not contain declared merge key: name"), "{message}");
}

#[test]
fn unknown_directives_are_errors() {
    // Upstream keeps an unknown `$` key as a field; here it is refused.
    let message = apply_err(&pod(), json!({"metadata": {"labels": {"$patch": "merge"}}}));
    assert!(message.starts_with("unknown patch type: merge in map:"), "{message}");
    let message =
        apply_err(&pod(), json!({"spec": {"containers": [{"name": "app", "$patch": "zap"}]}}));
    assert!(message.starts_with("unknown patch type: zap in map:"), "{message}");
    let message = apply_err(&pod(), json!({"spec": {"$frobnicate": 1}}));
    assert_eq!(message, "unknown patch directive: $frobnicate");
    let message = apply_err(&pod(), json!({"spec": {"$setElementOrder": []}}));
    assert!(message.starts_with("invalid patch format of setElementOrder list"), "{message}");
}

#[test]
fn a_patch_that_is_not_an_object_is_an_error() {
    // Upstream takes a `null` patch as an empty one; here it is refused like the others.
    for patch in [json!([{"op": "add"}]), json!("x"), json!(1), json!(null)] {
        let message = apply_err(&pod(), patch);
        assert!(message.starts_with("invalid JSON document"), "{message}");
    }
}

#[test]
fn a_deeply_nested_patch_is_an_error_not_a_stack_overflow() {
    let mut patch = json!("leaf");
    for i in 0..1000 {
        patch = if i % 2 == 0 { json!({"spec": patch}) } else { json!([patch]) };
    }
    patch = json!({"spec": patch});
    let message = apply_err(&pod(), patch);
    assert_eq!(message, "the patch is nested more than 100 levels deep");
    // A patch 100 levels deep is fine.
    let mut patch = json!({});
    for _ in 0..99 {
        patch = json!({"a": patch});
    }
    let patched = apply(&pod(), patch);
    assert_eq!(patched["a"]["a"]["a"].as_object().map(|m| m.len()), Some(1));
}

#[test]
fn a_whole_object_replace_or_delete() {
    let patched =
        apply(&pod(), json!({"$patch": "replace", "apiVersion": "v1", "kind": "Pod", "x": null}));
    assert_eq!(patched, json!({"apiVersion": "v1", "kind": "Pod"}));
    assert_eq!(apply(&pod(), json!({"$patch": "delete"})), json!({}));
}

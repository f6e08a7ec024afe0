//! Tests: the garbage collector and the namespace controller against apiserver-fake, over many
//! seeds: the conformance cases of `kubernetes.md` §6, ported from Kubernetes' own GC tests
//! (`test/integration/garbagecollector`, `test/e2e/apimachinery/garbage_collector.go`,
//! `test/integration/namespace`). Each scenario creates objects, waits for the GC to observe
//! them where upstream does (`GraphHasUID`), deletes, waits a generous amount of virtual time,
//! and asserts the exact survivors with their ownerReferences, deletionTimestamp and finalizers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    ApiError, ApiServer, Client, ClientConfig, DeleteOptions, Deleted, FINALIZER_FOREGROUND,
    FINALIZER_ORPHAN, GarbageCollector, GcConfig, InformerConfig, KindInfo, Latency,
    NamespaceConfig, NamespaceController, Object, OwnerReference, Propagation, Reason, Selector,
};
use kdst_tests::assert_all_complete;
use sim_core::{JoinSet, Outcome, Simulation, always, sleep, spawn};

// ---------------------------------------------------------------------------------------------
// Helpers

const SEEDS: u64 = 500;

/// Virtual time given to the GC (and namespace controller) to finish after a change. The
/// collector's backoff starts at 5 ms, so a minute is far more than any correct run needs.
const SETTLE: Duration = Duration::from_secs(60);

/// A user finalizer the test itself removes.
const HOLD: &str = "example.com/hold";

const NS: &str = "default";

type Kind = (&'static str, &'static str);

const CONFIGMAP: Kind = ("v1", "ConfigMap");
const POD: Kind = ("v1", "Pod");
const RC: Kind = ("v1", "ReplicationController");
const NODE: Kind = ("v1", "Node");
const NAMESPACE: Kind = ("v1", "Namespace");
const DEPLOYMENT: Kind = ("apps/v1", "Deployment");
const REPLICASET: Kind = ("apps/v1", "ReplicaSet");
/// A namespaced custom resource, registered by [`cluster`].
const WIDGET: Kind = ("example.com/v1", "Widget");

/// A server (with the `Widget` CRD), a client for the test, and a GC monitoring `kinds` only.
/// Call it in a run's setup.
fn cluster(kinds: &[Kind]) -> (ApiServer, Client, GarbageCollector) {
    let server = ApiServer::default();
    server.register(KindInfo::custom(WIDGET.0, WIDGET.1, "widgets", true));
    let client = Client::new(&server, "test", ClientConfig::default());
    let informer = InformerConfig::default()
        .with_delivery_delay(Latency::range(Duration::ZERO, Duration::from_millis(2)));
    let config = GcConfig::default().with_workers(2).with_kinds(kinds).with_informer(informer);
    let gc = GarbageCollector::start(&Client::new(&server, "gc", ClientConfig::default()), config);
    (server, client, gc)
}

async fn settle() {
    sleep(SETTLE).await;
}

fn new(kind: Kind, namespace: &str, name: &str) -> Object {
    Object::new(kind.0, kind.1, namespace, name)
}

fn kind_of(object: &Object) -> Kind {
    for kind in [CONFIGMAP, POD, RC, NODE, NAMESPACE, DEPLOYMENT, REPLICASET, WIDGET] {
        if object.api_version == kind.0 && object.kind == kind.1 {
            return kind;
        }
    }
    panic!("kind {} {} is not one of the test's kinds", object.api_version, object.kind)
}

/// How failure messages show an object's state.
fn state(object: &Object) -> String {
    let refs: Vec<String> = object
        .metadata
        .owner_references
        .iter()
        .map(|r| {
            format!(
                "{} {} (uid {}, controller {:?}, blockOwnerDeletion {:?})",
                r.kind, r.name, r.uid, r.controller, r.block_owner_deletion
            )
        })
        .collect();
    let deletion = object.metadata.deletion_timestamp.map_or("none".to_string(), |t| t.to_string());
    format!(
        "{} {} [deletionTimestamp {deletion}, finalizers {:?}, ownerReferences [{}]]",
        object.kind,
        object.key(),
        object.metadata.finalizers,
        refs.join(", ")
    )
}

fn states(objects: &[Object]) -> String {
    objects.iter().map(state).collect::<Vec<_>>().join("; ")
}

/// The stored objects of `kind` in `namespace`, by name. Reads the store directly: no trace
/// event, usable in invariants.
fn of_kind(server: &ApiServer, kind: Kind, namespace: &str) -> Vec<Object> {
    server
        .objects()
        .into_iter()
        .filter(|o| {
            o.api_version == kind.0 && o.kind == kind.1 && o.metadata.namespace == namespace
        })
        .collect()
}

/// The names of the stored objects of `kind` in `namespace`, sorted.
fn names(server: &ApiServer, kind: Kind, namespace: &str) -> Vec<String> {
    of_kind(server, kind, namespace).into_iter().map(|o| o.metadata.name).collect()
}

fn find(server: &ApiServer, kind: Kind, namespace: &str, name: &str) -> Option<Object> {
    of_kind(server, kind, namespace).into_iter().find(|o| o.metadata.name == name)
}

async fn create(client: &Client, object: Object) -> Object {
    let what = format!("{} {}", object.kind, object.key());
    client.create(object).await.unwrap_or_else(|e| panic!("creating {what}: {e}"))
}

async fn delete(client: &Client, object: &Object, options: DeleteOptions) -> Deleted {
    let (api_version, kind) = (&object.api_version, &object.kind);
    let (namespace, name) = (&object.metadata.namespace, &object.metadata.name);
    client
        .delete(api_version, kind, namespace, name, &options)
        .await
        .unwrap_or_else(|e| panic!("deleting {kind} {} with {options:?}: {e}", object.key()))
}

/// Removes `HOLD` from an object, as the controller owning that finalizer would.
async fn release(client: &Client, object: &Object) {
    let (namespace, name) = (&object.metadata.namespace, &object.metadata.name);
    let mut latest = client
        .get(&object.api_version, &object.kind, namespace, name)
        .await
        .unwrap_or_else(|e| panic!("getting {} {} to release it: {e}", object.kind, object.key()));
    latest.metadata.finalizers.retain(|f| f != HOLD);
    client
        .update(latest)
        .await
        .unwrap_or_else(|e| panic!("removing {HOLD} from {} {}: {e}", object.kind, object.key()));
}

/// Waits (at most 10 s) until the GC graph holds every object as an observed node with its
/// current ownerReferences: upstream's tests wait for `GraphHasUID` before orphaning.
async fn observed(server: &ApiServer, gc: &GarbageCollector, objects: &[&Object]) {
    for _ in 0..100 {
        let graph = gc.graph();
        let seen = objects.iter().all(|object| {
            let current =
                find(server, kind_of(object), &object.metadata.namespace, &object.metadata.name);
            let refs = current.map(|o| o.metadata.owner_references).unwrap_or_default();
            graph.get(&object.metadata.uid).is_some_and(|n| n.observed && n.owners == refs)
        });
        if seen {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<String> = objects
        .iter()
        .filter(|o| gc.graph().get(&o.metadata.uid).is_none_or(|n| !n.observed))
        .map(|o| state(o))
        .collect();
    panic!("the GC graph did not observe these objects within 10s: {}", missing.join("; "));
}

/// Panics unless no object of `kind` is left in `namespace`.
fn assert_none(server: &ApiServer, kind: Kind, namespace: &str, when: &str) {
    let left = of_kind(server, kind, namespace);
    assert!(
        left.is_empty(),
        "{when}: expected no {} left in {namespace:?}, found {}",
        kind.1,
        states(&left)
    );
}

/// Panics if the object is still stored.
fn assert_gone(server: &ApiServer, object: &Object, when: &str) {
    let found = find(server, kind_of(object), &object.metadata.namespace, &object.metadata.name);
    if let Some(found) = found {
        panic!(
            "{when}: expected {} {} to be gone, it is still there: {}",
            object.kind,
            object.key(),
            state(&found)
        );
    }
}

/// Panics unless the object exists with its original uid, is not being deleted, has no
/// finalizers, and has exactly the ownerReferences `refs`.
fn assert_live(server: &ApiServer, object: &Object, refs: &[OwnerReference], when: &str) {
    let what = format!("{} {}", object.kind, object.key());
    let Some(found) =
        find(server, kind_of(object), &object.metadata.namespace, &object.metadata.name)
    else {
        panic!("{when}: expected {what} to remain, it is gone");
    };
    let ok = found.metadata.uid == object.metadata.uid
        && found.metadata.deletion_timestamp.is_none()
        && found.metadata.finalizers.is_empty()
        && found.metadata.owner_references == refs;
    assert!(
        ok,
        "{when}: expected {what} (uid {}) alive, not deleting, without finalizers, with \
         ownerReferences {refs:?}; found {} (uid {})",
        object.metadata.uid,
        state(&found),
        found.metadata.uid
    );
}

/// Panics unless the object exists, has a deletionTimestamp and exactly `finalizers`.
fn assert_deleting(server: &ApiServer, object: &Object, finalizers: &[&str], when: &str) {
    let what = format!("{} {}", object.kind, object.key());
    let Some(found) =
        find(server, kind_of(object), &object.metadata.namespace, &object.metadata.name)
    else {
        panic!("{when}: expected {what} to be still there (deleting), it is gone");
    };
    assert!(
        found.metadata.uid == object.metadata.uid
            && found.metadata.deletion_timestamp.is_some()
            && found.metadata.finalizers == finalizers,
        "{when}: expected {what} deleting with finalizers {finalizers:?}; found {}",
        state(&found)
    );
}

/// Panics unless a DELETE response is `Pending` with exactly `finalizers` (or, for an empty
/// list, `Removed`).
fn assert_deleted(result: &Deleted, finalizers: &[&str], what: &str) {
    match result {
        Deleted::Removed(_) if finalizers.is_empty() => {}
        Deleted::Pending(o) if o.metadata.finalizers == finalizers && o.is_deleting() => {}
        other => panic!(
            "DELETE of {what}: expected {}, got {} {}",
            if finalizers.is_empty() {
                "removal".to_string()
            } else {
                format!("pending with {finalizers:?}")
            },
            if other.is_removed() { "removed" } else { "pending" },
            state(other.object())
        ),
    }
}

/// The invariant of a foreground deletion, checked after every step: once the owner has a uid
/// (the cell is `None` before its create returns), whenever no stored object carries that uid,
/// no stored object (deleting or not) has an ownerReference with that uid and
/// `blockOwnerDeletion=true`. It holds because the owner is only deleted Foreground and the GC
/// removes `foregroundDeletion` only when its graph shows no blocking dependent, and the graph
/// lags the server only on dependents it has not seen yet: the scenarios create every blocking
/// dependent before the delete, or (the late child) while another dependent keeps the owner
/// alive far longer than the graph takes to see it. Background or Orphan deletes, or a blocker
/// created just before the GC finishes, may break it legitimately; none happens here.
fn no_blocker_outlives(server: &ApiServer, owner: &Rc<RefCell<Option<String>>>) {
    let (server, owner) = (server.clone(), owner.clone());
    always("no blocking dependent outlives its owner", move || {
        let Some(uid) = owner.borrow().clone() else { return Ok(()) };
        let objects = server.objects();
        if objects.iter().any(|o| o.metadata.uid == uid) {
            return Ok(());
        }
        let blocker = objects
            .iter()
            .find(|o| o.metadata.owner_references.iter().any(|r| r.uid == uid && r.blocks()));
        match blocker {
            Some(blocker) => {
                Err(format!("the owner (uid {uid}) is gone but {} still blocks it", state(blocker)))
            }
            None => Ok(()),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Scenarios (each a run's setup; the tests run them over many seeds)

/// Background delete of an owner with two dependents: all three gone.
fn background_delete() {
    let (server, client, gc) = cluster(&[RC, POD]);
    spawn("test", async move {
        let rc = create(&client, new(RC, NS, "rc")).await;
        let owner = OwnerReference::controller_of(&rc);
        let pod0 = create(&client, new(POD, NS, "pod-0").with_owner(owner.clone())).await;
        let pod1 = create(&client, new(POD, NS, "pod-1").with_owner(owner)).await;
        observed(&server, &gc, &[&rc, &pod0, &pod1]).await;
        let result =
            delete(&client, &rc, DeleteOptions::propagation(Propagation::Background)).await;
        assert_deleted(&result, &[], "rc (Background)");
        settle().await;
        let when = "60s after the Background delete of rc";
        assert_none(&server, RC, NS, when);
        assert_none(&server, POD, NS, when);
    });
}

/// Orphan delete: the owner goes; the dependents stay, without the reference, for good.
fn orphan_delete() {
    let (server, client, gc) = cluster(&[RC, POD]);
    spawn("test", async move {
        let rc = create(&client, new(RC, NS, "rc")).await;
        let owner = OwnerReference::controller_of(&rc);
        let pod0 = create(&client, new(POD, NS, "pod-0").with_owner(owner.clone())).await;
        let pod1 = create(&client, new(POD, NS, "pod-1").with_owner(owner)).await;
        observed(&server, &gc, &[&rc, &pod0, &pod1]).await;
        let result = delete(&client, &rc, DeleteOptions::propagation(Propagation::Orphan)).await;
        assert_deleted(&result, &[FINALIZER_ORPHAN], "rc (Orphan)");
        settle().await;
        for when in ["60s after the Orphan delete of rc", "10 minutes after the Orphan delete"] {
            assert_gone(&server, &rc, when);
            assert_eq!(names(&server, POD, NS), ["pod-0", "pod-1"], "{when}");
            assert_live(&server, &pod0, &[], when);
            assert_live(&server, &pod1, &[], when);
            sleep(Duration::from_secs(540)).await;
        }
    });
}

/// DELETE without options of a ReplicationController (default policy Orphan): its pods stay.
fn default_orphan_delete() {
    let (server, client, gc) = cluster(&[RC, POD]);
    spawn("test", async move {
        let rc = create(&client, new(RC, NS, "rc")).await;
        let owner = OwnerReference::controller_of(&rc);
        let pod0 = create(&client, new(POD, NS, "pod-0").with_owner(owner.clone())).await;
        let pod1 = create(&client, new(POD, NS, "pod-1").with_owner(owner)).await;
        observed(&server, &gc, &[&rc, &pod0, &pod1]).await;
        let result = delete(&client, &rc, DeleteOptions::default()).await;
        assert_deleted(&result, &[FINALIZER_ORPHAN], "rc (no options, kind default Orphan)");
        settle().await;
        let when = "60s after a DELETE without options of rc";
        assert_gone(&server, &rc, when);
        assert_eq!(names(&server, POD, NS), ["pod-0", "pod-1"], "{when}");
        assert_live(&server, &pod0, &[], when);
        assert_live(&server, &pod1, &[], when);
    });
}

/// Deployment → ReplicaSet → two Pods, the Deployment deleted with `policy`.
fn two_level_chain(policy: Propagation) {
    let (server, client, gc) = cluster(&[DEPLOYMENT, REPLICASET, POD]);
    spawn("test", async move {
        let deployment = create(&client, new(DEPLOYMENT, NS, "web")).await;
        let rs_ref = OwnerReference::controller_of(&deployment);
        let rs = create(&client, new(REPLICASET, NS, "web-1").with_owner(rs_ref)).await;
        let pod_ref = OwnerReference::controller_of(&rs);
        let pod0 = create(&client, new(POD, NS, "web-1-a").with_owner(pod_ref.clone())).await;
        let pod1 = create(&client, new(POD, NS, "web-1-b").with_owner(pod_ref.clone())).await;
        observed(&server, &gc, &[&deployment, &rs, &pod0, &pod1]).await;
        let result = delete(&client, &deployment, DeleteOptions::propagation(policy)).await;
        let when = format!("60s after the {policy} delete of deployment web");
        settle().await;
        assert_gone(&server, &deployment, &when);
        if policy == Propagation::Orphan {
            assert_deleted(&result, &[FINALIZER_ORPHAN], "deployment web (Orphan)");
            assert_live(&server, &rs, &[], &when);
            let rs = find(&server, REPLICASET, NS, "web-1").expect("checked by assert_live");
            assert!(rs.controller_ref().is_none(), "{when}: {} has a controller", state(&rs));
            assert_live(&server, &pod0, std::slice::from_ref(&pod_ref), &when);
            assert_live(&server, &pod1, &[pod_ref], &when);
        } else {
            assert_deleted(&result, &[], "deployment web (Background)");
            assert_none(&server, REPLICASET, NS, &when);
            assert_none(&server, POD, NS, &when);
        }
    });
}

/// Foreground delete: the owner stays (deleting, `foregroundDeletion`) while a blocking
/// dependent with a user finalizer exists; every dependent, blocking or not, is deleted; once
/// the finalizer is removed, everything goes. The invariant checks every step.
fn foreground_delete() {
    let (server, client, gc) = cluster(&[RC, POD]);
    let owner_uid = Rc::new(RefCell::new(None));
    no_blocker_outlives(&server, &owner_uid);
    spawn("test", async move {
        let rc = create(&client, new(RC, NS, "rc")).await;
        *owner_uid.borrow_mut() = Some(rc.metadata.uid.clone());
        let blocking = OwnerReference::controller_of(&rc);
        let held = new(POD, NS, "held").with_owner(blocking.clone()).with_finalizer(HOLD);
        let held = create(&client, held).await;
        let plain = create(&client, new(POD, NS, "blocking").with_owner(blocking)).await;
        let not_blocking = OwnerReference::to(&rc, Some(false));
        let free = create(&client, new(POD, NS, "non-blocking").with_owner(not_blocking)).await;
        let unset =
            create(&client, new(POD, NS, "unset").with_owner(OwnerReference::to(&rc, None))).await;
        observed(&server, &gc, &[&rc, &held, &plain, &free, &unset]).await;
        let result =
            delete(&client, &rc, DeleteOptions::propagation(Propagation::Foreground)).await;
        assert_deleted(&result, &[FINALIZER_FOREGROUND], "rc (Foreground)");
        settle().await;
        let when = "60s after the Foreground delete of rc, while pod held keeps its finalizer";
        assert_deleting(&server, &rc, &[FINALIZER_FOREGROUND], when);
        assert_deleting(&server, &held, &[HOLD], when);
        assert_eq!(
            names(&server, POD, NS),
            ["held"],
            "{when}: {}",
            states(&of_kind(&server, POD, NS))
        );
        release(&client, &held).await;
        settle().await;
        let when = "60s after the hold finalizer of pod held was removed";
        assert_gone(&server, &rc, when);
        assert_none(&server, POD, NS, when);
    });
}

/// Four dependents of rc-1, two of which also name a live rc-2; rc-1 deleted Foreground.
fn foreground_with_second_owner() {
    let (server, client, gc) = cluster(&[RC, POD]);
    spawn("test", async move {
        let rc1 = create(&client, new(RC, NS, "rc-1")).await;
        let rc2 = create(&client, new(RC, NS, "rc-2")).await;
        let to_rc2 = OwnerReference::to(&rc2, Some(true));
        let mut pods = Vec::new();
        for index in 0..4 {
            let mut pod = new(POD, NS, &format!("pod-{index}"))
                .with_owner(OwnerReference::controller_of(&rc1));
            if index >= 2 {
                pod = pod.with_owner(to_rc2.clone());
            }
            pods.push(create(&client, pod).await);
        }
        let all: Vec<&Object> = [&rc1, &rc2].into_iter().chain(&pods).collect();
        observed(&server, &gc, &all).await;
        let result =
            delete(&client, &rc1, DeleteOptions::propagation(Propagation::Foreground)).await;
        assert_deleted(&result, &[FINALIZER_FOREGROUND], "rc-1 (Foreground)");
        settle().await;
        let when = "60s after the Foreground delete of rc-1";
        assert_gone(&server, &rc1, when);
        assert_live(&server, &rc2, &[], when);
        assert_eq!(
            names(&server, POD, NS),
            ["pod-2", "pod-3"],
            "{when}: {}",
            states(&of_kind(&server, POD, NS))
        );
        assert_live(&server, &pods[2], std::slice::from_ref(&to_rc2), when);
        assert_live(&server, &pods[3], std::slice::from_ref(&to_rc2), when);
    });
}

/// Pods of rc-1, pods of rc-1 and rc-2, a pod of nobody; rc-1 deleted Background.
fn shared_and_solo_dependents() {
    let (server, client, gc) = cluster(&[RC, POD]);
    spawn("test", async move {
        let rc1 = create(&client, new(RC, NS, "rc-1")).await;
        let rc2 = create(&client, new(RC, NS, "rc-2")).await;
        let to_rc1 = OwnerReference::to(&rc1, None);
        let to_rc2 = OwnerReference::to(&rc2, None);
        let mut pods = Vec::new();
        for name in ["solo-0", "solo-1", "shared-0", "shared-1", "free"] {
            let mut pod = new(POD, NS, name);
            if name != "free" {
                pod = pod.with_owner(to_rc1.clone());
            }
            if name.starts_with("shared") {
                pod = pod.with_owner(to_rc2.clone());
            }
            pods.push(create(&client, pod).await);
        }
        let all: Vec<&Object> = [&rc1, &rc2].into_iter().chain(&pods).collect();
        observed(&server, &gc, &all).await;
        let result =
            delete(&client, &rc1, DeleteOptions::propagation(Propagation::Background)).await;
        assert_deleted(&result, &[], "rc-1 (Background)");
        settle().await;
        let when = "60s after the Background delete of rc-1";
        assert_gone(&server, &rc1, when);
        assert_live(&server, &rc2, &[], when);
        assert_eq!(
            names(&server, POD, NS),
            ["free", "shared-0", "shared-1"],
            "{when}: {}",
            states(&of_kind(&server, POD, NS))
        );
        assert_live(&server, &pods[2], std::slice::from_ref(&to_rc2), when);
        assert_live(&server, &pods[3], std::slice::from_ref(&to_rc2), when);
        assert_live(&server, &pods[4], &[], when);
    });
}

/// One row of the mixed-options case: a preset finalizer, the DELETE options, and whether the
/// owner's dependent survives (orphaned).
struct Mixed {
    name: &'static str,
    preset_orphan: bool,
    options: DeleteOptions,
    orphans: bool,
}

fn mixed_rows() -> Vec<Mixed> {
    vec![
        Mixed {
            name: "plain",
            preset_orphan: false,
            options: DeleteOptions::default(),
            orphans: false,
        },
        Mixed {
            name: "preset",
            preset_orphan: true,
            options: DeleteOptions::default(),
            orphans: true,
        },
        Mixed {
            name: "preset-not-orphaning",
            preset_orphan: true,
            options: DeleteOptions::orphan_dependents(false),
            orphans: false,
        },
        Mixed {
            name: "orphan-dependents",
            preset_orphan: false,
            options: DeleteOptions::orphan_dependents(true),
            orphans: true,
        },
        Mixed {
            name: "policy-orphan",
            preset_orphan: false,
            options: DeleteOptions::propagation(Propagation::Orphan),
            orphans: true,
        },
    ]
}

/// Owners (ConfigMaps, default Background) deleted at once with the options of
/// [`mixed_rows`], three per row, each with a Pod dependent.
fn mixed_options() {
    let (server, client, gc) = cluster(&[CONFIGMAP, POD]);
    spawn("test", async move {
        let mut cases = Vec::new();
        for row in mixed_rows() {
            for index in 0..3 {
                let mut owner = new(CONFIGMAP, NS, &format!("{}-{index}", row.name));
                if row.preset_orphan {
                    owner = owner.with_finalizer(FINALIZER_ORPHAN);
                }
                let owner = create(&client, owner).await;
                let dependent = new(POD, NS, &format!("{}-{index}-dep", row.name))
                    .with_owner(OwnerReference::controller_of(&owner));
                let dependent = create(&client, dependent).await;
                cases.push((row.name, row.options.clone(), row.orphans, owner, dependent));
            }
        }
        let all: Vec<&Object> = cases.iter().flat_map(|(.., o, d)| [o, d]).collect();
        observed(&server, &gc, &all).await;
        let mut deletes = JoinSet::new();
        for (row, options, orphans, owner, _) in &cases {
            let (client, owner, options, orphans) =
                (client.clone(), owner.clone(), options.clone(), *orphans);
            let what = format!("configmap {} ({row}: {options:?})", owner.metadata.name);
            deletes.spawn(format!("delete {}", owner.metadata.name), async move {
                let result = delete(&client, &owner, options).await;
                assert_deleted(&result, if orphans { &[FINALIZER_ORPHAN] } else { &[] }, &what);
            });
        }
        deletes.join_all().await;
        settle().await;
        let when = "60s after deleting every owner at once";
        assert_none(&server, CONFIGMAP, NS, when);
        let mut survivors = Vec::new();
        for (row, options, orphans, owner, dependent) in &cases {
            let when = format!("{when}: owner {} ({row}: {options:?})", owner.metadata.name);
            if *orphans {
                assert_live(&server, dependent, &[], &when);
                survivors.push(dependent.metadata.uid.clone());
            } else {
                assert_gone(&server, dependent, &when);
            }
        }
        let graph = gc.graph();
        for (row, _, _, owner, _) in &cases {
            assert!(
                !graph.contains_key(&owner.metadata.uid),
                "{when}: the GC graph still holds owner {} ({row}): {:?}",
                owner.metadata.name,
                graph[&owner.metadata.uid]
            );
        }
        let nodes: Vec<String> = graph.keys().cloned().collect();
        survivors.sort();
        assert_eq!(
            nodes, survivors,
            "{when}: the GC graph should hold exactly the orphaned pods: {graph:?}"
        );
    });
}

/// A custom resource owning a custom resource, deleted Foreground: both gone.
fn custom_resource_foreground() {
    let (server, client, gc) = cluster(&[WIDGET]);
    spawn("test", async move {
        let owner = create(&client, new(WIDGET, NS, "owner")).await;
        let dependent =
            new(WIDGET, NS, "dependent").with_owner(OwnerReference::controller_of(&owner));
        let dependent = create(&client, dependent).await;
        observed(&server, &gc, &[&owner, &dependent]).await;
        let result =
            delete(&client, &owner, DeleteOptions::propagation(Propagation::Foreground)).await;
        assert_deleted(&result, &[FINALIZER_FOREGROUND], "widget owner (Foreground)");
        settle().await;
        assert_none(&server, WIDGET, NS, "60s after the Foreground delete of widget owner");
    });
}

/// A custom resource owning a ConfigMap and a ConfigMap owning a custom resource; both owners
/// deleted without options (both kinds default to Background).
fn mixed_chains() {
    let (server, client, gc) = cluster(&[WIDGET, CONFIGMAP]);
    spawn("test", async move {
        let cr_owner = create(&client, new(WIDGET, NS, "cr-owner")).await;
        let cm_dep = new(CONFIGMAP, NS, "cm-of-cr").with_owner(OwnerReference::to(&cr_owner, None));
        let cm_dep = create(&client, cm_dep).await;
        let cm_owner = create(&client, new(CONFIGMAP, NS, "cm-owner")).await;
        let cr_dep = new(WIDGET, NS, "cr-of-cm").with_owner(OwnerReference::to(&cm_owner, None));
        let cr_dep = create(&client, cr_dep).await;
        observed(&server, &gc, &[&cr_owner, &cm_dep, &cm_owner, &cr_dep]).await;
        for owner in [&cr_owner, &cm_owner] {
            let result = delete(&client, owner, DeleteOptions::default()).await;
            assert_deleted(&result, &[], &format!("{} {} (no options)", owner.kind, owner.key()));
        }
        settle().await;
        let when = "60s after deleting cr-owner and cm-owner";
        assert_none(&server, WIDGET, NS, when);
        assert_none(&server, CONFIGMAP, NS, when);
    });
}

/// Namespaced dependents of cluster-scoped owners: a live Node, a Node that never existed, and
/// an owner of a kind the server does not serve.
fn cluster_scoped_owners() {
    let (server, client, _gc) = cluster(&[CONFIGMAP, NODE]);
    spawn("test", async move {
        let node = create(&client, new(NODE, "", "node-1")).await;
        let valid_ref = OwnerReference::to(&node, None);
        let missing_ref = OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: "ghost".into(),
            uid: "00000000-dead-4000-8000-000000000001".into(),
            ..OwnerReference::default()
        };
        let unknown_ref = OwnerReference {
            api_version: "unknown.example.com/v1".into(),
            kind: "Unknown".into(),
            name: "mystery".into(),
            uid: "00000000-dead-4000-8000-000000000002".into(),
            ..OwnerReference::default()
        };
        let valid =
            create(&client, new(CONFIGMAP, NS, "cm-valid").with_owner(valid_ref.clone())).await;
        let missing =
            create(&client, new(CONFIGMAP, NS, "cm-missing").with_owner(missing_ref)).await;
        let unknown =
            create(&client, new(CONFIGMAP, NS, "cm-unknown").with_owner(unknown_ref.clone())).await;
        settle().await;
        for when in
            ["60s after creating the dependents", "10 minutes after creating the dependents"]
        {
            assert_gone(&server, &missing, when);
            assert_live(&server, &node, &[], when);
            assert_live(&server, &valid, std::slice::from_ref(&valid_ref), when);
            assert_live(&server, &unknown, std::slice::from_ref(&unknown_ref), when);
            sleep(Duration::from_secs(540)).await;
        }
    });
}

/// The namespace condition of `kind`, as `(status, reason, message)`.
fn condition(namespace: &Object, kind: &str) -> Option<(String, String, String)> {
    let conditions = namespace.status.get("conditions")?.as_array()?;
    let found = conditions.iter().find(|c| c.get("type").and_then(|t| t.as_str()) == Some(kind))?;
    let field =
        |name: &str| found.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Some((field("status"), field("reason"), field("message")))
}

/// Namespace delete with the GC and the namespace controller: content goes (a held ConfigMap
/// once released), creates are refused meanwhile, the namespace goes, and a namespace of the
/// same name starts empty.
fn namespace_delete() {
    let (server, client, _gc) = cluster(&[CONFIGMAP, POD, RC]);
    NamespaceController::start(&client, NamespaceConfig::default());
    spawn("test", async move {
        const DOOMED: &str = "doomed";
        let namespace = create(&client, new(NAMESPACE, "", DOOMED)).await;
        create(&client, new(CONFIGMAP, DOOMED, "plain")).await;
        let held = create(&client, new(CONFIGMAP, DOOMED, "held").with_finalizer(HOLD)).await;
        let rc = create(&client, new(RC, DOOMED, "rc")).await;
        for name in ["pod-0", "pod-1"] {
            create(&client, new(POD, DOOMED, name).with_owner(OwnerReference::controller_of(&rc)))
                .await;
        }
        create(&client, new(POD, DOOMED, "lonely")).await;
        sleep(Duration::from_secs(1)).await;
        delete(&client, &namespace, DeleteOptions::default()).await;
        let refused = |error: Result<Object, ApiError>, when: &str| {
            let error =
                error.expect_err(&format!("{when}: creating configmap late in {DOOMED} succeeded"));
            let text = format!(
                "configmaps \"late\" is forbidden: unable to create new content in namespace {DOOMED} \
                 because it is being terminated"
            );
            assert_eq!((error.code, error.reason), (403, Reason::Forbidden), "{when}: {error}");
            assert_eq!(error.message, text, "{when}");
            // `v1.NamespaceTerminatingCause` is "NamespaceTerminating" (kubernetes.md §4 says
            // `NamespaceContentTerminating`; upstream wins).
            assert_eq!(error.cause.as_deref(), Some("NamespaceTerminating"), "{when}");
        };
        refused(client.create(new(CONFIGMAP, DOOMED, "late")).await, "right after the delete");
        settle().await;
        let when = "60s after deleting namespace doomed, configmap held keeps its finalizer";
        let terminating = find(&server, NAMESPACE, "", DOOMED)
            .unwrap_or_else(|| panic!("{when}: namespace gone"));
        assert!(terminating.is_deleting(), "{when}: {}", state(&terminating));
        assert_eq!(terminating.status["phase"], "Terminating", "{when}: {}", terminating.status);
        assert_deleting(&server, &held, &[HOLD], when);
        assert_eq!(names(&server, CONFIGMAP, DOOMED), ["held"], "{when}");
        assert_none(&server, POD, DOOMED, when);
        assert_none(&server, RC, DOOMED, when);
        refused(client.create(new(CONFIGMAP, DOOMED, "late")).await, when);
        release(&client, &held).await;
        settle().await;
        let when = "60s after releasing configmap held";
        assert_gone(&server, &namespace, when);
        let left: Vec<Object> =
            server.objects().into_iter().filter(|o| o.metadata.namespace == DOOMED).collect();
        assert!(left.is_empty(), "{when}: objects left in {DOOMED}: {}", states(&left));
        let again = create(&client, new(NAMESPACE, "", DOOMED)).await;
        assert_ne!(again.metadata.uid, namespace.metadata.uid);
        assert_eq!(again.status["phase"], "Active");
        for kind in [CONFIGMAP, POD, RC] {
            let list = client
                .list(kind.0, kind.1, Some(DOOMED), &Selector::everything())
                .await
                .unwrap_or_else(|e| panic!("listing {} in the new {DOOMED}: {e}", kind.1));
            assert!(
                list.items.is_empty(),
                "the recreated {DOOMED} shows old objects: {}",
                states(&list.items)
            );
        }
        // The conditions seen while blocked, checked last so that a wrong text does not hide
        // the rest of the scenario.
        let blocked = "60s after deleting namespace doomed, configmap held keeps its finalizer";
        let content = condition(&terminating, "NamespaceContentRemaining");
        let expected = (
            "True".to_string(),
            "SomeResourcesRemain".to_string(),
            // `fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n)`
            // (pkg/controller/namespace/deletion/status_condition_utils.go): the core group
            // is "", which leaves "configmaps." with a trailing dot.
            "Some resources are remaining: configmaps. has 1 resource instances".to_string(),
        );
        assert_eq!(content, Some(expected), "{blocked}: {}", terminating.status);
        let finalizers = condition(&terminating, "NamespaceFinalizersRemaining");
        let expected = (
            "True".to_string(),
            "SomeFinalizersRemain".to_string(),
            format!(
                "Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances"
            ),
        );
        assert_eq!(finalizers, Some(expected), "{blocked}: {}", terminating.status);
    });
}

/// A blocking child created while its owner is in foreground deletion is accepted, blocks the
/// owner, and is deleted by the GC; the deletion then completes.
fn child_created_during_foreground_deletion() {
    let (server, client, gc) = cluster(&[CONFIGMAP]);
    let owner_uid = Rc::new(RefCell::new(None));
    no_blocker_outlives(&server, &owner_uid);
    spawn("test", async move {
        let owner = create(&client, new(CONFIGMAP, NS, "owner")).await;
        *owner_uid.borrow_mut() = Some(owner.metadata.uid.clone());
        let held = new(CONFIGMAP, NS, "held")
            .with_owner(OwnerReference::controller_of(&owner))
            .with_finalizer(HOLD);
        let held = create(&client, held).await;
        observed(&server, &gc, &[&owner, &held]).await;
        let result =
            delete(&client, &owner, DeleteOptions::propagation(Propagation::Foreground)).await;
        assert_deleted(&result, &[FINALIZER_FOREGROUND], "configmap owner (Foreground)");
        sleep(Duration::from_secs(5)).await;
        assert_deleting(&server, &owner, &[FINALIZER_FOREGROUND], "5s after the Foreground delete");
        let late =
            new(CONFIGMAP, NS, "late-child").with_owner(OwnerReference::controller_of(&owner));
        let late = client.create(late).await.unwrap_or_else(|e| {
            panic!("creating a blocking child of an owner in foreground deletion was refused: {e}")
        });
        settle().await;
        let when = "60s after creating late-child, configmap held keeps its finalizer";
        assert_deleting(&server, &owner, &[FINALIZER_FOREGROUND], when);
        assert_deleting(&server, &held, &[HOLD], when);
        release(&client, &held).await;
        settle().await;
        let when = "60s after releasing configmap held";
        assert_gone(&server, &late, when);
        assert_none(&server, CONFIGMAP, NS, when);
    });
}

/// A owns B and B owns A, both blocking; A deleted Foreground: both go (the unblock patch).
fn dependency_cycle() {
    let (server, client, gc) = cluster(&[CONFIGMAP]);
    spawn("test", async move {
        let a = create(&client, new(CONFIGMAP, NS, "a")).await;
        let b =
            create(&client, new(CONFIGMAP, NS, "b").with_owner(OwnerReference::controller_of(&a)))
                .await;
        let mut a_owned = a.clone();
        a_owned.metadata.owner_references.push(OwnerReference::controller_of(&b));
        let a = client.update(a_owned).await.unwrap_or_else(|e| panic!("making b own a: {e}"));
        observed(&server, &gc, &[&a, &b]).await;
        let result = delete(&client, &a, DeleteOptions::propagation(Propagation::Foreground)).await;
        assert_deleted(&result, &[FINALIZER_FOREGROUND], "configmap a (Foreground)");
        settle().await;
        settle().await;
        assert_none(&server, CONFIGMAP, NS, "120s after the Foreground delete of a (a ⇄ b cycle)");
    });
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn background_delete_removes_the_owner_and_both_dependents() {
    assert_all_complete(&mut Simulation::default(), SEEDS, background_delete);
}

#[test]
fn orphan_delete_keeps_the_dependents_without_the_reference_for_good() {
    assert_all_complete(&mut Simulation::default(), SEEDS, orphan_delete);
}

#[test]
fn delete_without_options_of_a_kind_defaulting_to_orphan_keeps_the_dependents() {
    assert_all_complete(&mut Simulation::default(), SEEDS, default_orphan_delete);
}

#[test]
fn two_level_chain_background_delete_removes_every_level() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        two_level_chain(Propagation::Background)
    });
}

#[test]
fn two_level_chain_orphan_delete_keeps_the_middle_level_without_controller_and_its_pods() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || two_level_chain(Propagation::Orphan));
}

#[test]
fn foreground_delete_waits_for_blocking_dependents_and_leaves_none() {
    assert_all_complete(&mut Simulation::default(), SEEDS, foreground_delete);
}

#[test]
fn foreground_delete_keeps_dependents_with_a_second_live_owner_with_one_reference() {
    assert_all_complete(&mut Simulation::default(), SEEDS, foreground_with_second_owner);
}

#[test]
fn background_delete_spares_dependents_that_another_owner_also_owns() {
    assert_all_complete(&mut Simulation::default(), SEEDS, shared_and_solo_dependents);
}

#[test]
fn owners_deleted_at_once_with_mixed_options_follow_the_propagation_table() {
    assert_all_complete(&mut Simulation::default(), SEEDS, mixed_options);
}

#[test]
fn custom_resource_owner_deleted_foreground_takes_its_custom_resource_dependent() {
    assert_all_complete(&mut Simulation::default(), SEEDS, custom_resource_foreground);
}

#[test]
fn mixed_chains_of_custom_resources_and_configmaps_are_collected() {
    assert_all_complete(&mut Simulation::default(), SEEDS, mixed_chains);
}

#[test]
fn cluster_scoped_owners_valid_keeps_missing_collects_unknown_kind_keeps_forever() {
    assert_all_complete(&mut Simulation::default(), SEEDS, cluster_scoped_owners);
}

#[test]
fn namespace_delete_removes_all_content_refuses_creates_and_recreates_empty() {
    assert_all_complete(&mut Simulation::default(), SEEDS, namespace_delete);
}

#[test]
fn child_created_during_foreground_deletion_is_accepted_blocks_and_is_collected() {
    assert_all_complete(
        &mut Simulation::default(),
        SEEDS,
        child_created_during_foreground_deletion,
    );
}

#[test]
fn dependency_cycle_deleted_foreground_resolves() {
    assert_all_complete(&mut Simulation::default(), SEEDS, dependency_cycle);
}

#[test]
fn gc_scenario_replays_identically_from_its_seed() {
    let mut sim = Simulation::default();
    let mut hashes = Vec::new();
    for seed in 0..5 {
        assert_eq!(sim.run(seed, foreground_delete), Outcome::Completed, "seed {seed}");
        let first = sim.trace().hash();
        let steps = sim.trace().len();
        assert_eq!(sim.run(seed, foreground_delete), Outcome::Completed, "seed {seed}, rerun");
        assert_eq!(sim.trace().hash(), first, "seed {seed}: the rerun's trace differs");
        assert_eq!(sim.trace().len(), steps, "seed {seed}");
        let mut fresh = Simulation::default();
        assert_eq!(fresh.run(seed, foreground_delete), Outcome::Completed, "seed {seed}, fresh");
        assert_eq!(fresh.trace().hash(), first, "seed {seed}: a fresh simulation's trace differs");
        hashes.push(first);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        5,
        "different seeds gave the same trace: the scenario ignores its seed"
    );
}

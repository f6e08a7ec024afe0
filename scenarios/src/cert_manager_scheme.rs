//! `cert-manager-scheme-race`: `concurrent map read and map write` in the global Scheme at
//! start-up (cert-manager v1.12.7).
//!
//! - Upstream issue: <https://github.com/cert-manager/cert-manager/issues/6822> (the controller
//!   dies sporadically right after winning the leader election, v1.12.7 on EKS 1.28; the writer
//!   is goroutine 1 in `AddUnversionedTypes` ← `AddToGroupVersion` ← `acme/v1.addKnownTypes` ←
//!   `ContextFactory.Build` ← `Builder.Complete`, the reader the lease renewal in
//!   `Scheme.ObjectKinds`).
//! - Fix: PR #6833 (release-1.12, in v1.12.9,
//!   <https://github.com/cert-manager/cert-manager/pull/6833>) and PR #6832 (release-1.13, in
//!   v1.13.5, <https://github.com/cert-manager/cert-manager/pull/6832>), backports of PR #6028
//!   "Stop using global runtime.Scheme variables"
//!   (<https://github.com/cert-manager/cert-manager/pull/6028>): `Build` fills a private, fresh
//!   Scheme; the global one is never written after `init`.
//!
//! | modelled step | upstream |
//! |---|---|
//! | [`Scheme`]: four [`GoMap`]s, no lock | `runtime.Scheme`: `gvkToType`, `typeToGVK`, `unversionedTypes`, `unversionedKinds` (k8s.io/apimachinery v0.27) |
//! | the global `scheme.Scheme`, filled by the `main` task before anything else runs | `k8s.io/client-go/kubernetes/scheme.init`: `metav1.AddToGroupVersion(Scheme, {Version: "v1"})`, then `AddToScheme` (core/v1, coordination/v1 …) |
//! | `Scheme::add_known_type_with_name` writes `gvkToType`, then appends to `typeToGVK` unless present | `(*Scheme).AddKnownTypeWithName` (the `found && oldT != t` panic check and the self-conversion are not modelled) |
//! | `Scheme::add_to_group_version`: `WatchEvent`, `InternalEvent`, the six option types, then `AddUnversionedTypes` (`Status`, `APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`) writing `unversionedTypes` and `unversionedKinds` | `metav1.AddToGroupVersion` → `(*Scheme).AddUnversionedTypes` |
//! | `cmscheme.AddToScheme`: acme/v1 and certmanager/v1, each `addKnownTypes` then `AddToGroupVersion` | `pkg/client/clientset/versioned/scheme` `localSchemeBuilder` → `(*SchemeBuilder).AddToScheme` → `acme/v1.addKnownTypes` … |
//! | the `main` task: init, the root `Build`, start the leader election, wait for `elected`, then `Builder.Complete` (→ `ContextFactory.Build`) for each of `controllers` controllers and start each one | `cmd/controller/app.Run`: `ctxFactory.Build()`, `g.Go(startLeaderElection …)`, `<-elected`, `for n, fn := range controller.Known() { iface, err := fn(ctxFactory); g.Go(iface.Run) }` (the map order is random upstream; fixed here) |
//! | `buggy` `Build`: `cmscheme.AddToScheme(scheme.Scheme)` on every call, then "creating event broadcaster" and a recorder built on the global scheme | `(*ContextFactory).Build` (context.go:333) |
//! | `fixed` `Build`: `runtime.NewScheme()` filled with the kubernetes and cert-manager types, then the recorder built on it | the same, after #6833 / #6832 |
//! | the `leader-election` task: `acquire` (Get → 404 → Create), record "became leader", `go OnStartedLeading` (closes `elected`), then `renew`: `tryAcquireOrRenew` at once and every `retry-ms` | `leaderelection.RunOrDie` → `(*LeaderElector).Run` → `acquire` / `renew` (`wait.Until` + `PollImmediateUntil`) → `tryAcquireOrRenew` |
//! | each lease call: `VersionedParams` (`EncodeParameters` → `ObjectKinds`, then `ConvertToVersion`), `Body` (`versioning.(*codec).Encode` → `ObjectKinds`), the API call against the fake's `coordination.k8s.io/v1` Lease, then the response decoded (`ObjectKinds`) | `typed/coordination/v1.(*leases).Get/Create/Update` → `rest.(*Request).VersionedParams` → `runtime.(*parameterCodec).EncodeParameters` → `(*Scheme).ObjectKinds` |
//! | `Recorder::eventf` reads its scheme (`GetReference` → `ObjectKinds`); the broadcaster's sink task posts the Event through the global scheme (`Body` → `ObjectKinds`) | `record.(*recorderImpl).generateEvent` → `reference.GetReference`; `StartRecordingToSink` → `recordToSink` → `(*events).CreateWithEventNamespace` |
//!
//! After the election the `main` task re-registers the cert-manager types in the global scheme
//! once per controller while the `leader-election` task's first renewal (and the event sink's
//! POST of "became leader") read it: a read that lands inside a write dies with
//! `fatal error: concurrent map read and map write`. Whether one does depends on the schedule
//! and on the API latency, as in Go: some seeds crash, others start every controller.
//!
//! Not modelled: the informer factories and the controllers' work (nothing writes the scheme
//! after the last `Build`), the conversion and defaulting functions the schemes also register,
//! other cert-manager replicas contending for the lease.

use std::time::Duration;

use apiserver_fake::{ApiError, Client, Object, Registry, ServerConfig, Time};
use serde_json::json;
use sim_core::sync::channel::{self, Sender};
use sim_core::{FailureKind, GoMap, enter, event, sleep, spawn, spawn_daemon};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

/// `--leader-election-namespace` (cert-manager's default).
const LEASE_NAMESPACE: &str = "kube-system";
/// The lease cert-manager's controller holds.
const LEASE_NAME: &str = "cert-manager-controller";
const COORDINATION: &str = "coordination.k8s.io/v1";
const LEASE_TYPE: &str = "coordination/v1.Lease";
const IDENTITY: &str = "cert-manager-7f8c9d-x2k8p-external-cert-manager-controller";
/// `--leader-election-lease-duration` (cert-manager's default, 60 s).
const LEASE_DURATION_SECONDS: u64 = 60;

/// cert-manager v1.12's controllers, as `controller.Known()` names them.
pub const CONTROLLERS: &[&str] = &[
    "issuers",
    "clusterissuers",
    "certificates-metrics",
    "ingress-shim",
    "orders",
    "challenges",
    "certificaterequests-issuer-acme",
    "certificaterequests-approver",
    "certificaterequests-issuer-ca",
    "certificaterequests-issuer-selfsigned",
    "certificaterequests-issuer-vault",
    "certificaterequests-issuer-venafi",
    "certificates-trigger",
    "certificates-issuing",
    "certificates-key-manager",
    "certificates-request-manager",
    "certificates-readiness",
    "certificates-revision-manager",
    "gateway-shim",
    "certificatesigningrequests-issuer-ca",
];

/// `metav1`'s option types, registered in every group (`optionsTypes`).
const OPTIONS_TYPES: &[&str] = &[
    "ListOptions",
    "GetOptions",
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
];

/// `metav1`'s unversioned types (`AddUnversionedTypes(Unversioned, …)`, group "", version v1).
const UNVERSIONED_TYPES: &[&str] =
    &["Status", "APIVersions", "APIGroupList", "APIGroup", "APIResourceList"];

/// One API group version's `SchemeBuilder`: `addKnownTypes` registers `types`, then calls
/// `metav1.AddToGroupVersion`.
struct ApiGroup {
    /// The Go package, as a stack prints its last elements (`acme/v1`).
    package: &'static str,
    group: &'static str,
    version: &'static str,
    types: &'static [&'static str],
}

/// The part of client-go's `kubernetes/scheme` the model registers.
const KUBERNETES_GROUPS: &[ApiGroup] = &[
    ApiGroup {
        package: "core/v1",
        group: "",
        version: "v1",
        types: &["Secret", "SecretList", "Event", "EventList"],
    },
    ApiGroup {
        package: "coordination/v1",
        group: "coordination.k8s.io",
        version: "v1",
        types: &["Lease", "LeaseList"],
    },
];

/// cert-manager's clientset scheme (`pkg/client/clientset/versioned/scheme`).
const CERT_MANAGER_GROUPS: &[ApiGroup] = &[
    ApiGroup {
        package: "acme/v1",
        group: "acme.cert-manager.io",
        version: "v1",
        types: &["Order", "OrderList", "Challenge", "ChallengeList"],
    },
    ApiGroup {
        package: "certmanager/v1",
        group: "cert-manager.io",
        version: "v1",
        types: &[
            "Certificate",
            "CertificateList",
            "Issuer",
            "IssuerList",
            "ClusterIssuer",
            "ClusterIssuerList",
            "CertificateRequest",
            "CertificateRequestList",
        ],
    },
];

/// `schema.GroupVersionKind.String()`: `acme.cert-manager.io/v1, Kind=Order`.
fn gvk(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}, Kind={kind}")
}

/// The group version of a GVK string.
fn group_version(gvk: &str) -> &str {
    gvk.split_once(", Kind=").map_or(gvk, |(gv, _)| gv)
}

/// `runtime.Scheme`: the maps Go's runtime checks. Clones share the maps (a `*Scheme`).
#[derive(Clone)]
pub struct Scheme {
    gvk_to_type: GoMap<String, String>,
    type_to_gvk: GoMap<String, Vec<String>>,
    unversioned_types: GoMap<String, String>,
    unversioned_kinds: GoMap<String, String>,
}

impl Scheme {
    /// `runtime.NewScheme()`; `name` prefixes the maps' names in crash reports.
    pub fn new(name: &str) -> Self {
        Scheme {
            gvk_to_type: GoMap::new(format!("{name}.gvkToType")),
            type_to_gvk: GoMap::new(format!("{name}.typeToGVK")),
            unversioned_types: GoMap::new(format!("{name}.unversionedTypes")),
            unversioned_kinds: GoMap::new(format!("{name}.unversionedKinds")),
        }
    }

    /// `(*Scheme).AddKnownTypeWithName`.
    async fn add_known_type_with_name(&self, gvk: String, go_type: String) {
        let _frame = enter("runtime.(*Scheme).AddKnownTypeWithName");
        self.gvk_to_type.insert(gvk.clone(), go_type.clone()).await;
        let mut gvks = self.type_to_gvk.get(&go_type).await.unwrap_or_default();
        if gvks.contains(&gvk) {
            return;
        }
        gvks.push(gvk);
        self.type_to_gvk.insert(go_type, gvks).await;
    }

    /// `(*Scheme).AddKnownTypes(gv, types...)`.
    async fn add_known_types(&self, group: &str, version: &str, package: &str, types: &[&str]) {
        let _frame = enter("runtime.(*Scheme).AddKnownTypes");
        for kind in types {
            self.add_known_type_with_name(gvk(group, version, kind), format!("{package}.{kind}"))
                .await;
        }
    }

    /// `(*Scheme).AddUnversionedTypes(metav1.Unversioned, &Status{}, …)`.
    async fn add_unversioned_types(&self) {
        let _frame = enter("runtime.(*Scheme).AddUnversionedTypes");
        self.add_known_types("", "v1", "meta/v1", UNVERSIONED_TYPES).await;
        for kind in UNVERSIONED_TYPES {
            let go_type = format!("meta/v1.{kind}");
            self.unversioned_types.insert(go_type.clone(), gvk("", "v1", kind)).await;
            self.unversioned_kinds.insert((*kind).to_string(), go_type).await;
        }
    }

    /// `metav1.AddToGroupVersion(scheme, gv)`.
    async fn add_to_group_version(&self, group: &str, version: &str) {
        let _frame = enter("v1.AddToGroupVersion");
        self.add_known_type_with_name(
            gvk(group, version, "WatchEvent"),
            "meta/v1.WatchEvent".into(),
        )
        .await;
        let internal = gvk(group, "__internal", "WatchEvent");
        self.add_known_type_with_name(internal, "meta/v1.InternalEvent".into()).await;
        self.add_known_types(group, version, "meta/v1", OPTIONS_TYPES).await;
        self.add_unversioned_types().await;
    }

    /// `localSchemeBuilder.AddToScheme(scheme)` for `groups`: each group's `SchemeBuilder`
    /// runs its `addKnownTypes`.
    async fn add_groups(&self, groups: &[ApiGroup]) {
        let _frame = enter("runtime.(*SchemeBuilder).AddToScheme");
        for group in groups {
            let _builder = enter("runtime.(*SchemeBuilder).AddToScheme");
            let _add = enter(format!("{}.addKnownTypes", group.package));
            self.add_known_types(group.group, group.version, group.package, group.types).await;
            self.add_to_group_version(group.group, group.version).await;
        }
    }

    /// `(*Scheme).ObjectKinds(obj)`: `typeToGVK[t]`, then `unversionedTypes[t]`.
    pub async fn object_kinds(&self, go_type: &str) -> (Vec<String>, bool) {
        let _frame = enter("runtime.(*Scheme).ObjectKinds");
        let go_type = go_type.to_string();
        let Some(gvks) = self.type_to_gvk.get(&go_type).await else {
            return (Vec::new(), false);
        };
        let unversioned = self.unversioned_types.contains_key(&go_type).await;
        (gvks, unversioned)
    }

    /// `(*Scheme).ConvertToVersion(in, target)` where the type is registered in the target
    /// version (the option types are): `typeToGVK[t]`, then a copy with the target kind set.
    async fn convert_to_version(&self, go_type: &str, target: &str) -> Option<String> {
        let _frame = enter("runtime.(*Scheme).ConvertToVersion");
        let kinds = self.type_to_gvk.get(&go_type.to_string()).await.unwrap_or_default();
        kinds.into_iter().find(|kind| group_version(kind) == target)
    }
}

/// `rest.(*Request).VersionedParams(&opts, scheme.ParameterCodec)`.
async fn versioned_params(scheme: &Scheme, options: &str, target: &str) {
    let _frame = enter("rest.(*Request).VersionedParams");
    let _codec = enter("runtime.(*parameterCodec).EncodeParameters");
    let go_type = format!("meta/v1.{options}");
    let (gvks, _) = scheme.object_kinds(&go_type).await;
    if gvks.first().is_some_and(|first| group_version(first) != target) {
        scheme.convert_to_version(&go_type, target).await;
    }
}

/// `rest.(*Request).Body(obj)`: encoded with `scheme.Codecs`.
async fn encode_body(scheme: &Scheme, go_type: &str) {
    let _frame = enter("rest.(*Request).Body");
    let _codec = enter("versioning.(*codec).Encode");
    scheme.object_kinds(go_type).await;
}

/// `rest.Result.Into(obj)`: the response decoded with `scheme.Codecs`.
async fn decode_into(scheme: &Scheme, go_type: &str) {
    let _frame = enter("rest.Result.Into");
    let _codec = enter("versioning.(*codec).Decode");
    scheme.object_kinds(go_type).await;
}

/// The typed `CoordinationV1().Leases(ns)` client: always client-go's global scheme.
struct Leases {
    client: Client,
    scheme: Scheme,
}

impl Leases {
    async fn get(&self, name: &str) -> Result<Object, ApiError> {
        let _frame = enter("v1.(*leases).Get");
        versioned_params(&self.scheme, "GetOptions", COORDINATION).await;
        let result = self.client.get(COORDINATION, "Lease", LEASE_NAMESPACE, name).await;
        let into = if result.is_ok() { LEASE_TYPE } else { "meta/v1.Status" };
        decode_into(&self.scheme, into).await;
        result
    }

    async fn create(&self, lease: Object) -> Result<Object, ApiError> {
        let _frame = enter("v1.(*leases).Create");
        versioned_params(&self.scheme, "CreateOptions", COORDINATION).await;
        encode_body(&self.scheme, LEASE_TYPE).await;
        let result = self.client.create(lease).await;
        decode_into(&self.scheme, LEASE_TYPE).await;
        result
    }

    async fn update(&self, lease: Object) -> Result<Object, ApiError> {
        let _frame = enter("v1.(*leases).Update");
        versioned_params(&self.scheme, "UpdateOptions", COORDINATION).await;
        encode_body(&self.scheme, LEASE_TYPE).await;
        let result = self.client.update(lease).await;
        decode_into(&self.scheme, LEASE_TYPE).await;
        result
    }
}

/// A `record.EventRecorder` built on `scheme`; its broadcaster's sink task posts the events.
#[derive(Clone)]
struct Recorder {
    scheme: Scheme,
    broadcaster: Sender<Object>,
}

impl Recorder {
    /// `recorder.Eventf(obj, …)` → `generateEvent` → `ref.GetReference(scheme, obj)`.
    async fn eventf(&self, involved: &Object, go_type: &str, reason: &str, message: String) {
        let _frame = enter("record.(*recorderImpl).generateEvent");
        {
            let _reference = enter("reference.GetReference");
            self.scheme.object_kinds(go_type).await;
        }
        let mut record = Object::new("v1", "Event", &involved.metadata.namespace, "")
            .with_field(
                "involvedObject",
                json!({
                    "apiVersion": involved.api_version,
                    "kind": involved.kind,
                    "namespace": involved.metadata.namespace,
                    "name": involved.metadata.name,
                }),
            )
            .with_field("reason", json!(reason))
            .with_field("message", json!(message));
        record.metadata.generate_name = format!("{}.", involved.metadata.name);
        // The broadcaster's channel is unbounded here (upstream: a queue of 1000).
        let _ = self.broadcaster.try_send(record);
    }
}

/// `eventBroadcaster.StartRecordingToSink(&EventSinkImpl{kubeClient.CoreV1().Events("")})`:
/// the typed Events client encodes with client-go's global scheme, whatever the recorder's.
fn start_recording_to_sink(component: &str, client: Client, global: Scheme) -> Sender<Object> {
    let (sender, receiver) = channel::named(format!("event broadcaster ({component})"), None);
    let name = format!("record.(*eventBroadcasterImpl).StartRecordingToSink ({component})");
    spawn_daemon(name, async move {
        let _frame = enter("record.(*eventBroadcasterImpl).StartRecordingToSink.func1");
        while let Some(record) = receiver.recv().await {
            let _sink = enter("record.recordToSink");
            let _create = enter("v1.(*events).CreateWithEventNamespace");
            encode_body(&global, "core/v1.Event").await;
            let result = client.create(record).await;
            decode_into(&global, "core/v1.Event").await;
            if let Err(error) = result {
                event(format!("Server rejected event (will not retry!): {error}"));
            }
        }
    });
    sender
}

/// The controller `Context` the model needs: its recorder.
struct Context {
    recorder: Recorder,
}

/// `controller.ContextFactory`.
struct ContextFactory {
    fixed: bool,
    /// client-go's `scheme.Scheme`.
    global: Scheme,
    client: Client,
}

impl ContextFactory {
    /// `(*ContextFactory).Build(component...)`.
    async fn build(&self, component: &str) -> Context {
        let _frame = enter("controller.(*ContextFactory).Build");
        let scheme = if self.fixed {
            // #6833 / #6832: a fresh Scheme no other goroutine can see yet.
            let scheme = Scheme::new(&format!("Build({component}).scheme"));
            scheme.add_groups(KUBERNETES_GROUPS).await;
            scheme.add_groups(CERT_MANAGER_GROUPS).await;
            scheme
        } else {
            // v1.12.7: "Add cert-manager types to the default Kubernetes Scheme so Events can be
            // logged properly", on every Build.
            self.global.add_groups(CERT_MANAGER_GROUPS).await;
            self.global.clone()
        };
        event("creating event broadcaster");
        let broadcaster =
            start_recording_to_sink(component, self.client.clone(), self.global.clone());
        Context { recorder: Recorder { scheme, broadcaster } }
    }
}

/// client-go's `leaderelection.LeaderElector` with a `LeaseLock`.
struct LeaderElector {
    leases: Leases,
    recorder: Recorder,
    retry: Duration,
}

impl LeaderElector {
    /// `leaderelection.RunOrDie` → `(*LeaderElector).Run`.
    async fn run(self, elected: Sender<()>) {
        let _frame = enter("leaderelection.RunOrDie");
        let _run = enter("leaderelection.(*LeaderElector).Run");
        event(format!("attempting to acquire leader lease {LEASE_NAMESPACE}/{LEASE_NAME}..."));
        self.acquire().await;
        // `go le.config.Callbacks.OnStartedLeading(ctx)`: cert-manager's closes `elected`.
        spawn_daemon("OnStartedLeading", async move {
            let _frame = enter("app.Run.func1.1");
            elected.close();
        });
        self.renew().await;
    }

    /// `(*LeaderElector).acquire`: `tryAcquireOrRenew` every retry period until it succeeds.
    async fn acquire(&self) {
        let _frame = enter("leaderelection.(*LeaderElector).acquire");
        while !self.try_acquire_or_renew().await {
            sleep(self.retry).await;
        }
        let lease = Object::new(COORDINATION, "Lease", LEASE_NAMESPACE, LEASE_NAME);
        let _record = enter("resourcelock.(*LeaseLock).RecordEvent");
        self.recorder
            .eventf(&lease, LEASE_TYPE, "LeaderElection", format!("{IDENTITY} became leader"))
            .await;
        event(format!("successfully acquired lease {LEASE_NAMESPACE}/{LEASE_NAME}"));
    }

    /// `(*LeaderElector).renew`: `wait.Until(PollImmediateUntil(tryAcquireOrRenew), retry)`.
    async fn renew(&self) {
        let _frame = enter("leaderelection.(*LeaderElector).renew");
        loop {
            let renewed = {
                let _poll = enter("leaderelection.(*LeaderElector).renew.func1.1");
                self.try_acquire_or_renew().await
            };
            if renewed {
                event(format!("successfully renewed lease {LEASE_NAMESPACE}/{LEASE_NAME}"));
            } else {
                event(format!("failed to renew lease {LEASE_NAMESPACE}/{LEASE_NAME}"));
            }
            sleep(self.retry).await;
        }
    }

    /// `(*LeaderElector).tryAcquireOrRenew`: get the lease (create it when missing), then
    /// update the holder and renew time. A single replica: the lease is always ours.
    async fn try_acquire_or_renew(&self) -> bool {
        let _frame = enter("leaderelection.(*LeaderElector).tryAcquireOrRenew");
        let now = Time::now();
        let current = {
            let _get = enter("resourcelock.(*LeaseLock).Get");
            self.leases.get(LEASE_NAME).await
        };
        match current {
            Err(error) if error.is_not_found() => {
                let lease = Object::new(COORDINATION, "Lease", LEASE_NAMESPACE, LEASE_NAME)
                    .with_spec(json!({
                        "holderIdentity": IDENTITY,
                        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    }));
                let _create = enter("resourcelock.(*LeaseLock).Create");
                self.leases.create(lease).await.is_ok()
            }
            Err(_) => false,
            Ok(mut lease) => {
                lease.spec["holderIdentity"] = json!(IDENTITY);
                lease.spec["renewTime"] = json!(now);
                let _update = enter("resourcelock.(*LeaseLock).Update");
                self.leases.update(lease).await.is_ok()
            }
        }
    }
}

/// Controllers built (Builder.Complete → ContextFactory.Build) after the election.
const CONTROLLER_COUNT: Key<usize> = Key::count(
    "controllers",
    "controllers built (Builder.Complete → ContextFactory.Build) after the election",
    8,
)
.range(1, CONTROLLERS.len() as u64);

/// Leader-election RetryPeriod: the renewal period (cert-manager's default 15 s).
const RETRY: Key<Duration> = Key::millis(
    "retry-ms",
    "leader-election RetryPeriod: the renewal period (cert-manager's default 15 s)",
    15_000,
)
.range(100, 120_000);

const PARAMS: &[Param] = &[
    CONTROLLER_COUNT.param,
    RETRY.param,
    // The race needs the event recorder's calls to take time: the swarm keeps the latency.
    crate::API_LATENCY.swarm(&[]).param,
];

const BUGGY: Variant = Variant::fails(
    "buggy",
    "cert-manager v1.12.7: every ContextFactory.Build adds the cert-manager types to the global scheme",
    FailureKind::GoFatal,
    "fatal error: concurrent map read and map write",
);
const FIXED: Variant = Variant::holds(
    "fixed",
    "v1.12.9 (PR #6833) / v1.13.5 (PR #6832): each Build fills a private Scheme",
);

const VARIANTS: &[Variant] = &[BUGGY, FIXED];

/// The scenario.
pub struct SchemeRace;

const META: Meta = Meta {
    name: "cert-manager-scheme-race",
    summary: "ContextFactory.Build writes the global Scheme while the lease renewal reads it: concurrent map read and map write",
    upstream: &[
        "https://github.com/cert-manager/cert-manager/issues/6822",
        "https://github.com/cert-manager/cert-manager/pull/6833",
        "https://github.com/cert-manager/cert-manager/pull/6832",
        "https://github.com/cert-manager/cert-manager/pull/6028",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for SchemeRace {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let fixed = variant.is(&FIXED);
        let server = apiserver_fake::ApiServer::new(Registry::builtin(), ServerConfig::default());
        let controllers = params.get(CONTROLLER_COUNT).min(CONTROLLERS.len());
        let retry = params.get(RETRY);
        let global = Scheme::new("scheme.Scheme");
        let cert_manager = Client::new(&server, "cert-manager", crate::client_config(params));
        let leader_election = Client::new(&server, "leader-election", crate::client_config(params));
        spawn("main", async move {
            let _main = enter("main.main");
            {
                // Package init runs on goroutine 1 before main: nothing else can read yet.
                let _init = enter("scheme.init.0");
                global.add_to_group_version("", "v1").await;
                global.add_groups(KUBERNETES_GROUPS).await;
            }
            let _run = enter("app.Run");
            let factory = ContextFactory { fixed, global: global.clone(), client: cert_manager };
            let root = factory.build("root").await;
            let (elected, on_elected) = channel::named::<()>("elected", Some(1));
            let elector = LeaderElector {
                leases: Leases { client: leader_election, scheme: global.clone() },
                recorder: root.recorder.clone(),
                retry,
            };
            spawn_daemon("leader-election", async move {
                let _frame = enter("app.Run.func1");
                elector.run(elected).await;
            });
            // select { case <-rootCtx.Done(): … case <-elected: }
            on_elected.recv().await;
            // The controllers keep their contexts (and so their event broadcasters).
            let mut contexts = vec![root];
            for name in &CONTROLLERS[..controllers] {
                {
                    let _complete = enter("controller.(*Builder).Complete");
                    contexts.push(factory.build(name).await);
                }
                spawn_daemon(format!("{name} controller"), async move {
                    let _frame = enter("controller.(*controller).Run");
                    event(format!("starting controller {name}"));
                    event(format!("{name}: starting control loop"));
                });
            }
            event("starting shared informer factories");
            // g.Wait(): the process runs on; nothing writes the scheme any more, so the model
            // stops after two more renewals.
            sleep(retry * 2).await;
            drop(contexts);
        });
    }
}

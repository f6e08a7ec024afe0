//! `cert-manager-foreground-deletion`: deleting a Certificate with foreground propagation never
//! completes (cert-manager v1.16).
//!
//! - Upstream issue: <https://github.com/cert-manager/cert-manager/issues/7358> ("Certificates
//!   are stuck in deletion because of a race condition between Kubernetes GC and
//!   cert-manager", v1.16.1).
//! - Fix: PR #7361 "don't create certificaterequests while being deleted" (v1.17.0): the
//!   requestmanager and issuing controllers skip a Certificate with a deletionTimestamp.
//!   Follow-up PR #7454 (v1.18.0): the keymanager and trigger controllers too.
//!
//! Every CertificateRequest and private-key Secret is created with
//! `NewControllerRef(certificate)`, so each one blocks the Certificate's foreground deletion.
//!
//! | step (bugs.md A) | modelled by | upstream |
//! |---|---|---|
//! | 1. the user deletes the Certificate with `propagationPolicy=Foreground` | task `user` | `kubectl delete --cascade=foreground` |
//! | 2. the GC deletes the Certificate's blocking dependents | apiserver-fake's [`GarbageCollector`] | `attemptToDeleteItem` |
//! | 3. the Secret is missing: `Issuing=True` | controller `certificates-trigger` | `pkg/controller/certificates/trigger` `ProcessItem` |
//! | 4. a new private-key Secret owned by the Certificate | controller `certificates-key-manager` | `pkg/controller/certificates/keymanager` `ProcessItem` |
//! | 5. no CertificateRequest for revision+1: create one, owned and blocking | controller `certificates-request-manager` | `pkg/controller/certificates/requestmanager` `ProcessItem` |
//! | 6. the external issuer adds its finalizer | controller `external-issuer` | an out-of-tree issuer's CertificateRequest reconciler |
//! | 7. the GC deletes the new blocking dependent; the finalizer keeps it | [`GarbageCollector`] | `attemptToDeleteItem` |
//! | 8. after its clean-up delay the issuer removes the finalizer; the request goes; the requestmanager is requeued | `external-issuer`, the requestmanager's `Owns` handler | |
//! | 9. back to 5: `foregroundDeletion` is never removed | | `processDeletingDependentsItem` |
//! | issuance when a request is ready: the Secret, `status.revision+1`, `Issuing` removed | controller `certificates-issuing` | `pkg/controller/certificates/issuing` `ProcessItem` |
//!
//! The requestmanager counts requests being deleted (still in its cache) as existing, so it
//! waits until the old one is fully gone: the issuer's finalizer delay is the race window.
//!
//! Oracles: **liveness** — every Certificate is gone within `deletion-bound-s` of its
//! foreground delete, the message counting the CertificateRequests created and deleted since
//! the deletionTimestamp; with `e2e-check=1`, also the upstream e2e **safety** check — no
//! CertificateRequest owned by the Certificate is created after its deletionTimestamp (one is
//! allowed, for stale caches).

use std::cell::RefCell;

use sim_core::footprint::Resource;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiServer, Cache, Client, ClientConfig, Controller, DeleteOptions, EventType,
    GarbageCollector, GcConfig, Informer, KindInfo, NamespaceConfig, NamespaceController, Object,
    ObjectKey, OwnerReference, Propagation, ReconcileResult, Registry, ServerConfig, WatchStart,
};
use serde_json::json;
use sim_core::{FailureKind, enter, event, random_duration, sleep, spawn, spawn_daemon};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

const CM: &str = "cert-manager.io/v1";
const NS: &str = "sandbox";
const ISSUER_FINALIZER: &str = "issuer.example.com/finalizer";
const REVISION: &str = "cert-manager.io/certificate-revision";
const PRIVATE_KEY: &str = "cert-manager.io/private-key-secret-name";

/// The scenario.
pub struct ForegroundDeletion;

const BUGGY: Variant = Variant::fails(
    "buggy",
    "cert-manager v1.16: no controller checks the Certificate's deletionTimestamp",
    FailureKind::Liveness,
    "not deleted within",
);
const FIXED: Variant = Variant::holds(
    "fixed",
    "v1.17 (PR #7361): requestmanager and issuing skip a deleting Certificate",
);
const FIXED_ALL: Variant =
    Variant::holds("fixed-all", "v1.18 (PR #7454): keymanager and trigger skip it too");
const NAMESPACE_DELETE: Variant = Variant::holds(
    "namespace-delete",
    "the workaround on v1.16: delete the namespace; creates in it are refused (403)",
);

const VARIANTS: &[Variant] = &[BUGGY, FIXED, FIXED_ALL, NAMESPACE_DELETE];

/// The external issuer's clean-up time before it removes its finalizer.
const FINALIZER_DELAY: Key<Duration> = Key::millis(
    "finalizer-delay-ms",
    "the external issuer's clean-up time before it removes its finalizer",
    2_000,
)
.range(0, 60_000);

/// If above finalizer-delay-ms: each clean-up takes a seeded time in that range.
const FINALIZER_DELAY_MAX: Key<Duration> = Key::millis(
    "finalizer-delay-max-ms",
    "if above finalizer-delay-ms: each clean-up takes a seeded time in that range",
    0,
)
.range(0, 120_000);

/// Certificates deleted at once.
const CERTIFICATES: Key<usize> =
    Key::count("certificates", "Certificates deleted at once", 1).range(1, 20).swarm(&[1, 2]);

/// Workers per cert-manager controller.
const WORKERS: Key<usize> =
    Key::count("workers", "workers per cert-manager controller", 2).range(1, 10).swarm(&[1, 2, 4]);

/// The shared `cache-lag-us` (see [`crate::CACHE_LAG`]), with this scenario's range (up to 1 s)
/// and a third swarm value (50 ms), long enough for a stale read across a whole reconcile.
const CACHE_LAG: Key<Duration> = crate::CACHE_LAG.range(0, 1_000_000).swarm(&[0, 5_000, 50_000]);

/// How long the issuer takes to sign a new CertificateRequest.
const SIGN_DELAY: Key<Duration> = Key::millis(
    "sign-delay-ms",
    "how long the issuer takes to sign a new CertificateRequest",
    10_000,
)
.range(0, 600_000)
.swarm(&[1_000, 10_000]);

/// Liveness bound: virtual seconds within which deletion must complete.
const DELETION_BOUND: Key<Duration> = Key::seconds(
    "deletion-bound-s",
    "liveness bound: virtual seconds within which deletion must complete",
    120,
)
.range(10, 3_600);

/// 1: also fail on a CertificateRequest created after the deletionTimestamp (upstream e2e).
const E2E_CHECK: Key<bool> = Key::flag(
    "e2e-check",
    "1: also fail on a CertificateRequest created after the deletionTimestamp (upstream e2e)",
    false,
);

/// 1: cert-manager and the issuer run as a process, so crash-after-write and the other
/// perturbations apply to them (docs/09).
const PROCESS: Key<bool> = Key::flag(
    "process",
    "1: cert-manager and the issuer run as a process that perturbations may crash and restart",
    false,
);

const PARAMS: &[Param] = &[
    FINALIZER_DELAY.param,
    FINALIZER_DELAY_MAX.param,
    CERTIFICATES.param,
    WORKERS.param,
    CACHE_LAG.param,
    SIGN_DELAY.param,
    DELETION_BOUND.param,
    E2E_CHECK.param,
    PROCESS.param,
];

const META: Meta = Meta {
    name: "cert-manager-foreground-deletion",
    summary: "foreground deletion of a Certificate livelocks: cert-manager recreates what the GC deletes",
    upstream: &[
        "https://github.com/cert-manager/cert-manager/issues/7358",
        "https://github.com/cert-manager/cert-manager/pull/7361",
        "https://github.com/cert-manager/cert-manager/pull/7454",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for ForegroundDeletion {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let guards = Guards {
            request_and_issuing: variant.is(&FIXED) || variant.is(&FIXED_ALL),
            trigger_and_keys: variant.is(&FIXED_ALL),
        };
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(CM, "Certificate", "certificates", true));
        registry.register(KindInfo::custom(CM, "CertificateRequest", "certificaterequests", true));
        let server = ApiServer::new(registry, ServerConfig::default());
        let certificates = params.get(CERTIFICATES);
        seed_cluster(&server, certificates);

        let client = |name: &str| Client::new(&server, name, ClientConfig::default());
        let gc_kinds = [(CM, "Certificate"), (CM, "CertificateRequest"), ("v1", "Secret")];
        GarbageCollector::start(&client("gc"), GcConfig::default().with_kinds(&gc_kinds));
        if variant.is(&NAMESPACE_DELETE) {
            NamespaceController::start(&client("namespace-controller"), NamespaceConfig::default());
        }
        let config = crate::informer_config_with(params, CACHE_LAG);
        let booted: Rc<RefCell<Option<Caches>>> = Rc::default();
        let (slot, boot_server, boot_params) = (booted.clone(), server.clone(), params.clone());
        let boot = move || {
            let (server, params) = (&boot_server, &boot_params);
            let client = |name: &str| Client::new(server, name, ClientConfig::default());
            let cm = client("cert-manager");
            let informer = |kind: &str, api: &str| {
                Informer::new(
                    &format!("cert-manager/{}", kind.to_lowercase()),
                    &cm,
                    api,
                    kind,
                    Some(NS),
                    config,
                )
            };
            let caches = Caches {
                certificates: informer("Certificate", CM),
                requests: informer("CertificateRequest", CM),
                secrets: informer("Secret", "v1"),
            };
            let world = Rc::new(World { client: cm.clone(), caches: caches.clone(), guards });
            let workers = params.get(WORKERS);
            let start = |name: &str| {
                let controller = Controller::new(name, workers);
                controller.watches(&caches.certificates);
                controller.owns(&caches.requests, CM, "Certificate");
                controller.owns(&caches.secrets, CM, "Certificate");
                controller
            };
            let w = world.clone();
            start("certificates-trigger").start(move |key| trigger(w.clone(), key));
            let w = world.clone();
            start("certificates-key-manager").start(move |key| key_manager(w.clone(), key));
            let w = world.clone();
            start("certificates-request-manager").start(move |key| request_manager(w.clone(), key));
            let w = world.clone();
            start("certificates-issuing").start(move |key| issuing(w.clone(), key));
            let issuer = Controller::new("external-issuer", workers);
            issuer.watches(&caches.requests);
            let delays = (params.get(FINALIZER_DELAY), params.get(FINALIZER_DELAY_MAX));
            let issuer_world = Rc::new(Issuer {
                client: client("external-issuer"),
                requests: caches.requests.cache(),
                finalizer_delay: delays,
                sign_delay: params.get(SIGN_DELAY),
                cleanups: RefCell::new(BTreeMap::new()),
                cleanups_resource: Resource::new(),
            });
            issuer.start(move |key| external_issuer(issuer_world.clone(), key));
            for informer in [&caches.certificates, &caches.requests, &caches.secrets] {
                informer.start();
            }
            *slot.borrow_mut() = Some(caches);
        };
        if params.get(PROCESS) {
            sim_core::Process::start("cert-manager", boot);
        } else {
            boot();
        }

        let counts = Rc::new(RefCell::new(Counts::default()));
        count_requests(&server, counts.clone());
        let bound = params.get(DELETION_BOUND);
        let e2e = params.get(E2E_CHECK);
        let namespace_delete = variant.is(&NAMESPACE_DELETE);
        let user = client("user");
        let process = params.get(PROCESS);
        spawn("user", async move {
            if process {
                // A crash may replace the informers while the user waits: look again each time.
                let synced = || {
                    let caches = booted.borrow().clone().expect("booted");
                    [&caches.certificates, &caches.requests, &caches.secrets]
                        .iter()
                        .all(|informer| informer.has_synced())
                };
                while !synced() {
                    sleep(Duration::from_millis(100)).await;
                }
            } else {
                let caches = booted.borrow().clone().expect("booted");
                for informer in [&caches.certificates, &caches.requests, &caches.secrets] {
                    informer.wait_synced().await;
                }
            }
            sleep(Duration::from_secs(1)).await;
            let names: Vec<String> = (0..certificates).map(|i| format!("cert-{i}")).collect();
            register_oracles(&server, &names, counts.clone(), bound, e2e);
            if namespace_delete {
                event(format!("[1] user: delete namespace {NS} (the workaround)"));
                user.delete("v1", "Namespace", "", NS, &DeleteOptions::default())
                    .await
                    .expect("ns");
            } else {
                for name in &names {
                    event(format!(
                        "[1] user: delete Certificate {NS}/{name} with propagationPolicy=Foreground"
                    ));
                    let foreground = DeleteOptions::propagation(Propagation::Foreground);
                    user.delete(CM, "Certificate", NS, name, &foreground).await.expect("delete");
                }
            }
            let deadline = sim_core::now() + bound + Duration::from_secs(1);
            while sim_core::now() < deadline
                && names.iter().any(|n| server.peek(CM, "Certificate", NS, n).is_some())
            {
                sleep(Duration::from_secs(1)).await;
            }
            while namespace_delete
                && sim_core::now() < deadline
                && server.peek("v1", "Namespace", "", NS).is_some()
            {
                sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// Which deletionTimestamp checks a variant has.
#[derive(Clone, Copy)]
struct Guards {
    /// v1.17: requestmanager and issuing skip a deleting Certificate.
    request_and_issuing: bool,
    /// v1.18: keymanager and trigger too.
    trigger_and_keys: bool,
}

/// The shared informers of cert-manager's controllers.
#[derive(Clone)]
struct Caches {
    certificates: Informer,
    requests: Informer,
    secrets: Informer,
}

struct World {
    client: Client,
    caches: Caches,
    guards: Guards,
}

/// A Certificate, its Secret, and the signed request of its current revision.
fn seed_cluster(server: &ApiServer, certificates: usize) {
    server.create(Object::new("v1", "Namespace", "", NS)).expect("namespace");
    for i in 0..certificates {
        let name = format!("cert-{i}");
        let spec = json!({ "secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.example.com")],
                           "issuerRef": { "name": "external", "kind": "ExternalIssuer", "group": "issuer.example.com" } });
        let cert = server
            .create(Object::new(CM, "Certificate", NS, &name).with_spec(spec))
            .expect("certificate");
        let mut ready = cert.clone();
        ready.status =
            json!({ "revision": 1, "conditions": [{ "type": "Ready", "status": "True" }] });
        let cert = server.update_status(ready).expect("status");
        // `--enable-certificate-owner-ref`: the Secret is owned, so the GC deletes it too.
        let secret = Object::new("v1", "Secret", NS, &format!("{name}-tls"))
            .with_owner(OwnerReference::controller_of(&cert))
            .with_field("data", json!({ "tls.crt": "signed", "tls.key": "key" }));
        server.create(secret).expect("secret");
        let mut request = Object::new(CM, "CertificateRequest", NS, &format!("{name}-1"))
            .with_owner(OwnerReference::controller_of(&cert))
            .with_finalizer(ISSUER_FINALIZER);
        request.metadata.annotations.insert(REVISION.into(), "1".into());
        let request = server.create(request).expect("request");
        let mut signed = request;
        signed.status = json!({ "conditions": [{ "type": "Ready", "status": "True" }], "certificate": "signed" });
        server.update_status(signed).expect("signed");
    }
}

fn condition(object: &Object, kind: &str) -> bool {
    object.status["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn revision(certificate: &Object) -> u64 {
    certificate.status["revision"].as_u64().unwrap_or(0)
}

fn request_revision(request: &Object) -> Option<u64> {
    request.metadata.annotations.get(REVISION).and_then(|r| r.parse().ok())
}

/// Requests in the cache owned (as controller) by `certificate`.
fn owned_requests(cache: &Cache, certificate: &Object) -> Vec<Object> {
    cache
        .list(Some(NS))
        .into_iter()
        .filter(|r| r.controller_ref().is_some_and(|o| o.uid == certificate.metadata.uid))
        .collect()
}

/// `trigger.ProcessItem`: a missing Secret starts an issuance (`Issuing=True`).
async fn trigger(world: Rc<World>, key: ObjectKey) -> ReconcileResult {
    let _frame = enter("trigger.ProcessItem");
    let Some(mut certificate) = world.caches.certificates.cache().get(&key.namespace, &key.name)
    else {
        return Ok(Action::Done);
    };
    if world.guards.trigger_and_keys && certificate.is_deleting() {
        return Ok(Action::Done);
    }
    let secret_name = certificate.spec["secretName"].as_str().unwrap_or_default().to_string();
    if condition(&certificate, "Issuing")
        || world.caches.secrets.cache().get(NS, &secret_name).is_some()
    {
        return Ok(Action::Done);
    }
    event(format!("[3] trigger: Secret {NS}/{secret_name} does not exist: Issuing=True on {key}"));
    let conditions = json!([{ "type": "Ready", "status": "False" },
            { "type": "Issuing", "status": "True", "reason": "DoesNotExist",
              "message": "Issuing certificate as Secret does not exist" }]);
    certificate.status["conditions"] = conditions;
    world.client.update_status(certificate).await?;
    Ok(Action::Done)
}

/// `keymanager.ProcessItem`: an issuing Certificate gets a private-key Secret it owns.
async fn key_manager(world: Rc<World>, key: ObjectKey) -> ReconcileResult {
    let _frame = enter("keymanager.ProcessItem");
    let Some(mut certificate) = world.caches.certificates.cache().get(&key.namespace, &key.name)
    else {
        return Ok(Action::Done);
    };
    if world.guards.trigger_and_keys && certificate.is_deleting() {
        return Ok(Action::Done);
    }
    if !condition(&certificate, "Issuing") {
        return Ok(Action::Done);
    }
    let next = certificate.status["nextPrivateKeySecretName"].as_str().map(str::to_string);
    if next.as_ref().is_some_and(|n| world.caches.secrets.cache().get(NS, n).is_some()) {
        return Ok(Action::Done);
    }
    let mut secret = Object::new("v1", "Secret", NS, "")
        .with_owner(OwnerReference::controller_of(&certificate))
        .with_label("cert-manager.io/next-private-key", "true")
        .with_field("data", json!({ "tls.key": "fresh key" }));
    secret.metadata.generate_name = format!("{}-", key.name);
    let secret = world.client.create(secret).await?;
    event(format!("[4] keymanager: created private-key Secret {} owned by {key}", secret.key()));
    certificate.status["nextPrivateKeySecretName"] = json!(secret.metadata.name);
    world.client.update_status(certificate).await?;
    Ok(Action::Done)
}

/// `requestmanager.ProcessItem`: with `Issuing=True` and a private key, make sure a
/// CertificateRequest exists for revision+1 (one being deleted still counts: wait for it).
async fn request_manager(world: Rc<World>, key: ObjectKey) -> ReconcileResult {
    let _frame = enter("requestmanager.ProcessItem");
    let Some(certificate) = world.caches.certificates.cache().get(&key.namespace, &key.name) else {
        return Ok(Action::Done);
    };
    if world.guards.request_and_issuing && certificate.is_deleting() {
        return Ok(Action::Done); // PR #7361
    }
    if !condition(&certificate, "Issuing") {
        return Ok(Action::Done);
    }
    let Some(private_key) = certificate.status["nextPrivateKeySecretName"].as_str() else {
        return Ok(Action::Done);
    };
    if world.caches.secrets.cache().get(NS, private_key).is_none() {
        return Ok(Action::Done);
    }
    let next = revision(&certificate) + 1;
    let requests = owned_requests(&world.caches.requests.cache(), &certificate);
    if requests.iter().any(|r| request_revision(r) == Some(next)) {
        return Ok(Action::Done);
    }
    let mut request = Object::new(CM, "CertificateRequest", NS, "")
        .with_owner(OwnerReference::controller_of(&certificate))
        .with_spec(json!({ "issuerRef": certificate.spec["issuerRef"].clone(), "request": "CSR" }));
    request.metadata.generate_name = format!("{}-", key.name);
    request.metadata.annotations.insert(REVISION.into(), next.to_string());
    request.metadata.annotations.insert(PRIVATE_KEY.into(), private_key.to_string());
    let request = world.client.create(request).await?;
    event(format!(
        "[5] requestmanager: created CertificateRequest {} for revision {next} of {key}",
        request.key()
    ));
    Ok(Action::Done)
}

/// `issuing.ProcessItem`: a ready request for revision+1 is issued into the Secret.
async fn issuing(world: Rc<World>, key: ObjectKey) -> ReconcileResult {
    let _frame = enter("issuing.ProcessItem");
    let Some(mut certificate) = world.caches.certificates.cache().get(&key.namespace, &key.name)
    else {
        return Ok(Action::Done);
    };
    if world.guards.request_and_issuing && certificate.is_deleting() {
        return Ok(Action::Done); // PR #7361
    }
    if !condition(&certificate, "Issuing") {
        return Ok(Action::Done);
    }
    let next = revision(&certificate) + 1;
    let requests = owned_requests(&world.caches.requests.cache(), &certificate);
    let Some(ready) =
        requests.iter().find(|r| request_revision(r) == Some(next) && condition(r, "Ready"))
    else {
        return Ok(Action::Done);
    };
    let secret_name = certificate.spec["secretName"].as_str().unwrap_or_default().to_string();
    let secret = Object::new("v1", "Secret", NS, &secret_name)
        .with_owner(OwnerReference::controller_of(&certificate))
        .with_field(
            "data",
            json!({ "tls.crt": ready.status["certificate"].clone(), "tls.key": "fresh key" }),
        );
    match world.client.create(secret).await {
        Ok(_) => {}
        Err(error) if error.is_already_exists() => {}
        Err(error) => return Err(error.into()),
    }
    event(format!("issuing: issued revision {next} of {key} into Secret {NS}/{secret_name}"));
    certificate.status["revision"] = json!(next);
    certificate.status["conditions"] = json!([{ "type": "Ready", "status": "True" }]);
    if let Some(status) = certificate.status.as_object_mut() {
        status.remove("nextPrivateKeySecretName");
    }
    world.client.update_status(certificate).await?;
    Ok(Action::Done)
}

/// An external issuer: a finalizer on every request, removed after a clean-up delay once the
/// request is being deleted; requests are signed after `sign_delay`.
struct Issuer {
    client: Client,
    requests: Cache,
    finalizer_delay: (Duration, Duration),
    sign_delay: Duration,
    /// When each request's clean-up will be done (drawn once per request).
    cleanups: RefCell<BTreeMap<String, sim_core::SimTime>>,
    /// `cleanups`, as the issuer's workers touch it (for partial-order reduction).
    cleanups_resource: Resource,
}

async fn external_issuer(issuer: Rc<Issuer>, key: ObjectKey) -> ReconcileResult {
    let _frame = enter("issuer.Reconcile");
    let Some(mut request) = issuer.requests.get(&key.namespace, &key.name) else {
        return Ok(Action::Done);
    };
    let now = sim_core::now();
    if request.is_deleting() {
        if !request.has_finalizer(ISSUER_FINALIZER) {
            return Ok(Action::Done);
        }
        let uid = request.metadata.uid.clone();
        issuer.cleanups_resource.write();
        let done = *issuer.cleanups.borrow_mut().entry(uid).or_insert_with(|| {
            let (low, high) = issuer.finalizer_delay;
            now + if high > low { random_duration(low, high) } else { low }
        });
        if now < done {
            return Ok(Action::RequeueAfter(done - now));
        }
        request.metadata.finalizers.retain(|f| f != ISSUER_FINALIZER);
        issuer.client.update(request).await?;
        event(format!("[8] issuer: clean-up done, removed its finalizer from {key}"));
        return Ok(Action::Done);
    }
    if !request.has_finalizer(ISSUER_FINALIZER) {
        request.metadata.finalizers.push(ISSUER_FINALIZER.to_string());
        issuer.client.update(request).await?;
        event(format!("[6] issuer: added its finalizer to {key}"));
        return Ok(Action::Done);
    }
    if condition(&request, "Ready") {
        return Ok(Action::Done);
    }
    let created =
        request.metadata.creation_timestamp.and_then(|t| t.sim_time()).unwrap_or_default();
    let signed_at = created + issuer.sign_delay;
    if now < signed_at {
        return Ok(Action::RequeueAfter(signed_at - now));
    }
    request.status =
        json!({ "conditions": [{ "type": "Ready", "status": "True" }], "certificate": "signed" });
    issuer.client.update_status(request).await?;
    Ok(Action::Done)
}

/// CertificateRequests created and deleted after each Certificate's deletionTimestamp.
#[derive(Default)]
struct Counts {
    /// Certificate name → (deletionTimestamp, created since, deleted since, first created).
    by_certificate: BTreeMap<String, (sim_core::SimTime, u64, u64, Option<String>)>,
    /// Certificate uid → name.
    names: BTreeMap<String, String>,
}

/// A daemon that watches the server directly (no cache lag) and counts requests per owner.
fn count_requests(server: &ApiServer, counts: Rc<RefCell<Counts>>) {
    let server = server.clone();
    spawn_daemon("oracle/request-counter", async move {
        let certificates =
            server.watch(CM, "Certificate", Some(NS), WatchStart::Now, false).expect("watch");
        let requests = server
            .watch(CM, "CertificateRequest", Some(NS), WatchStart::Now, false)
            .expect("watch");
        loop {
            while let Some(event) = certificates.try_next() {
                let object = &event.object;
                let mut counts = counts.borrow_mut();
                counts.names.insert(object.metadata.uid.clone(), object.metadata.name.clone());
                if let Some(at) = object.metadata.deletion_timestamp.and_then(|t| t.sim_time()) {
                    counts
                        .by_certificate
                        .entry(object.metadata.name.clone())
                        .or_insert((at, 0, 0, None));
                }
            }
            while let Some(event) = requests.try_next() {
                let Some(owner) = event.object.controller_ref() else { continue };
                let mut counts = counts.borrow_mut();
                let Some(name) = counts.names.get(&owner.uid).cloned() else { continue };
                if let Some(entry) = counts.by_certificate.get_mut(&name) {
                    match event.event_type {
                        EventType::Added => {
                            entry.1 += 1;
                            entry.3.get_or_insert_with(|| event.object.key());
                        }
                        EventType::Deleted => entry.2 += 1,
                        _ => {}
                    }
                }
            }
            sleep(Duration::from_millis(10)).await;
        }
    });
}

fn register_oracles(
    server: &ApiServer,
    names: &[String],
    counts: Rc<RefCell<Counts>>,
    bound: Duration,
    e2e: bool,
) {
    let liveness_counts = counts.clone();
    let liveness_names = names.to_vec();
    let liveness_server = server.clone();
    let deadline = sim_core::now() + bound;
    sim_core::eventually("certificates deleted", bound, move || {
        let present = |n: &&String| liveness_server.exists(CM, "Certificate", NS, n);
        if !liveness_names.iter().any(|n| present(&n)) {
            return Ok(());
        }
        if sim_core::now() < deadline {
            // Checked after every step: the full report is built only when it is due.
            return Err(String::new());
        }
        let alive: Vec<&String> = liveness_names.iter().filter(present).collect();
        let Some(name) = alive.first() else { return Ok(()) };
        let counts = liveness_counts.borrow();
        let (created, deleted) = counts.by_certificate.get(*name).map_or((0, 0), |e| (e.1, e.2));
        let finalizers = liveness_server
            .peek(CM, "Certificate", NS, name)
            .map(|c| c.metadata.finalizers.join(", "))
            .unwrap_or_default();
        Err(format!(
            "Certificate {NS}/{name} not deleted within {}s of its foreground deletion (finalizers: \
             [{finalizers}]): {created} CertificateRequests owned by it were created and {deleted} \
             deleted since its deletionTimestamp ({} of {} Certificates still present)",
            bound.as_secs(),
            alive.len(),
            liveness_names.len()
        ))
    });
    if e2e {
        sim_core::always("no CertificateRequest created after deletionTimestamp", move || {
            let counts = counts.borrow();
            for (name, (_, created, deleted, first)) in &counts.by_certificate {
                if *created > 1 {
                    return Err(format!(
                        "CertificateRequest {} owned by Certificate {NS}/{name} was created after its \
                         deletionTimestamp: {created} created and {deleted} deleted since (1 allowed \
                         for stale caches)",
                        first.clone().unwrap_or_default()
                    ));
                }
            }
            Ok(())
        });
    }
}

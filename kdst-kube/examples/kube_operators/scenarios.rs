//! The kube-rs operators of `app.rs` and `certs.rs` as kdst scenarios.

use std::sync::Arc;
use std::time::Duration;

use apiserver_fake::endstate::Oracles;
use apiserver_fake::{GcConfig, InformerConfig, Latency, ServerConfig};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kdst_kube::{Cluster, Controller};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use scenarios::{Key, Meta, Params, Registry, Scenario, Variant};
use sim_core::{FailureKind, Process};

#[path = "app.rs"]
pub mod app;
#[path = "certs.rs"]
pub mod certs;

use app::{App, AppSpec};
use certs::{Certificate, CertificateRequest, CertificateSpec};

/// Adds this file's scenarios to `registry`.
pub fn register(registry: Registry) -> Registry {
    registry.with(AppStaleDelete).with(CertForeground)
}

const APP: (&str, &str) = ("example.kdst.dev/v1", "App");
const STS: (&str, &str) = ("apps/v1", "StatefulSet");
const POD: (&str, &str) = ("v1", "Pod");

const APP_BUGGY: Variant = Variant::fails(
    "buggy",
    "rabbitmq #648's shape: the clean-up deletes the StatefulSet by name",
    FailureKind::Invariant,
    "StatefulSet",
);
const APP_FIXED: Variant = Variant::holds(
    "fixed",
    "#651's fix: only the App's own StatefulSet, deleted with a uid precondition",
);

const APP_META: Meta = Meta {
    name: "kube-app-stale-delete",
    summary: "a kube-rs operator (CustomResource, finalizer, owned StatefulSet) deletes a \
              recreated App's StatefulSet by name from a stale view",
    upstream: &[
        "https://github.com/rabbitmq/cluster-operator/issues/648",
        "https://github.com/rabbitmq/cluster-operator/pull/651",
    ],
    variants: &[APP_BUGGY, APP_FIXED],
    params: &[],
};

/// `app.rs` as a scenario: generic oracles only.
pub struct AppStaleDelete;

impl Scenario for AppStaleDelete {
    fn meta(&self) -> &'static Meta {
        &APP_META
    }

    fn generic_oracles(&self) -> Option<Oracles> {
        Some(Oracles::new(&[APP, STS]))
    }

    fn setup(&self, variant: &Variant, _params: &Params) {
        let cluster = Cluster::builder()
            .server_config(ServerConfig::default().with_update_summary(true))
            .system_controllers()
            .gc_kinds(&[APP, STS, POD])
            .crd::<App>()
            .build();
        let fixed = variant.is(&APP_FIXED);
        let operator = cluster.clone();
        Process::start("app-operator", move || {
            let client = operator.client("app-operator");
            operator.spawn_daemon("app-operator", async move {
                let context = Arc::new(app::Ctx { client: client.clone(), fixed });
                Controller::new(Api::<App>::all(client.clone()), watcher::Config::default())
                    .owns(Api::<StatefulSet>::all(client), watcher::Config::default())
                    .run(app::reconcile, app::error_policy, context)
                    .for_each(|_| std::future::ready(()))
                    .await;
            });
        });
        let oracles = self.generic_oracles().expect("declared");
        let user = cluster.clone();
        cluster.spawn("user", async move {
            let apps: Api<App> = Api::namespaced(user.client("user"), "default");
            let web = App::new("web", AppSpec { replicas: 1 });
            apps.create(&PostParams::default(), &web).await.expect("create web");
            let pod = || user.peek::<Pod>("default", "web-server-0").is_some();
            wait_until("web's pod runs", pod).await;
            apps.delete("web", &DeleteParams::default()).await.expect("delete web");
            wait_until("web is gone", || user.peek::<App>("default", "web").is_none()).await;
            apps.create(&PostParams::default(), &web).await.expect("recreate web");
            oracles.settle(user.server()).await;
        });
    }
}

const CERT: (&str, &str) = ("cert-manager.io/v1", "Certificate");
const REQUEST: (&str, &str) = ("cert-manager.io/v1", "CertificateRequest");
const SECRET: (&str, &str) = ("v1", "Secret");
const NS: &str = "sandbox";

/// The issuer's clean-up time before it removes its finalizer.
const CLEANUP_DELAY: Key<Duration> = Key::millis(
    "cleanup-delay-ms",
    "the external issuer's clean-up time before it removes its finalizer",
    2_000,
)
.range(0, 60_000)
.swarm(&[500, 2_000, 10_000]);

/// How far the garbage collector's view lags: a collector monitoring every kind of a busy
/// cluster hears of a change later than a controller watching two kinds.
const GC_LAG: Key<Duration> =
    Key::millis("gc-lag-ms", "the garbage collector's informer delivery delay (up to)", 50)
        .range(0, 10_000)
        .swarm(&[0, 50, 200]);

/// Liveness bound: virtual seconds within which deletion must complete.
const DELETION_BOUND: Key<Duration> = Key::seconds(
    "deletion-bound-s",
    "liveness bound: virtual seconds within which deletion must complete",
    120,
)
.range(10, 3_600);

const CERT_BUGGY: Variant = Variant::fails(
    "buggy",
    "cert-manager v1.16: the key and request managers never check the deletionTimestamp",
    FailureKind::Liveness,
    "not deleted within",
);
const CERT_FIXED: Variant = Variant::holds(
    "fixed",
    "v1.17 and v1.18 (PRs #7361, #7454): a Certificate being deleted is skipped",
);

const CERT_META: Meta = Meta {
    name: "kube-cert-foreground",
    summary: "cert-manager's foreground-deletion livelock as kube-rs controllers: the request \
              manager recreates what the garbage collector deletes",
    upstream: &[
        "https://github.com/cert-manager/cert-manager/issues/7358",
        "https://github.com/cert-manager/cert-manager/pull/7361",
        "https://github.com/cert-manager/cert-manager/pull/7454",
    ],
    variants: &[CERT_BUGGY, CERT_FIXED],
    params: &[CLEANUP_DELAY.param, GC_LAG.param, DELETION_BOUND.param],
};

/// `certs.rs` as a scenario: a liveness oracle.
pub struct CertForeground;

impl Scenario for CertForeground {
    fn meta(&self) -> &'static Meta {
        &CERT_META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let lag = Latency::range(Duration::ZERO, params.get(GC_LAG));
        let gc =
            GcConfig::default().with_informer(InformerConfig::default().with_delivery_delay(lag));
        let cluster = Cluster::builder()
            .system_controllers()
            .gc_config(gc)
            .gc_kinds(&[CERT, REQUEST, SECRET])
            .crd::<Certificate>()
            .crd::<CertificateRequest>()
            .build();
        let mut sandbox = Namespace::default();
        sandbox.metadata.name = Some(NS.to_string());
        cluster.seed(&sandbox).expect("the namespace");
        let fixed = variant.is(&CERT_FIXED);
        let manager = cluster.clone();
        Process::start("cert-manager", move || {
            let client = manager.client("cert-manager");
            manager.spawn_daemon("cert-manager", async move {
                let context = Arc::new(certs::RequestManager { client: client.clone(), fixed });
                Controller::new(
                    Api::<Certificate>::all(client.clone()),
                    watcher::Config::default(),
                )
                .owns(Api::<CertificateRequest>::all(client.clone()), watcher::Config::default())
                .owns(Api::<Secret>::all(client), watcher::Config::default())
                .run(certs::request_manager, certs::retry, context)
                .for_each(|_| std::future::ready(()))
                .await;
            });
        });
        let (issuer, cleanup_delay) = (cluster.clone(), params.get(CLEANUP_DELAY));
        Process::start("issuer", move || {
            let client = issuer.client("issuer");
            issuer.spawn_daemon("issuer", async move {
                let context = Arc::new(certs::Issuer { client: client.clone(), cleanup_delay });
                Controller::new(Api::<CertificateRequest>::all(client), watcher::Config::default())
                    .run(certs::issuer, certs::retry, context)
                    .for_each(|_| std::future::ready(()))
                    .await;
            });
        });
        let (user, bound) = (cluster.clone(), params.get(DELETION_BOUND));
        cluster.spawn("user", async move {
            let certificates: Api<Certificate> = Api::namespaced(user.client("user"), NS);
            let spec = CertificateSpec { secret_name: "web-tls".to_string() };
            let web = Certificate::new("web-tls", spec);
            certificates.create(&PostParams::default(), &web).await.expect("create web-tls");
            let held = || {
                user.peek_all::<CertificateRequest>().iter().any(|r| {
                    r.metadata.finalizers.iter().flatten().any(|f| f == certs::ISSUER_FINALIZER)
                })
            };
            wait_until("a request held by the issuer", held).await;
            // The certificate is in use for a while before it is deleted.
            sim_core::sleep(Duration::from_secs(5)).await;
            certificates
                .delete("web-tls", &DeleteParams::foreground())
                .await
                .expect("delete web-tls");
            let (watched, deadline) = (user.clone(), sim_core::now() + bound);
            sim_core::eventually("the certificate is deleted", bound, move || {
                let server = watched.server();
                if !server.exists(CERT.0, CERT.1, NS, "web-tls") {
                    return Ok(());
                }
                if sim_core::now() < deadline {
                    // Checked after every step: the report is built only when it is due.
                    return Err(String::new());
                }
                let certificate = watched.peek::<Certificate>(NS, "web-tls").expect("present");
                let finalizers = certificate.metadata.finalizers.unwrap_or_default().join(", ");
                let requests: Vec<String> = watched
                    .peek_all::<CertificateRequest>()
                    .into_iter()
                    .filter_map(|r| r.metadata.name)
                    .collect();
                Err(format!(
                    "Certificate {NS}/web-tls not deleted within {}s of its foreground deletion \
                     (finalizers: [{finalizers}]; requests now: [{}])",
                    bound.as_secs(),
                    requests.join(", ")
                ))
            });
            sim_core::sleep(bound + Duration::from_secs(5)).await;
        });
    }
}

/// Polls `done` every 100 ms of virtual time; panics (a failure of the user task) after 60 s.
async fn wait_until(what: &'static str, done: impl Fn() -> bool) {
    let start = sim_core::now();
    while !done() {
        if sim_core::now() - start > Duration::from_secs(60) {
            panic!("the workload waited 60 s for: {what}");
        }
        sim_core::sleep(Duration::from_millis(100)).await;
    }
}

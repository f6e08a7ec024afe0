//! The kube-rs operators of `app.rs` and `certs.rs` as kdst scenarios.

use std::sync::Arc;
use std::time::Duration;

use apiserver_fake::ServerConfig;
use apiserver_fake::endstate::Oracles;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kdst_kube::{Cluster, Controller};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use scenarios::{Meta, Params, Registry, Scenario, Variant};
use sim_core::{FailureKind, Process};

#[path = "app.rs"]
pub mod app;

use app::{App, AppSpec};

/// Adds this file's scenarios to `registry`.
pub fn register(registry: Registry) -> Registry {
    registry.with(AppStaleDelete)
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

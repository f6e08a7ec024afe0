//! `submariner-logifchanged`: concurrent map writes in `logIfChanged` (submariner-operator
//! 0.16.2).
//!
//! - Upstream issue: <https://github.com/submariner-io/submariner/issues/2872> (the operator
//!   crashed with `fatal error: concurrent map writes` on re-installation: join two clusters,
//!   delete the broker, join again).
//! - Fix: submariner-operator PR #2933 (v0.17.0), backport #2934 (v0.16.3): `loggedImages`
//!   becomes a `sync.Map` and `Swap` reads and writes in one atomic step.
//!
//! | modelled step | upstream |
//! |---|---|
//! | `loggedImages`, a [`GoMap`] without a lock | `pkg/images`: `var loggedImages = map[imageParameters]string{}` |
//! | [`log_if_changed`] reads, logs if changed, writes | `images.logIfChanged` |
//! | [`get_image_path`] | `images.GetImagePath`, called by both controllers |
//! | the `submariner` controller's cleanup: one image look-up per uninstall DaemonSet, requeue every `requeue-ms` until the DaemonSets completed, then delete the ServiceDiscovery and drop its finalizer | `submariner.Reconciler.runComponentCleanup` / `ensureUninstall…` |
//! | the `servicediscovery` controller's cleanup: its own look-ups, requeue every `requeue-ms` | `servicediscovery.Reconciler.doCleanup` |
//! | the user deletes both resources at once | `subctl uninstall` / deleting the broker |
//!
//! Both workers run `logIfChanged` at once when both resources are deleted; Go checks the whole
//! map, so different keys still race. The first look-up of each key writes; a write that
//! overlaps another write, or a read, is the crash.

use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiServer, Client, Controller, DeleteOptions, Informer, KindInfo, Object, ObjectKey,
    ReconcileResult, Registry, ServerConfig,
};
use serde_json::json;
use sim_core::{FailureKind, GoMap, SyncMap, enter, event, sleep, spawn};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

const GROUP: &str = "submariner.io/v1alpha1";
const NAMESPACE: &str = "submariner-operator";
const FINALIZER: &str = "submariner.io/cleanup";

/// The scenario.
pub struct LogIfChanged;

/// The shared image log, as each variant has it.
#[derive(Clone)]
enum LoggedImages {
    /// 0.16.2: a plain Go map.
    Map(GoMap<String, String>),
    /// 0.16.3: a `sync.Map`.
    Sync(SyncMap<String, String>),
}

/// `images.logIfChanged`.
pub async fn log_if_changed(logged: &LoggedImagesHandle, params: String, image: String) {
    let _frame = enter("images.logIfChanged");
    match &logged.0 {
        LoggedImages::Map(map) => {
            if map.get(&params).await.as_ref() != Some(&image) {
                event(format!("Using image {image} for {params}"));
                map.insert(params, image).await;
            }
        }
        LoggedImages::Sync(map) => {
            let old = map.swap(params.clone(), image.clone()).await;
            if old.as_ref() != Some(&image) {
                event(format!("Using image {image} for {params}"));
            }
        }
    }
}

/// A handle to the package-level `loggedImages`.
#[derive(Clone)]
pub struct LoggedImagesHandle(LoggedImages);

/// `images.GetImagePath(repo, version, image, component, overrides)`.
pub async fn get_image_path(logged: &LoggedImagesHandle, component: &str) -> String {
    let _frame = enter("images.GetImagePath");
    let image = format!("quay.io/submariner/{component}:0.16.2");
    log_if_changed(logged, format!("{{quay.io/submariner 0.16.2 {component}}}"), image.clone())
        .await;
    image
}

/// How often each cleanup reconcile requeues while uninstall DaemonSets run.
const REQUEUE: Key<Duration> = Key::millis(
    "requeue-ms",
    "how often each cleanup reconcile requeues while uninstall DaemonSets run",
    500,
)
.range(10, 10_000)
.swarm(&[100, 500]);

/// How long the uninstall DaemonSets take to complete.
const UNINSTALL: Key<Duration> =
    Key::millis("uninstall-ms", "how long the uninstall DaemonSets take to complete", 1_500)
        .range(0, 60_000)
        .swarm(&[0, 1_500]);

/// Uninstall images the Submariner cleanup looks up (gateway, route agent, globalnet …).
const SUBMARINER_IMAGES: Key<usize> = Key::count(
    "submariner-images",
    "uninstall images the Submariner cleanup looks up (gateway, route agent, globalnet …)",
    3,
)
.range(1, 10)
.swarm(&[3, 6]);

/// Uninstall images the ServiceDiscovery cleanup looks up.
const SERVICEDISCOVERY_IMAGES: Key<usize> = Key::count(
    "servicediscovery-images",
    "uninstall images the ServiceDiscovery cleanup looks up",
    2,
)
.range(1, 10)
.swarm(&[2, 4]);

const PARAMS: &[Param] = &[
    REQUEUE.param,
    UNINSTALL.param,
    SUBMARINER_IMAGES.param,
    SERVICEDISCOVERY_IMAGES.param,
    crate::API_LATENCY.param,
    crate::CACHE_LAG.param,
];

const BUGGY: Variant = Variant::fails(
    "buggy",
    "submariner-operator 0.16.2: loggedImages is a plain map",
    FailureKind::GoFatal,
    "fatal error: concurrent map",
);
const FIXED: Variant =
    Variant::holds("fixed", "0.16.3 (PR #2934): loggedImages is a sync.Map and Swap is atomic");

const VARIANTS: &[Variant] = &[BUGGY, FIXED];

const META: Meta = Meta {
    name: "submariner-logifchanged",
    summary: "two controllers' cleanups write the unlocked loggedImages map: concurrent map writes",
    upstream: &[
        "https://github.com/submariner-io/submariner/issues/2872",
        "https://github.com/submariner-io/submariner-operator/pull/2933",
        "https://github.com/submariner-io/submariner-operator/pull/2934",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for LogIfChanged {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let logged = LoggedImagesHandle(if variant.is(&BUGGY) {
            LoggedImages::Map(GoMap::new("loggedImages"))
        } else {
            LoggedImages::Sync(SyncMap::new())
        });
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, "Submariner", "submariners", true));
        registry.register(KindInfo::custom(GROUP, "ServiceDiscovery", "servicediscoveries", true));
        let server = ApiServer::new(registry, ServerConfig::default());
        server.create(Object::new("v1", "Namespace", "", NAMESPACE)).expect("namespace");
        for kind in ["Submariner", "ServiceDiscovery"] {
            let object = Object::new(GROUP, kind, NAMESPACE, kind.to_lowercase().as_str())
                .with_finalizer(FINALIZER);
            server.create(object).expect("resource");
        }
        let requeue = params.get(REQUEUE);
        let uninstall = params.get(UNINSTALL);
        let images = [
            ("submariner", "Submariner", params.get(SUBMARINER_IMAGES)),
            ("servicediscovery", "ServiceDiscovery", params.get(SERVICEDISCOVERY_IMAGES)),
        ];
        for (name, kind, count) in images {
            let client = Client::new(&server, name, crate::client_config(params));
            let informer =
                Informer::new(name, &client, GROUP, kind, None, crate::informer_config(params));
            let controller = Controller::new(&format!("{name}-controller"), 1);
            controller.watches(&informer);
            informer.start();
            let (cache, logged) = (informer.cache(), logged.clone());
            let reconcile = Rc::new(Cleanup { client, kind, count, requeue, uninstall, logged });
            controller.start(move |key| {
                let (cleanup, object) = (reconcile.clone(), cache.get(&key.namespace, &key.name));
                async move { cleanup.reconcile(key, object).await }
            });
        }
        let user = Client::new(&server, "user", crate::client_config(params));
        // Both resources are deleted at once (the re-installation in issue 2872): two
        // concurrent DELETEs, as `subctl uninstall` / the broker's deletion issue them.
        for kind in ["Submariner", "ServiceDiscovery"] {
            let user = user.clone();
            spawn(format!("user/delete-{}", kind.to_lowercase()), async move {
                sleep(Duration::from_secs(1)).await;
                let name = kind.to_lowercase();
                let _ = user.delete(GROUP, kind, NAMESPACE, &name, &DeleteOptions::default()).await;
            });
        }
        spawn("user", async move {
            sleep(Duration::from_secs(1)).await;
            while user.get(GROUP, "Submariner", NAMESPACE, "submariner").await.is_ok()
                || user.get(GROUP, "ServiceDiscovery", NAMESPACE, "servicediscovery").await.is_ok()
            {
                sleep(Duration::from_millis(200)).await;
            }
            event("uninstall complete");
        });
    }
}

/// One controller's cleanup reconcile.
struct Cleanup {
    client: Client,
    kind: &'static str,
    count: usize,
    requeue: Duration,
    uninstall: Duration,
    logged: LoggedImagesHandle,
}

impl Cleanup {
    async fn reconcile(&self, key: ObjectKey, object: Option<Object>) -> ReconcileResult {
        let Some(object) = object else { return Ok(Action::Done) };
        let Some(deleted_at) = object.metadata.deletion_timestamp else {
            return Ok(Action::Done);
        };
        let component = self.kind.to_lowercase();
        let _frame = enter(format!("{component}.Reconciler.cleanup"));
        // One uninstall DaemonSet per image; each build looks its image up.
        for index in 0..self.count {
            let image =
                get_image_path(&self.logged, &format!("{component}-uninstall-{index}")).await;
            let daemonset = Object::new(
                "apps/v1",
                "DaemonSet",
                &key.namespace,
                &format!("{component}-uninstall-{index}"),
            )
            .with_spec(json!({ "template": { "spec": { "containers": [{ "image": image }] } } }));
            match self.client.create(daemonset).await {
                Ok(_) => {}
                Err(error) if error.is_already_exists() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let since =
            sim_core::now().saturating_duration_since(deleted_at.sim_time().unwrap_or_default());
        if since < self.uninstall {
            return Ok(Action::RequeueAfter(self.requeue));
        }
        if self.kind == "Submariner" {
            // The Submariner cleanup removes the ServiceDiscovery resource too.
            let options = DeleteOptions::default();
            match self
                .client
                .delete(GROUP, "ServiceDiscovery", &key.namespace, "servicediscovery", &options)
                .await
            {
                Ok(_) => {}
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let mut latest = self.client.get(GROUP, self.kind, &key.namespace, &key.name).await?;
        latest.metadata.finalizers.retain(|f| f != FINALIZER);
        match self.client.update(latest).await {
            Ok(_) => Ok(Action::Done),
            Err(error) if error.is_not_found() => Ok(Action::Done),
            Err(error) => Err(error.into()),
        }
    }
}

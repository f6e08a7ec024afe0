//! `kube-app-stale-delete`: an operator written in kube-rs, with `#[derive(CustomResource)]`,
//! `kube::runtime::finalizer` and an owned StatefulSet, that deletes a recreated App's
//! StatefulSet by name after acting on a stale view of the deleted one.
//!
//! The shape of rabbitmq/cluster-operator #648 (`controllers/reconcile_finalizer.go`
//! `prepareForDeletion`: `Delete(sts by name)` with no precondition), fixed by #651 (get the
//! StatefulSet, act only if its controller reference is this App's uid, delete with a uid
//! precondition), the stale-state bug Sieve (OSDI'22) found in that operator:
//!
//! 1. the user creates App `web`; the operator adds its finalizer and creates StatefulSet
//!    `web-server` (controller reference: the App); the StatefulSet controller makes pod 0;
//! 2. the user deletes `web`; the operator's cleanup deletes `web-server`, the finalizer goes,
//!    the App goes, the garbage collector takes the pod;
//! 3. the user recreates `web` (a new uid); the operator makes a new `web-server`;
//! 4. a `stale-reconnect` perturbation (kdst's, chosen by the search like any other) froze the
//!    operator's view of `web` at its deletionTimestamp in step 2 and now restarts the operator
//!    against that lagging view: it relists a deleting `web` with the finalizer, and fresh
//!    StatefulSets;
//! 5. buggy: the cleanup runs again for the stale `web` and deletes the **new** `web-server` by
//!    name (an outage: the pod goes too); when the view catches up the operator recreates both.
//!    fixed: the new `web-server` belongs to another uid, so it is left alone.
//!
//! No oracle of this scenario knows the bug: the generic ones do. The run must settle, and the
//! per-object ADDED/DELETED counts and the masked end state must equal a run of the same
//! workload without perturbations. The buggy run's StatefulSet is ADDED 3 times, not 2.
//!
//! A kube-rs detail the run shows: `kube::runtime::finalizer` removes its finalizer with a JSON
//! patch that tests the finalizer's index, not the object's uid, so the stale cleanup also strips
//! the finalizer from the recreated App (in both variants); the next reconcile of the fresh App
//! adds it back, so the end state is unchanged.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The App's spec: how many server pods.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(group = "example.kdst.dev", version = "v1", kind = "App", namespaced)]
pub struct AppSpec {
    /// Server pods.
    pub replicas: i32,
}

/// The operator's finalizer on each App.
pub const FINALIZER: &str = "apps.example.kdst.dev/cleanup";

/// What every reconcile shares.
pub struct Ctx {
    /// The operator's client.
    pub client: kube::Client,
    /// #651's fix on or off.
    pub fixed: bool,
}

/// A reconcile's error.
#[derive(Debug)]
pub struct Error(Box<kube::runtime::finalizer::Error<kube::Error>>);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Error {}

/// The StatefulSet of `app`.
pub fn server_name(app: &App) -> String {
    format!("{}-server", app.name_any())
}

/// Reconciles one App: the finalizer first, then the StatefulSet, or the clean-up.
pub async fn reconcile(app: Arc<App>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let apps: Api<App> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&apps, FINALIZER, app, |event| async {
        match event {
            Event::Apply(app) => apply(&app, &ctx).await,
            Event::Cleanup(app) => cleanup(&app, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error(Box::new(error)))
}

/// Retries after a second, as the operator's error policy.
pub fn error_policy(_app: Arc<App>, _error: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Creates the StatefulSet if it is missing.
async fn apply(app: &App, ctx: &Ctx) -> Result<Action, kube::Error> {
    let sets: Api<StatefulSet> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    if sets.get_opt(&server_name(app)).await?.is_none() {
        match sets.create(&PostParams::default(), &statefulset(app)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Action::await_change())
}

/// `prepareForDeletion`: deletes the StatefulSet before the finalizer goes.
async fn cleanup(app: &App, ctx: &Ctx) -> Result<Action, kube::Error> {
    let sets: Api<StatefulSet> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let name = server_name(app);
    let delete = if ctx.fixed {
        // #651: only this App's own StatefulSet, and exactly that one.
        let Some(set) = sets.get_opt(&name).await? else { return Ok(Action::await_change()) };
        let ours = set.owner_references().iter().any(|owner| {
            owner.controller == Some(true) && Some(&owner.uid) == app.meta().uid.as_ref()
        });
        if !ours {
            return Ok(Action::await_change());
        }
        let preconditions = Preconditions { uid: set.uid(), resource_version: None };
        DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() }
    } else {
        // #648: by name, whatever it is now.
        DeleteParams::default()
    };
    match sets.delete(&name, &delete).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(Action::await_change())
        }
        Err(error) => Err(error),
    }
}

/// The StatefulSet the operator makes for `app`.
fn statefulset(app: &App) -> StatefulSet {
    let labels: std::collections::BTreeMap<String, String> =
        [("app".to_string(), app.name_any())].into();
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(server_name(app)),
            namespace: app.namespace(),
            owner_references: app.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(app.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            service_name: Some(app.name_any()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "server".to_string(),
                        image: Some("example/server:1".to_string()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

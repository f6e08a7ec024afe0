//! `mongodb-crash-between-secrets`: an operator creates two Secrets in one reconcile and decides
//! whether to create them by looking at the first only; a crash between the two creates leaves
//! the second missing for ever (Sieve's intermediate states; benchmark bug B5 of docs/09).
//!
//! Upstream: percona/percona-server-mongodb-operator, K8SPSMDB-578, the function
//! `reconcileSSL` of `pkg/controller/perconaservermongodb` (its manual path,
//! `createSSLManualy`), fixed by PR #797. The same shape: K8SPXC-896/897, cass-operator
//! K8SSAND-1023.
//!
//! | modelled step | upstream |
//! |---|---|
//! | the `operator` [`Process`]: an informer on `PerconaServerMongoDB`, one worker | the operator's controller-runtime manager |
//! | reconcile, first: the users Secret `<name>-secrets` if missing | `reconcileUsersSecret` |
//! | buggy: GET `<spec.secrets.ssl>`; found → done; else CREATE it (W1), then CREATE `<ssl>-internal` (W2) | `reconcileSSL`: `if err == nil { return nil }`, then `createSSLManualy` |
//! | fixed: GET both; both found → done; the first found but not controlled by the cluster (the user's own) → done; else CREATE each missing one, AlreadyExists counting as done | PR #797 |
//! | status `state: ready` once reconciled | `updateStatus` |
//! | the user creates the cluster, then waits for it to settle | — |
//!
//! There is no bug-specific oracle. The workload ends with the generic oracles
//! ([`Scenario::generic_oracles`]): the cluster must settle, and its end state (Secrets and the
//! custom resource, masked) must equal the reference run's, which runs the same workload without
//! perturbations. A `crash-after-write` perturbation right after W1 makes the difference: the
//! restarted operator finds `<ssl>` and stops, and `<ssl>-internal` is only in the reference.

use apiserver_fake::endstate::Oracles;
use apiserver_fake::{
    Action, ApiError, ApiServer, Client, Controller, GarbageCollector, GcConfig, Informer,
    KindInfo, Object, ObjectKey, OwnerReference, ReconcileResult, Registry, ServerConfig,
};
use serde_json::json;
use sim_core::{FailureKind, Process, spawn};

use crate::{API_LATENCY, CACHE_LAG, Meta, Param, Params, Scenario, Variant};

const NS: &str = "mongodb";
const GROUP: &str = "psmdb.percona.com/v1";
const KIND: &str = "PerconaServerMongoDB";
const CLUSTER: &str = "mongodb-cluster";

/// The scenario.
pub struct CrashBetweenSecrets;

/// Reconciles guarded by a check of the first Secret only (K8SPSMDB-578).
pub const BUGGY: Variant = Variant::fails(
    "buggy",
    "v1.11.0: reconcileSSL returns once <ssl> exists, whether or not <ssl>-internal does",
    FailureKind::Invariant,
    "the end state differs from the reference run",
);

/// PR #797: check both Secrets, create whichever is missing.
pub const FIXED: Variant =
    Variant::holds("fixed", "PR #797: both Secrets checked, each missing one created");

const PARAMS: &[Param] = &[API_LATENCY.param, CACHE_LAG.param];

const META: Meta = Meta {
    name: "mongodb-crash-between-secrets",
    summary: "a crash between two creates leaves the internal TLS Secret missing for ever",
    upstream: &[
        "https://perconadev.atlassian.net/browse/K8SPSMDB-578",
        "https://github.com/percona/percona-server-mongodb-operator/pull/797",
    ],
    variants: &[BUGGY, FIXED],
    params: PARAMS,
};

impl Scenario for CrashBetweenSecrets {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn generic_oracles(&self) -> Option<Oracles> {
        Some(Oracles::new(&[(GROUP, KIND), ("v1", "Secret")]))
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let fixed = variant.is(&FIXED);
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, KIND, "perconaservermongodbs", true));
        let server = ApiServer::new(registry, ServerConfig::default().with_update_summary(true));
        server.create(Object::new("v1", "Namespace", "", NS)).expect("the namespace");
        let client = |name: &str| Client::new(&server, name, crate::client_config(params));
        let gc = GcConfig::default().with_kinds(&[(GROUP, KIND), ("v1", "Secret")]);
        GarbageCollector::start(&client("gc"), gc);
        let informer_config = crate::informer_config_with(params, CACHE_LAG);
        let operator = client("operator");
        Process::start("operator", move || {
            let clusters = Informer::new(
                "operator/clusters",
                &operator,
                GROUP,
                KIND,
                Some(NS),
                informer_config,
            );
            let controller = Controller::new("operator", 1);
            controller.watches(&clusters);
            clusters.start();
            let (client, cache) = (operator.clone(), clusters.cache());
            controller.start(move |key| {
                let (client, cache) = (client.clone(), cache.clone());
                async move {
                    let Some(cluster) = cache.get(&key.namespace, &key.name) else {
                        return Ok(Action::Done);
                    };
                    reconcile(&client, &cluster, fixed).await
                }
            });
        });
        let oracles = self.generic_oracles().expect("declared");
        let user = client("user");
        spawn("user", async move {
            let cluster = Object::new(GROUP, KIND, NS, CLUSTER)
                .with_spec(json!({ "secrets": { "ssl": format!("{CLUSTER}-ssl") } }));
            user.create(cluster).await.expect("the cluster");
            oracles.settle(&server).await;
        });
    }
}

/// One reconcile of the cluster.
async fn reconcile(client: &Client, cluster: &Object, fixed: bool) -> ReconcileResult {
    let owned = |name: &str| {
        Object::new("v1", "Secret", NS, name).with_owner(OwnerReference::controller_of(cluster))
    };
    let users = format!("{}-secrets", cluster.metadata.name);
    if get(client, &users).await?.is_none() {
        created(client.create(owned(&users)).await)?;
    }
    let ssl = cluster.spec["secrets"]["ssl"].as_str().unwrap_or_default().to_string();
    let internal = format!("{ssl}-internal");
    if fixed {
        let first = get(client, &ssl).await?;
        let second = get(client, &internal).await?;
        let users_own = first.as_ref().is_some_and(|s| !s.is_owned_by(&cluster.metadata.uid));
        let done = users_own || (first.is_some() && second.is_some());
        if !done {
            for (name, found) in [(&ssl, first.is_some()), (&internal, second.is_some())] {
                if !found {
                    created(client.create(owned(name)).await)?;
                }
            }
        }
    } else if get(client, &ssl).await?.is_none() {
        client.create(owned(&ssl)).await?;
        client.create(owned(&internal)).await?;
    }
    if cluster.status["state"] != "ready" {
        let status = json!({ "status": { "state": "ready" } });
        client.patch_status(GROUP, KIND, NS, &cluster.metadata.name, &status).await?;
    }
    Ok(Action::Done)
}

/// GET a Secret of the namespace: `None` if it is not there.
async fn get(client: &Client, name: &str) -> Result<Option<Object>, ApiError> {
    match client.get("v1", "Secret", NS, name).await {
        Ok(secret) => Ok(Some(secret)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// A create, with AlreadyExists counting as done.
fn created(result: Result<Object, ApiError>) -> Result<(), ApiError> {
    match result {
        Err(error) if !error.is_already_exists() => Err(error),
        _ => Ok(()),
    }
}

/// The key of the cluster, for tests.
pub fn cluster_key() -> ObjectKey {
    ObjectKey::new(NS, CLUSTER)
}

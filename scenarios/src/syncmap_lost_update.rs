//! `syncmap-load-or-store`: the value `sync.Map.LoadOrStore` returns is shared, and mutating it
//! in place loses updates (bugs.md E, third bullet).
//!
//! - `sync.Map` (<https://pkg.go.dev/sync#Map>): each method is atomic, but `LoadOrStore`
//!   "returns the existing value for the key if present" — for a pointer value, the *same*
//!   pointer every other goroutine gets. The map protects its entries, not what they point to.
//! - The Go memory model (<https://go.dev/ref/mem>): `st.namespaces = append(st.namespaces, ns)`
//!   is a read of the slice header, then a write of a new one; two goroutines doing it at once
//!   race, and one append is silently lost. No runtime check fires (only `-race` would see it):
//!   the failure is an invariant violation, not a crash.
//! - The fix: treat stored values as immutable and publish a fresh one — copy-on-write with a
//!   `CompareAndSwap` retry loop (Go 1.20, <https://pkg.go.dev/sync#Map.CompareAndSwap>).
//!
//! | modelled step | upstream pattern |
//! |---|---|
//! | `tenantNamespaces`, a [`SyncMap`] of tenant → [`TenantRef`] (`*tenantState`) | `var tenantNamespaces sync.Map` |
//! | [`track`], `buggy`: `LoadOrStore(tenant, &tenantState{})`, `slices.Contains`, then `st.namespaces = append(st.namespaces, ns)` with a scheduling point between the read and the write | the mutate-in-place anti-pattern |
//! | [`track`], `fixed`: `LoadOrStore(tenant, &tenantState{[ns]})`; if loaded, clone + append into a fresh `tenantState` and `CompareAndSwap(tenant, old, next)`, retrying on a lost race | copy-on-write |
//! | `namespace-controller/worker-<i>` (`workers`) reconcile tenant Namespaces: `tenantNamespaces.Track(tenant, ns)`, then create the tenant's `tenant-info` ConfigMap in the namespace (a real API call) | a multi-tenancy controller's `Reconcile` |
//! | `tenants` × `namespaces` Namespaces labelled `tenant=<tenant>` exist at start | — |
//! | `driver` ends the run once every namespace was tracked | — |
//!
//! Oracle: an [`sim_core::always`] invariant — every namespace a worker finished tracking is
//! still in its tenant's list. In `buggy` a stale `append` overwrites another worker's addition
//! and the failure names the lost namespace, the worker that added it, and the one whose stale
//! write dropped it.

use std::cell::RefCell;

use sim_core::footprint::Resource;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiServer, Client, ClientConfig, Controller, Informer, InformerConfig, Object,
    ObjectKey, ReconcileResult,
};
use serde_json::json;
use sim_core::{FailureKind, SyncMap, current, enter, event, sleep, spawn, task_name, yield_now};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

const TENANT_LABEL: &str = "tenant";

/// The scenario.
pub struct LoadOrStore;

/// `tenantState`: the namespaces of one tenant.
#[derive(Debug, Default)]
pub struct TenantState {
    namespaces: RefCell<Vec<String>>,
    /// The slice header, as steps touch it (for partial-order reduction).
    resource: Resource,
}

/// `*tenantState`: a pointer. Equality is pointer identity, as for Go's `CompareAndSwap` on
/// pointer values.
#[derive(Clone, Debug)]
pub struct TenantRef(Rc<TenantState>);

impl PartialEq for TenantRef {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl TenantRef {
    fn new(namespaces: Vec<String>) -> Self {
        let namespaces = RefCell::new(namespaces);
        TenantRef(Rc::new(TenantState { namespaces, resource: Resource::new() }))
    }

    /// A copy of the namespaces (reading the slice header).
    pub fn namespaces(&self) -> Vec<String> {
        self.0.resource.read();
        self.0.namespaces.borrow().clone()
    }
}

/// The package-level index and what the oracle needs to explain a loss.
#[derive(Clone)]
pub struct TenantIndex {
    fixed: bool,
    map: SyncMap<String, TenantRef>,
    /// Who last wrote each tenant's slice header (`buggy`), for the report.
    last_writer: Rc<RefCell<BTreeMap<String, String>>>,
    /// (tenant, namespace, worker) for every `Track` that returned.
    tracked: Rc<RefCell<Vec<(String, String, String)>>>,
    /// `last_writer` and `tracked`, as steps touch them.
    record: Resource,
}

/// `tenantNamespaces.Track(tenant, ns)`, as each variant has it.
pub async fn track(index: &TenantIndex, tenant: &str, namespace: &str) {
    let _frame = enter("tenantIndex.Track");
    let worker = task_name(current());
    if index.fixed {
        loop {
            let fresh = TenantRef::new(vec![namespace.to_string()]);
            let (old, loaded) = index.map.load_or_store(tenant.to_string(), fresh).await;
            if !loaded {
                break;
            }
            let mut names = old.namespaces();
            if names.iter().any(|n| n == namespace) {
                break;
            }
            names.push(namespace.to_string());
            let next = TenantRef::new(names);
            if index.map.compare_and_swap(&tenant.to_string(), &old, next).await {
                break;
            }
            event(format!("Track({tenant}, {namespace}): CompareAndSwap lost a race, retrying"));
        }
    } else {
        let fresh = TenantRef::new(Vec::new());
        let (state, _) = index.map.load_or_store(tenant.to_string(), fresh).await;
        // `slices.Contains(st.namespaces, ns)`, then `append` reads the same header.
        let mut names = state.namespaces();
        if !names.iter().any(|n| n == namespace) {
            // Go may be preempted (or simply run in parallel) between reading the slice
            // header and storing the new one.
            yield_now().await;
            names.push(namespace.to_string());
            state.0.resource.write();
            *state.0.namespaces.borrow_mut() = names;
            index.record.write();
            index.last_writer.borrow_mut().insert(tenant.to_string(), worker.clone());
        }
    }
    index.record.write();
    index.tracked.borrow_mut().push((tenant.to_string(), namespace.to_string(), worker));
}

impl TenantIndex {
    /// The invariant: every tracked namespace is in its tenant's current list.
    fn check(&self) -> Result<(), String> {
        let map = self.map.snapshot();
        for (tenant, namespace, worker) in self.tracked.borrow().iter() {
            let names = map.get(tenant).map(TenantRef::namespaces).unwrap_or_default();
            if !names.contains(namespace) {
                let by = self.last_writer.borrow().get(tenant).cloned().unwrap_or_default();
                return Err(format!(
                    "lost update: namespace {namespace:?} added to tenant {tenant:?} by {worker} \
                     is missing from the tenant's namespaces {names:?} (overwritten by {by}'s \
                     stale append)"
                ));
            }
        }
        Ok(())
    }
}

/// Tenants (tenant-0 … tenant-N-1).
const TENANTS: Key<usize> =
    Key::count("tenants", "tenants (tenant-0 … tenant-N-1)", 2).range(1, 20).swarm(&[2, 4]);

/// Namespaces per tenant.
const NAMESPACES: Key<usize> =
    Key::count("namespaces", "Namespaces per tenant", 3).range(1, 20).swarm(&[2, 3]);

/// The namespace controller's concurrent reconciles.
const WORKERS: Key<usize> =
    Key::count("workers", "the namespace controller's concurrent reconciles", 2)
        .range(1, 16)
        .swarm(&[2, 4]);

const PARAMS: &[Param] = &[TENANTS.param, NAMESPACES.param, WORKERS.param];

const BUGGY: Variant = Variant::fails(
    "buggy",
    "LoadOrStore's value mutated in place: st.namespaces = append(st.namespaces, ns)",
    FailureKind::Invariant,
    "lost update: namespace",
);
const FIXED: Variant = Variant::holds(
    "fixed",
    "copy-on-write: a fresh tenantState published with CompareAndSwap, retried",
);

const VARIANTS: &[Variant] = &[BUGGY, FIXED];

const META: Meta = Meta {
    name: "syncmap-load-or-store",
    summary: "workers mutate the shared value sync.Map.LoadOrStore returned: a lost update",
    upstream: &[
        "https://pkg.go.dev/sync#Map.LoadOrStore",
        "https://pkg.go.dev/sync#Map.CompareAndSwap",
        "https://go.dev/ref/mem",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for LoadOrStore {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let index = TenantIndex {
            fixed: variant.is(&FIXED),
            map: SyncMap::new(),
            last_writer: Rc::default(),
            tracked: Rc::default(),
            record: Resource::new(),
        };
        let server = ApiServer::default();
        let (tenants, per_tenant) = (params.get(TENANTS), params.get(NAMESPACES));
        for tenant in 0..tenants {
            for n in 0..per_tenant {
                let name = format!("tenant-{tenant}-ns-{n}");
                let namespace = Object::new("v1", "Namespace", "", &name)
                    .with_label(TENANT_LABEL, &format!("tenant-{tenant}"));
                server.create(namespace).expect("namespace");
            }
        }
        let oracle = index.clone();
        sim_core::always("tenant index keeps every tracked namespace", move || oracle.check());

        let client = Client::new(&server, "namespace-controller", ClientConfig::default());
        let config = InformerConfig::default();
        let informer =
            Informer::new("namespace-informer", &client, "v1", "Namespace", None, config);
        let controller = Controller::new("namespace-controller", params.get(WORKERS));
        controller.watches(&informer);
        informer.start();
        let (cache, reconciler) = (informer.cache(), Rc::new((client, index.clone())));
        controller.start(move |key| {
            let (reconciler, namespace) = (reconciler.clone(), cache.get("", &key.name));
            async move { reconcile(&reconciler.0, &reconciler.1, key, namespace).await }
        });

        let total = tenants * per_tenant;
        spawn("driver", async move {
            let deadline = sim_core::now() + Duration::from_secs(60);
            while {
                index.record.read();
                index.tracked.borrow().len() < total
            } && sim_core::now() < deadline
            {
                sleep(Duration::from_millis(5)).await;
            }
            index.record.read();
            event(format!("{} of {total} namespaces tracked", index.tracked.borrow().len()));
        });
    }
}

/// The namespace controller's `Reconcile`: the index, then the tenant's ConfigMap.
async fn reconcile(
    client: &Client,
    index: &TenantIndex,
    key: ObjectKey,
    namespace: Option<Object>,
) -> ReconcileResult {
    let Some(namespace) = namespace else { return Ok(Action::Done) };
    let Some(tenant) = namespace.metadata.labels.get(TENANT_LABEL) else {
        return Ok(Action::Done);
    };
    track(index, tenant, &key.name).await;
    let info = Object::new("v1", "ConfigMap", &key.name, "tenant-info")
        .with_field("data", json!({ "tenant": tenant }));
    match client.create(info).await {
        Ok(_) => Ok(Action::Done),
        Err(error) if error.is_already_exists() => Ok(Action::Done),
        Err(error) => Err(error.into()),
    }
}

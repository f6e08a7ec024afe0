//! `capsule-replication-writes`: `concurrent map writes` replicating a GlobalTenantResource's
//! namespaced items (Capsule v0.7.2).
//!
//! - Upstream issue: <https://github.com/projectcapsule/capsule/issues/1263> ("Capsule restarts
//!   often, probably due to GlobalTenantResources": 300 restarts in 14 days on two clusters,
//!   with no change to the resources).
//! - Fix: PR #1264 "fix: concurrent map writes when replicating namespaced objects"
//!   (<https://github.com/projectcapsule/capsule/pull/1264>), released in v0.7.3: each goroutine
//!   writes its own slot `processedRaw[i]`; after the join the worker inserts the non-empty slots
//!   into `processed`.
//!
//! | modelled step | upstream |
//! |---|---|
//! | the `globaltenantresource` controller, one worker, watching GlobalTenantResources; Tenants and Namespaces read from informer caches | `controllers/resources.Global` (`SetupWithManager`, controller-runtime's cached client) |
//! | `Global::reconcile`: select the Tenants, `for index, resource := range spec.resources { for tnt := range tenants { HandleSection(…) } }`, prune, update the status if it changed, requeue after `resync-ms` | `(*Global).Reconcile`, `RequeueAfter: spec.resyncPeriod` (default 60 s) |
//! | `Processor::handle_section`: the Tenant's Namespaces (tenant label), then per Namespace and namespaced item a LIST of the source objects through the API (unstructured: not cached) | `(*Processor).HandleSection` |
//! | one task `resources.(*Processor).HandleSection.func1 (<ns>/<name>)` per listed object, a [`WaitGroup`] and an error channel, joined per batch | `wg.Add(1); go func(index int, obj unstructured.Unstructured) {…}(i, obj)`; `wg.Wait(); close(errorsChan)` |
//! | each task: `createOrUpdate` (API GET in the target namespace, then CREATE or UPDATE with the section's labels and annotations) | `(*Processor).createOrUpdate` → `controllerutil.CreateOrUpdate` |
//! | `buggy`: then `processed.Insert(item)` into the batch's shared `sets.String`, a [`GoMap`] | v0.7.2: `processed.Insert(replicatedItem.String())` inside the goroutine |
//! | `fixed`: then `processedRaw[i] = item` (a slot per task); after the join the worker inserts the non-empty slots | v0.7.3 (#1264) |
//! | `Processor::handle_pruning`: DELETE what the status lists but this reconcile did not process | `(*Processor).HandlePruning` |
//!
//! Two tasks that reach `processed.Insert` together die with `fatal error: concurrent map
//! writes`. They only do when their API calls return at nearly the same moment, so most
//! reconciles survive; the worker requeues every `resync-ms`, so the race recurs every minute
//! without any change, and eventually a schedule hits it.
//!
//! Oracle of both variants (what #1264 must preserve): at the end of each `HandleSection`,
//! `processed` holds exactly the objects whose `createOrUpdate` succeeded; otherwise
//! [`FailureKind::Invariant`].
//!
//! Not modelled: `rawItems` (replicated sequentially by the worker, no goroutines), the
//! `namespaceSelector` and `additionalMetadata` of a section (none here), the finalizer and
//! `pruningOnDelete`, the cross-namespace check (a GlobalTenantResource allows it).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiError, ApiServer, Cache, Client, Controller, DeleteOptions, Informer, KindInfo,
    Object, ObjectKey, ReconcileResult, Registry, Selector, ServerConfig,
};
use serde_json::{Value, json};
use sim_core::sync::channel;
use sim_core::sync::{Notify, WaitGroup};
use sim_core::{FailureKind, GoMap, enter, event, spawn};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

const GROUP: &str = "capsule.clastix.io/v1beta2";
/// Capsule's tenant label on Namespaces and replicated objects.
const TENANT_LABEL: &str = "capsule.clastix.io/tenant";
/// The label HandleSection sets on replicated objects: the section's index.
const RESOURCES_LABEL: &str = "capsule.clastix.io/resources";
/// Where the source objects live.
const SOURCE_NAMESPACE: &str = "default";
const GLOBAL_TENANT_RESOURCE: &str = "green-production";

/// `ObjectReferenceStatus.String()`.
fn object_reference(object: &Object) -> String {
    format!(
        "APIVersion={},Kind={},Namespace={},Name={}",
        object.api_version, object.kind, object.metadata.namespace, object.metadata.name
    )
}

/// `spec.resources[i].namespacedItems[j]`.
struct NamespacedItem {
    api_version: String,
    kind: String,
    namespace: String,
    selector: Selector,
}

impl NamespacedItem {
    fn parse(item: &Value) -> Result<Self, String> {
        let text = |field: &str| item[field].as_str().unwrap_or_default().to_string();
        let labels = item["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
        let selector: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
            .collect();
        Ok(NamespacedItem {
            api_version: text("apiVersion"),
            kind: text("kind"),
            namespace: text("namespace"),
            selector: Selector::parse(&selector.join(",")).map_err(|e| e.to_string())?,
        })
    }
}

/// `resources.Processor`.
struct Processor {
    client: Client,
    namespaces: Cache,
    fixed: bool,
    /// Test hook: the fixed join skips this slot (to show the oracle fires).
    lose_slot: Option<usize>,
}

impl Processor {
    /// `(*Processor).HandleSection(ctx, tnt, allowCrossNamespaceSelection, tenantLabel,
    /// resourceIndex, spec)`: the replicated items, sorted (`processed.List()`).
    async fn handle_section(
        self: &Rc<Self>,
        tenant: &Object,
        index: usize,
        spec: &Value,
    ) -> Result<Vec<String>, String> {
        let _frame = enter("resources.(*Processor).HandleSection");
        let tenant_name = tenant.metadata.name.clone();
        // The Tenant's Namespaces (no namespaceSelector in the model); a cached List.
        let selector =
            Selector::parse(&format!("{TENANT_LABEL}={tenant_name}")).map_err(|e| e.to_string())?;
        let namespaces = self.namespaces.list_selector(None, &selector);
        let labels: BTreeMap<String, String> = [
            (RESOURCES_LABEL.to_string(), index.to_string()),
            (TENANT_LABEL.to_string(), tenant_name.clone()),
        ]
        .into();
        let annotations: BTreeMap<String, String> =
            [(TENANT_LABEL.to_string(), tenant_name.clone())].into();
        let labels = Rc::new(labels);
        let annotations = Rc::new(annotations);
        // `processed := sets.NewString()`: a Go map, shared by the batch's goroutines.
        let processed: GoMap<String, ()> = GoMap::new("processed");
        // The oracle's record of what synced (not part of the modelled program). Like
        // `processed_raw` below, it declares no footprint (`sim_core::footprint`): goroutines
        // only insert (inserts commute, and each slot of `processed_raw` has one writer), and
        // it is read only after `wg.wait()`, which every writer's `wg.done()` happens before.
        let synced: Rc<RefCell<BTreeSet<String>>> = Rc::default();
        let mut sync_errors: Vec<String> = Vec::new();
        let items = spec["namespacedItems"].as_array().cloned().unwrap_or_default();
        for namespace in &namespaces {
            for item in &items {
                let item = NamespacedItem::parse(item)?;
                // Unstructured lists bypass controller-runtime's cache: a real LIST.
                let objects = match self
                    .client
                    .list(&item.api_version, &item.kind, Some(&item.namespace), &item.selector)
                    .await
                {
                    Ok(list) => list.items,
                    Err(error) => {
                        event(format!("cannot retrieve object for namespacedItem: {error}"));
                        sync_errors.push(error.to_string());
                        continue;
                    }
                };
                let wg = WaitGroup::named("HandleSection");
                let (errors_tx, errors_rx) =
                    channel::named::<ApiError>("errorsChan", Some(objects.len().max(1)));
                let processed_raw: Rc<RefCell<Vec<Option<String>>>> =
                    Rc::new(RefCell::new(vec![None; objects.len()]));
                for (slot, source) in objects.into_iter().enumerate() {
                    let mut object = source;
                    object.metadata.namespace = namespace.metadata.name.clone();
                    wg.add(1);
                    let name = format!(
                        "resources.(*Processor).HandleSection.func1 ({}/{})",
                        object.metadata.namespace, object.metadata.name
                    );
                    let (processor, wg, errors_tx) = (self.clone(), wg.clone(), errors_tx.clone());
                    let (processed, processed_raw, synced) =
                        (processed.clone(), processed_raw.clone(), synced.clone());
                    let (labels, annotations) = (labels.clone(), annotations.clone());
                    spawn(name, async move {
                        let _frame = enter("resources.(*Processor).HandleSection.func1");
                        let result =
                            processor.create_or_update(&object, &labels, &annotations).await;
                        match result {
                            Err(error) => {
                                event(format!("unable to sync namespacedItems: {error}"));
                                let _ = errors_tx.send(error).await;
                            }
                            Ok(()) => {
                                event(format!("resource has been replicated: {}", object.key()));
                                let replicated = object_reference(&object);
                                synced.borrow_mut().insert(replicated.clone());
                                if processor.fixed {
                                    processed_raw.borrow_mut()[slot] = Some(replicated);
                                } else {
                                    let _insert = enter("sets.String.Insert");
                                    processed.insert(replicated, ()).await;
                                }
                            }
                        }
                        // defer wg.Done()
                        wg.done();
                    });
                }
                wg.wait().await;
                errors_tx.close();
                while let Some(error) = errors_rx.recv().await {
                    sync_errors.push(error.to_string());
                }
                if self.fixed {
                    let slots = std::mem::take(&mut *processed_raw.borrow_mut());
                    for (slot, replicated) in slots.into_iter().enumerate() {
                        if self.lose_slot == Some(slot) {
                            continue;
                        }
                        if let Some(replicated) = replicated {
                            processed.insert(replicated, ()).await;
                        }
                    }
                }
            }
        }
        let listed: Vec<String> = processed.entries().await.into_iter().map(|(k, ())| k).collect();
        if let Err(details) = check_processed(&listed, &synced.borrow()) {
            sim_core::fail(
                FailureKind::Invariant,
                "processed is not the set of objects that synced",
                details,
            );
        }
        if sync_errors.is_empty() { Ok(listed) } else { Err(sync_errors.join("; ")) }
    }

    /// `(*Processor).createOrUpdate` → `controllerutil.CreateOrUpdate`: GET the object in the
    /// target namespace; mutate (the source's content, the section's labels and annotations,
    /// the existing resourceVersion and uid); CREATE if missing, UPDATE if changed.
    async fn create_or_update(
        &self,
        desired: &Object,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let _frame = enter("resources.(*Processor).createOrUpdate");
        let _helper = enter("controllerutil.CreateOrUpdate");
        let meta = &desired.metadata;
        let existing = match self
            .client
            .get(&desired.api_version, &desired.kind, &meta.namespace, &meta.name)
            .await
        {
            Ok(existing) => Some(existing),
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(error),
        };
        let mut actual = desired.clone();
        actual.metadata.labels = labels.clone();
        actual.metadata.annotations = annotations.clone();
        actual.metadata.resource_version =
            existing.as_ref().map(|e| e.metadata.resource_version.clone()).unwrap_or_default();
        actual.metadata.uid = existing.as_ref().map(|e| e.metadata.uid.clone()).unwrap_or_default();
        match existing {
            None => self.client.create(actual).await.map(drop),
            Some(existing) if existing == actual => Ok(()),
            Some(_) => self.client.update(actual).await.map(drop),
        }
    }

    /// `(*Processor).HandlePruning(ctx, current, desired)`: deletes what was replicated before
    /// but not now; whether the status must be updated.
    async fn handle_pruning(&self, current: &BTreeSet<String>, desired: &BTreeSet<String>) -> bool {
        let _frame = enter("resources.(*Processor).HandlePruning");
        let diff: Vec<&String> = current.difference(desired).collect();
        for item in &diff {
            let Some((api_version, kind, namespace, name)) = parse_reference(item) else {
                continue;
            };
            let options = DeleteOptions::default();
            match self.client.delete(&api_version, &kind, &namespace, &name, &options).await {
                Ok(_) => event(format!("resource has been pruned: {item}")),
                Err(error) if error.is_not_found() => {}
                Err(error) => event(format!("unable to prune resource {item}: {error}")),
            }
        }
        !diff.is_empty() || current.len() != desired.len()
    }
}

/// `ObjectReferenceStatus.ParseFromString`.
fn parse_reference(text: &str) -> Option<(String, String, String, String)> {
    let mut fields = BTreeMap::new();
    for part in text.split(',') {
        let (key, value) = part.split_once('=')?;
        fields.insert(key, value.to_string());
    }
    Some((
        fields.remove("APIVersion")?,
        fields.remove("Kind")?,
        fields.remove("Namespace")?,
        fields.remove("Name")?,
    ))
}

/// The oracle: `processed` (as `HandleSection` returns it) holds exactly the objects whose
/// `createOrUpdate` succeeded. The error lists the differences; `HandleSection` turns it into a
/// [`FailureKind::Invariant`] failure.
pub fn check_processed(processed: &[String], synced: &BTreeSet<String>) -> Result<(), String> {
    let processed: BTreeSet<String> = processed.iter().cloned().collect();
    if &processed == synced {
        return Ok(());
    }
    let missing: Vec<&String> = synced.difference(&processed).collect();
    let extra: Vec<&String> = processed.difference(synced).collect();
    Err(format!("synced but not processed: {missing:?}\nprocessed but not synced: {extra:?}"))
}

/// `controllers/resources.Global`: the GlobalTenantResource reconciler.
struct Global {
    client: Client,
    resources: Cache,
    tenants: Cache,
    processor: Rc<Processor>,
    resync: Duration,
    reconciles: Rc<Cell<u64>>,
    done: Notify,
}

impl Global {
    /// `(*Global).Reconcile`.
    async fn reconcile(&self, key: ObjectKey) -> ReconcileResult {
        let _frame = enter("resources.(*Global).Reconcile");
        let Some(resource) = self.resources.get("", &key.name) else {
            return Ok(Action::Done);
        };
        event("start processing");
        let matches = resource.spec["tenantSelector"]["matchLabels"].as_object().cloned();
        let selector: Vec<String> = matches
            .unwrap_or_default()
            .iter()
            .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
            .collect();
        let tenants = self
            .tenants
            .list_selector(None, &Selector::parse(&selector.join(",")).map_err(|e| e.to_string())?);
        let mut selected = BTreeSet::new();
        let mut processed = BTreeSet::new();
        let mut errors = Vec::new();
        let sections = resource.spec["resources"].as_array().cloned().unwrap_or_default();
        for (index, section) in sections.iter().enumerate() {
            for tenant in &tenants {
                selected.insert(tenant.metadata.name.clone());
                match self.processor.handle_section(tenant, index, section).await {
                    Ok(items) => processed.extend(items),
                    Err(error) => errors.push(error),
                }
            }
        }
        let current: BTreeSet<String> = resource.status["processedItems"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let prune = self.processor.handle_pruning(&current, &processed).await;
        let selected: Vec<String> = selected.into_iter().collect();
        let selected_changed = resource.status["selectedTenants"] != json!(selected);
        if prune || selected_changed {
            let mut latest = resource.clone();
            latest.status = json!({ "selectedTenants": selected, "processedItems": processed });
            self.client.update_status(latest).await?;
        }
        event("processing completed");
        self.reconciles.set(self.reconciles.get() + 1);
        self.done.notify_waiters();
        if !errors.is_empty() {
            return Err(errors.join("; ").into());
        }
        Ok(Action::RequeueAfter(self.resync))
    }
}

/// Source objects each namespaced item selects: one goroutine per object per batch.
const OBJECTS: Key<usize> = Key::count(
    "objects",
    "source objects each namespaced item selects: one goroutine per object per batch",
    4,
)
.range(1, 50)
.swarm(&[2, 4, 8]);

/// Tenants the GlobalTenantResource selects.
const TENANTS: Key<usize> = Key::count("tenants", "Tenants the GlobalTenantResource selects", 2)
    .range(1, 20)
    .swarm(&[1, 2]);

/// Namespaces per Tenant (one batch per namespace and item).
const NAMESPACES: Key<usize> =
    Key::count("namespaces", "Namespaces per Tenant (one batch per namespace and item)", 2)
        .range(1, 20)
        .swarm(&[1, 2]);

/// Entries of spec.resources, each with one namespaced item.
const SECTIONS: Key<usize> =
    Key::count("sections", "entries of spec.resources, each with one namespaced item", 1)
        .range(1, 10)
        .swarm(&[1, 2]);

/// Spec.resyncPeriod: the reconcile requeues after it (Capsule's default 60 s).
const RESYNC: Key<Duration> = Key::millis(
    "resync-ms",
    "spec.resyncPeriod: the reconcile requeues after it (Capsule's default 60 s)",
    60_000,
)
.range(100, 3_600_000);

/// Completed reconciles after which the run ends.
const RECONCILES: Key<usize> =
    Key::count("reconciles", "completed reconciles after which the run ends", 3)
        .range(1, 100)
        .swarm(&[1, 3]);

const PARAMS: &[Param] = &[
    OBJECTS.param,
    TENANTS.param,
    NAMESPACES.param,
    SECTIONS.param,
    RESYNC.param,
    RECONCILES.param,
    crate::API_LATENCY.param,
    crate::CACHE_LAG.param,
];

/// Capsule v0.7.2.
pub const BUGGY: Variant = Variant::fails(
    "buggy",
    "Capsule v0.7.2: each replication goroutine inserts into the shared processed set",
    FailureKind::GoFatal,
    "fatal error: concurrent map writes",
);
/// Capsule v0.7.3 (PR #1264).
pub const FIXED: Variant = Variant::holds(
    "fixed",
    "v0.7.3 (PR #1264): each goroutine fills its own processedRaw slot; the worker inserts after the join",
);

const VARIANTS: &[Variant] = &[BUGGY, FIXED];

/// The scenario.
pub struct ReplicationWrites;

impl ReplicationWrites {
    /// [`Scenario::setup`] with a test hook: with `lose_slot`, the fixed variant's join skips
    /// that slot of every batch (a broken fix), which the oracle must report.
    pub fn setup_with(&self, variant: &Variant, params: &Params, lose_slot: Option<usize>) {
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, "Tenant", "tenants", false));
        registry.register(KindInfo::custom(
            GROUP,
            "GlobalTenantResource",
            "globaltenantresources",
            false,
        ));
        let server = ApiServer::new(registry, ServerConfig::default());
        populate(&server, params);
        let client = Client::new(&server, "capsule", crate::client_config(params));
        let informer = |kind: &str, api_version: &str| {
            let name = format!("{}-informer", kind.to_lowercase());
            Informer::new(&name, &client, api_version, kind, None, crate::informer_config(params))
        };
        let resources = informer("GlobalTenantResource", GROUP);
        let tenants = informer("Tenant", GROUP);
        let namespaces = informer("Namespace", "v1");
        let controller = Controller::new("globaltenantresource", 1);
        controller.watches(&resources);
        for informer in [&resources, &tenants, &namespaces] {
            informer.start();
        }
        let processor = Rc::new(Processor {
            client: client.clone(),
            namespaces: namespaces.cache(),
            fixed: variant.is(&FIXED),
            lose_slot,
        });
        let (reconciles, done) = (Rc::new(Cell::new(0)), Notify::named("reconcile completed"));
        let global = Rc::new(Global {
            client,
            resources: resources.cache(),
            tenants: tenants.cache(),
            processor,
            resync: params.get(RESYNC),
            reconciles: reconciles.clone(),
            done: done.clone(),
        });
        let caches = [resources, tenants, namespaces];
        let wanted = params.get(RECONCILES) as u64;
        // The manager: start the worker once the caches synced, run until enough reconciles.
        spawn("manager", async move {
            for informer in &caches {
                informer.wait_synced().await;
            }
            controller.start(move |key| {
                let global = global.clone();
                async move { global.reconcile(key).await }
            });
            loop {
                let completed = done.notified();
                if reconciles.get() >= wanted {
                    break;
                }
                completed.await;
            }
            event(format!("{wanted} reconciles completed"));
        });
    }
}

/// The Tenants, their Namespaces, the source objects and the GlobalTenantResource.
fn populate(server: &ApiServer, params: &Params) {
    for tenant in 0..params.get(TENANTS) {
        let tenant = format!("tenant-{tenant}");
        let object = Object::new(GROUP, "Tenant", "", &tenant).with_label("energy", "green");
        server.create(object).expect("tenant");
        for namespace in 0..params.get(NAMESPACES) {
            let namespace = Object::new("v1", "Namespace", "", &format!("{tenant}-ns-{namespace}"))
                .with_label(TENANT_LABEL, &tenant);
            server.create(namespace).expect("namespace");
        }
    }
    let mut sections = Vec::new();
    for section in 0..params.get(SECTIONS) {
        let label = format!("section-{section}");
        for object in 0..params.get(OBJECTS) {
            let secret =
                Object::new("v1", "Secret", SOURCE_NAMESPACE, &format!("{label}-{object}"))
                    .with_label("replicate", &label)
                    .with_field("type", json!("Opaque"))
                    .with_field("data", json!({ "token": "c2VjcmV0" }));
            server.create(secret).expect("source secret");
        }
        sections.push(json!({
            "namespacedItems": [{
                "apiVersion": "v1",
                "kind": "Secret",
                "namespace": SOURCE_NAMESPACE,
                "selector": { "matchLabels": { "replicate": label } },
            }],
        }));
    }
    let resync = params.get(RESYNC);
    let resource = Object::new(GROUP, "GlobalTenantResource", "", GLOBAL_TENANT_RESOURCE)
        .with_spec(json!({
            "tenantSelector": { "matchLabels": { "energy": "green" } },
            "resyncPeriod": format!("{}s", resync.as_millis() as f64 / 1000.0),
            "resources": sections,
        }));
    server.create(resource).expect("global tenant resource");
}

const META: Meta = Meta {
    name: "capsule-replication-writes",
    summary: "HandleSection's replication goroutines insert into one sets.String: concurrent map writes",
    upstream: &[
        "https://github.com/projectcapsule/capsule/issues/1263",
        "https://github.com/projectcapsule/capsule/pull/1264",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for ReplicationWrites {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        self.setup_with(variant, params, None);
    }
}

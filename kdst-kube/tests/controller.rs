//! Tests: `kdst_kube::Controller` follows kube-runtime's semantics. Requeue after
//! `Action::requeue`; one reconcile per object at a time, with the requests that came meanwhile
//! folded into one; the concurrency limit; triggers from owned objects (owner references) and
//! watched ones (a mapper); the error policy's `Action` and `Error::ReconcilerFailed` on the
//! stream; `Error::ObjectNotFound` for an object gone when its reconcile comes due; `store()`
//! filled from the cache; and the harness's YAML seeding.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kdst_kube::{Cluster, Config, Controller};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Error};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sim_core::{Outcome, Simulation};

/// What the reconciles saw, shared with the test.
#[derive(Default)]
struct Log {
    /// Per object: the virtual times its reconciles started.
    starts: BTreeMap<String, Vec<Duration>>,
    /// Reconciles running now, per object and in all.
    running: BTreeMap<String, usize>,
    in_flight: usize,
    /// The most at once, per object and in all.
    most_per_object: usize,
    most: usize,
    /// Error-policy calls.
    policy: Vec<String>,
    /// What the results stream yielded, as text.
    results: Vec<String>,
}

/// How a test's reconcile behaves.
struct Ctx {
    log: Mutex<Log>,
    /// How long each reconcile takes (a tokio sleep).
    takes: Duration,
    /// What it returns.
    action: Action,
    /// Fail the first reconcile of each object.
    fail_first: bool,
}

#[derive(Debug)]
struct Failed(String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Failed {}

fn now() -> Duration {
    sim_core::now().elapsed_since_start()
}

async fn reconcile(object: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Failed> {
    let name = object.name_any();
    let first = {
        let mut log = ctx.log.lock().unwrap();
        let starts = log.starts.entry(name.clone()).or_default();
        starts.push(now());
        let first = starts.len() == 1;
        let running = log.running.entry(name.clone()).or_default();
        *running += 1;
        let per_object = *running;
        log.in_flight += 1;
        log.most_per_object = log.most_per_object.max(per_object);
        log.most = log.most.max(log.in_flight);
        first
    };
    tokio::time::sleep(ctx.takes).await;
    let mut log = ctx.log.lock().unwrap();
    *log.running.get_mut(&name).unwrap() -= 1;
    log.in_flight -= 1;
    if first && ctx.fail_first {
        return Err(Failed(format!("{name} is not ready")));
    }
    Ok(ctx.action.clone())
}

fn error_policy(object: Arc<ConfigMap>, error: &Failed, ctx: Arc<Ctx>) -> Action {
    ctx.log.lock().unwrap().policy.push(format!("{}: {error}", object.name_any()));
    Action::requeue(Duration::from_secs(2))
}

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.metadata.namespace = Some("default".to_string());
    cm.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    cm
}

type Build = Box<dyn FnOnce(kube::Client) -> Controller<ConfigMap>>;

/// Seeds `names`, runs a controller built by `build` with `ctx` and a user `script` (which ends
/// the run), and returns the log.
fn run(
    seed: u64,
    names: &[&str],
    ctx: Ctx,
    build: Build,
    script: impl AsyncFnOnce(Cluster) + 'static,
) -> Log {
    let ctx = Arc::new(ctx);
    let out = ctx.clone();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let outcome = Simulation::default().run(seed, move || {
        let cluster = Cluster::new();
        for name in &names {
            cluster.seed(&config_map(name, &[])).expect("seeded");
        }
        let operator = cluster.clone();
        cluster.spawn_daemon("operator", async move {
            let client = operator.client("operator");
            let ctx = ctx.clone();
            build(client)
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|result| {
                    let text = match result {
                        Ok((object, action)) => format!("ok {} {action:?}", object.name),
                        Err(Error::ReconcilerFailed(error, object)) => {
                            format!("failed {} {error}", object.name)
                        }
                        Err(Error::ObjectNotFound(object)) => format!("not found {}", object.name),
                        Err(other) => format!("other {other}"),
                    };
                    ctx.log.lock().unwrap().results.push(text);
                    std::future::ready(())
                })
                .await;
        });
        let user = cluster.clone();
        cluster.spawn("user", async move { script(user).await });
    });
    assert_eq!(outcome, Outcome::Completed);
    Arc::try_unwrap(out).ok().expect("the run is over").log.into_inner().unwrap()
}

fn plain(client: kube::Client) -> Controller<ConfigMap> {
    Controller::new(Api::<ConfigMap>::all(client), watcher::Config::default())
}

fn ctx(takes: Duration, action: Action) -> Ctx {
    Ctx { log: Mutex::default(), takes, action, fail_first: false }
}

#[test]
fn requeue_after_runs_the_reconcile_again_that_much_later() {
    let log = run(
        1,
        &["a"],
        ctx(Duration::from_millis(10), Action::requeue(Duration::from_secs(10))),
        Box::new(plain),
        async |_| sim_core::sleep(Duration::from_secs(35)).await,
    );
    let starts = &log.starts["a"];
    assert_eq!(starts.len(), 4, "{starts:?}");
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        // 10 s after the previous reconcile ended (it took 10 ms), plus scheduling.
        assert!(
            gap >= Duration::from_millis(10_010) && gap < Duration::from_millis(10_100),
            "{starts:?}"
        );
    }
}

#[test]
fn one_reconcile_per_object_at_a_time_and_changes_meanwhile_fold_into_one() {
    for seed in 0..20 {
        let log = run(
            seed,
            &["a"],
            ctx(Duration::from_secs(2), Action::await_change()),
            Box::new(plain),
            async |cluster| {
                let api: Api<ConfigMap> = Api::namespaced(cluster.client("user"), "default");
                sim_core::sleep(Duration::from_millis(500)).await;
                for change in 0..5 {
                    let patch = json!({ "data": { "change": change.to_string() } });
                    api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                    sim_core::sleep(Duration::from_millis(100)).await;
                }
                sim_core::sleep(Duration::from_secs(10)).await;
            },
        );
        assert_eq!(log.most_per_object, 1, "seed {seed}: two reconciles of one object at once");
        // The initial reconcile (0 s to 2 s), then one for the five changes made during it.
        assert_eq!(log.starts["a"].len(), 2, "seed {seed}: {:?}", log.starts);
        assert!(log.starts["a"][1] >= Duration::from_secs(2), "{:?}", log.starts);
    }
}

#[test]
fn the_concurrency_limit_bounds_reconciles_in_flight() {
    let names = ["a", "b", "c", "d", "e"];
    let limited = run(
        3,
        &names,
        ctx(Duration::from_secs(1), Action::await_change()),
        Box::new(|client| plain(client).with_config(Config::default().concurrency(2))),
        async |_| sim_core::sleep(Duration::from_secs(10)).await,
    );
    assert_eq!(limited.most, 2);
    assert_eq!(limited.starts.len(), 5, "every object reconciled: {:?}", limited.starts);
    // kube's own Config type is accepted too, and no limit means all at once.
    let kube_config = kube::runtime::controller::Config::default().concurrency(0);
    let unlimited = run(
        3,
        &names,
        ctx(Duration::from_secs(1), Action::await_change()),
        Box::new(move |client| plain(client).with_config(kube_config)),
        async |_| sim_core::sleep(Duration::from_secs(10)).await,
    );
    assert_eq!(unlimited.most, 5);
}

#[test]
fn owned_and_watched_objects_trigger_their_owner_and_the_mappers_target() {
    let build: Build = Box::new(|client| {
        plain(client.clone())
            .owns(Api::<Secret>::all(client.clone()), watcher::Config::default())
            .watches(
                Api::<ConfigMap>::all(client),
                watcher::Config::default().labels("points-to"),
                |cm: ConfigMap| {
                    let target = cm.labels().get("points-to").cloned().unwrap_or_default();
                    Some(ObjectRef::new(&target).within("default"))
                },
            )
    });
    let log = run(
        4,
        &["owner", "target"],
        ctx(Duration::from_millis(10), Action::await_change()),
        build,
        async |cluster| {
            sim_core::sleep(Duration::from_secs(5)).await;
            let owner = cluster.peek::<ConfigMap>("default", "owner").expect("seeded");
            let mut secret = Secret::default();
            secret.metadata.name = Some("owned".into());
            secret.metadata.namespace = Some("default".into());
            secret.metadata.owner_references = owner.controller_owner_ref(&()).map(|o| vec![o]);
            let secrets: Api<Secret> = Api::namespaced(cluster.client("user"), "default");
            secrets.create(&Default::default(), &secret).await.expect("the owned secret");
            sim_core::sleep(Duration::from_secs(5)).await;
            let pointer = config_map("pointer", &[("points-to", "target")]);
            let maps: Api<ConfigMap> = Api::namespaced(cluster.client("user"), "default");
            maps.create(&Default::default(), &pointer).await.expect("the pointer");
            sim_core::sleep(Duration::from_secs(5)).await;
        },
    );
    let after = |name: &str, t: u64| {
        log.starts[name].iter().filter(|s| **s >= Duration::from_secs(t)).count()
    };
    assert_eq!(
        after("owner", 5),
        1,
        "the owned Secret's creation reconciles its owner: {:?}",
        log.starts
    );
    assert!(after("target", 10) >= 1, "the pointer reconciles its target: {:?}", log.starts);
    assert_eq!(after("owner", 10), 0, "the pointer does not reconcile the owner: {:?}", log.starts);
}

#[test]
fn errors_go_through_the_error_policy_and_reach_the_stream() {
    let mut failing = ctx(Duration::from_millis(10), Action::await_change());
    failing.fail_first = true;
    let log = run(5, &["a"], failing, Box::new(plain), async |_| {
        sim_core::sleep(Duration::from_secs(5)).await
    });
    assert_eq!(log.policy, ["a: a is not ready"]);
    let starts = &log.starts["a"];
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[1] - starts[0] >= Duration::from_secs(2), "the policy's requeue: {starts:?}");
    assert_eq!(log.results, ["failed a a is not ready", "ok a Action { requeue_after: None }"]);
}

#[test]
fn an_object_gone_when_its_reconcile_comes_due_is_object_not_found() {
    let log = run(
        6,
        &["a"],
        ctx(Duration::from_millis(10), Action::requeue(Duration::from_secs(3))),
        Box::new(plain),
        async |cluster| {
            sim_core::sleep(Duration::from_secs(1)).await;
            let api: Api<ConfigMap> = Api::namespaced(cluster.client("user"), "default");
            api.delete("a", &DeleteParams::default()).await.expect("deleted");
            sim_core::sleep(Duration::from_secs(5)).await;
        },
    );
    assert_eq!(log.starts["a"].len(), 1);
    assert_eq!(log.results.last().map(String::as_str), Some("not found a"), "{:?}", log.results);
}

#[test]
fn the_store_holds_the_cached_objects_once_ready() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let out = seen.clone();
    let outcome = Simulation::default().run(7, move || {
        let cluster = Cluster::new();
        for name in ["x", "y"] {
            cluster.seed(&config_map(name, &[])).expect("seeded");
        }
        let operator = cluster.clone();
        cluster.spawn("operator", async move {
            let controller = plain(operator.client("operator"));
            let store = controller.store();
            let ctx = Arc::new(ctx(Duration::ZERO, Action::await_change()));
            let results = controller.run(reconcile, error_policy, ctx);
            store.wait_until_ready().await.expect("ready");
            let mut names: Vec<String> = store.state().iter().map(|cm| cm.name_any()).collect();
            names.sort();
            *out.borrow_mut() = names;
            drop(results);
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(*seen.borrow(), ["x", "y"]);
}

#[test]
fn yaml_manifests_seed_the_cluster_and_a_bad_document_is_named() {
    let outcome = Simulation::default().run(8, || {
        let cluster = Cluster::new();
        let made = cluster
            .seed_yaml(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  namespace: default\n\
                 data:\n  k: v\n---\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: two\n  \
                 namespace: default\n",
            )
            .expect("two objects");
        assert_eq!(made.len(), 2);
        let one = cluster.peek::<ConfigMap>("default", "one").expect("one");
        assert_eq!(one.data.unwrap()["k"], "v");
        assert!(cluster.peek::<Secret>("default", "two").is_some());
        let bad = cluster
            .seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: three, namespace: default}\n---\n: [\n");
        let error = bad.expect_err("the second document is not YAML");
        assert!(error.starts_with("document 2: "), "{error}");
    });
    assert_eq!(outcome, Outcome::Completed);
}

/// A kube-rs controller in a `sim_core::Process`: a crash drops its reconciles, informers and
/// client; the restart runs the boot closure again, and the new incarnation relists and
/// reconciles every object again.
#[test]
fn a_crashed_controller_process_restarts_from_its_boot_and_reconciles_again() {
    let ctx = Arc::new(ctx(Duration::from_millis(10), Action::await_change()));
    let out = ctx.clone();
    let outcome = Simulation::default().run(9, move || {
        let cluster = Cluster::new();
        for name in ["a", "b"] {
            cluster.seed(&config_map(name, &[])).expect("seeded");
        }
        let operator = cluster.clone();
        let process = sim_core::Process::start("operator", move || {
            let (client, ctx) = (operator.client("operator"), ctx.clone());
            operator.spawn_daemon("operator", async move {
                let results = plain(client).run(reconcile, error_policy, ctx);
                results.for_each(|_| std::future::ready(())).await;
            });
        });
        cluster.spawn("chaos", async move {
            sim_core::sleep(Duration::from_secs(5)).await;
            process.restart_after(Duration::from_secs(1));
            sim_core::sleep(Duration::from_secs(5)).await;
            assert_eq!(process.incarnation(), 1);
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    let log = out.log.lock().unwrap();
    for name in ["a", "b"] {
        let starts = &log.starts[name];
        assert_eq!(starts.len(), 2, "{name}: once per incarnation: {starts:?}");
        assert!(starts[1] >= Duration::from_secs(6), "{name}: after the restart: {starts:?}");
    }
}

/// A watcher backoff that never retries (kdst's informers do not use it).
struct NoBackoff;

impl Iterator for NoBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        None
    }
}

impl kube::runtime::utils::Backoff for NoBackoff {
    fn reset(&mut self) {}
}

/// kube's other builder methods: `reconcile_all_on` reconciles every object at each item,
/// `reconcile_on` the objects named, `graceful_shutdown_on` starts nothing after its future and
/// ends the stream; `shutdown_on_signal` and `trigger_backoff` build (no signals in a run).
#[test]
fn reconcile_on_reconcile_all_on_and_graceful_shutdown() {
    let build: Build = Box::new(|client| {
        let all = futures::stream::once(sim_core::sleep(Duration::from_secs(2)));
        let one = futures::stream::once(async {
            sim_core::sleep(Duration::from_secs(4)).await;
            ObjectRef::new("b").within("default")
        });
        plain(client)
            .reconcile_all_on(all)
            .reconcile_on(one)
            .shutdown_on_signal()
            .trigger_backoff(NoBackoff)
    });
    let log = run(
        10,
        &["a", "b"],
        ctx(Duration::from_millis(10), Action::await_change()),
        build,
        async |_| sim_core::sleep(Duration::from_secs(6)).await,
    );
    let seconds =
        |name: &str| -> Vec<u64> { log.starts[name].iter().map(|t| t.as_secs()).collect() };
    assert_eq!(seconds("a"), [0, 2], "{:?}", log.starts);
    assert_eq!(seconds("b"), [0, 2, 4], "{:?}", log.starts);

    let shutdown: Build = Box::new(|client| {
        plain(client).graceful_shutdown_on(sim_core::sleep(Duration::from_millis(3_500)))
    });
    let log = run(
        11,
        &["a"],
        ctx(Duration::from_millis(10), Action::requeue(Duration::from_secs(1))),
        shutdown,
        async |_| sim_core::sleep(Duration::from_secs(8)).await,
    );
    assert_eq!(log.starts["a"].len(), 4, "reconciles at 0, 1, 2 and 3 s only: {:?}", log.starts);
    assert_eq!(log.results.len(), 4, "{:?}", log.results);
}

//! A user-written scenario: a controller that drops its key on `409 Conflict`.
//!
//! `cargo run -p scenarios --example conflict_drop`
//!
//! `status-controller` copies a Deployment's `metadata.generation` into
//! `status.observedGeneration`; some of its writes get a 409 Conflict (injected by its client).
//! `buggy` returns `Ok(Action::Done)` on a conflict: the key is forgotten, no event brings it
//! back, the status never converges, and a liveness oracle (`sim_core::eventually`) says so.
//! `fixed` returns the error: the work queue retries with backoff and the status converges.
//!
//! ## Write your own scenario
//! 1. Implement [`Scenario`]: name, summary, upstream links, variants (each with the
//!    [`Expect`]ation search must meet), parameters with ranges.
//! 2. In `setup`, build the world from `apiserver_fake` (server, clients, informers,
//!    controllers) and spawn tasks. Informers and controllers are daemons: some `spawn`ed task
//!    must end after bounded work, or nothing ends the run.
//! 3. Register oracles: `sim_core::always` (safety, checked after every step) and
//!    `sim_core::eventually` (liveness, within virtual time).
//! 4. Run seeds with `scenarios::run`: a failing seed replays exactly.
//! 5. To ship it with `kdst`, move it to `scenarios/src/` and list it in `scenarios::all()`.

use std::process::ExitCode;
use std::time::Duration;

use scenarios::apiserver_fake::{
    Action, ApiServer, Client, ClientConfig, Controller, Faults, Informer, Object, ReconcileResult,
};
use scenarios::{Expect, Param, Params, Scenario, Variant, run};
use serde_json::json;
use sim_core::{FailureKind, Outcome, Simulation, event, eventually, sleep, spawn};

const SEEDS: u64 = 200;
type S = &'static str;

struct ConflictDrop;

impl Scenario for ConflictDrop {
    fn name(&self) -> S {
        "conflict-drop"
    }
    fn summary(&self) -> S {
        "a reconciler returns Ok after a 409 Conflict: the key is dropped, status never converges"
    }
    fn upstream(&self) -> &'static [S] {
        &["https://pkg.go.dev/sigs.k8s.io/controller-runtime/pkg/reconcile#Reconciler"]
    }
    fn variants(&self) -> &'static [Variant] {
        const FAILS: Expect = Expect::Fails(FailureKind::Liveness, "status.observedGeneration");
        &[
            Variant { name: "buggy", summary: "conflict → Ok(Done)", expect: FAILS },
            Variant { name: "fixed", summary: "conflict → Err: requeued", expect: Expect::Holds },
        ]
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[
            param("conflict-percent", "status writes failing with 409", "%", 30, 0, 90),
            param("spec-changes", "spec updates by the user", "count", 3, 0, 20),
        ];
        PARAMS
    }

    fn setup(&self, variant: &str, params: &Params) {
        let server = ApiServer::default();
        let web = Object::new("apps/v1", "Deployment", "default", "web");
        server.create(web.with_spec(json!({ "replicas": 0 }))).expect("create");
        let conflict = params.get("conflict-percent") as f64 / 100.0;
        let config = ClientConfig::default().with_faults(Faults { conflict, ..Faults::NONE });
        let client = Client::new(&server, "status", config);
        let informer = Informer::new("web", &client, "apps/v1", "Deployment", None, <_>::default());
        let controller = Controller::new("status-controller", 1);
        controller.watches(&informer);
        informer.start();
        let (cache, buggy) = (informer.cache(), variant == "buggy");
        controller.start(move |key| {
            let (client, cached) = (client.clone(), cache.get(&key.namespace, &key.name));
            async move { reconcile(client, cached, buggy).await }
        });
        let (user, changes) =
            (Client::new(&server, "user", <_>::default()), params.get("spec-changes"));
        spawn("user", async move {
            for replicas in 1..=changes {
                sleep(Duration::from_millis(100)).await;
                let mut web = user.get("apps/v1", "Deployment", "default", "web").await.unwrap();
                web.spec = json!({ "replicas": replicas });
                user.update(web).await.expect("update");
            }
            let within = Duration::from_secs(10);
            eventually("status converges", within, move || observed(&server));
            sleep(within + Duration::from_secs(5)).await;
        });
    }
}

/// The reconciler: `status.observedGeneration = metadata.generation`.
async fn reconcile(client: Client, cached: Option<Object>, buggy: bool) -> ReconcileResult {
    let Some(mut web) = cached else { return Ok(Action::Done) };
    if web.status["observedGeneration"] == web.metadata.generation {
        return Ok(Action::Done);
    }
    web.status = json!({ "observedGeneration": web.metadata.generation });
    match client.update_status(web).await {
        Ok(_) => Ok(Action::Done),
        Err(error) if error.is_conflict() && buggy => {
            event(format!("BUG: dropping the key after {error}"));
            Ok(Action::Done)
        }
        Err(error) => Err(error.into()), // requeued with backoff
    }
}

/// The liveness check, on the server's state (an oracle may not await).
fn observed(server: &ApiServer) -> Result<(), String> {
    let web = server.objects().into_iter().find(|o| o.kind == "Deployment").ok_or("no web")?;
    let (observed, generation) = (&web.status["observedGeneration"], web.metadata.generation);
    if *observed == generation {
        return Ok(());
    }
    Err(format!("status.observedGeneration is {observed}, metadata.generation is {generation}"))
}

const fn param(name: S, summary: S, unit: S, default: u64, min: u64, max: u64) -> Param {
    Param { name, summary, unit, default, min, max, swarm: &[] }
}

fn main() -> ExitCode {
    let (scenario, mut sim) = (ConflictDrop, Simulation::default());
    let params = Params::defaults(&scenario);
    // 1. Search: run seeds of the buggy variant until an oracle fires.
    let found = (0..SEEDS).find_map(|seed| {
        run(&mut sim, &scenario, "buggy", &params, seed).failure().cloned().map(|f| (seed, f))
    });
    let Some((seed, failure)) = found else {
        println!("buggy: no failure in {SEEDS} seeds");
        return ExitCode::FAILURE;
    };
    println!("buggy ({params}): seed {seed} fails:\n{failure}\n");
    // 2. Replay: the same seed is the same run, so the same failure at the same step.
    let replayed = run(&mut sim, &scenario, "buggy", &params, seed).failure() == Some(&failure);
    println!("replay: scenarios::run(.., \"buggy\", .., {seed}) fails the same way: {replayed}");
    // 3. The fix holds on every seed.
    let mut fixed = (0..SEEDS).map(|s| (s, run(&mut sim, &scenario, "fixed", &params, s)));
    let broken = fixed.find(|(_, outcome)| *outcome != Outcome::Completed);
    let holds = format!("holds over {SEEDS} seeds");
    println!("fixed: {}", broken.as_ref().map_or(holds, |(s, o)| format!("seed {s}: {o}")));
    let expected = matches!(scenario.variants()[0].expect,
        Expect::Fails(kind, text) if failure.kind == kind && failure.message.contains(text));
    if expected && replayed && broken.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

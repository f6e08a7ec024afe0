//! A user-written scenario with its own `kdst` command line: a controller that drops its key on
//! `409 Conflict`. Copy this file to start your own.
//!
//! ```text
//! cargo run -p scenarios --example conflict_drop -- list
//! cargo run -p scenarios --example conflict_drop -- explore conflict-drop --seeds 0..200
//! cargo run -p scenarios --example conflict_drop -- replay target/kdst/conflict-drop-….schedule
//! cargo test -p scenarios --example conflict_drop
//! ```
//!
//! `status-controller` copies a Deployment's `metadata.generation` into
//! `status.observedGeneration`; some of its writes get a 409 Conflict (injected by its client).
//! `buggy` returns `Ok(Action::Done)` on a conflict: the key is forgotten, no event brings it
//! back, the status never converges, and a liveness oracle (`eventually`) says so. `fixed`
//! returns the error: the work queue retries with backoff and the status converges.
//!
//! ## The parts of a scenario
//! 1. Its parameters, as typed [`Key`]s: a name, a unit, a default, a range, the values the swarm
//!    draws. `params.get(KEY)` returns the value in the key's type, so a typo does not compile.
//! 2. Its variants, each with the [`Expect`]ation a search must meet, and its [`Meta`].
//! 3. `setup`: build the world from the fake API server (server, clients, informers,
//!    controllers), spawn tasks, and register oracles (`always` for safety, checked after every
//!    step; `eventually` for liveness, within virtual time). Informers and controllers are
//!    daemons: some spawned task must end after bounded work, or nothing ends the run.
//! 4. `main`: the `kdst` command line (list, run, explore, replay, shrink, merge) over a
//!    [`Registry`] that holds it, with the command that runs it, so the replay commands the
//!    reports print work as printed.
//! 5. Tests: [`Target::check`] runs seeds under `cargo test`; a failure's report prints the
//!    `SIM_SEED=…` line that replays it, with the parameters the seed drew.

use std::process::ExitCode;

use scenarios::prelude::*;
use serde_json::json;

/// Status writes that fail with 409 Conflict.
const CONFLICT: Key<f64> = Key::percent("conflict-percent", "status writes failing with 409", 30)
    .range(0, 90)
    .swarm(&[10, 30, 60]);

/// Spec updates by the user, each a new generation.
const SPEC_CHANGES: Key<usize> =
    Key::count("spec-changes", "spec updates by the user", 3).range(0, 20).swarm(&[1, 3, 8]);

/// Conflict → `Ok(Done)`: the key is dropped.
const BUGGY: Variant = Variant::fails(
    "buggy",
    "conflict → Ok(Done): the key is dropped",
    FailureKind::Liveness,
    "status.observedGeneration",
);

/// Conflict → `Err`: the key is requeued with backoff.
const FIXED: Variant = Variant::holds("fixed", "conflict → Err: requeued with backoff");

const META: Meta = Meta {
    name: "conflict-drop",
    summary: "a reconciler returns Ok after a 409 Conflict: the key is dropped, status never \
              converges",
    upstream: &["https://pkg.go.dev/sigs.k8s.io/controller-runtime/pkg/reconcile#Reconciler"],
    variants: &[BUGGY, FIXED],
    params: &[CONFLICT.param, SPEC_CHANGES.param],
};

/// The scenario.
struct ConflictDrop;

impl Scenario for ConflictDrop {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let server = ApiServer::default();
        let web = Object::new("apps/v1", "Deployment", "default", "web");
        server.create(web.with_spec(json!({ "replicas": 0 }))).expect("create");
        let faults = Faults { conflict: params.get(CONFLICT), ..Faults::NONE };
        let client = Client::new(&server, "status", ClientConfig::default().with_faults(faults));
        let informer = Informer::new("web", &client, "apps/v1", "Deployment", None, <_>::default());
        let controller = Controller::new("status-controller", 1);
        controller.watches(&informer);
        informer.start();
        let (cache, buggy) = (informer.cache(), variant.is(&BUGGY));
        controller.start(move |key| {
            let (client, cached) = (client.clone(), cache.get(&key.namespace, &key.name));
            async move { reconcile(client, cached, buggy).await }
        });
        let (user, changes) =
            (Client::new(&server, "user", <_>::default()), params.get(SPEC_CHANGES));
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

/// The command line that runs this program, which the replay commands it prints start with.
const COMMAND: &str = "cargo run -p scenarios --example conflict_drop --";

/// This program's scenarios: the built-in ones and this one.
fn registry() -> Registry {
    Registry::builtin().command(COMMAND).with(ConflictDrop)
}

fn main() -> ExitCode {
    scenarios::cli::main(registry())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use super::*;

    /// Runs this program's command line in-process.
    fn kdst(args: &[&str]) -> ExitCode {
        scenarios::cli::run(
            &registry(),
            std::iter::once("conflict_drop").chain(args.iter().copied()),
        )
    }

    /// A fresh directory for one test's files, under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kdst-conflict-drop-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    fn schedules(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the save directory")
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "schedule"))
            .collect();
        files.sort();
        files
    }

    /// The fixed variant holds under `cargo test`, with the swarm drawing its parameters.
    #[test]
    fn the_fix_holds_over_seeds() {
        let target = Target::of(ConflictDrop, Some("fixed")).expect("a variant").with_swarm(true);
        let report = target.check(Check::new("conflict-drop fixed").seeds(100));
        assert_eq!(report.seeds, 100, "{report:?}");
    }

    /// The buggy variant fails `cargo test`, and the report names the parameters the failing
    /// seed drew and the line that replays it.
    #[test]
    fn the_bug_fails_the_check_and_names_its_parameters() {
        let target = Target::of(ConflictDrop, Some("buggy")).expect("a variant").with_swarm(true);
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // It is expected to fail: nothing to record in a regression file.
            target.check(Check::new("conflict-drop buggy").seeds(200).regressions(false));
        }))
        .expect_err("the bug is found");
        let report = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .expect("a text report");
        assert!(report.contains("conflict-drop buggy: params conflict-percent="), "{report}");
        assert!(report.contains("status.observedGeneration"), "{report}");
        assert!(report.contains("SIM_SEED="), "{report}");
    }

    /// `explore` finds the bug (exit 1), saves its schedule, and `replay` and `shrink` of the
    /// file reproduce it (exit 1: a failure in hand); `explore` of the fixed variant holds (exit 0).
    #[test]
    fn the_command_line_finds_replays_and_shrinks_the_bug() {
        let dir = scratch("cli");
        let save = dir.join("saved");
        let save = save.to_str().expect("utf-8");
        let json = dir.join("explore.json");
        let json = json.to_str().expect("utf-8");
        let explore = ["explore", "conflict-drop", "--seeds", "0..200", "--jobs", "1"];
        let found = kdst(&[&explore[..], &["--save-dir", save, "--json-out", json]].concat());
        assert_eq!(found, ExitCode::FAILURE, "explore of the bug exits 1");
        let document: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).expect("--json-out written"))
                .expect("JSON");
        assert_eq!(document["scenario"], "conflict-drop", "{document}");
        let files = schedules(Path::new(save));
        let file = files.first().expect("a saved schedule").to_str().expect("utf-8");
        assert_eq!(kdst(&["replay", file, "--quiet"]), ExitCode::FAILURE, "the replay fails");
        let shrunk = dir.join("shrunk.schedule");
        let shrunk = shrunk.to_str().expect("utf-8");
        let shrink = ["shrink", file, "--out", shrunk, "--budget", "200"];
        assert_eq!(kdst(&shrink), ExitCode::FAILURE, "shrink: exit 1, a failure in hand");
        assert_eq!(kdst(&["replay", shrunk, "--quiet"]), ExitCode::FAILURE, "the shrunk replay");
        let fixed = ["--variant", "fixed", "--save-dir", save];
        assert_eq!(kdst(&[&explore[..], &fixed].concat()), ExitCode::SUCCESS, "the fix holds");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The scenario is listed beside the built-in ones; an unknown name is exit 2.
    #[test]
    fn the_registry_lists_it_and_refuses_unknown_names() {
        assert_eq!(kdst(&["list"]), ExitCode::SUCCESS);
        assert!(registry().names().contains(&"conflict-drop"));
        assert_eq!(kdst(&["explore", "conflict-dorp", "--seeds", "1"]), ExitCode::from(2));
    }
}

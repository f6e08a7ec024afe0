//! The `cargo test` harness: run a simulation over many seeds, and on failure panic with a
//! report a developer can act on — the failure, the last events of every task involved, the
//! shrunk schedule saved under `target/kdst/`, and the exact commands that replay it.
//!
//! ```no_run
//! use sim_core::{Check, GoMap, spawn};
//!
//! #[test]
//! fn writers_never_race() {
//!     Check::new("writers_never_race").run(|| {
//!         let map = GoMap::new("processed");
//!         for worker in 0..2 {
//!             let map = map.clone();
//!             spawn(format!("worker-{worker}"), async move {
//!                 map.insert(worker, "synced").await;
//!             });
//!         }
//!     });
//! }
//! ```
//!
//! Environment (the same words as the `kdst` CLI's flags):
//! - `SIM_SEED=N` — run only seed N (a replay);
//! - `SIM_SEEDS=N` — how many seeds (default 100);
//! - `SIM_STRATEGY=random|pct|pct:D|portfolio|dfs:B|dfs-full:B|dfs-delays:B` — the strategy
//!   (default `random`, where the `kdst` CLI's is `portfolio`; `pct` is depth 3, its step estimate drawn from the seed; `dfs…` runs
//!   every schedule of seed 0 within the bound: see [`crate::strategy::StrategySpec`]);
//! - `SIM_SHARD=i/n` — run only the seeds `s` with `s % n == i` (CI matrix jobs); nextest's
//!   1-based `count:M/N` is accepted too and means shard `M-1/N`;
//! - `SIM_SCHEDULE=FILE` — replay the schedule file a failing check saved (any strategy).
//!
//! - `SIM_REGRESSIONS=off` — neither replay nor record the regression file (below).
//!
//! **The regression file** (proptest's `proptest-regressions/`, for kdst): under `cargo test`, a
//! seed that fails a seed-driven check is appended to
//! `$CARGO_MANIFEST_DIR/kdst-regressions/<name>.txt` as `seed N strategy S # <the failure>`, and
//! every later run of the check runs the recorded cases first: commit the file, and a bug found
//! once stays a test. A recorded case that fails again fails the check with a note naming the
//! file; [`CheckReport::regressions`] counts the cases a passing run replayed. A test that
//! expects its check to fail turns the file off ([`Check::regressions`]). A failure found by a
//! systematic search is not recorded: its schedule is not a function of a seed.
//!
//! Every seed-driven check also runs a sample of its seeds twice and compares the traces step by
//! step: a difference fails with `nondeterminism detected at step N`. A systematic search
//! detects nondeterminism itself: a run that no longer fits the path that led to it stops it.
//!
//! This module is the only place in sim-core that reads the environment and reads or writes
//! files (schedules, the regression file).

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::regressions::{read_regressions, record_regression, regression_file};
use crate::strategy::StrategySpec;
use crate::{Config, Explorer, Outcome, Replay, Schedule, Simulation, Trace, shrink, systematic};

/// A simulation check over many seeds, for `#[test]` functions.
#[derive(Clone, Debug)]
pub struct Check {
    name: String,
    config: Config,
    seeds: u64,
    strategy: StrategySpec,
    max_schedules: u64,
    shrink_budget: u64,
    determinism_sample: u64,
    /// `SIM_*` values to use instead of the process environment (for testing the harness).
    vars: Option<Vec<(String, String)>>,
    /// What the report says about the seed's configuration (a scenario's drawn parameters).
    describe: Option<DescribeSeed>,
    /// Whether failures are recorded in, and replayed first from, the regression file.
    regressions: bool,
}

/// A function from a seed to a line of the failure report.
#[derive(Clone)]
struct DescribeSeed(Arc<dyn Fn(u64) -> String + Send + Sync>);

impl std::fmt::Debug for DescribeSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DescribeSeed(..)")
    }
}

/// What a check that found no failure did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Seeds run.
    pub seeds: u64,
    /// Steps simulated over all seeds.
    pub steps: u64,
    /// The strategy.
    pub strategy: String,
    /// Seeds run twice for the determinism check.
    pub determinism_checked: u64,
    /// Recorded cases of the regression file run before the seeds.
    pub regressions: u64,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} seeds, {} steps, strategy {}, no failure ({} seeds checked for determinism)",
            self.seeds, self.steps, self.strategy, self.determinism_checked
        )
    }
}

impl Check {
    /// A check named `name` (use the test's name: the replay command runs `cargo test NAME`).
    pub fn new(name: &str) -> Self {
        Check {
            name: name.to_string(),
            config: Config::default(),
            seeds: 100,
            strategy: StrategySpec::Random,
            max_schedules: 1_000_000,
            shrink_budget: 1_000,
            determinism_sample: 10,
            vars: None,
            describe: None,
            regressions: true,
        }
    }

    /// The simulator's limits and costs.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How many seeds, unless `SIM_SEEDS` says otherwise.
    pub fn seeds(mut self, seeds: u64) -> Self {
        self.seeds = seeds;
        self
    }

    /// The strategy (default `random`), unless `SIM_STRATEGY` says otherwise. A systematic one
    /// (`dfs…`) runs every schedule of seed 0 within its bound instead of a number of seeds,
    /// and fails the check if it cannot finish within [`Check::max_schedules`].
    pub fn strategy(mut self, strategy: StrategySpec) -> Self {
        self.strategy = strategy;
        self
    }

    /// For a systematic strategy: the most schedules the search may run (default 1,000,000).
    /// A search that stops there did not check what it was asked to, and the check fails.
    pub fn max_schedules(mut self, max_schedules: u64) -> Self {
        self.max_schedules = max_schedules;
        self
    }

    /// How many replays shrinking a failure may spend.
    pub fn shrink_budget(mut self, budget: u64) -> Self {
        self.shrink_budget = budget;
        self
    }

    /// Adds `describe(seed)` to the failure report, under the failing seed: what that seed
    /// configured beyond the schedule (a scenario's parameters as the swarm drew them).
    pub fn describe_seed(
        mut self,
        describe: impl Fn(u64) -> String + Send + Sync + 'static,
    ) -> Self {
        self.describe = Some(DescribeSeed(Arc::new(describe)));
        self
    }

    /// Whether a failing seed is recorded in this check's regression file and the recorded
    /// cases are run first (default: yes, under `cargo test`; see the module docs). A test that
    /// expects its check to fail turns it off.
    pub fn regressions(mut self, on: bool) -> Self {
        self.regressions = on;
        self
    }

    /// Reads `SIM_*` settings from `vars` instead of the process environment.
    pub fn with_env(mut self, vars: &[(&str, &str)]) -> Self {
        self.vars = Some(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        self
    }

    /// Runs `setup` over the seeds; panics with the report on the first failure or limit.
    ///
    /// # Panics
    /// On a failure, a limit, nondeterminism, or a malformed `SIM_*` variable (one line naming
    /// it).
    pub fn run(self, setup: impl Fn()) -> CheckReport {
        let env = |name: &str| {
            let value = match &self.vars {
                Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                None => std::env::var(name).ok(),
            };
            value.filter(|v| !v.is_empty())
        };
        let spec = match env("SIM_STRATEGY") {
            Some(text) => text
                .parse::<StrategySpec>()
                .unwrap_or_else(|error| panic!("kdst: SIM_STRATEGY={text:?}: {error}")),
            None => self.strategy,
        };
        if let Some(path) = env("SIM_SCHEDULE") {
            return self.replay_file(&path, &setup);
        }
        if spec.is_systematic() {
            return self.run_systematic(spec, &setup);
        }
        let strategy = spec.to_string();
        let regressions = regression_file(&self.name, self.regressions, &env);
        let mut recorded = 0;
        if let (Some(file), None) = (&regressions, env("SIM_SEED")) {
            for (seed, case) in read_regressions(file) {
                recorded += 1;
                let config = case.config(self.config.clone());
                let mut sim = Simulation::new(config.clone());
                sim.set_strategy(case.build());
                let outcome = sim.run(seed, &setup);
                if outcome != Outcome::Completed {
                    panic!(
                        "{}\na case recorded in {} failed again: fix the bug, or delete its line \
                         once it is fixed in another way",
                        self.report(&sim, case, &config, &outcome, &setup),
                        file.display()
                    );
                }
            }
        }
        let seeds: Vec<u64> = match env("SIM_SEED") {
            Some(text) => match text.parse() {
                Ok(seed) => vec![seed],
                Err(_) => panic!("kdst: SIM_SEED={text:?} is not a seed (a number 0..2^64)"),
            },
            None => {
                let count = match env("SIM_SEEDS") {
                    Some(text) => text.parse().unwrap_or_else(|_| {
                        panic!("kdst: SIM_SEEDS={text:?} is not a number of seeds")
                    }),
                    None => self.seeds,
                };
                let (index, shards) = match env("SIM_SHARD") {
                    Some(text) => parse_shard(&text)
                        .unwrap_or_else(|message| panic!("kdst: SIM_SHARD={text:?}: {message}")),
                    None => (0, 1),
                };
                (0..count).filter(|seed| seed % shards == index).collect()
            }
        };
        // The strategy's configuration: the portfolio's runs detect races, for one.
        let config = spec.config(self.config.clone());
        // PCT's `k`, learned from seeds 0..CALIBRATION_RUNS as `Explorer` learns it: those
        // seeds run with `k` drawn, every other with `spec@k` (printed in its replay line).
        let calibrated = spec.calibrates().then(|| {
            let mut probe = Simulation::new(config.clone());
            probe.set_strategy(spec.build());
            let longest = (0..Explorer::CALIBRATION_RUNS)
                .map(|seed| {
                    probe.run(seed, &setup);
                    probe.trace().len() as u64
                })
                .max()
                .unwrap_or(1);
            spec.with_pct_k(longest.max(1))
        });
        let spec_for = |seed: u64| match calibrated {
            Some(calibrated) if seed >= Explorer::CALIBRATION_RUNS => calibrated,
            _ => spec,
        };
        let mut sim = Simulation::new(config.clone());
        let mut running = spec;
        sim.set_strategy(running.build());
        let mut steps = 0;
        for &seed in &seeds {
            let spec = spec_for(seed);
            if spec != running {
                running = spec;
                sim.set_strategy(running.build());
            }
            let outcome = sim.run(seed, &setup);
            steps += sim.trace().len() as u64;
            if outcome != Outcome::Completed {
                let mut report = self.report(&sim, spec, &config, &outcome, &setup);
                if let Some(file) = regressions.as_ref().filter(|_| spec.replays_from_seed()) {
                    match record_regression(file, seed, spec, &outcome) {
                        Ok(()) => {
                            let _ = writeln!(
                                report,
                                "recorded in {} (commit it: every run replays it first)",
                                file.display()
                            );
                        }
                        Err(error) => {
                            let _ = writeln!(report, "not recorded in {}: {error}", file.display());
                        }
                    }
                }
                panic!("{report}");
            }
        }
        let sample: Vec<u64> =
            seeds.iter().copied().take(self.determinism_sample as usize).collect();
        for &seed in &sample {
            let mut first = Simulation::new(config.clone());
            first.set_strategy(spec_for(seed).build());
            first.run(seed, &setup);
            let mut second = Simulation::new(config.clone());
            second.set_strategy(spec_for(seed).build());
            second.run(seed, &setup);
            if let Some(step) = first_difference(first.trace(), second.trace()) {
                panic!(
                    "nondeterminism detected at step {step}: seed {seed} of {} ran differently \
                     twice (a HashMap iteration, the wall clock, OS randomness or a thread in the \
                     code under test?): {}",
                    self.name,
                    describe_difference(first.trace(), second.trace(), step)
                );
            }
        }
        let strategy = match calibrated {
            Some(calibrated) => format!(
                "{calibrated} (k learned from seeds 0..{}, which ran as {strategy})",
                Explorer::CALIBRATION_RUNS
            ),
            None => strategy,
        };
        CheckReport {
            seeds: seeds.len() as u64,
            steps,
            strategy,
            determinism_checked: sample.len() as u64,
            regressions: recorded,
        }
    }

    /// A systematic search of seed 0's schedules; panics with the report on the first run that
    /// does not complete, on nondeterminism, or when the search stops before it completes.
    fn run_systematic(&self, spec: StrategySpec, setup: &dyn Fn()) -> CheckReport {
        let config = spec.config(self.config.clone());
        let dfs = spec.dfs(self.max_schedules).expect("a systematic strategy");
        let mut sim = Simulation::new(config.clone());
        let mut steps = 0;
        let keep = |sim: &Simulation, outcome: Outcome| {
            steps += sim.trace().len() as u64;
            if let Some(reason) = dfs.stopped() {
                panic!("kdst: {} (strategy {spec}): {reason}", self.name);
            }
            if outcome != Outcome::Completed {
                panic!("{}", self.report(sim, spec, &config, &outcome, setup));
            }
            ControlFlow::Continue(())
        };
        systematic::search(&mut sim, &dfs, None, |sim| sim.run(0, setup), keep);
        if !dfs.is_complete() {
            panic!(
                "kdst: {} (strategy {spec}) did not check every schedule: {} (raise \
                 Check::max_schedules or lower the bound)",
                self.name,
                dfs.summary()
            );
        }
        CheckReport {
            seeds: dfs.schedules(),
            steps,
            strategy: spec.to_string(),
            determinism_checked: 0,
            regressions: 0,
        }
    }

    /// Replays the schedule file at `path` (`SIM_SCHEDULE`); panics with the report if the run
    /// does not complete, or if the file cannot be read.
    fn replay_file(&self, path: &str, setup: &dyn Fn()) -> CheckReport {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("kdst: SIM_SCHEDULE={path:?}: cannot read: {error}"));
        let schedule = Schedule::decode(&text)
            .unwrap_or_else(|error| panic!("kdst: SIM_SCHEDULE={path:?}: {error}"));
        let spec = schedule.strategy.parse::<StrategySpec>().unwrap_or_default();
        let config = spec.config(self.config.clone());
        let mut sim = Simulation::new(config.clone());
        sim.set_strategy(Box::new(Replay::new(&schedule)));
        let outcome = sim.run(schedule.seed, setup);
        if outcome != Outcome::Completed {
            panic!("{}", self.report(&sim, spec, &config, &outcome, setup));
        }
        CheckReport {
            seeds: 1,
            steps: sim.trace().len() as u64,
            strategy: "replay".to_string(),
            determinism_checked: 0,
            regressions: 0,
        }
    }

    /// The failure report: what failed, the story, the shrunk schedule, how to replay.
    fn report(
        &self,
        sim: &Simulation,
        spec: StrategySpec,
        config: &Config,
        outcome: &Outcome,
        setup: &dyn Fn(),
    ) -> String {
        let failure = outcome.failure().expect("not completed");
        let trace = sim.trace();
        let seed = trace.seed();
        let strategy = spec.to_string();
        let mut out = format!("{} seed {seed} (strategy {strategy}):\n", self.name);
        if let Some(DescribeSeed(describe)) = &self.describe {
            let _ = writeln!(out, "{}", describe(seed));
        }
        let _ = writeln!(out, "{failure}");
        let lines = trace.involved_events(failure, 8);
        if !lines.is_empty() {
            out.push_str("\nlast events of each task involved:\n");
            for line in lines {
                let _ = writeln!(out, "  {line}");
            }
        }
        let perturbations = trace.perturbation_events();
        if !perturbations.is_empty() {
            out.push_str("\nperturbations made:\n");
            for line in perturbations {
                let _ = writeln!(out, "  {line}");
            }
        }
        let mut schedule = sim.schedule(&self.name, &[]);
        schedule.strategy = strategy.clone();
        let saved = match shrink(config, &schedule, setup, self.shrink_budget) {
            Ok(shrunk) => {
                let _ = writeln!(out, "\n{shrunk}");
                save(&self.name, &shrunk.schedule.encode())
            }
            Err(error) => {
                let _ = writeln!(out, "\nnot shrunk: {error}");
                save(&self.name, &schedule.encode())
            }
        };
        let saved = match saved {
            Ok(path) => {
                let _ = writeln!(out, "schedule saved: {}", path.display());
                Some(path)
            }
            Err(error) => {
                let _ = writeln!(out, "schedule not saved: {error}");
                None
            }
        };
        out.push_str("\nreplay:\n");
        if spec.replays_from_seed() {
            let _ = writeln!(
                out,
                "  SIM_SEED={seed} SIM_STRATEGY={strategy} cargo test {} -- --exact",
                self.name
            );
        }
        if let Some(path) = saved {
            let _ = writeln!(
                out,
                "  SIM_SCHEDULE={} cargo test {} -- --exact",
                path.display(),
                self.name
            );
        }
        out
    }
}

/// Parses `i/n` with `i < n`.
fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    if let Some(partition) = parse_partition(text) {
        return partition;
    }
    let (index, count) = text.split_once('/').ok_or("expected i/n, e.g. 0/4")?;
    let index: u64 = index.trim().parse().map_err(|_| format!("{index:?} is not a number"))?;
    let count: u64 = count.trim().parse().map_err(|_| format!("{count:?} is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index} of {count} does not exist (need 0 ≤ i < n)"));
    }
    Ok((index, count))
}

/// nextest's partition form, `count:M/N` (1-based: `count:1/4` … `count:4/4`), as a shard
/// `(M - 1, N)` of kdst's 0-based `i/n` form; `None` if `text` is not in that form. Seed `s`
/// belongs to partition `count:M/N` when `s % N == M - 1`, so `count:M/N` is shard `M-1/N`.
pub fn parse_partition(text: &str) -> Option<Result<(u64, u64), String>> {
    let rest = text.trim().strip_prefix("count:")?;
    let parsed = rest
        .split_once('/')
        .and_then(|(m, n)| Some((m.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?)));
    Some(match parsed {
        Some((m, n)) if m >= 1 && m <= n => Ok((m - 1, n)),
        Some((m, n)) => Err(format!("partition count:{m}/{n} does not exist (need 1 ≤ M ≤ N)")),
        None => Err(format!("malformed partition {text:?}: expected count:M/N, e.g. count:1/4")),
    })
}

/// The first step (or event) at which two traces of the same seed differ: the earlier of the
/// first step that ran another task and the step of the first event whose text differs (runs
/// whose tasks ran in the same order can still have done different things, e.g. a coarse task
/// driving code whose order kdst does not choose).
fn first_difference(a: &Trace, b: &Trace) -> Option<u64> {
    let steps = match a.steps().zip(b.steps()).position(|(x, y)| x != y) {
        Some(step) => Some(step as u64),
        None if a.len() != b.len() => Some(a.len().min(b.len()) as u64),
        None => None,
    };
    let (ea, eb) = (a.events(), b.events());
    let events = match ea.iter().zip(eb).find(|(x, y)| a.event_text(x) != b.event_text(y)) {
        Some((x, y)) => Some(x.step.min(y.step)),
        None if ea.len() > eb.len() => Some(ea[eb.len()].step),
        None if eb.len() > ea.len() => Some(eb[ea.len()].step),
        None => None,
    };
    match (steps, events) {
        (Some(s), Some(e)) => Some(s.min(e)),
        (s, e) => s.or(e),
    }
}

/// Where the traces of two runs of one seed first differ, for a person, or `None` if they are
/// the same: `at step N: first run: step N in <task>: <line>; second run: …`, each run's first
/// trace line from that step on that the other does not have at the same place (for kube code
/// typically the request one run sent and the other did not). [`Check`] prints it when its
/// determinism sample finds a difference.
pub fn trace_difference(a: &Trace, b: &Trace) -> Option<String> {
    let step = first_difference(a, b)?;
    Some(format!("at step {step}: {}", describe_difference(a, b, step)))
}

/// [`trace_difference`]'s description of the difference found at `step`.
fn describe_difference(a: &Trace, b: &Trace, step: u64) -> String {
    let line = |trace: &Trace, event: Option<&crate::trace::Event>| match event {
        Some(event) => format!(
            "step {} in {}: {}",
            event.step,
            trace.task_name(event.task),
            trace.event_text(event)
        ),
        None => "no more events".to_string(),
    };
    let from_a = a.events().iter().skip_while(|e| e.step < step);
    let from_b = b.events().iter().skip_while(|e| e.step < step);
    let same = |x: &crate::trace::Event, y: &crate::trace::Event| {
        x.step == y.step && x.task == y.task && a.event_text(x) == b.event_text(y)
    };
    let mut pairs = from_a
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(from_b.map(Some).chain(std::iter::repeat(None)));
    let (x, y) = pairs
        .find(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => !same(x, y),
            _ => true,
        })
        .unwrap_or((None, None));
    format!("first run: {}; second run: {}", line(a, x), line(b, y))
}

/// Writes `text` to `<target>/kdst/<name>.schedule`, where `<target>` is `$CARGO_TARGET_DIR`,
/// else the `target/` beside the nearest `Cargo.lock` above the current directory (the
/// workspace's), else `./target`.
fn save(name: &str, text: &str) -> std::io::Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let here = std::env::current_dir()?;
            let root = here.ancestors().find(|dir| dir.join("Cargo.lock").is_file());
            root.unwrap_or(&here).join("target")
        }
    };
    let dir = target.join("kdst");
    std::fs::create_dir_all(&dir)?;
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let path = dir.join(format!("{file}.schedule"));
    std::fs::write(&path, text)?;
    Ok(path)
}

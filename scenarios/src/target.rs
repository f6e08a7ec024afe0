//! A scenario run: the target of `kdst run`, `kdst explore` and `kdst replay`, the swarm's
//! per-seed parameters, schedule files that name their scenario, the failure report, and a
//! [`Check`] over a scenario in `cargo test`.
//!
//! A [`Target`] is a scenario, a variant and parameters. Parameters given explicitly are pinned;
//! with the swarm on (the portfolio's default, see [`Params::swarm`]) each seed draws the others
//! from their swarm lists, so the seed alone still names the run: replaying seed N with the same
//! strategy draws the same parameters again, and the report prints them.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use sim_core::strategy::StrategySpec;
use sim_core::{Check, CheckReport, Outcome, Schedule, Simulation};

use crate::{Expect, ParamError, Params, Registry, Scenario, Variant};

/// What could not be resolved into a [`Target`]. Each renders as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// No scenario has this name.
    UnknownScenario {
        /// What was asked for.
        name: String,
        /// The closest registered name, if one is close.
        suggestion: Option<String>,
        /// The command that lists the scenarios (`kdst list`).
        list: String,
    },
    /// The scenario has no such variant.
    UnknownVariant {
        /// The scenario.
        scenario: &'static str,
        /// What was asked for.
        name: String,
        /// The closest variant, if one is close.
        suggestion: Option<String>,
        /// The variants there are.
        known: Vec<&'static str>,
    },
    /// `--param` was not `name=value` with a number.
    MalformedParam(String),
    /// A parameter is unknown or out of range.
    Param(ParamError),
    /// A parameter was set twice (which value is meant is not clear).
    RepeatedParam(String),
    /// A schedule file belongs to no scenario, or lacks what a scenario run needs.
    Schedule(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::UnknownScenario { name, suggestion, list } => {
                write!(f, "unknown scenario {name:?}")?;
                match suggestion {
                    Some(close) => write!(f, " (did you mean {close:?}? `{list}` shows all)"),
                    None => write!(f, " (`{list}` shows the scenarios)"),
                }
            }
            TargetError::UnknownVariant { scenario, name, suggestion, known } => {
                write!(f, "scenario {scenario} has no variant {name:?}")?;
                if let Some(close) = suggestion {
                    write!(f, " (did you mean {close:?}?)")?;
                }
                write!(f, "; its variants: {}", known.join(", "))
            }
            TargetError::MalformedParam(text) => {
                write!(f, "--param {text:?} is not NAME=VALUE with VALUE a whole number")
            }
            TargetError::Param(error) => write!(f, "--param: {error}"),
            TargetError::RepeatedParam(name) => {
                write!(f, "--param {name} is set twice: give each parameter once")
            }
            TargetError::Schedule(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TargetError {}

impl From<ParamError> for TargetError {
    fn from(error: ParamError) -> Self {
        TargetError::Param(error)
    }
}

/// A scenario, one of its variants, and parameters; and, when it came from a [`Registry`], the
/// command that replays it.
#[derive(Clone)]
pub struct Target {
    scenario: Arc<dyn Scenario>,
    variant: &'static Variant,
    params: Params,
    swarm: bool,
    /// The command line of the CLI that knows this scenario (`kdst`), if any.
    command: Option<Arc<str>>,
    /// Whether `kdst-tests`' scenario replay test can run it (a built-in scenario).
    cargo_test: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("scenario", &self.scenario.name())
            .field("variant", &self.variant.name)
            .field("params", &self.params.to_string())
            .field("swarm", &self.swarm)
            .finish()
    }
}

impl Target {
    /// The built-in scenario named `scenario` with `variant` (its first, buggy, variant when
    /// `None`), at its default parameters, without the swarm: [`Registry::target`] of
    /// [`Registry::builtin`].
    ///
    /// # Errors
    /// An unknown scenario or variant, with the closest name when one is close.
    pub fn new(scenario: &str, variant: Option<&str>) -> Result<Target, TargetError> {
        Registry::builtin().target(scenario, variant)
    }

    /// Any scenario value with `variant` (its first when `None`), at its default parameters,
    /// without the swarm. Its report prints no replay command (no CLI knows it): the schedule
    /// file replays it, and [`Target::check`] prints its `cargo test` replay line.
    ///
    /// # Errors
    /// An unknown variant, with the closest name when one is close.
    pub fn of(
        scenario: impl Scenario + 'static,
        variant: Option<&str>,
    ) -> Result<Target, TargetError> {
        Target::of_shared(Arc::new(scenario), variant)
    }

    pub(crate) fn of_shared(
        scenario: Arc<dyn Scenario>,
        variant: Option<&str>,
    ) -> Result<Target, TargetError> {
        let variants = scenario.variants();
        let variant = match variant {
            None => variants.first().ok_or_else(|| {
                TargetError::Schedule(format!("scenario {} has no variants", scenario.name()))
            })?,
            Some(name) => match scenario.variant(name) {
                Some(variant) => variant,
                None => {
                    let known: Vec<&'static str> = variants.iter().map(|v| v.name).collect();
                    return Err(TargetError::UnknownVariant {
                        scenario: scenario.name(),
                        name: name.to_string(),
                        suggestion: closest(name, &known).map(str::to_string),
                        known,
                    });
                }
            },
        };
        let params = Params::defaults(scenario.as_ref());
        Ok(Target { scenario, variant, params, swarm: false, command: None, cargo_test: false })
    }

    /// The same target, replayed by the CLI that `command` runs.
    pub(crate) fn replayed_by(mut self, command: &str, cargo_test: bool) -> Self {
        self.command = Some(command.into());
        self.cargo_test = cargo_test;
        self
    }

    /// Sets parameters from `name=value` texts (pinned: the swarm keeps them).
    ///
    /// # Errors
    /// A text that is not `name=value`, an unknown name, a value out of range, a name twice.
    pub fn set_params<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<(), TargetError> {
        let mut seen = std::collections::BTreeSet::new();
        for text in texts {
            let text = text.as_ref();
            let (name, value) = text
                .split_once('=')
                .ok_or_else(|| TargetError::MalformedParam(text.to_string()))?;
            let value: u64 = value
                .trim()
                .replace('_', "")
                .parse()
                .map_err(|_| TargetError::MalformedParam(text.to_string()))?;
            if !seen.insert(name.trim()) {
                return Err(TargetError::RepeatedParam(name.trim().to_string()));
            }
            self.params.set(name.trim(), value)?;
        }
        Ok(())
    }

    /// Turns the swarm on or off: with it, each seed draws the parameters that were not set
    /// explicitly ([`Params::swarm`]).
    pub fn with_swarm(mut self, swarm: bool) -> Self {
        self.swarm = swarm;
        self
    }

    /// Whether the swarm is on.
    pub fn swarm(&self) -> bool {
        self.swarm
    }

    /// The scenario.
    pub fn scenario(&self) -> &dyn Scenario {
        self.scenario.as_ref()
    }

    /// The variant.
    pub fn variant(&self) -> &'static Variant {
        self.variant
    }

    /// The parameters as set (before any swarm draw).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parameters seed `seed` runs with.
    pub fn params_for(&self, seed: u64) -> Params {
        if self.swarm { self.params.swarm(seed) } else { self.params.clone() }
    }

    /// Builds the run inside a simulation's setup: the seed ([`sim_core::seed`]) picks the
    /// parameters. For a scenario with generic oracles ([`Scenario::generic_oracles`]), the run
    /// compares its end state with the reference run of the same workload and seed without
    /// perturbations, run first if no earlier run computed it ([`crate::reference`]).
    pub fn setup(&self) {
        let seed = sim_core::seed();
        let params = self.params_for(seed);
        crate::scenario::setup_compared(self.scenario.as_ref(), self.variant, &params, seed);
    }

    /// Runs seed `seed` on `sim` (with whatever strategy `sim` has).
    pub fn run(&self, sim: &mut Simulation, seed: u64) -> Outcome {
        if self.scenario.generic_oracles().is_some() {
            // Before the run, on this thread (cached for the setup's own lookup).
            crate::reference(self.scenario.as_ref(), self.variant, &self.params_for(seed), seed);
        }
        sim.run(seed, || self.setup())
    }

    /// Runs `check` (a `cargo test` harness over many seeds) on this target: with the swarm on,
    /// each seed draws its parameters, and a failure's report prints the ones it drew, so the
    /// printed `SIM_SEED` or `SIM_SCHEDULE` line replays the same configuration.
    ///
    /// # Panics
    /// As [`Check::run`]: on a failure, a limit, nondeterminism or a malformed `SIM_*` variable.
    pub fn check(&self, check: Check) -> CheckReport {
        let (target, described) = (self.clone(), self.clone());
        check
            .describe_seed(move |seed| {
                let swarm = if described.swarm {
                    " (swarm: drawn from the seed where not set)"
                } else {
                    ""
                };
                format!(
                    "{} {}: params {}{swarm}",
                    described.scenario.name(),
                    described.variant.name,
                    described.params_for(seed)
                )
            })
            .run(move || target.setup())
    }

    /// Whether `outcome` is what this variant is expected to do: a fixed variant completes; a
    /// buggy one completes or fails with its expected kind and text (one seed need not fail).
    pub fn outcome_expected(&self, outcome: &Outcome) -> bool {
        match (&self.variant.expect, outcome) {
            (_, Outcome::Completed) => true,
            (Expect::Holds, _) => false,
            (expect @ Expect::Fails(..), Outcome::Failed(failure)) => expect.matches(failure),
            (Expect::Fails(..), Outcome::LimitReached(_)) => false,
        }
    }

    /// The schedule of the run that just ended on `sim`, naming this target so that
    /// [`Target::from_schedule`] can rebuild it: `test` is the scenario, `strategy` the
    /// strategy's full form (`pct:2`, `dfs:1`), then `variant` and every parameter's value as
    /// that seed ran.
    pub fn schedule(&self, sim: &Simulation, strategy: StrategySpec) -> Schedule {
        let seed = sim.trace().seed();
        let mut params = vec![("variant".to_string(), self.variant.name.to_string())];
        params.extend(
            self.params_for(seed).pairs().into_iter().map(|(n, v)| (n.to_string(), v.to_string())),
        );
        let mut schedule = sim.schedule(self.scenario.name(), &params);
        schedule.strategy = strategy.to_string();
        schedule
    }

    /// The built-in target a schedule file was written for, with its parameters pinned as
    /// they ran: [`Registry::target_from_schedule`] of [`Registry::builtin`].
    ///
    /// # Errors
    /// A schedule of no registered scenario, or one without a valid variant or parameters.
    pub fn from_schedule(schedule: &Schedule) -> Result<Target, TargetError> {
        Registry::builtin().target_from_schedule(schedule)
    }

    /// Pins the parameters a schedule file records.
    pub(crate) fn pin_schedule_params(&mut self, schedule: &Schedule) -> Result<(), TargetError> {
        for (name, value) in &schedule.params {
            if name == "variant" || name == "strategy" {
                continue;
            }
            let number: u64 = value.parse().map_err(|_| {
                TargetError::Schedule(format!(
                    "the schedule's parameter {name}={value:?} is not a number"
                ))
            })?;
            self.params
                .set(name, number)
                .map_err(|error| TargetError::Schedule(format!("the schedule: {error}")))?;
        }
        Ok(())
    }

    /// A name for files and tests: `scenario.variant`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.scenario.name(), self.variant.name)
    }

    /// The `kdst replay FILE` command line for a schedule file, if a CLI knows this target.
    pub fn replay_file_command(&self, file: &Path) -> Option<String> {
        Some(format!("{} replay {}", self.command.as_deref()?, file.display()))
    }

    /// The `kdst replay` command line for seed `seed` under `strategy` (starting with the
    /// registry's command), if a CLI knows this target.
    pub fn replay_command(&self, seed: u64, strategy: StrategySpec) -> Option<String> {
        let program = self.command.as_deref()?;
        let mut command = format!(
            "{program} replay {} --variant {} --seed {seed} --strategy {strategy}",
            self.scenario.name(),
            self.variant.name
        );
        if strategy.swarms() && !self.swarm() {
            command.push_str(" --no-swarm");
        }
        for (name, value) in self.params.pairs() {
            if self.params.is_pinned(name) {
                let _ = write!(command, " --param {name}={value}");
            }
        }
        Some(command)
    }

    /// The `cargo test` command that replays seed `seed` in `kdst-tests`' scenario replay test,
    /// if that test can run this target (a built-in scenario).
    pub fn cargo_test_command(&self, seed: u64, strategy: StrategySpec) -> Option<String> {
        if !self.cargo_test {
            return None;
        }
        let mut vars = format!(
            "SIM_SCENARIO={} SIM_VARIANT={} SIM_SEED={seed} SIM_STRATEGY={strategy}",
            self.scenario.name(),
            self.variant.name
        );
        let pinned: Vec<String> = self
            .params
            .pairs()
            .into_iter()
            .filter(|(name, _)| self.params.is_pinned(name))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !pinned.is_empty() {
            let _ = write!(vars, " SIM_PARAMS={}", pinned.join(","));
        }
        if strategy.swarms() && !self.swarm() {
            vars.push_str(" SIM_NO_SWARM=1");
        }
        Some(format!(
            "{vars} cargo test -p kdst-tests --test it scenario_replay::scenario_replay -- --exact --nocapture"
        ))
    }

    /// The failure report of the run that just ended on `sim`: scenario, variant, parameters,
    /// seed and strategy; the failure; the last events of each task involved; the replay
    /// commands. `schedule_file` is where the (shrunk) schedule was saved, if it was.
    pub fn report(
        &self,
        sim: &Simulation,
        strategy: StrategySpec,
        schedule_file: Option<&Path>,
    ) -> String {
        let trace = sim.trace();
        let seed = trace.seed();
        let mut out = String::new();
        let _ = writeln!(out, "scenario:  {} ({})", self.scenario.name(), self.scenario.summary());
        let _ = writeln!(out, "variant:   {} ({})", self.variant.name, self.variant.summary);
        let swarm = if self.swarm { " (swarm: drawn from the seed where not set)" } else { "" };
        let _ = writeln!(out, "params:    {}{swarm}", self.params_for(seed));
        let _ = writeln!(out, "seed:      {seed}");
        let _ = writeln!(out, "strategy:  {strategy}");
        match trace.outcome() {
            Some(outcome @ (Outcome::Failed(failure) | Outcome::LimitReached(failure))) => {
                let _ = writeln!(out, "\n{outcome}");
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
            }
            Some(Outcome::Completed) | None => {
                let _ = writeln!(out, "\ncompleted");
            }
        }
        if self.command.is_none() {
            return out;
        }
        out.push_str("\nreplay:\n");
        if let Some(command) = schedule_file.and_then(|file| self.replay_file_command(file)) {
            let _ = writeln!(out, "  {command}");
        }
        // A seed names a run only for the seed-driven strategies; a dfs run is its schedule.
        if strategy.replays_from_seed() {
            let commands =
                [self.replay_command(seed, strategy), self.cargo_test_command(seed, strategy)];
            for command in commands.into_iter().flatten() {
                let _ = writeln!(out, "  {command}");
            }
        }
        out
    }
}

/// The strategy a schedule's run was found with: its `strategy` header, in full form. Schedule
/// files written before the header held the full form kept it in a `strategy` parameter, which
/// wins when present.
///
/// # Errors
/// A strategy that is not one (a hand-edited file, or one written by another program).
pub fn schedule_strategy(schedule: &Schedule) -> Result<StrategySpec, TargetError> {
    let named = schedule.params.iter().find(|(key, _)| key == "strategy");
    let text = named.map_or(schedule.strategy.as_str(), |(_, value)| value.as_str());
    text.parse().map_err(|error| TargetError::Schedule(format!("the schedule's strategy: {error}")))
}

/// The name in `names` closest to `name` by edit distance, if it is close (at most a third of
/// the name's length, and at least 3 edits allowed), or one contains the other.
pub fn closest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let best =
        names.iter().map(|candidate| (edit_distance(&lower, candidate), *candidate)).min()?;
    let allowed = (name.chars().count() / 3).max(3);
    if best.0 <= allowed {
        return Some(best.1);
    }
    names.iter().copied().find(|candidate| candidate.contains(&lower) || lower.contains(candidate))
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

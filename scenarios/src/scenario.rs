//! The scenario contract: a `const` [`Meta`] (name, summary, upstream links, variants,
//! parameters) and a `setup` that builds one run.

use std::fmt;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use apiserver_fake::endstate;
use sim_core::{Config, FailureKind, Outcome, Perturbations, Simulation};

use crate::{Param, Params};

/// What a variant is expected to do under search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No schedule fails: the fixed variants.
    Holds,
    /// Some schedules fail with this kind, and the message contains this text.
    Fails(FailureKind, &'static str),
}

impl Expect {
    /// Whether `failure` is the one expected: its kind and text. A Go map's crash
    /// ([`FailureKind::GoFatal`]) is also found, earlier, by the race detector
    /// ([`sim_core::race`], on in the portfolio's runs): a [`FailureKind::DataRace`] report
    /// on a map is the same unsynchronised access, before it overlapped.
    pub fn matches(&self, failure: &sim_core::Failure) -> bool {
        match *self {
            Expect::Holds => false,
            Expect::Fails(FailureKind::GoFatal, _)
                if failure.kind == FailureKind::DataRace
                    && failure.message.contains(" at map ") =>
            {
                true
            }
            Expect::Fails(kind, text) => failure.kind == kind && failure.message.contains(text),
        }
    }
}

/// One variant of a scenario: the buggy upstream version, its fix, a workaround.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// What users type: `buggy`, `fixed`, ….
    pub name: &'static str,
    /// The upstream version or fix it models, in one line.
    pub summary: &'static str,
    /// What search should find.
    pub expect: Expect,
}

impl Variant {
    /// A variant on which no schedule fails.
    pub const fn holds(name: &'static str, summary: &'static str) -> Self {
        Variant { name, summary, expect: Expect::Holds }
    }

    /// A variant that some schedules fail with `kind`, the message containing `text`.
    pub const fn fails(
        name: &'static str,
        summary: &'static str,
        kind: FailureKind,
        text: &'static str,
    ) -> Self {
        Variant { name, summary, expect: Expect::Fails(kind, text) }
    }

    /// Whether this is `other` (the same name): what a `setup` branches on.
    pub fn is(&self, other: &Variant) -> bool {
        self.name == other.name
    }
}

/// What a scenario is, as `kdst list` shows it: one `const` per scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// What users type (`cert-manager-foreground-deletion`).
    pub name: &'static str,
    /// The bug in one line.
    pub summary: &'static str,
    /// The upstream issue and fix(es), as links.
    pub upstream: &'static [&'static str],
    /// The variants, the buggy one first.
    pub variants: &'static [Variant],
    /// The parameters.
    pub params: &'static [Param],
}

/// What is wrong with a scenario's [`Meta`]: found when it is registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaError {
    /// The scenario.
    pub scenario: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario {:?}: {}", self.scenario, self.problem)
    }
}

impl std::error::Error for MetaError {}

impl Meta {
    /// Checks what the compiler cannot: a name users can type, at least one variant, no two
    /// variants or parameters of one name, and every parameter's default and swarm values in
    /// its range.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), MetaError> {
        let problem = |problem: String| Err(MetaError { scenario: self.name, problem });
        let typeable = |name: &str| !name.is_empty() && !name.contains(char::is_whitespace);
        if !typeable(self.name) {
            return problem("its name must be non-empty and without spaces".to_string());
        }
        if self.variants.is_empty() {
            return problem("it has no variants".to_string());
        }
        for (i, variant) in self.variants.iter().enumerate() {
            if !typeable(variant.name) {
                return problem(format!("variant {:?}: a name without spaces", variant.name));
            }
            if self.variants[..i].iter().any(|v| v.name == variant.name) {
                return problem(format!("two variants are named {:?}", variant.name));
            }
        }
        for (i, param) in self.params.iter().enumerate() {
            if let Some(why) = param.problem() {
                return problem(format!("parameter {:?}: {why}", param.name));
            }
            if ["variant", "strategy"].contains(&param.name) {
                return problem(format!("parameter {:?}: the name is reserved", param.name));
            }
            if self.params[..i].iter().any(|p| p.name == param.name) {
                return problem(format!("two parameters are named {:?}", param.name));
            }
        }
        Ok(())
    }
}

/// A model of one real bug.
///
/// ```
/// use scenarios::prelude::*;
///
/// struct Quiet;
///
/// const BUGGY: Variant = Variant::holds("buggy", "does nothing yet");
/// const META: Meta = Meta {
///     name: "quiet",
///     summary: "a scenario with one task",
///     upstream: &[],
///     variants: &[BUGGY],
///     params: &[],
/// };
///
/// impl Scenario for Quiet {
///     fn meta(&self) -> &'static Meta {
///         &META
///     }
///     fn setup(&self, _variant: &Variant, _params: &Params) {
///         spawn("idle", async {});
///     }
/// }
/// # assert!(scenarios::run(&mut Simulation::default(), &Quiet, "buggy", &Params::defaults(&Quiet), 0).failure().is_none());
/// ```
pub trait Scenario: Send + Sync {
    /// What the scenario is: name, summary, upstream links, variants, parameters.
    fn meta(&self) -> &'static Meta;

    /// Builds one run inside the simulation's setup: spawns the tasks, registers the oracles.
    /// `variant` is one of the scenario's variants; `params` are its parameters as this run has
    /// them (read them with [`Params::get`]).
    fn setup(&self, variant: &Variant, params: &Params);

    /// What users type.
    fn name(&self) -> &'static str {
        self.meta().name
    }

    /// The bug in one line.
    fn summary(&self) -> &'static str {
        self.meta().summary
    }

    /// The upstream issue and fix(es), as links.
    fn upstream(&self) -> &'static [&'static str] {
        self.meta().upstream
    }

    /// The variants, the buggy one first.
    fn variants(&self) -> &'static [Variant] {
        self.meta().variants
    }

    /// The parameters.
    fn params(&self) -> &'static [Param] {
        self.meta().params
    }

    /// The generic oracles of this scenario, if it uses them: its workload awaits
    /// [`Oracles::settle`](apiserver_fake::endstate::Oracles::settle) after the last user
    /// action, and [`crate::Target`] gives each run the reference run to compare with.
    fn generic_oracles(&self) -> Option<apiserver_fake::endstate::Oracles> {
        None
    }

    /// The variant named `name`.
    fn variant(&self, name: &str) -> Option<&'static Variant> {
        self.variants().iter().find(|v| v.name == name)
    }
}

/// Runs one seed of `scenario`'s `variant` with `params` on `sim`.
///
/// # Panics
/// If `variant` is not one of the scenario's variants.
pub fn run(
    sim: &mut Simulation,
    scenario: &dyn Scenario,
    variant: &str,
    params: &Params,
    seed: u64,
) -> Outcome {
    let Some(variant) = scenario.variant(variant) else {
        panic!("kdst: scenario {} has no variant {variant:?}", scenario.name())
    };
    if scenario.generic_oracles().is_some() {
        reference(scenario, variant, params, seed);
    }
    sim.run(seed, || setup_compared(scenario, variant, params, seed))
}

/// `scenario.setup`, after giving the run the reference to compare with when the scenario has
/// generic oracles ([`Scenario::generic_oracles`]).
pub(crate) fn setup_compared(
    scenario: &dyn Scenario,
    variant: &'static Variant,
    params: &Params,
    seed: u64,
) {
    if scenario.generic_oracles().is_some() {
        endstate::compare_with(reference(scenario, variant, params, seed));
    }
    scenario.setup(variant, params);
}

/// The reference run of `scenario`'s workload with `variant`, `params` and `seed`: the same
/// setup, with the random strategy and no perturbations, to its settled end state. Computed once
/// per process and cached (the last 4,096), so a search pays for each workload and seed once. `None` if the
/// reference run did not settle (it failed or hit a limit): then only eventually stable
/// reconciliation is checked.
///
/// Asked from inside another run's setup, it runs on a thread of its own (runs do not nest on one
/// thread); that thread runs one simulation to its end and is joined at once, so the run that
/// asked stays a function of its seed. [`run`] and `Target::run` ask before their run starts,
/// on their own thread, with a simulator kept per thread for reference runs.
pub fn reference(
    scenario: &dyn Scenario,
    variant: &'static Variant,
    params: &Params,
    seed: u64,
) -> Option<Arc<endstate::Reference>> {
    /// The references kept: past this many, the oldest is forgotten (and recomputed if asked
    /// for again), so a long search holds a bounded amount of memory.
    const KEPT: usize = 4_096;
    type Cache = (BTreeMap<String, Option<Arc<endstate::Reference>>>, VecDeque<String>);
    thread_local! {
        static REFERENCE_SIM: RefCell<Simulation> = RefCell::new(Simulation::new(
            Config::default().with_perturbations(Perturbations::NONE),
        ));
    }
    static REFERENCES: Mutex<Cache> = Mutex::new((BTreeMap::new(), VecDeque::new()));
    let key = format!("{} {} {params} seed {seed}", scenario.name(), variant.name);
    if let Some(found) = REFERENCES.lock().unwrap_or_else(|e| e.into_inner()).0.get(&key) {
        return found.clone();
    }
    let compute = || {
        endstate::record_reference();
        REFERENCE_SIM.with(|sim| {
            let mut sim = sim.borrow_mut();
            let outcome = sim.run(seed, || scenario.setup(variant, params));
            let reference = endstate::take_reference();
            (outcome == Outcome::Completed).then_some(reference).flatten().map(Arc::new)
        })
    };
    let reference = if sim_core::in_simulation() {
        // From inside a run's setup: runs do not nest on one thread.
        std::thread::scope(|scope| scope.spawn(compute).join().unwrap_or(None))
    } else {
        compute()
    };
    let mut cache = REFERENCES.lock().unwrap_or_else(|e| e.into_inner());
    let (kept, order) = &mut *cache;
    if kept.insert(key.clone(), reference.clone()).is_none() {
        order.push_back(key);
    }
    while order.len() > KEPT {
        if let Some(oldest) = order.pop_front() {
            kept.remove(&oldest);
        }
    }
    reference
}

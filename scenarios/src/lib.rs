//! # scenarios: real Kubernetes controller bugs, buggy and fixed
//!
//! Faithful models of the controller bugs in `../shared/spec/bugs.md`, running on
//! [`apiserver_fake`] and [`sim_core`]. Each [`Scenario`] has variants (the buggy upstream
//! version and its real fix), parameters with defaults and ranges, a setup that spawns its
//! tasks and registers the oracles that name the bug in the upstream's own words, and the
//! upstream issue and fix it models.
//!
//! ```
//! use scenarios::{Params, find, run};
//! use sim_core::Simulation;
//!
//! let scenario = find("submariner-logifchanged").expect("registered");
//! let params = Params::defaults(scenario.as_ref());
//! let mut sim = Simulation::default();
//! // The fixed variant (sync.Map Swap) never crashes.
//! for seed in 0..20 {
//!     let outcome = run(&mut sim, scenario.as_ref(), "fixed", &params, seed);
//!     assert!(outcome.failure().is_none(), "seed {seed}: {outcome}");
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use sim_core::{FailureKind, Outcome, Simulation};

/// The Kubernetes machinery the scenarios run on.
pub use apiserver_fake;

/// What a variant is expected to do under search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No schedule fails: the fixed variants.
    Holds,
    /// Some schedules fail with this kind, and the message contains this text.
    Fails(FailureKind, &'static str),
}

/// One variant of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// What users type: `buggy`, `fixed`, ….
    pub name: &'static str,
    /// The upstream version or fix it models, in one line.
    pub summary: &'static str,
    /// What search should find.
    pub expect: Expect,
}

/// A parameter with its default and its range (inclusive), as an integer in `unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// What users type in `--param name=value`.
    pub name: &'static str,
    /// What it sets, in one line.
    pub summary: &'static str,
    /// The unit of the value (`ms`, `count`, …).
    pub unit: &'static str,
    /// The value when not set.
    pub default: u64,
    /// The smallest allowed value.
    pub min: u64,
    /// The largest allowed value.
    pub max: u64,
}

/// A parameter that could not be set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// No parameter of that name.
    Unknown {
        /// The name given.
        name: String,
        /// The parameters the scenario has.
        known: Vec<&'static str>,
    },
    /// Outside the declared range.
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown { name, known } => {
                write!(f, "unknown parameter {name:?} (known: {})", known.join(", "))
            }
            ParamError::OutOfRange { name, value, min, max } => {
                write!(f, "parameter {name}={value} is out of range {min}..={max}")
            }
        }
    }
}

impl std::error::Error for ParamError {}

/// The parameter values of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    specs: Vec<Param>,
    values: BTreeMap<&'static str, u64>,
}

impl Params {
    /// Every parameter of `scenario` at its default.
    pub fn defaults(scenario: &dyn Scenario) -> Self {
        let specs = scenario.params().to_vec();
        let values = specs.iter().map(|p| (p.name, p.default)).collect();
        Params { specs, values }
    }

    /// Sets a parameter, checking its name and range.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), ParamError> {
        let Some(spec) = self.specs.iter().find(|p| p.name == name) else {
            return Err(ParamError::Unknown {
                name: name.to_string(),
                known: self.specs.iter().map(|p| p.name).collect(),
            });
        };
        if value < spec.min || value > spec.max {
            return Err(ParamError::OutOfRange {
                name: spec.name,
                value,
                min: spec.min,
                max: spec.max,
            });
        }
        self.values.insert(spec.name, value);
        Ok(())
    }

    /// The same parameters with one changed (see [`Params::set`]).
    pub fn with(mut self, name: &str, value: u64) -> Result<Self, ParamError> {
        self.set(name, value)?;
        Ok(self)
    }

    /// A parameter's value.
    ///
    /// # Panics
    /// If the scenario declared no such parameter (a bug in the scenario).
    pub fn get(&self, name: &str) -> u64 {
        match self.values.get(name) {
            Some(value) => *value,
            None => panic!("kdst: scenario reads undeclared parameter {name:?}"),
        }
    }

    /// A parameter in milliseconds, as a duration.
    pub fn millis(&self, name: &str) -> Duration {
        Duration::from_millis(self.get(name))
    }

    /// A parameter as a count.
    pub fn count(&self, name: &str) -> usize {
        usize::try_from(self.get(name)).unwrap_or(usize::MAX)
    }

    /// `name=value` pairs in declaration order, for reports and schedule files.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        self.specs.iter().map(|p| (p.name, self.values[p.name])).collect()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.pairs().iter().map(|(n, v)| format!("{n}={v}")).collect();
        f.write_str(&pairs.join(" "))
    }
}

/// A model of one real bug.
pub trait Scenario {
    /// What users type (`cert-manager-foreground-deletion`).
    fn name(&self) -> &'static str;
    /// The bug in one line.
    fn summary(&self) -> &'static str;
    /// The upstream issue and fix(es), as links.
    fn upstream(&self) -> &'static [&'static str];
    /// The variants, the buggy one first.
    fn variants(&self) -> &'static [Variant];
    /// The parameters.
    fn params(&self) -> &'static [Param];
    /// Builds one run inside the simulation's setup: spawns the tasks, registers the oracles.
    /// `variant` is one of [`Scenario::variants`].
    fn setup(&self, variant: &str, params: &Params);

    /// The variant named `name`.
    fn variant(&self, name: &str) -> Option<&'static Variant> {
        self.variants().iter().find(|v| v.name == name)
    }
}

/// Every registered scenario, in the order `kdst list` shows them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(cert_manager_foreground::ForegroundDeletion),
        Box::new(cert_manager_scheme::SchemeRace),
        Box::new(capsule::ReplicationWrites),
        Box::new(submariner::LogIfChanged),
        Box::new(informer_cache::CacheLocking),
        Box::new(syncmap_lost_update::LoadOrStore),
    ]
}

/// The registered scenario named `name`.
pub fn find(name: &str) -> Option<Box<dyn Scenario>> {
    all().into_iter().find(|s| s.name() == name)
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
    assert!(
        scenario.variant(variant).is_some(),
        "kdst: scenario {} has no variant {variant:?}",
        scenario.name()
    );
    sim.run(seed, || scenario.setup(variant, params))
}

pub mod capsule;
pub mod cert_manager_foreground;
pub mod cert_manager_scheme;
pub mod informer_cache;
pub mod submariner;
pub mod syncmap_lost_update;

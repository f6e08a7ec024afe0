//! # scenarios: real Kubernetes controller bugs, buggy and fixed
//!
//! Faithful models of the controller bugs of `docs/08-fidelity.md` (bugs A–E), running on
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use apiserver_fake::{ClientConfig, InformerConfig, Latency};
use sim_core::{FailureKind, Outcome, Simulation};

/// The Kubernetes machinery the scenarios run on.
pub use apiserver_fake;
pub use search::{Target, TargetError, schedule_strategy};

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
    /// The values the portfolio's swarm draws from, each equally likely (empty: the swarm keeps
    /// the default). See [`Params::swarm`].
    pub swarm: &'static [u64],
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
    /// The parameters set explicitly: the swarm leaves them alone.
    pinned: BTreeSet<&'static str>,
}

impl Params {
    /// Every parameter of `scenario` at its default.
    pub fn defaults(scenario: &dyn Scenario) -> Self {
        let specs = scenario.params().to_vec();
        let values = specs.iter().map(|p| (p.name, p.default)).collect();
        Params { specs, values, pinned: BTreeSet::new() }
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
        self.pinned.insert(spec.name);
        Ok(())
    }

    /// Whether `name` was set explicitly ([`Params::set`]), so the swarm keeps it.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pinned.contains(name)
    }

    /// The parameters of `seed` under swarm testing (Groce, Zhang, Eide, Chen and Regehr, "Swarm
    /// Testing", ISSTA 2012): each parameter that was not set explicitly and has a
    /// [`Param::swarm`] list takes one of the list's values, picked by a hash of the seed and the
    /// parameter's name. So every seed runs its own configuration (one seed has no API latency
    /// and eight objects, the next the defaults), a seed always draws the same one (replaying
    /// seed N replays its parameters too), and the draw does not touch the run's random streams.
    ///
    /// Bugs that need two controllers to act at the same virtual instant, or a rare size, are
    /// found far sooner across such configurations than at the defaults alone; the defaults stay
    /// among the choices.
    pub fn swarm(&self, seed: u64) -> Params {
        let mut drawn = self.clone();
        for spec in &self.specs {
            if spec.swarm.is_empty() || self.is_pinned(spec.name) {
                continue;
            }
            let name_hash = spec.name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
            let pick = splitmix64(seed ^ name_hash) % spec.swarm.len() as u64;
            drawn.values.insert(spec.name, spec.swarm[pick as usize]);
        }
        drawn
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

/// `api-latency-us`, shared by the scenarios whose controllers call the API server: the longest
/// one-way leg of a call, each leg drawn uniformly from a tenth of it up to it. The default (2 ms)
/// is [`ClientConfig::default`]'s. `0` removes the latency: every leg is still a scheduling
/// point, so calls interleave, but only the schedule decides the order. That makes a run a
/// function of its schedule alone, which bounded exhaustive search (`dfs`) needs to reach
/// interleavings that the seed's timing would otherwise rule out.
pub const API_LATENCY: Param = Param {
    name: "api-latency-us",
    summary: "longest one-way leg of an API call, each leg uniform from a tenth of it (0: none)",
    unit: "µs",
    default: 2_000,
    min: 0,
    max: 10_000_000,
    swarm: &[0, 2_000],
};

/// The client configuration [`API_LATENCY`] describes.
pub fn client_config(params: &Params) -> ClientConfig {
    let max = Duration::from_micros(params.get(API_LATENCY.name));
    ClientConfig::default().with_latency(Latency::range(max / 10, max))
}

/// `cache-lag-us`, shared by the scenarios whose controllers read from informers: the longest
/// time a watch event takes to reach an informer's cache, drawn per event from zero up to it.
/// The default (5 ms) is [`InformerConfig::default`]'s; `0` delivers at once (still through the
/// informer's own task). Two informers with independent lags rarely hand their controllers
/// events at the same virtual instant, which races between controllers need; the portfolio's
/// swarm draws this parameter, and `dfs` runs want it at `0` (see [`API_LATENCY`]).
pub const CACHE_LAG: Param = Param {
    name: "cache-lag-us",
    summary: "longest delay of a watch event on its way to an informer's cache (0: none)",
    unit: "µs",
    default: 5_000,
    min: 0,
    max: 10_000_000,
    swarm: &[0, 5_000],
};

/// The informer configuration [`CACHE_LAG`] describes.
pub fn informer_config(params: &Params) -> InformerConfig {
    let max = Duration::from_micros(params.get(CACHE_LAG.name));
    InformerConfig::default().with_delivery_delay(Latency::range(Duration::ZERO, max))
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A model of one real bug.
pub trait Scenario: Send + Sync {
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
pub mod search;
pub mod submariner;
pub mod syncmap_lost_update;

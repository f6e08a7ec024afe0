//! A scenario's parameters: declared once as typed `const` keys, read back in their own unit.
//!
//! ```
//! use std::time::Duration;
//! use scenarios::{Key, Param};
//!
//! /// How often the controller requeues.
//! const REQUEUE: Key<Duration> =
//!     Key::millis("requeue-ms", "how often the controller requeues", 500).range(10, 10_000);
//! /// How many objects the user creates; the swarm draws 1 or 8.
//! const OBJECTS: Key<usize> = Key::count("objects", "objects the user creates", 2).swarm(&[1, 8]);
//! /// What the scenario declares (and `kdst list` shows).
//! const PARAMS: &[Param] = &[REQUEUE.param, OBJECTS.param];
//! # let _ = PARAMS;
//! ```
//!
//! A scenario reads a value with [`Params::get`] and the key: `params.get(REQUEUE)` is a
//! [`Duration`], converted from the declared unit; a misspelt key does not compile, and a range
//! or swarm value that breaks the declaration stops the build (the constructors check it in
//! `const` context).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use apiserver_fake::{ClientConfig, InformerConfig, Latency};
use sim_core::{fnv1a, mix64};

/// The unit of a parameter's value, as `kdst list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (`µs`).
    Micros,
    /// Milliseconds (`ms`).
    Millis,
    /// Seconds (`s`).
    Seconds,
    /// A number of things (`count`).
    Count,
    /// A percentage, 0 to 100 (`%`).
    Percent,
    /// Off (0) or on (1) (`bool`).
    Flag,
}

impl Unit {
    /// The symbol `kdst list` prints after a value.
    pub const fn symbol(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::Seconds => "s",
            Unit::Count => "count",
            Unit::Percent => "%",
            Unit::Flag => "bool",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A declared parameter: its name, unit, default, range (inclusive) and swarm values, as an
/// integer in `unit`. Build one with a [`Key`] constructor, which also gives the typed handle a
/// scenario reads the value with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// What users type in `--param name=value`.
    pub name: &'static str,
    /// What it sets, in one line.
    pub summary: &'static str,
    /// The unit of the value.
    pub unit: Unit,
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

impl Param {
    /// A parameter with `default` in `unit`, allowed anywhere from 0 up, and no swarm values.
    pub const fn new(name: &'static str, summary: &'static str, unit: Unit, default: u64) -> Self {
        Param { name, summary, unit, default, min: 0, max: u64::MAX, swarm: &[] }
    }

    /// The same parameter allowed only in `min..=max`.
    ///
    /// # Panics
    /// If the range is empty or leaves out the default or a swarm value: at compile time when
    /// the parameter is a `const`.
    pub const fn range(mut self, min: u64, max: u64) -> Self {
        self.min = min;
        self.max = max;
        self.check();
        self
    }

    /// The same parameter with the values the swarm draws from.
    ///
    /// # Panics
    /// If a value is outside the range: at compile time when the parameter is a `const`.
    pub const fn swarm(mut self, values: &'static [u64]) -> Self {
        self.swarm = values;
        self.check();
        self
    }

    /// Panics unless the default and every swarm value lie in the range.
    const fn check(&self) {
        assert!(self.min <= self.max, "kdst: a parameter's range is empty");
        assert!(
            self.min <= self.default && self.default <= self.max,
            "kdst: a parameter's default is outside its range"
        );
        let mut i = 0;
        while i < self.swarm.len() {
            assert!(
                self.min <= self.swarm[i] && self.swarm[i] <= self.max,
                "kdst: a parameter's swarm value is outside its range"
            );
            i += 1;
        }
        if matches!(self.unit, Unit::Flag) {
            assert!(self.max <= 1, "kdst: a flag is 0 or 1");
        }
        if matches!(self.unit, Unit::Percent) {
            assert!(self.max <= 100, "kdst: a percentage is at most 100");
        }
    }

    /// What is wrong with the declaration, if anything (the checks of [`Param::range`], for
    /// parameters built without it).
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.name.is_empty() || self.name.contains(['=', ' ', ',']) {
            return Some("its name must be non-empty, without spaces, commas or '='");
        }
        if self.min > self.max {
            return Some("its range is empty");
        }
        if self.default < self.min || self.default > self.max {
            return Some("its default is outside its range");
        }
        if self.swarm.iter().any(|v| *v < self.min || *v > self.max) {
            return Some("a swarm value is outside its range");
        }
        None
    }
}

/// A value a parameter can be read as, converted from the parameter's [`Unit`].
pub trait FromParam: Sized {
    /// The value `raw` of a parameter declared in `unit`.
    fn from_param(raw: u64, unit: Unit) -> Self;
}

impl FromParam for Duration {
    fn from_param(raw: u64, unit: Unit) -> Self {
        match unit {
            Unit::Micros => Duration::from_micros(raw),
            Unit::Millis => Duration::from_millis(raw),
            Unit::Seconds => Duration::from_secs(raw),
            Unit::Count | Unit::Percent | Unit::Flag => {
                unreachable!("a Key<Duration> has a unit of time")
            }
        }
    }
}

impl FromParam for usize {
    fn from_param(raw: u64, _: Unit) -> Self {
        usize::try_from(raw).unwrap_or(usize::MAX)
    }
}

impl FromParam for u64 {
    fn from_param(raw: u64, _: Unit) -> Self {
        raw
    }
}

impl FromParam for bool {
    fn from_param(raw: u64, _: Unit) -> Self {
        raw != 0
    }
}

impl FromParam for f64 {
    /// A percentage as a fraction: 30 % is 0.3.
    fn from_param(raw: u64, unit: Unit) -> Self {
        let value = raw as f64;
        if unit == Unit::Percent { value / 100.0 } else { value }
    }
}

/// The typed handle of a declared parameter: a scenario reads it with [`Params::get`] as a `T`
/// in the declared unit. Only the constructors that fit `T` exist ([`Key::millis`] gives a
/// `Key<Duration>`, [`Key::count`] a `Key<usize>`, …), so unit and type cannot disagree.
#[derive(Debug)]
pub struct Key<T> {
    /// The declaration, for the scenario's list of parameters.
    pub param: Param,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> Key<T> {
    const fn of(param: Param) -> Self {
        Key { param, value: PhantomData }
    }

    /// The same key allowed only in `min..=max` (see [`Param::range`]).
    pub const fn range(self, min: u64, max: u64) -> Self {
        Key::of(self.param.range(min, max))
    }

    /// The same key with the values the swarm draws from (see [`Param::swarm`]).
    pub const fn swarm(self, values: &'static [u64]) -> Self {
        Key::of(self.param.swarm(values))
    }

    /// The parameter's name.
    pub const fn name(&self) -> &'static str {
        self.param.name
    }
}

impl Key<Duration> {
    /// A duration given in microseconds.
    pub const fn micros(name: &'static str, summary: &'static str, default: u64) -> Self {
        Key::of(Param::new(name, summary, Unit::Micros, default))
    }

    /// A duration given in milliseconds.
    pub const fn millis(name: &'static str, summary: &'static str, default: u64) -> Self {
        Key::of(Param::new(name, summary, Unit::Millis, default))
    }

    /// A duration given in seconds.
    pub const fn seconds(name: &'static str, summary: &'static str, default: u64) -> Self {
        Key::of(Param::new(name, summary, Unit::Seconds, default))
    }
}

impl Key<usize> {
    /// A number of things (objects, workers, …).
    pub const fn count(name: &'static str, summary: &'static str, default: u64) -> Self {
        Key::of(Param::new(name, summary, Unit::Count, default))
    }
}

impl Key<bool> {
    /// A switch: 0 is off, 1 is on.
    pub const fn flag(name: &'static str, summary: &'static str, default: bool) -> Self {
        Key::of(Param::new(name, summary, Unit::Flag, default as u64).range(0, 1))
    }
}

impl Key<f64> {
    /// A percentage, read as a fraction (30 is 0.3).
    pub const fn percent(name: &'static str, summary: &'static str, default: u64) -> Self {
        Key::of(Param::new(name, summary, Unit::Percent, default).range(0, 100))
    }
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
    specs: &'static [Param],
    values: BTreeMap<&'static str, u64>,
    /// The parameters set explicitly: the swarm leaves them alone.
    pinned: BTreeSet<&'static str>,
}

impl Params {
    /// Every parameter of `scenario` at its default.
    pub fn defaults(scenario: &dyn crate::Scenario) -> Self {
        Params::of(scenario.params())
    }

    /// Every parameter of `specs` at its default.
    pub fn of(specs: &'static [Param]) -> Self {
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
        for spec in self.specs {
            if spec.swarm.is_empty() || self.is_pinned(spec.name) {
                continue;
            }
            let pick = mix64(seed ^ fnv1a(spec.name.as_bytes())) % spec.swarm.len() as u64;
            drawn.values.insert(spec.name, spec.swarm[pick as usize]);
        }
        drawn
    }

    /// The same parameters with one changed (see [`Params::set`]).
    pub fn with(mut self, name: &str, value: u64) -> Result<Self, ParamError> {
        self.set(name, value)?;
        Ok(self)
    }

    /// The value of `key`, in its type and unit.
    ///
    /// # Panics
    /// If the scenario did not list `key` among its parameters (a bug in the scenario, which its
    /// first run shows).
    pub fn get<T: FromParam>(&self, key: Key<T>) -> T {
        T::from_param(self.raw(key.param.name), key.param.unit)
    }

    /// A parameter's value as the integer users type.
    ///
    /// # Panics
    /// If the scenario declared no such parameter.
    pub fn raw(&self, name: &str) -> u64 {
        match self.values.get(name) {
            Some(value) => *value,
            None => panic!("kdst: scenario reads undeclared parameter {name:?}"),
        }
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
pub const API_LATENCY: Key<Duration> = Key::micros(
    "api-latency-us",
    "longest one-way leg of an API call, each leg uniform from a tenth of it (0: none)",
    2_000,
)
.range(0, 10_000_000)
.swarm(&[0, 2_000]);

/// The client configuration [`API_LATENCY`] describes.
pub fn client_config(params: &Params) -> ClientConfig {
    let max = params.get(API_LATENCY);
    ClientConfig::default().with_latency(Latency::range(max / 10, max))
}

/// `cache-lag-us`, shared by the scenarios whose controllers read from informers: the longest
/// time a watch event takes to reach an informer's cache, drawn per event from zero up to it.
/// The default (5 ms) is [`InformerConfig::default`]'s; `0` delivers at once (still through the
/// informer's own task). Two informers with independent lags rarely hand their controllers
/// events at the same virtual instant, which races between controllers need; the portfolio's
/// swarm draws this parameter, and `dfs` runs want it at `0` (see [`API_LATENCY`]). A scenario
/// that needs another range or other swarm values declares its own copy
/// (`CACHE_LAG.range(…).swarm(…)`) under the same name.
pub const CACHE_LAG: Key<Duration> = Key::micros(
    "cache-lag-us",
    "longest delay of a watch event on its way to an informer's cache (0: none)",
    5_000,
)
.range(0, 10_000_000)
.swarm(&[0, 5_000]);

/// The informer configuration [`CACHE_LAG`] describes.
pub fn informer_config(params: &Params) -> InformerConfig {
    informer_config_with(params, CACHE_LAG)
}

/// The informer configuration of a scenario's own copy of [`CACHE_LAG`].
pub fn informer_config_with(params: &Params, lag: Key<Duration>) -> InformerConfig {
    let max = params.get(lag);
    InformerConfig::default().with_delivery_delay(Latency::range(Duration::ZERO, max))
}

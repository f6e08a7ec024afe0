//! [`StrategySpec`]: every strategy as users name it — `random`, `pct:D`, `portfolio`, `dfs:B`,
//! `dfs-full:B`, `dfs-delays:B` — with the one grammar [`crate::Check`], [`crate::Explorer`],
//! schedule files and the `kdst` CLI share, and what each strategy needs of a run.
//!
//! A new strategy is one file under `strategy/` and one arm here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{BoundKind, Choice, Dfs, Divergence, Pct, Portfolio, Random, Strategy};
use crate::{Config, Races};

/// A strategy named by the user: what it is, not a running instance of it.
///
/// ```
/// use sim_core::strategy::StrategySpec;
///
/// let spec: StrategySpec = "pct".parse().expect("known");
/// assert_eq!(spec, StrategySpec::Pct { depth: 3, k: None });
/// assert_eq!(spec.to_string(), "pct:3");
/// // PCT's `k` pinned, as a search that learned it prints it in its replay lines:
/// let learned: StrategySpec = "portfolio@24".parse().expect("known");
/// assert_eq!(learned, StrategySpec::Portfolio { k: Some(24) });
/// assert_eq!(learned.to_string(), "portfolio@24");
/// let dfs: StrategySpec = "dfs:1".parse().expect("known");
/// assert!(dfs.is_systematic() && !dfs.replays_from_seed());
/// assert!("bogus".parse::<StrategySpec>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategySpec {
    /// The uniform random walk ([`Random`]).
    Random,
    /// PCT with this depth ([`Pct`]): `pct:D`, or `pct:D@K` with `k` pinned to K.
    Pct {
        /// The number of priority change points plus one.
        depth: u32,
        /// `k` (steps per run): pinned (`@K`, what a search learned from its first runs), or
        /// `None`: a search learns it ([`crate::Explorer`]), a lone run draws it per seed
        /// ([`Portfolio::max_steps_for`]).
        k: Option<u64>,
    },
    /// The default: per seed, random or PCT of depth 2 or 3 ([`Portfolio`]), with the swarm:
    /// `portfolio`, or `portfolio@K` with the PCT members' `k` pinned to K.
    Portfolio {
        /// The PCT members' `k`, as for [`StrategySpec::Pct`].
        k: Option<u64>,
    },
    /// Bounded exhaustive search ([`Dfs`]): every schedule within `bound` of `kind`.
    Dfs {
        /// What the bound counts.
        kind: BoundKind,
        /// The bound B.
        bound: u32,
        /// Partial-order reduction ([`Dfs::with_reduction`]); preemption bounds only.
        reduction: bool,
        /// Perturbations a schedule may fire ([`Dfs::with_perturbation_bound`]): `dfs:B+P`.
        perturbations: u32,
    },
}

/// A strategy name that is not one: the text given and why, in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategyError {
    /// What was given.
    pub input: String,
    /// Why it is not a strategy.
    pub reason: String,
}

impl fmt::Display for StrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for StrategyError {}

impl Default for StrategySpec {
    fn default() -> Self {
        StrategySpec::PORTFOLIO
    }
}

/// The strategies as `kdst --help` and error messages list them.
pub const KNOWN: &str = "random, pct, pct:D, portfolio, dfs:B, dfs-full:B, dfs-delays:B (each dfs \
                         also :B+P; pct and portfolio also @K, PCT's k pinned)";

impl FromStr for StrategySpec {
    type Err = StrategyError;

    /// `random`, `pct` (depth 3), `pct:D`, `portfolio`, `dfs` (`dfs:2`), `dfs:B` (preemptions,
    /// with partial-order reduction), `dfs-full:B` (preemptions, every schedule) or
    /// `dfs-delays:B`; any dfs as `…:B+P` also tries up to P perturbations per schedule.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| StrategyError { input: text.to_string(), reason };
        let (text_spec, pinned) = match text.split_once('@') {
            None => (text, None),
            Some((spec, k)) => match k.parse::<u64>() {
                Ok(k) if (1..=Self::K_MAX).contains(&k) => (spec, Some(k)),
                _ => {
                    return Err(error(format!(
                        "PCT's k {k:?} is not a number in 1..={}",
                        Self::K_MAX
                    )));
                }
            },
        };
        let spec = Self::parse_unpinned(text_spec).map_err(|e| error(e.reason))?;
        match (spec, pinned) {
            (spec, None) => Ok(spec),
            (StrategySpec::Pct { depth, .. }, k) => Ok(StrategySpec::Pct { depth, k }),
            (StrategySpec::Portfolio { .. }, k) => Ok(StrategySpec::Portfolio { k }),
            (other, Some(_)) => {
                Err(error(format!("{other} has no PCT k to pin (only pct and portfolio take @K)")))
            }
        }
    }
}

impl StrategySpec {
    /// The portfolio with `k` learned by the search: the default.
    pub const PORTFOLIO: StrategySpec = StrategySpec::Portfolio { k: None };

    /// The largest `k` a spec may pin: 2^32 steps.
    pub const K_MAX: u64 = 1 << 32;

    /// A spec without `@K`.
    fn parse_unpinned(text: &str) -> Result<Self, StrategyError> {
        let error = |reason: String| StrategyError { input: text.to_string(), reason };
        let (name, argument) = match text.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (text, None),
        };
        let number = |argument: Option<&str>, what: &str, default: u32, min: u32| match argument {
            None => Ok(default),
            Some(value) => match value.parse::<u32>() {
                Ok(n) if n >= min => Ok(n),
                Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    Err(error(format!("the {what} {value} is out of range ({min}..={})", u32::MAX)))
                }
                _ => Err(error(format!("the {what} {value:?} is not a number ≥ {min}"))),
            },
        };
        let argument_text = argument;
        let dfs = |kind, reduction| -> Result<StrategySpec, StrategyError> {
            // `dfs:B+P`: B preemptions (or delays) plus P perturbations.
            let (bound, perturbations) = match argument.and_then(|a| a.split_once('+')) {
                None => (number(argument, "bound", 2, 0)?, 0),
                Some((bound, perturbations)) => (
                    number(Some(bound), "bound", 2, 0)?,
                    number(Some(perturbations), "perturbation bound", 0, 0)?,
                ),
            };
            Ok(StrategySpec::Dfs { kind, bound, reduction, perturbations })
        };
        match name {
            "random" if argument.is_none() => Ok(StrategySpec::Random),
            "portfolio" if argument.is_none() => Ok(StrategySpec::PORTFOLIO),
            "pct" => {
                Ok(StrategySpec::Pct { depth: number(argument_text, "PCT depth", 3, 1)?, k: None })
            }
            "dfs" => dfs(BoundKind::Preemptions, true),
            "dfs-full" => dfs(BoundKind::Preemptions, false),
            "dfs-delays" => dfs(BoundKind::Delays, false),
            _ => Err(error(format!("unknown strategy {text:?} (known: {KNOWN})"))),
        }
    }
}

impl fmt::Display for StrategySpec {
    /// The canonical form, which parses back to the same spec: `pct` is written `pct:3`, a
    /// pinned `k` as `@K`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StrategySpec::Random => f.write_str("random"),
            StrategySpec::Pct { depth, k } => {
                write!(f, "pct:{depth}")?;
                k.map_or(Ok(()), |k| write!(f, "@{k}"))
            }
            StrategySpec::Portfolio { k } => {
                f.write_str("portfolio")?;
                k.map_or(Ok(()), |k| write!(f, "@{k}"))
            }
            StrategySpec::Dfs { kind, bound, reduction, perturbations } => {
                let name = match (kind, reduction) {
                    (BoundKind::Preemptions, true) => "dfs",
                    (BoundKind::Preemptions, false) => "dfs-full",
                    (BoundKind::Delays, _) => "dfs-delays",
                };
                write!(f, "{name}:{bound}")?;
                if perturbations > 0 {
                    write!(f, "+{perturbations}")?;
                }
                Ok(())
            }
        }
    }
}

impl StrategySpec {
    /// Whether this is a systematic search over the schedules of one seed (`dfs…`), rather than
    /// a strategy that draws one schedule from each seed.
    pub fn is_systematic(&self) -> bool {
        matches!(self, StrategySpec::Dfs { .. })
    }

    /// Whether a run is named by its seed alone: true for the seed-driven strategies, whose
    /// runs `SIM_SEED=N` or `kdst replay --seed N` reproduce. A systematic run is its schedule.
    pub fn replays_from_seed(&self) -> bool {
        !self.is_systematic()
    }

    /// Whether the strategy draws unset scenario parameters from each seed (swarm testing): the
    /// portfolio does, unless the user turns the swarm off.
    pub fn swarms(&self) -> bool {
        matches!(self, StrategySpec::Portfolio { .. })
    }

    /// PCT's `k` pinned by `@K`, if any.
    pub fn pct_k(&self) -> Option<u64> {
        match *self {
            StrategySpec::Pct { k, .. } | StrategySpec::Portfolio { k } => k,
            _ => None,
        }
    }

    /// Whether a search with this spec learns PCT's `k` from its first runs: PCT or the
    /// portfolio, without `@K`.
    pub fn calibrates(&self) -> bool {
        matches!(self, StrategySpec::Pct { k: None, .. } | StrategySpec::Portfolio { k: None })
    }

    /// This spec with PCT's `k` pinned to `k` (unchanged for a strategy without PCT).
    pub fn with_pct_k(self, k: u64) -> StrategySpec {
        match self {
            StrategySpec::Pct { depth, .. } => StrategySpec::Pct { depth, k: Some(k) },
            StrategySpec::Portfolio { .. } => StrategySpec::Portfolio { k: Some(k) },
            other => other,
        }
    }

    /// The simulator configuration this strategy's runs need, from `base`: systematic searches
    /// run with polls that cost no virtual time. Then the clock moves only when every task
    /// waits, so steps that read it commute with the steps of other tasks, and partial-order
    /// reduction can tell equivalent schedules apart. The portfolio's runs detect data races
    /// ([`crate::race`]) unless `base` says [`Races::Off`]; other strategies' only when it says
    /// [`Races::On`]. Replaying and shrinking a schedule uses the configuration of the strategy
    /// that found it.
    pub fn config(&self, base: Config) -> Config {
        let races = match (base.races, self) {
            (Races::Auto, StrategySpec::Portfolio { .. }) => Races::On,
            (Races::Auto, _) => Races::Off,
            (races, _) => races,
        };
        let base = base.with_races(races);
        if self.is_systematic() {
            base.with_poll_cost(Duration::ZERO, Duration::ZERO)
        } else {
            base
        }
    }

    /// A fresh strategy object. PCT draws its `k` per seed, so one run is a function of its seed
    /// alone; a systematic search has no schedule limit (see [`StrategySpec::dfs`]).
    pub fn build(&self) -> Box<dyn Strategy> {
        self.build_pinned(None)
    }

    /// [`StrategySpec::build`], with PCT's `k` pinned when `pct_max_steps` is given (a spec's
    /// own `@K` wins).
    pub(crate) fn build_pinned(&self, pct_max_steps: Option<u64>) -> Box<dyn Strategy> {
        let pinned = self.pct_k().or(pct_max_steps);
        match *self {
            StrategySpec::Random => Box::new(Random::new()),
            StrategySpec::Pct { depth, .. } => Box::new(PctPerSeed::new(depth, pinned)),
            StrategySpec::Portfolio { .. } => Box::new(Portfolio::new().with_pinned_k(pinned)),
            StrategySpec::Dfs { .. } => Box::new(self.dfs(u64::MAX).expect("a dfs spec")),
        }
    }

    /// The bounded search this spec names, stopping after `max_schedules` runs; `None` for the
    /// seed-driven strategies.
    pub fn dfs(&self, max_schedules: u64) -> Option<Dfs> {
        let StrategySpec::Dfs { kind, bound, reduction, perturbations } = *self else {
            return None;
        };
        let dfs = Dfs::bounded(kind, bound, max_schedules).with_perturbation_bound(perturbations);
        Some(if reduction { dfs.with_reduction() } else { dfs })
    }

    /// What bounds the strategy's schedules, in words, for summaries.
    pub(crate) fn bound_text(&self, pct_max_steps: Option<u64>) -> String {
        let drawn = || {
            format!(
                "drawn per seed from {}..={}",
                Portfolio::MAX_STEPS_MIN,
                Portfolio::MAX_STEPS_MAX
            )
        };
        let pinned = self.pct_k().or(pct_max_steps);
        match *self {
            StrategySpec::Random => "none (uniform random walk)".to_string(),
            StrategySpec::Pct { depth, .. } => match pinned {
                Some(k) => format!("PCT depth {depth}, k {k} (pinned)"),
                None => format!("PCT depth {depth}, k {}", drawn()),
            },
            StrategySpec::Portfolio { .. } => match pinned {
                Some(k) => format!("PCT k {k} (pinned)"),
                None => format!("PCT k {}", drawn()),
            },
            StrategySpec::Dfs { kind, bound, reduction, perturbations } => {
                let reduced = if reduction { ", up to the order of independent steps" } else { "" };
                let perturbed = match perturbations {
                    0 => String::new(),
                    1 => " and 1 perturbation".to_string(),
                    p => format!(" and {p} perturbations"),
                };
                format!("every schedule within {bound} {}{perturbed}{reduced}", kind.unit())
            }
        }
    }
}

/// PCT whose `k` is pinned or drawn from the seed ([`Portfolio::max_steps_for`]), so that a
/// run never depends on the runs before it: `SIM_SEED=N` replays seed N as it ran among others.
struct PctPerSeed {
    depth: usize,
    pinned: Option<u64>,
    pct: Pct,
}

impl PctPerSeed {
    fn new(depth: u32, pinned: Option<u64>) -> Self {
        let depth = depth as usize;
        PctPerSeed { depth, pinned, pct: Pct::with_max_steps(depth, Portfolio::MAX_STEPS_MIN) }
    }
}

impl Strategy for PctPerSeed {
    fn name(&self) -> &'static str {
        self.pct.name()
    }
    fn begin(&mut self, seed: u64) {
        let max_steps = self.pinned.unwrap_or_else(|| Portfolio::max_steps_for(seed));
        if self.pct.max_steps() != max_steps {
            self.pct = Pct::with_max_steps(self.depth, max_steps);
        }
        self.pct.begin(seed);
    }
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        self.pct.next_task(choice)
    }
    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        self.pct.next_draw(step, bound)
    }
    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        self.pct.end(steps)
    }
}

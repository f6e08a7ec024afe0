//! Run configuration: limits and the cost model of virtual time.

use std::time::Duration;

use crate::{Perturbations, Races};

/// Limits and virtual-time costs for a [`crate::Simulation`].
///
/// Every limit is reported as a limit ([`crate::Outcome::LimitReached`]) naming the likely cause,
/// never as a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Steps (task polls) per run.
    pub steps_max: u64,
    /// Virtual time per run.
    pub time_max: Duration,
    /// Tasks spawned per run.
    pub tasks_max: u32,
    /// Trace events per run.
    pub events_max: usize,
    /// Virtual time each poll costs, before jitter.
    pub poll_cost: Duration,
    /// Extra virtual time per poll, drawn uniformly from `0..=poll_jitter` by a seeded hash.
    pub poll_jitter: Duration,
    /// Which perturbations ([`crate::perturb`]) a run may make, and how many.
    pub perturb: Perturbations,
    /// Whether runs detect data races ([`crate::race`]); [`Races::Auto`] lets the strategy
    /// decide ([`crate::strategy::StrategySpec::config`]: on for the portfolio).
    pub races: Races,
}

impl Config {
    /// The defaults, usable in `const` context.
    pub const DEFAULT: Config = Config {
        steps_max: 5_000_000,
        time_max: Duration::from_secs(24 * 3600),
        tasks_max: 10_000,
        events_max: 1_000_000,
        poll_cost: Duration::from_micros(1),
        poll_jitter: Duration::from_micros(1),
        perturb: Perturbations::DEFAULT,
        races: Races::Auto,
    };

    /// Sets [`Config::steps_max`].
    pub fn with_steps_max(mut self, steps_max: u64) -> Self {
        self.steps_max = steps_max;
        self
    }

    /// Sets [`Config::time_max`].
    pub fn with_time_max(mut self, time_max: Duration) -> Self {
        self.time_max = time_max;
        self
    }

    /// Sets [`Config::tasks_max`].
    pub fn with_tasks_max(mut self, tasks_max: u32) -> Self {
        self.tasks_max = tasks_max;
        self
    }

    /// Sets [`Config::events_max`].
    pub fn with_events_max(mut self, events_max: usize) -> Self {
        self.events_max = events_max;
        self
    }

    /// Sets [`Config::perturb`].
    pub fn with_perturbations(mut self, perturb: Perturbations) -> Self {
        self.perturb = perturb;
        self
    }

    /// Sets [`Config::races`].
    pub fn with_races(mut self, races: Races) -> Self {
        self.races = races;
        self
    }

    /// Sets [`Config::poll_cost`] and [`Config::poll_jitter`].
    pub fn with_poll_cost(mut self, poll_cost: Duration, poll_jitter: Duration) -> Self {
        self.poll_cost = poll_cost;
        self.poll_jitter = poll_jitter;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

//! Perturbations as choices: named points where the program may be disturbed (a controller
//! crashes after a write, an informer withholds an event), each decided by the run's strategy.
//!
//! A perturbation point calls [`perturb`] with its class (`"crash-after-write"`) and, if the
//! answer is yes, disturbs the run. Because the answer comes from the strategy, every search
//! covers perturbations as it covers schedules: the random walk fires each point with a per-seed
//! rate, PCT and the portfolio likewise, bounded search ([`crate::Dfs`]) tries "yes" at every
//! point within its perturbation bound, a replay repeats the answers, and shrinking turns
//! perturbations that the failure does not need back into "no". A fired perturbation is named
//! in the trace (`perturbation <class>: <what>`), so the report says what was done.
//!
//! Limits ([`Perturbations`], in [`crate::Config`]): a budget per run (default 2; 0 turns them
//! all off), classes turned off, and the swarm (each class on or off per seed, from a hash of
//! the seed and the class, as swarm testing varies features per run: Groce et al., "Swarm
//! testing", ISSTA 2012). A point past the budget, or of a class that is off, is not a choice:
//! nothing is drawn.
//!
//! The random strategies aim each perturbation at a point drawn uniformly among the next `span`
//! points of its class, where `span` is drawn per seed and class from {4, 16, 64, 256}: the
//! point after `i` quiet ones fires with probability `1/(span - i)` (at least 1/2), so runs with
//! few points of a class (writes) and runs with many (watch events) both get perturbations spread
//! over the whole run, and an early point of one class does not use up the budget in every run.

use std::borrow::Cow;

use crate::context;
use crate::rng::{fnv1a, mix64};
use crate::trace::EventKind;

/// Which perturbations a run may make ([`crate::Config::perturb`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perturbations {
    /// Perturbations per run; 0 turns them off.
    pub budget: u32,
    /// Each class on or off per seed (a hash of the seed and the class name decides).
    pub swarm: bool,
    /// Classes turned off.
    pub off: Vec<Cow<'static, str>>,
}

impl Perturbations {
    /// The defaults: a budget of 2, no swarm, every class on.
    pub const DEFAULT: Perturbations = Perturbations { budget: 2, swarm: false, off: Vec::new() };

    /// None at all.
    pub const NONE: Perturbations = Perturbations { budget: 0, swarm: false, off: Vec::new() };

    /// Sets the budget.
    pub fn with_budget(mut self, budget: u32) -> Self {
        self.budget = budget;
        self
    }

    /// Turns the swarm on or off.
    pub fn with_swarm(mut self, swarm: bool) -> Self {
        self.swarm = swarm;
        self
    }

    /// Turns `class` off.
    pub fn without(mut self, class: impl Into<Cow<'static, str>>) -> Self {
        self.off.push(class.into());
        self
    }

    /// Whether `class` may fire in a run with `seed` (budget left aside).
    pub fn enabled(&self, seed: u64, class: &str) -> bool {
        if self.budget == 0 || self.off.iter().any(|off| off == class) {
            return false;
        }
        !self.swarm || mix64(seed ^ fnv1a(class.as_bytes()) ^ SWARM_KEY) & 1 == 1
    }

    /// Among how many points of `class` the random strategies aim each perturbation, in a run
    /// with `seed` (see the module docs).
    pub fn span(seed: u64, class: &str) -> u64 {
        const SPANS: [u64; 4] = [4, 16, 64, 256];
        SPANS[(mix64(seed ^ fnv1a(class.as_bytes())) >> 60) as usize & 3]
    }
}

impl Default for Perturbations {
    fn default() -> Self {
        Perturbations::DEFAULT
    }
}

const SWARM_KEY: u64 = 0x5157_4152_4d00_0001;

/// A perturbation point of `class`: whether to disturb the run here. `what` describes the
/// disturbance for the trace (called only when it fires). See the module docs.
///
/// # Panics
/// Outside a simulation.
pub fn perturb(class: &'static str, what: impl FnOnce() -> String) -> bool {
    let quiet = context::with("perturb", |ctx| {
        let mut state = ctx.state.borrow_mut();
        let perturb = &state.config.perturb;
        let left = state.perturbations < perturb.budget;
        if !left || !perturb.enabled(state.seed, class) {
            return None;
        }
        let seed = state.seed;
        let classes = &mut state.classes;
        let index = match classes.iter().position(|(name, _, _)| *name == class) {
            Some(index) => index,
            None => {
                classes.push((class, Perturbations::span(seed, class), 0));
                classes.len() - 1
            }
        };
        let (_, span, quiet) = &mut classes[index];
        let odds = span.saturating_sub(*quiet).max(2);
        *quiet += 1;
        Some((index, odds))
    });
    let Some((class_index, odds)) = quiet else {
        return false;
    };
    context::with("perturb", |ctx| {
        let step = ctx.step.get();
        let fire = crate::rng::ask_strategy(ctx, step, |strategy| strategy.next_flag(step, odds));
        let mut state = ctx.state.borrow_mut();
        state.draws.push((step, u64::from(fire)));
        if fire {
            state.perturbations += 1;
            state.classes[class_index].2 = 0;
        }
        drop(state);
        if fire {
            let text = format!("perturbation {class}: {}", what());
            context::push_event(ctx, EventKind::Message(text.into()));
        }
        fire
    })
}

/// Perturbations fired so far in the running simulation.
///
/// # Panics
/// Outside a simulation.
pub fn perturbations_fired() -> u32 {
    context::with_state("perturbations_fired", |state| state.perturbations)
}

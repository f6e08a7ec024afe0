//! The portfolio: one strategy per run, picked from the seed, so a seed range searches with
//! several strategies at once.
//!
//! No single strategy is best on every bug. The uniform random walk spreads preemptions over
//! every step, which is what a race one scheduling point wide needs (two writers of a Go map);
//! PCT (Burckhardt et al., ASPLOS 2010) preempts at only `d − 1` steps, which is what a bug that
//! needs a task to run a long stretch uninterrupted needs, and which the random walk almost never
//! produces. Running a portfolio of both, chosen per seed, is the "swarm" idea of Groce, Zhang,
//! Eide, Chen and Regehr ("Swarm Testing", ISSTA 2012): varying the configuration across runs
//! finds more than any one configuration run every time.

use std::fmt;

use super::{Choice, Divergence, Pct, Random, Strategy};
use crate::rng::{below, fork};

/// One strategy of the portfolio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    Random,
    Pct(usize),
}

/// The members with their weights (out of [`WEIGHT_TOTAL`]) and their report names.
const MEMBERS: [(Member, u64, &str); 3] =
    [(Member::Random, 2, "random"), (Member::Pct(2), 1, "pct:2"), (Member::Pct(3), 1, "pct:3")];

/// The sum of the weights.
const WEIGHT_TOTAL: u64 = 4;

/// The PCT members' `k` (estimated steps per run) is drawn per seed as `2^e` with `e` uniform in
/// this range: 16 to 16,384 steps.
const MAX_STEPS_LOG2: std::ops::RangeInclusive<u32> = 4..=14;

/// The default search strategy: per run, random or PCT of depth 2 or 3, picked from the seed.
///
/// # Members and weights
///
/// | member | weight | why |
/// |---|---|---|
/// | `random` | 1/2 | best on shallow races, the most common controller bug |
/// | `pct:2` | 1/4 | ordering and atomicity violations that need one task to run a long stretch uninterrupted |
/// | `pct:3` | 1/4 | bugs of depth 3: three ordering constraints between steps |
///
/// Random is weighted highest because it was the better strategy on every modelled bug.
/// Failing seeds of 0..1000 per buggy scenario variant, default parameters (PCT with `k` drawn
/// per seed as below; in brackets with `k` pinned to 10,000):
///
/// | scenario variant | random | PCT(2) | PCT(3) |
/// |---|---|---|---|
/// | informer-cache-locking no-lock | 975 | 15 (1) | 23 (2) |
/// | informer-cache-locking missing-rlock | 234 | 0 (0) | 0 (0) |
/// | syncmap-load-or-store buggy | 287 | 4 (0) | 10 (1) |
/// | cert-manager-scheme-race buggy | 75 | 37 (26) | 53 (37) |
/// | capsule-replication-writes buggy | 33 | 32 (30) | 32 (31) |
/// | submariner-logifchanged buggy | 4 | 1 (0) | 0 (2) |
/// | cert-manager-foreground-deletion buggy | 704 | 721 (704) | 725 (739) |
///
/// These are races one scheduling point wide, which the random walk's preemption at every step
/// hits often and PCT's `d − 1` preemptions rarely do. PCT is there for the other kind: a bug that
/// needs a task to run a long stretch uninterrupted, where the random walk's chance is
/// exponentially small (`tests/it/pct.rs`: random 0 of 10,000 seeds, PCT(2) about one in a
/// hundred; the portfolio 20 of 20,000, `tests/it/explore.rs`). Half the seeds for random costs
/// at most twice the seeds on a shallow race; a quarter for each PCT depth turns the deep bugs
/// from never found into found. The random member uses the same `scheduling` stream as
/// [`Random`], so on the seeds it runs the portfolio's schedules are exactly the random
/// strategy's.
///
/// # PCT's `k`
///
/// PCT needs `k`, the number of steps in a run, before the run starts. [`Pct::new`] learns it
/// from the runs before, which would make a seed's schedule depend on which seeds ran before it
/// on the same worker thread. The portfolio instead draws `k` per seed, log-uniformly from 16 to
/// 16,384 (`2^e`, `e` uniform in 4..=14): a short `k` puts the change points among the first
/// steps of a long run (where a startup race lives) or anywhere in a short run, a long `k`
/// spreads them over the whole of a long one. A `k` far above a run's length wastes change
/// points (the run is then a plain priority order, PCT of depth 1), which is still a schedule
/// random rarely produces.
///
/// # Determinism
///
/// Which member runs and with which `k` comes from the run's stream `fork(seed, "portfolio")`;
/// each member then draws from its own streams exactly as it does alone. A run is a pure
/// function of the seed: the same on any thread, in any order, on any machine.
#[derive(Clone, Debug)]
pub struct Portfolio {
    random: Random,
    pct: Pct,
    current: Member,
    /// The PCT members' `k` when pinned (`portfolio@K`, learned by a search), else drawn.
    pinned: Option<u64>,
}

impl Portfolio {
    /// The smallest `k` the PCT members draw.
    pub const MAX_STEPS_MIN: u64 = 1 << *MAX_STEPS_LOG2.start();

    /// The largest `k` the PCT members draw.
    pub const MAX_STEPS_MAX: u64 = 1 << *MAX_STEPS_LOG2.end();

    /// The portfolio of random (weight 2), PCT depth 2 (weight 1) and PCT depth 3 (weight 1).
    pub fn new() -> Self {
        Portfolio {
            random: Random::new(),
            pct: Pct::with_max_steps(2, 1 << MAX_STEPS_LOG2.start()),
            current: Member::Random,
            pinned: None,
        }
    }

    /// The same portfolio with the PCT members' `k` pinned to `k` (`None`: drawn per seed).
    /// Which member runs a seed does not change.
    pub fn with_pinned_k(mut self, k: Option<u64>) -> Self {
        self.pinned = k;
        self
    }

    /// The report names of the members, in a fixed order: `random`, `pct:2`, `pct:3`.
    pub fn members() -> [&'static str; 3] {
        MEMBERS.map(|(_, _, name)| name)
    }

    /// The `k` a PCT member uses for seed `seed` (drawn whichever member runs it): the PCT
    /// member's run is exactly that of `Pct::with_max_steps(depth, Portfolio::max_steps_for(seed))`.
    pub fn max_steps_for(seed: u64) -> u64 {
        pick(seed).1
    }

    /// The name of the member that runs seed `seed` (`random`, `pct:2`, `pct:3`), without
    /// running it.
    pub fn member_for(seed: u64) -> &'static str {
        let (member, _) = pick(seed);
        name_of(member)
    }

    /// The member used for the last [`Strategy::begin`] (`random` before any).
    pub fn current(&self) -> &'static str {
        name_of(self.current)
    }

    /// The PCT member's `k` for the last run, if the last run used PCT.
    pub fn current_max_steps(&self) -> Option<u64> {
        match self.current {
            Member::Random => None,
            Member::Pct(_) => Some(self.pct.max_steps()),
        }
    }
}

impl Default for Portfolio {
    fn default() -> Self {
        Portfolio::new()
    }
}

/// The member for `seed` and, for PCT, its `k`.
fn pick(seed: u64) -> (Member, u64) {
    let mut rng = fork(seed, "portfolio");
    let mut roll = below(&mut rng, WEIGHT_TOTAL);
    let mut chosen = Member::Random;
    for (member, weight, _) in MEMBERS {
        if roll < weight {
            chosen = member;
            break;
        }
        roll -= weight;
    }
    let span = u64::from(MAX_STEPS_LOG2.end() - MAX_STEPS_LOG2.start()) + 1;
    let log2 = *MAX_STEPS_LOG2.start() as u64 + below(&mut rng, span);
    (chosen, 1 << log2)
}

fn name_of(member: Member) -> &'static str {
    MEMBERS.iter().find(|(m, _, _)| *m == member).map_or("random", |(_, _, name)| name)
}

/// `portfolio (pct:2, k 1024)`: the member of the last run.
impl fmt::Display for Portfolio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current_max_steps() {
            Some(k) => write!(f, "portfolio ({}, k {k})", self.current()),
            None => write!(f, "portfolio ({})", self.current()),
        }
    }
}

impl Strategy for Portfolio {
    fn name(&self) -> &'static str {
        "portfolio"
    }

    fn begin(&mut self, seed: u64) {
        let (member, drawn) = pick(seed);
        let max_steps = self.pinned.unwrap_or(drawn);
        self.current = member;
        match member {
            Member::Random => self.random.begin(seed),
            Member::Pct(depth) => {
                if self.pct.depth() != depth || self.pct.max_steps() != max_steps {
                    self.pct = Pct::with_max_steps(depth, max_steps);
                }
                self.pct.begin(seed);
            }
        }
    }

    #[inline]
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        match self.current {
            Member::Random => self.random.next_task(choice),
            Member::Pct(_) => self.pct.next_task(choice),
        }
    }

    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        match self.current {
            Member::Random => self.random.next_draw(step, bound),
            Member::Pct(_) => self.pct.next_draw(step, bound),
        }
    }

    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        match self.current {
            Member::Random => self.random.end(steps),
            Member::Pct(_) => self.pct.end(steps),
        }
    }
}

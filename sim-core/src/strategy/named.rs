//! Strategies by name — `random`, `pct`, `pct:D`, `portfolio` — as [`crate::Check`],
//! [`crate::Explorer`] and the CLI spell them, and PCT with its `k` drawn per seed.

use super::{Choice, Divergence, Pct, Portfolio, Random, Strategy};

/// A strategy named by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spec {
    Random,
    /// PCT with this depth.
    Pct(usize),
    Portfolio,
}

impl Spec {
    /// Parses `random`, `pct` (depth 3), `pct:D` or `portfolio`; the error is one line.
    pub(crate) fn parse(name: &str) -> Result<Spec, String> {
        match name.split_once(':') {
            None if name == "random" => Ok(Spec::Random),
            None if name == "pct" => Ok(Spec::Pct(3)),
            None if name == "portfolio" => Ok(Spec::Portfolio),
            Some(("pct", depth)) => match depth.parse::<usize>() {
                Ok(depth) if depth >= 1 && u32::try_from(depth).is_ok() => Ok(Spec::Pct(depth)),
                _ => Err(format!("the PCT depth {depth:?} is not a number ≥ 1")),
            },
            _ => Err(format!("unknown strategy {name:?} (known: random, pct, pct:D, portfolio)")),
        }
    }

    /// The strategy; PCT's `k` is `pinned`, or drawn per seed.
    pub(crate) fn build(self, pinned: Option<u64>) -> Box<dyn Strategy> {
        match self {
            Spec::Random => Box::new(Random::new()),
            Spec::Pct(depth) => Box::new(PctPerSeed::new(depth, pinned)),
            Spec::Portfolio => Box::new(Portfolio::new()),
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
    fn new(depth: usize, pinned: Option<u64>) -> Self {
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

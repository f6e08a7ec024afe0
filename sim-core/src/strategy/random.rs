//! The uniform random walk: at every step, each runnable task is equally likely to run.
//!
//! The baseline of every concurrency tester (shuttle's `RandomScheduler`, loom's random mode).
//! Cheap, and surprisingly good at shallow bugs such as Go map races whose window is one
//! scheduling point wide.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::{Choice, Divergence, Strategy};
use crate::rng::{below, below_u32, fork};

/// The uniform random strategy, driven by the run's `scheduling` stream.
#[derive(Clone, Debug)]
pub struct Random {
    rng: ChaCha8Rng,
}

impl Random {
    /// A random strategy; each run reseeds it from the run's seed.
    pub fn new() -> Self {
        Random { rng: ChaCha8Rng::seed_from_u64(0) }
    }
}

impl Default for Random {
    fn default() -> Self {
        Random::new()
    }
}

impl Strategy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn begin(&mut self, seed: u64) {
        self.rng = fork(seed, "scheduling");
    }

    #[inline]
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let count = choice.runnable.len();
        if count == 1 {
            return Ok(0);
        }
        Ok(below_u32(self.rng.next_u32(), count))
    }

    fn next_draw(&mut self, _step: u64, bound: u64) -> Result<u64, Divergence> {
        Ok(below(&mut self.rng, bound))
    }
}

//! Randomness: one seed per run, forked into independent streams by label.
//!
//! Every stream is a `ChaCha8Rng` keyed by the run's seed with its ChaCha stream number set to a
//! hash of the label, so a draw added in one place (say the fault stream) never shifts the values
//! another place sees (the scheduler, scenario parameters, another task). Streams:
//! - `"scheduling"`: the random strategy's picks (owned by the strategy);
//! - any label passed to [`with_stream`], e.g. `"faults"`, `"params"`;
//! - one per task, `task/<id>`, behind [`random_u64`] and friends.
//!
//! Per-poll time jitter uses a counter-based hash of (seed, step) instead of a stream: it is
//! drawn every step, and a hash costs a few instructions where a stream draw costs tens.
//!
//! [`choose`] is different: the value comes from the run's strategy and is recorded in the
//! trace, so replay reproduces it and exhaustive strategies can enumerate it.

use std::ops::Range;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::context::{self, NO_TASK};
use crate::failure::FailureKind;
use crate::time::duration_nanos;

/// FNV-1a, 64 bits: a stable hash for labels and traces (identical on every platform).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(FNV_OFFSET, bytes)
}

/// The FNV-1a 64-bit offset basis: the hash of nothing.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a hash with more bytes.
#[inline]
pub fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SplitMix64's finaliser: a fast, well-mixed hash of one word.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream labelled `label` of the run seeded with `seed`.
///
/// Pure: the same (seed, label) gives the same stream in any process on any machine.
pub fn fork(seed: u64, label: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a(label.as_bytes()));
    rng
}

/// Uniform in `0..bound` by multiply-shift (Lemire), from 32 random bits. `bound` must be ≤ 2^32.
#[inline]
pub(crate) fn below_u32(bits: u32, bound: usize) -> usize {
    ((u64::from(bits) * bound as u64) >> 32) as usize
}

/// Uniform in `0..bound` for any non-zero `bound`, without modulo bias.
pub(crate) fn below(rng: &mut impl Rng, bound: u64) -> u64 {
    assert!(bound > 0, "kdst: cannot draw below zero");
    let zone = u64::MAX - (u64::MAX - bound + 1) % bound;
    loop {
        let value = rng.next_u64();
        if value <= zone {
            return value % bound;
        }
    }
}

/// The run's lazily created streams.
pub(crate) struct Streams {
    seed: u64,
    named: Vec<(String, ChaCha8Rng)>,
    tasks: Vec<Option<ChaCha8Rng>>,
}

impl Streams {
    pub const fn new() -> Self {
        Streams { seed: 0, named: Vec::new(), tasks: Vec::new() }
    }

    pub fn reset(&mut self, seed: u64) {
        self.seed = seed;
        self.named.clear();
        self.tasks.clear();
    }

    fn named(&mut self, label: &str) -> &mut ChaCha8Rng {
        let index = match self.named.iter().position(|(name, _)| name == label) {
            Some(index) => index,
            None => {
                self.named.push((label.to_string(), fork(self.seed, label)));
                self.named.len() - 1
            }
        };
        &mut self.named[index].1
    }

    fn task(&mut self, task: u32) -> &mut ChaCha8Rng {
        let index = task as usize;
        if self.tasks.len() <= index {
            self.tasks.resize_with(index + 1, || None);
        }
        let seed = self.seed;
        self.tasks[index].get_or_insert_with(|| fork(seed, &format!("task/{task}")))
    }
}

/// The seed of the running simulation: for setups that derive their configuration from it (a
/// swarm's parameters), so that the seed alone still names the run.
///
/// # Panics
/// Outside a simulation.
pub fn seed() -> u64 {
    context::with_state("seed", |state| state.streams.seed)
}

/// Runs `f` with the run's stream labelled `label` (created on first use).
///
/// # Panics
/// Outside a simulation.
pub fn with_stream<R>(label: &str, f: impl FnOnce(&mut ChaCha8Rng) -> R) -> R {
    crate::footprint::Resource::named("stream").part(label).write();
    context::with_state("with_stream", |state| f(state.streams.named(label)))
}

/// Runs `f` with the calling task's own stream (`task/<id>`; `setup` draws from `task/setup`).
fn with_task_stream<R>(what: &str, f: impl FnOnce(&mut ChaCha8Rng) -> R) -> R {
    context::with(what, |ctx| {
        let task = ctx.current.get();
        let mut state = ctx.state.borrow_mut();
        if task == NO_TASK {
            f(state.streams.named("task/setup"))
        } else {
            f(state.streams.task(task))
        }
    })
}

/// A random `u64` from the calling task's own stream (`task/<id>`; `setup` draws from `task/setup`).
///
/// # Panics
/// Outside a simulation.
pub fn random_u64() -> u64 {
    with_task_stream("random_u64", |rng| rng.next_u64())
}

/// A uniform value in `range` from the calling task's stream.
///
/// # Panics
/// If `range` is empty, or outside a simulation.
pub fn random_range(range: Range<u64>) -> u64 {
    assert!(range.start < range.end, "kdst: random_range on an empty range {range:?}");
    range.start + with_task_stream("random_range", |rng| below(rng, range.end - range.start))
}

/// True with probability `p` (clamped to `0..=1`), from the calling task's stream.
pub fn random_bool(p: f64) -> bool {
    let threshold = (p.clamp(0.0, 1.0) * (1u64 << 53) as f64) as u64;
    (random_u64() >> 11) < threshold
}

/// A uniform duration in `min..=max` (nanosecond resolution), from the calling task's stream.
pub fn random_duration(min: Duration, max: Duration) -> Duration {
    let (low, high) = (duration_nanos(min), duration_nanos(max));
    assert!(low <= high, "kdst: random_duration with min {min:?} > max {max:?}");
    if low == high {
        return min;
    }
    Duration::from_nanos(random_range(low..high.saturating_add(1)))
}

/// A nondeterministic choice in `0..bound`, made by the run's strategy and recorded in the trace.
///
/// Use it where the program under test has a real choice whose every outcome should be explored
/// (which fault to inject, which branch a racy read takes); replay reproduces it exactly.
///
/// # Panics
/// If `bound` is zero, or outside a simulation.
pub fn choose(bound: u64) -> u64 {
    assert!(bound > 0, "kdst: choose(0) has no possible outcome");
    context::with("choose", |ctx| {
        let step = ctx.step.get();
        let value = ask_strategy(ctx, step, |strategy| strategy.next_draw(step, bound));
        debug_assert!(value < bound, "strategy drew {value} for bound {bound}");
        ctx.state.borrow_mut().draws.push((step, value));
        value
    })
}

/// Asks the run's strategy for a draw at `step`; a strategy that cannot follow the program ends
/// the run with a nondeterminism failure and unwinds the calling task.
pub(crate) fn ask_strategy<R>(
    ctx: &context::Context,
    step: u64,
    ask: impl FnOnce(&mut dyn crate::Strategy) -> Result<R, crate::strategy::Divergence>,
) -> R {
    let answer = {
        let mut strategy = ctx.strategy.borrow_mut();
        let strategy = strategy.as_mut().expect("kdst internal: no strategy during a run");
        ask(strategy.as_mut())
    };
    match answer {
        Ok(value) => value,
        Err(divergence) => {
            let failure = context::failure_here(
                ctx,
                FailureKind::Nondeterminism,
                format!("nondeterminism at step {step}: {divergence}"),
                String::new(),
            );
            context::abort_with(ctx, failure)
        }
    }
}

//! # sim-core: kdst's deterministic simulator
//!
//! One thread, one seed, one schedule. A [`Simulation`] runs futures as tasks; at every step its
//! [`Strategy`] picks which runnable task to poll. Everything a task can observe comes from the
//! simulator: virtual time ([`now`], [`sleep`], [`timeout`], [`interval`]), randomness forked
//! from the seed ([`random_u64`], [`with_stream`], [`choose`]), and Go-style synchronisation
//! ([`sync`], [`GoMap`], [`SyncMap`]). So the same seed gives the same run, byte for byte, and a
//! failure found once replays forever.
//!
//! ```
//! use std::rc::Rc;
//! use sim_core::{FailureKind, GoMap, Outcome, Simulation, spawn};
//!
//! // Two goroutines write one Go map without a lock: on some schedules Go dies with
//! // "fatal error: concurrent map writes". Search seeds until one does.
//! let mut sim = Simulation::default();
//! let found = (0..1000).find_map(|seed| {
//!     let outcome = sim.run(seed, || {
//!         let map = GoMap::new("processed");
//!         for worker in 0..2 {
//!             let map = map.clone();
//!             spawn(format!("worker-{worker}"), async move {
//!                 map.insert(worker, "synced").await;
//!             });
//!         }
//!     });
//!     match outcome {
//!         Outcome::Failed(failure) => Some((seed, failure)),
//!         _ => None,
//!     }
//! });
//! let (seed, failure) = found.expect("a racing write within 1000 seeds");
//! assert_eq!(failure.kind, FailureKind::GoFatal);
//! assert_eq!(failure.message, "fatal error: concurrent map writes");
//!
//! // Replaying the seed reproduces the same failure at the same step.
//! let again = sim.run(seed, || {
//!     let map = GoMap::new("processed");
//!     for worker in 0..2 {
//!         let map = map.clone();
//!         spawn(format!("worker-{worker}"), async move {
//!             map.insert(worker, "synced").await;
//!         });
//!     }
//! });
//! assert_eq!(again.failure().map(|f| f.step), Some(failure.step));
//! ```
//!
//! ## What a run is
//! A step is: the strategy picks one runnable task; the executor polls it once; virtual time
//! advances by [`Config::poll_cost`] plus seeded jitter; due timers fire; oracles run. When no
//! task is runnable the clock jumps to the next timer. The run ends when every task spawned with
//! [`spawn`] has finished ([`spawn_daemon`] tasks do not count), an oracle fires, nothing can ever
//! run again (a deadlock), or a limit trips ([`Config`]); see [`Outcome`].
//!
//! ## Oracles
//! Built in: a panicking task ([`FailureKind::Panic`]), a Go fatal error
//! ([`FailureKind::GoFatal`]), a deadlock. Registered: [`always`] invariants after every step,
//! [`eventually`] liveness deadlines in virtual time.
//!
//! ## Traces and replay
//! [`Simulation::trace`] holds the last run: one packed record per step, draws, and the events
//! tasks emitted with [`event()`]. [`Trace::render`] is a stable text view, [`Trace::hash`]
//! identifies the run. [`Simulation::schedule`] writes the run as a [`Schedule`] file;
//! [`Replay`] runs it again, and says "nondeterminism at step N" where it no longer fits.
//!
//! ## Rules for code under test
//! No wall clock, no OS threads, no OS randomness, no `HashMap` iteration: use this crate's time,
//! tasks and random streams, and `BTreeMap`. Share state between tasks with `Rc<RefCell<_>>` or
//! the sync primitives; a `RefCell` borrow is never held across an `.await`.

mod check;
mod config;
mod context;
mod executor;
mod explore;
/// Trace exports: Chrome trace event JSON (opens in Perfetto) and Mermaid sequence diagrams.
pub mod export;
mod failure;
pub mod footprint;
mod gomap;
mod oracle;
mod perturb;
mod process;
pub mod race;
mod regressions;
mod rng;
pub mod schedule;
mod shrink;
pub mod strategy;
pub mod sync;
mod syncmap;
mod systematic;
mod task;
mod time;
mod trace;

pub use check::{Check, CheckReport, parse_partition, trace_difference};
pub use config::Config;
pub use executor::{Simulation, in_simulation};
pub use explore::{Ended, ExploreSummary, Explorer, FoundFailure, Progress, Systematic, Verdict};
pub use failure::{Failure, FailureKind, Outcome, fail};
pub use gomap::{CONCURRENT_ITERATION_WRITE, CONCURRENT_READ_WRITE, CONCURRENT_WRITES, GoMap};
pub use oracle::{always, eventually};
pub use perturb::{Perturbations, perturb, perturbations_fired};
pub use process::{Crashed, Process, ProcessId, crash_current, is_crashing, spawn_daemon_outside};
pub use race::Races;
pub use rng::{
    choose, fnv1a, fork, mix64, random_bool, random_duration, random_range, random_u64, seed,
    with_stream,
};
pub use schedule::Schedule;
pub use shrink::{ShrinkError, Shrunk, shrink};
pub use strategy::{
    Dfs, DfsReport, Pct, Portfolio, Random, Replay, ReplayMode, Strategy, StrategyError,
    StrategySpec,
};
pub use syncmap::SyncMap;
pub use task::{
    Aborted, Frame, JoinHandle, JoinSet, TaskId, YieldNow, current, enter, frames, spawn,
    spawn_daemon, stop, task_name, yield_now,
};
pub use time::{
    Elapsed, IdleHook, Interval, SimTime, Sleep, Timeout, interval, now, on_idle, sleep,
    sleep_until, timeout,
};
pub use trace::{Event, EventKind, StepRecord, Trace, event};

/// The rand_chacha generator behind every stream, re-exported for [`with_stream`] users.
pub use rand_chacha::ChaCha8Rng;
/// rand_core's trait, for drawing from a [`ChaCha8Rng`].
pub use rand_core::Rng as RngCore;

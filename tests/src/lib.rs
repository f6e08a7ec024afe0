//! Shared helpers for kdst's integration tests (the tests live in `tests/it/`).

use std::time::Duration;

use std::rc::Rc;

use sim_core::sync::Mutex;
use sim_core::{Failure, FailureKind, GoMap, Outcome, SimTime, Simulation, enter, spawn};

/// Two goroutines insert into one Go map without a lock, each behind two frames
/// (`HandleSection`, `processed.Insert`): a crash where the writes overlap, a race wherever
/// both run.
pub fn two_writers() {
    let map: GoMap<String, u32> = GoMap::new("processed");
    for worker in 0..2u32 {
        let map = map.clone();
        spawn(format!("sync-{worker}"), async move {
            let _outer = enter("HandleSection");
            let _inner = enter("processed.Insert");
            map.insert(format!("object-{worker}"), worker).await;
        });
    }
}

/// Three workers write, read and range over one Go map, every access under one mutex: no
/// schedule crashes and none races.
pub fn guarded_map() {
    let map: GoMap<u32, u32> = GoMap::new("guarded");
    let lock = Rc::new(Mutex::named("mu", ()));
    for worker in 0..3u32 {
        let (map, lock) = (map.clone(), lock.clone());
        spawn(format!("worker-{worker}"), async move {
            for key in 0..2 {
                let _held = lock.lock().await;
                map.insert(worker * 10 + key, key).await;
                map.get(&(worker * 10)).await;
                map.range(|_, _| true).await;
                let _ = map.len();
            }
        });
    }
}

/// Runs `setup` under seeds `0..seeds` and returns the first failing seed with its outcome.
pub fn first_failure(sim: &mut Simulation, seeds: u64, setup: impl Fn()) -> Option<(u64, Outcome)> {
    (0..seeds).find_map(|seed| {
        let outcome = sim.run(seed, &setup);
        (outcome != Outcome::Completed).then_some((seed, outcome))
    })
}

/// Runs `setup` under seeds `0..seeds`; panics with the seed and outcome of any run that did not
/// complete.
pub fn assert_all_complete(sim: &mut Simulation, seeds: u64, setup: impl Fn()) {
    if let Some((seed, outcome)) = first_failure(sim, seeds, setup) {
        panic!("seed {seed} did not complete: {outcome}");
    }
}

/// The failure of `outcome`, which must be `Failed` with `kind`.
pub fn failed(outcome: Outcome, kind: FailureKind) -> Failure {
    match outcome {
        Outcome::Failed(failure) if failure.kind == kind => failure,
        other => panic!("expected a {kind} failure, got: {other}"),
    }
}

/// The time `since_start` after the start of the run.
pub fn at(since_start: Duration) -> SimTime {
    SimTime::ZERO + since_start
}

/// The failing seeds among `0..seeds` of a registered scenario's `variant`, with their
/// failures; a tripped limit panics (a limit is never a verdict).
pub fn scenario_failures(
    name: &str,
    variant: &str,
    params: &scenarios::Params,
    seeds: u64,
) -> Vec<(u64, Failure)> {
    let scenario = scenarios::find(name).unwrap_or_else(|| panic!("{name} is registered"));
    let mut sim = Simulation::default();
    let mut found = Vec::new();
    for seed in 0..seeds {
        match scenarios::run(&mut sim, scenario.as_ref(), variant, params, seed) {
            Outcome::Completed => {}
            Outcome::Failed(failure) => found.push((seed, failure)),
            Outcome::LimitReached(limit) => panic!("{name} {variant} seed {seed}: {limit}"),
        }
    }
    found
}

//! Bounded DFS: it runs exactly the schedules within its preemption bound (counted against
//! closed forms and a brute-force enumeration), finds bugs that need that many preemptions and no
//! bug that needs more, enumerates draws, is deterministic, and never calls a limit complete.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use sim_core::strategy::{Dfs, explore};
use sim_core::sync::Mutex;
use sim_core::{
    FailureKind, GoMap, Outcome, Replay, Schedule, Simulation, Strategy, choose, random_u64, spawn,
    yield_now,
};

/// `tasks` tasks; task `i` yields `yields[i]` times, so it runs `yields[i] + 1` steps and never
/// blocks.
pub(crate) fn yielders(yields: &'static [u32]) -> impl Fn() {
    move || {
        for (worker, &count) in yields.iter().enumerate() {
            spawn(format!("worker-{worker}"), async move {
                for _ in 0..count {
                    yield_now().await;
                }
            });
        }
    }
}

/// Drives a `Dfs` by hand to completion; returns the schedules and each run's trace hash.
fn run_to_completion(bound: u32, setup: impl Fn()) -> (Dfs, Vec<u64>) {
    let dfs = Dfs::new(bound);
    let mut sim = Simulation::default().with_strategy(dfs.clone());
    let mut hashes = Vec::new();
    while !dfs.is_complete() {
        let outcome = sim.run(0, &setup);
        dfs.record_outcome(&outcome);
        assert_eq!(outcome, Outcome::Completed, "schedule {}", hashes.len());
        hashes.push(sim.trace().hash());
        assert!(hashes.len() < 100_000, "runaway search");
    }
    (dfs, hashes)
}

/// The number of interleavings of tasks with `steps[i]` steps each (none blocks) with at most
/// `bound` preemptions, by enumeration: switching away from a task with steps left costs 1.
fn brute_force(steps: &[u32], bound: u32) -> u64 {
    fn go(left: &mut Vec<u32>, current: Option<usize>, used: u32, bound: u32) -> u64 {
        if left.iter().all(|&n| n == 0) {
            return 1;
        }
        let mut total = 0;
        for task in 0..left.len() {
            if left[task] == 0 {
                continue;
            }
            let cost = u32::from(current.is_some_and(|c| c != task && left[c] > 0));
            if used + cost > bound {
                continue;
            }
            left[task] -= 1;
            total += go(left, Some(task), used + cost, bound);
            left[task] += 1;
        }
        total
    }
    go(&mut steps.to_vec(), None, 0, bound)
}

fn binomial(n: u64, k: u64) -> u64 {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

#[test]
fn two_tasks_run_exactly_the_schedules_within_the_bound() {
    // Two tasks of n = k + 1 steps each. A schedule is a word over {A, B} with r runs; every
    // switch is a preemption except the last (into the final run, after the other task
    // finished), so it has r - 2 preemptions. Words with r runs: r = 2: 2; r = 3: 2(n-1);
    // r = 4: 2(n-1)^2. Hence B=0: 2, B=1: 2 + 2k, B=2: 2 + 2k + 2k^2.
    for (yields, expected) in [(&[2u32, 2][..], [2u64, 6, 14]), (&[3, 3][..], [2, 8, 26])] {
        let k = u64::from(yields[0]);
        assert_eq!(expected, [2, 2 + 2 * k, 2 + 2 * k + 2 * k * k]);
        for (bound, &count) in expected.iter().enumerate() {
            let bound = bound as u32;
            let steps: Vec<u32> = yields.iter().map(|y| y + 1).collect();
            assert_eq!(brute_force(&steps, bound), count);
            let yields: &'static [u32] = if k == 2 { &[2, 2] } else { &[3, 3] };
            let (dfs, hashes) = run_to_completion(bound, yielders(yields));
            assert_eq!(dfs.schedules(), count, "k={k} B={bound}");
            assert_eq!(hashes.len() as u64, count);
            assert_eq!(
                dfs.summary(),
                format!("all {count} schedules within {bound} preemptions explored, no failure")
            );
        }
    }
}

#[test]
fn a_bound_past_the_longest_schedule_runs_every_interleaving() {
    // Two tasks of 3 steps: at most 4 preemptions (6 runs), so B=4 runs all C(6,3) = 20
    // interleavings, each once (distinct traces).
    let (dfs, mut hashes) = run_to_completion(4, yielders(&[2, 2]));
    assert_eq!(dfs.schedules(), binomial(6, 3));
    assert_eq!(dfs.schedules(), 20);
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 20, "every schedule is a different run");
    assert_eq!(run_to_completion(3, yielders(&[2, 2])).0.schedules(), 18);
}

#[test]
fn three_tasks_run_exactly_the_schedules_within_the_bound() {
    // Three tasks of 2 steps (one yield each). B=0: each task runs to the end once started: 3! =
    // 6. Exactly 1 preemption: one task X is split into blocks X1 < X2, not adjacent, among the
    // blocks X1, X2, Y, Z: 3 choices of X * (4!/2 - 3!) = 3 * 6 = 18, so B=1: 24. Exactly 2:
    // two split tasks, 5!/4 - 2 * 4!/2 + 3! = 12 arrangements per pair, 3 pairs = 36, so B=2: 60.
    // All three split needs 3: B=3 runs all 6!/2^3 = 90 interleavings.
    let expected = [6u64, 24, 60, 90];
    for (bound, &count) in expected.iter().enumerate() {
        let bound = bound as u32;
        assert_eq!(brute_force(&[2, 2, 2], bound), count);
        let (dfs, _) = run_to_completion(bound, yielders(&[1, 1, 1]));
        assert_eq!(dfs.schedules(), count, "B={bound}");
    }
    // Longer tasks, against the enumeration only: 3 tasks of 3 steps.
    for (bound, count) in [(0u32, 6u64), (1, 42), (2, 192)] {
        assert_eq!(brute_force(&[3, 3, 3], bound), count);
        let (dfs, _) = run_to_completion(bound, yielders(&[2, 2, 2]));
        assert_eq!(dfs.schedules(), count, "B={bound}");
    }
    // Unequal tasks: 1, 2 and 3 steps.
    for bound in 0..4 {
        let (dfs, _) = run_to_completion(bound, yielders(&[0, 1, 2]));
        assert_eq!(dfs.schedules(), brute_force(&[1, 2, 3], bound), "B={bound}");
    }
}

/// A bug that needs exactly one preemption: the writer marks itself inside a critical section,
/// yields, and leaves; the reader panics if it sees the mark.
fn one_preemption_bug() {
    let inside = Rc::new(Cell::new(false));
    let writer = inside.clone();
    spawn("writer", async move {
        writer.set(true);
        yield_now().await;
        writer.set(false);
    });
    spawn("reader", async move {
        assert!(!inside.get(), "reader saw the writer inside its critical section");
    });
}

#[test]
fn a_one_preemption_bug_is_found_with_bound_one_and_not_with_bound_zero() {
    let mut sim = Simulation::default();
    let report = explore(&mut sim, 0, 1000, one_preemption_bug);
    assert_eq!(report.first_failure, None);
    assert!(report.complete && !report.limit_reached);
    assert_eq!(report.schedules, 2, "writer first or reader first");
    assert_eq!(report.summary, "all 2 schedules within 0 preemptions explored, no failure");

    let report = explore(&mut sim, 1, 1000, one_preemption_bug);
    let (index, outcome) = report.first_failure.clone().expect("found with one preemption");
    let failure = outcome.failure().expect("failure");
    assert_eq!(failure.kind, FailureKind::Panic);
    assert_eq!(failure.message, "reader saw the writer inside its critical section");
    assert_eq!(sim.trace().preemptions(), 1);
    // Schedule 0 runs the writer to the end, then the reader; schedule 1 preempts the writer.
    assert_eq!(index, 1);
    assert_eq!(report.schedules, 2);
    assert!(!report.complete);
    assert!(
        report
            .summary
            .starts_with("failure in schedule 1 (after 2 schedules within 1 preemptions)"),
        "{}",
        report.summary
    );
}

fn racing_inserts() {
    let map: GoMap<u32, &'static str> = GoMap::new("processed");
    for worker in 0..2 {
        let map = map.clone();
        spawn(format!("worker-{worker}"), async move {
            map.insert(worker, "synced").await;
        });
    }
}

fn locked_inserts(workers: u32) -> impl Fn() {
    move || {
        let map: GoMap<u32, &'static str> = GoMap::new("processed");
        let lock = Rc::new(Mutex::new(()));
        for worker in 0..workers {
            let (map, lock) = (map.clone(), lock.clone());
            spawn(format!("worker-{worker}"), async move {
                let _guard = lock.lock().await;
                map.insert(worker, "synced").await;
            });
        }
    }
}

/// The schedules of `locked_inserts(workers)` within `bound` preemptions, by enumerating a model
/// of it. A worker's polls: (0) `lock`'s yield; (1) acquire, or block if the lock is held (that
/// poll is a step; the worker is not runnable until the holder releases, which wakes every
/// waiter), then on into the write's first yield; (2) set the writing flag, yield; (3) write,
/// release, finish. Switching away from a worker
/// that is still runnable costs 1; after it blocked or finished it is free.
fn locked_model(workers: usize, bound: u32) -> u64 {
    struct Model {
        pc: Vec<u8>,
        blocked: Vec<bool>,
        holder: Option<usize>,
    }
    fn go(model: &mut Model, current: Option<usize>, used: u32, bound: u32) -> u64 {
        let runnable: Vec<usize> =
            (0..model.pc.len()).filter(|&t| model.pc[t] < 4 && !model.blocked[t]).collect();
        if runnable.is_empty() {
            assert!(model.pc.iter().all(|&pc| pc == 4), "the model deadlocked");
            return 1;
        }
        let mut total = 0;
        for &task in &runnable {
            let cost = u32::from(current.is_some_and(|c| c != task && runnable.contains(&c)));
            if used + cost > bound {
                continue;
            }
            let (pc, blocked, holder) = (model.pc.clone(), model.blocked.clone(), model.holder);
            let mut next = Some(task);
            match model.pc[task] {
                1 if model.holder.is_some() => {
                    model.blocked[task] = true;
                    next = None;
                }
                1 => {
                    model.holder = Some(task);
                    model.pc[task] = 2;
                }
                3 => {
                    model.pc[task] = 4;
                    model.holder = None;
                    model.blocked.iter_mut().for_each(|b| *b = false);
                    next = None;
                }
                _ => model.pc[task] += 1,
            }
            total += go(model, next, used + cost, bound);
            (model.pc, model.blocked, model.holder) = (pc, blocked, holder);
        }
        total
    }
    let mut model = Model { pc: vec![0; workers], blocked: vec![false; workers], holder: None };
    go(&mut model, None, 0, bound)
}

#[test]
fn a_go_map_race_is_found_and_the_locked_program_is_clean() {
    let mut sim = Simulation::default();
    let clean = explore(&mut sim, 0, 1000, racing_inserts);
    assert_eq!(clean.first_failure, None, "writes overlap only with a preemption");
    assert!(clean.complete);

    for bound in 1..=2 {
        let report = explore(&mut sim, bound, 1000, racing_inserts);
        let (index, outcome) = report.first_failure.expect("race found");
        // Schedule 1 preempts worker 0 at its last choice point, inside its write.
        assert_eq!(index, 1);
        assert_eq!(sim.trace().preemptions(), 1);
        let failure = outcome.failure().expect("failure").clone();
        assert_eq!(failure.kind, FailureKind::GoFatal);
        assert_eq!(failure.message, sim_core::CONCURRENT_WRITES);
    }

    // Two workers: B=0: 2 (one worker, then the other). Exactly one preemption: the first worker
    // X is preempted after its 1st, 2nd or 3rd step; then Y runs until it finishes (X did not
    // hold the lock) or blocks on it (X did), and the rest is forced: 3 per X, so B=1: 8. The
    // model gives B=2: 18 and B=3: 24, every schedule (no schedule needs 4).
    for (bound, count) in [(0u32, 2u64), (1, 8), (2, 18), (3, 24), (4, 24)] {
        assert_eq!(locked_model(2, bound), count);
        let report = explore(&mut sim, bound, 100_000, locked_inserts(2));
        assert_eq!(report.first_failure, None, "B={bound}: {}", report.summary);
        assert!(report.complete && !report.limit_reached);
        assert_eq!(
            report.summary,
            format!("all {count} schedules within {bound} preemptions explored, no failure")
        );
    }
    // Three workers, against the model: 6, 84, 480.
    for (bound, count) in [(0u32, 6u64), (1, 84), (2, 480)] {
        assert_eq!(locked_model(3, bound), count);
        let report = explore(&mut sim, bound, 100_000, locked_inserts(3));
        assert_eq!(report.first_failure, None, "B={bound}: {}", report.summary);
        assert_eq!(report.schedules, count, "B={bound}");
    }
}

#[test]
fn draws_are_choice_points() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let record = seen.clone();
    let mut sim = Simulation::default();
    let report = explore(&mut sim, 0, 100, move || {
        let record = record.clone();
        spawn("drawer", async move {
            record.borrow_mut().push(choose(3));
        });
    });
    assert_eq!(report.summary, "all 3 schedules within 0 preemptions explored, no failure");
    assert_eq!(*seen.borrow(), [0, 1, 2]);

    // A draw in setup and two one-yield tasks: 3 values times 2 orders without preemption.
    let pairs = Rc::new(RefCell::new(Vec::new()));
    let record = pairs.clone();
    let report = explore(&mut sim, 0, 100, move || {
        let value = choose(3);
        for worker in 0..2u32 {
            let record = record.clone();
            spawn(format!("worker-{worker}"), async move {
                yield_now().await;
                record.borrow_mut().push((value, worker));
            });
        }
    });
    assert_eq!(report.schedules, 6);
    let firsts: Vec<(u64, u32)> = pairs.borrow().chunks(2).map(|pair| pair[0]).collect();
    assert_eq!(firsts, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
}

#[test]
fn the_search_is_deterministic_and_failures_replay() {
    let first = run_to_completion(2, yielders(&[1, 2, 1])).1;
    let second = run_to_completion(2, yielders(&[1, 2, 1])).1;
    assert_eq!(first, second, "same schedules in the same order");

    let mut sim = Simulation::default();
    let report = explore(&mut sim, 2, 1000, racing_inserts);
    let (index, outcome) = report.first_failure.expect("race found");
    let hash = sim.trace().hash();
    let schedule = sim.schedule("racing_inserts", &[("bound".into(), "2".into())]);
    assert_eq!(schedule.strategy, "dfs");

    let mut again = Simulation::default();
    let report_again = explore(&mut again, 2, 1000, racing_inserts);
    assert_eq!(report_again.first_failure, Some((index, outcome.clone())));
    assert_eq!(again.trace().hash(), hash);

    let decoded = Schedule::decode(&schedule.encode()).expect("decode");
    let mut replay = Simulation::default().with_strategy(Replay::new(&decoded));
    assert_eq!(replay.run(decoded.seed, racing_inserts), outcome);
    assert_eq!(replay.trace().hash(), hash);
}

#[test]
fn a_limit_is_reported_as_a_limit() {
    let mut sim = Simulation::default();
    let report = explore(&mut sim, 4, 5, yielders(&[2, 2]));
    assert_eq!(report.schedules, 5);
    assert!(!report.complete && report.limit_reached);
    assert_eq!(report.first_failure, None);
    assert_eq!(
        report.summary,
        "explored 5 of more than 5 schedules within 4 preemptions (limit reached), no failure"
    );

    // Exactly at the count, the search completes and is not a limit.
    let report = explore(&mut sim, 4, 20, yielders(&[2, 2]));
    assert!(report.complete && !report.limit_reached);
    assert_eq!(report.summary, "all 20 schedules within 4 preemptions explored, no failure");

    // Driven by hand, unrecorded outcomes are never called "no failure".
    let dfs = Dfs::with_limit(1, 2);
    let mut sim = Simulation::default().with_strategy(dfs.clone());
    assert_eq!(sim.strategy_name(), "dfs");
    while !dfs.is_complete() && !dfs.limit_reached() {
        sim.run(0, yielders(&[1, 1]));
    }
    assert!(!dfs.is_complete());
    assert_eq!(
        dfs.summary(),
        "explored 2 of more than 2 schedules within 1 preemptions (limit reached); the outcomes \
         of 2 of them were not recorded (Dfs::record_outcome)"
    );
}

#[test]
fn nondeterminism_stops_the_search_and_names_the_step() {
    // The program spawns one more task on each run: not a function of its schedule.
    let runs = Rc::new(Cell::new(0u32));
    let counter = runs.clone();
    let mut sim = Simulation::default();
    let report = explore(&mut sim, 1, 100, move || {
        counter.set(counter.get() + 1);
        for worker in 0..=counter.get() {
            spawn(format!("worker-{worker}"), async {
                yield_now().await;
            });
        }
    });
    let (index, outcome) = report.first_failure.expect("divergence");
    assert_eq!(index, 1);
    let failure = outcome.failure().expect("failure");
    assert_eq!(failure.kind, FailureKind::Nondeterminism);
    assert!(failure.message.starts_with("nondeterminism at step 0: "), "{}", failure.message);
    assert!(failure.message.contains("a pick among [0, 1] (current none)"), "{}", failure.message);
    assert!(
        report.summary.starts_with("the search stopped after 2 schedules"),
        "{}",
        report.summary
    );
    assert!(!report.complete);
}

#[test]
fn the_seed_is_ignored_but_a_changing_seed_is_named() {
    assert_eq!(Dfs::new(0).name(), "dfs");
    // Seeds do not steer the search: a program without time or streams explores the same.
    let dfs = Dfs::new(1);
    let mut sim = Simulation::default().with_strategy(dfs.clone());
    let mut seed = 0;
    while !dfs.is_complete() {
        seed += 1;
        assert_eq!(sim.run(seed, yielders(&[1, 1])), Outcome::Completed);
    }
    assert_eq!(dfs.schedules(), 4);
    // A completed search starts over on its next run.
    sim.run(0, yielders(&[1, 1]));
    assert_eq!(dfs.schedules(), 1);
    assert!(!dfs.is_complete());

    // A program that reads the seed's streams changes with the seed: the divergence says so.
    let dfs = Dfs::new(2);
    let mut sim = Simulation::default().with_strategy(dfs.clone());
    let mut found = None;
    for seed in 0..50 {
        let outcome = sim.run(seed, || {
            for worker in 0..2 + random_u64() % 3 {
                spawn(format!("worker-{worker}"), async {
                    yield_now().await;
                    yield_now().await;
                });
            }
        });
        if outcome != Outcome::Completed {
            found = Some(outcome);
            break;
        }
    }
    let failure = found.expect("a divergence").failure().cloned().expect("failure");
    assert_eq!(failure.kind, FailureKind::Nondeterminism);
    assert!(failure.message.contains("every run of a search must use the same seed"), "{failure}");
    assert!(dfs.stopped().is_some());
}

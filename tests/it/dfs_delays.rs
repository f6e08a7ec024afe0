//! Delay-bounded DFS (Emmi, Qadeer and Rakamarić, POPL 2011): it runs exactly the schedules
//! within its delay bound (a closed form and a brute-force enumeration agree with it), a delay
//! bound never explores more than the preemption bound of the same size, and on the scenarios it
//! completes on the fixed variants and finds the crash of the buggy ones at small parameters.

use sim_core::strategy::{BoundKind, Dfs, explore_with};
use sim_core::{FailureKind, Outcome, Simulation};

use crate::dfs::yielders;

fn count(kind: BoundKind, bound: u32, yields: &'static [u32]) -> (u64, bool) {
    let mut sim = Simulation::default();
    let report = explore_with(&mut sim, Dfs::bounded(kind, bound, 1_000_000), yielders(yields));
    assert_eq!(report.first_failure, None);
    (report.schedules, report.complete)
}

/// Interleavings of tasks with `steps[i]` steps each within `bound` delays: the scheduler keeps
/// the current task, else takes the next id after the last task run, round-robin; taking the
/// `r`-th task of that order costs `r`.
fn brute_force(steps: &[u32], bound: u32) -> u64 {
    fn go(
        left: &mut Vec<u32>,
        current: Option<usize>,
        last: Option<usize>,
        used: u32,
        bound: u32,
    ) -> u64 {
        let runnable: Vec<usize> = (0..left.len()).filter(|&t| left[t] > 0).collect();
        if runnable.is_empty() {
            return 1;
        }
        let mut order: Vec<usize> = current.into_iter().filter(|&c| left[c] > 0).collect();
        let start = last.map_or(0, |l| l + 1);
        let n = left.len();
        for offset in 0..n {
            let task = (start + offset) % n;
            if left[task] > 0 && !order.contains(&task) {
                order.push(task);
            }
        }
        let mut total = 0;
        for (rank, &task) in order.iter().enumerate() {
            let cost = used + rank as u32;
            if cost > bound {
                break;
            }
            left[task] -= 1;
            let next_current = (left[task] > 0).then_some(task);
            total += go(left, next_current, Some(task), cost, bound);
            left[task] += 1;
        }
        total
    }
    go(&mut steps.to_vec(), None, None, 0, bound)
}

#[test]
fn two_tasks_match_the_closed_form() {
    // Two tasks of k yields (k + 1 steps). 0 delays: one schedule. 1 delay: skip the first task
    // before any of its k + 1 steps. 2 delays: then skip the second before one of its steps
    // 1..=k. So 1, k + 2 and (k + 1)² + 1 schedules.
    for k in 0..5u64 {
        let yields: &'static [u32] = Box::leak(vec![k as u32; 2].into_boxed_slice());
        assert_eq!(count(BoundKind::Delays, 0, yields), (1, true), "k={k}");
        assert_eq!(count(BoundKind::Delays, 1, yields), (k + 2, true), "k={k}");
        assert_eq!(count(BoundKind::Delays, 2, yields), ((k + 1) * (k + 1) + 1, true), "k={k}");
    }
}

#[test]
fn uneven_tasks_match_brute_force() {
    let shapes: &[&'static [u32]] = &[&[1, 2], &[2, 0, 1], &[1, 1, 1], &[3, 1, 2], &[0, 0, 0, 2]];
    for &yields in shapes {
        let steps: Vec<u32> = yields.iter().map(|y| y + 1).collect();
        for bound in 0..=3 {
            let (schedules, complete) = count(BoundKind::Delays, bound, yields);
            assert!(complete);
            assert_eq!(schedules, brute_force(&steps, bound), "{yields:?} within {bound} delays");
        }
    }
}

#[test]
fn a_delay_bound_explores_no_more_than_the_same_preemption_bound() {
    for &yields in &[&[2u32, 2][..], &[1, 2, 1], &[3, 0, 2]] {
        let yields: &'static [u32] = Box::leak(yields.to_vec().into_boxed_slice());
        for bound in 0..=2 {
            let delays = count(BoundKind::Delays, bound, yields).0;
            let preemptions = count(BoundKind::Preemptions, bound, yields).0;
            assert!(delays <= preemptions, "{yields:?} B={bound}: {delays} > {preemptions}");
        }
    }
}

#[test]
fn the_summary_says_delays() {
    let mut sim = Simulation::default();
    let report =
        explore_with(&mut sim, Dfs::bounded(BoundKind::Delays, 2, u64::MAX), yielders(&[2, 2]));
    assert_eq!(report.kind, BoundKind::Delays);
    assert_eq!(report.summary, "all 10 schedules within 2 delays explored, no failure");
}

/// The scenarios at the small settings of the "must show": every API call and informer
/// delivery without latency, so only the schedule orders them (see `scenarios::API_LATENCY`).
pub(crate) fn small(name: &str) -> &'static [&'static str] {
    match name {
        "cert-manager-scheme-race" => &["controllers=1", "api-latency-us=0"],
        "capsule-replication-writes" => &[
            "objects=2",
            "tenants=1",
            "namespaces=1",
            "sections=1",
            "reconciles=1",
            "api-latency-us=0",
            "cache-lag-us=0",
        ],
        "submariner-logifchanged" => &[
            "submariner-images=1",
            "servicediscovery-images=1",
            "uninstall-ms=0",
            "api-latency-us=0",
            "cache-lag-us=0",
        ],
        other => panic!("no small settings for {other}"),
    }
}

fn search(name: &str, variant: &str, bound: u32) -> sim_core::DfsReport {
    let mut target = scenarios::Target::new(name, Some(variant)).expect("registered");
    target.set_params(small(name)).expect("valid params");
    let mut sim = Simulation::new(
        "dfs:0"
            .parse::<sim_core::strategy::StrategySpec>()
            .expect("known")
            .config(sim_core::Config::default()),
    );
    explore_with(&mut sim, Dfs::bounded(BoundKind::Delays, bound, 200_000), || target.setup())
}

pub(crate) const SCENARIOS: [&str; 3] =
    ["cert-manager-scheme-race", "capsule-replication-writes", "submariner-logifchanged"];

#[test]
fn dfs_within_two_delays_completes_on_the_fixed_variants() {
    for name in SCENARIOS {
        let report = search(name, "fixed", 2);
        assert!(report.complete, "{name}: {}", report.summary);
        assert_eq!(report.first_failure, None, "{name}: {}", report.summary);
        assert!(report.schedules > 10, "{name}: {}", report.summary);
        assert!(report.summary.ends_with("within 2 delays explored, no failure"));
        // The same search twice is the same search.
        assert_eq!(search(name, "fixed", 2).schedules, report.schedules, "{name}");
    }
}

#[test]
fn dfs_within_two_delays_finds_the_crash_of_the_buggy_variants() {
    for name in SCENARIOS {
        let report = search(name, "buggy", 2);
        let Some((index, Outcome::Failed(failure))) = &report.first_failure else {
            panic!("{name}: {}", report.summary);
        };
        assert_eq!(failure.kind, FailureKind::GoFatal, "{name}: {failure}");
        assert!(failure.message.starts_with("fatal error: concurrent map"), "{name}: {failure}");
        assert!(*index < report.schedules, "{name}");
    }
}

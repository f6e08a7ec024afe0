//! W2 (Go map crash) and W3 (check-then-act recreate): schedules and steps to the first failure,
//! per tool and strategy, over trials seeded 1..=N.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shuttle::scheduler::{PctScheduler, RandomScheduler};
use sim_core::{Config, Explorer, FailureKind, Races};

/// How a race report's message starts.
const RACE: &str = "WARNING: DATA RACE";

use crate::machine::{payload_text, quietly};
use crate::stats::{Spread, Table, thousands};
use crate::tools::{Counting, LoomBounds, loom_check, loom_executions, shuttle_run};
use crate::workloads::{self, MAP_CRASH, RECREATED, take_steps};

/// A bug-finding workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// W2: three writers of a Go map, three keys each.
    GoMap,
    /// W3: delete, `N` units of work, check; against `N` units of work, check, recreate.
    Recreate(usize),
}

impl Workload {
    /// The text the failure's message contains.
    fn expect(self) -> &'static str {
        match self {
            Workload::GoMap => MAP_CRASH,
            Workload::Recreate(_) => RECREATED,
        }
    }

    fn kdst(self) -> impl Fn() + Copy {
        move || match self {
            Workload::GoMap => workloads::kdst::go_map(),
            Workload::Recreate(work) => workloads::kdst::recreate(work),
        }
    }

    fn shuttle(self) -> impl Fn() + Send + Sync + 'static {
        move || match self {
            Workload::GoMap => workloads::shuttle::go_map(),
            Workload::Recreate(work) => workloads::shuttle::recreate(work),
        }
    }

    fn loom(self) -> impl Fn() + Send + Sync + 'static {
        move || match self {
            Workload::GoMap => workloads::loom::go_map(),
            Workload::Recreate(work) => workloads::loom::recreate(work),
        }
    }
}

impl Workload {
    /// `w2`, `w3:N`: how a child process is told the workload.
    pub fn code(self) -> String {
        match self {
            Workload::GoMap => "w2".to_string(),
            Workload::Recreate(work) => format!("w3:{work}"),
        }
    }

    /// Parses [`Workload::code`].
    pub fn parse(code: &str) -> Option<Workload> {
        match code.split_once(':') {
            None if code == "w2" => Some(Workload::GoMap),
            Some(("w3", work)) => work.parse().ok().map(Workload::Recreate),
            _ => None,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::GoMap => write!(f, "W2 Go-map crash"),
            Workload::Recreate(work) => write!(f, "W3 check-then-act recreate, N = {work}"),
        }
    }
}

/// One search from one seed to the first failure (or to the cap).
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    /// Schedules run, the failing one included (the cap when none failed).
    pub schedules: u64,
    /// Steps over those schedules.
    pub steps: u64,
    /// Whether a schedule failed.
    pub found: bool,
    /// Wall time of the search.
    pub wall: Duration,
}

/// A tool and strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Searcher {
    /// kdst's `Explorer` with this strategy name (the portfolio with its race detector on).
    Kdst(&'static str),
    /// kdst's `Explorer` with this strategy name and the race detector off: the crash oracle
    /// alone.
    KdstCrashOnly(&'static str),
    /// shuttle's random scheduler.
    ShuttleRandom,
    /// shuttle's PCT scheduler, depth 3.
    ShuttlePct3,
    /// loom's DPOR with this preemption bound.
    Loom(Option<usize>),
}

impl Searcher {
    /// Every searcher, kdst's default first.
    pub const ALL: [Searcher; 8] = [
        Searcher::Kdst("portfolio"),
        Searcher::KdstCrashOnly("portfolio"),
        Searcher::Kdst("random"),
        Searcher::Kdst("pct:3"),
        Searcher::ShuttleRandom,
        Searcher::ShuttlePct3,
        Searcher::Loom(None),
        Searcher::Loom(Some(2)),
    ];

    fn is_peer(self) -> bool {
        !matches!(self, Searcher::Kdst(_) | Searcher::KdstCrashOnly(_))
    }

    /// Whether its search does not depend on a seed.
    fn deterministic(self) -> bool {
        matches!(self, Searcher::Loom(_))
    }

    fn label(self) -> String {
        match self {
            Searcher::Kdst("portfolio") => "kdst portfolio (default)".to_string(),
            Searcher::Kdst(name) => format!("kdst {name}"),
            Searcher::KdstCrashOnly(name) => format!("kdst {name}, race detector off"),
            Searcher::ShuttleRandom => "shuttle random".to_string(),
            Searcher::ShuttlePct3 => "shuttle PCT(3)".to_string(),
            Searcher::Loom(None) => "loom DPOR (exhaustive), no preemption bound".to_string(),
            Searcher::Loom(Some(bound)) => format!("loom DPOR, preemption bound {bound}"),
        }
    }

    /// Searches `workload` from seed `trial` for at most `cap` schedules.
    fn search(self, workload: Workload, trial: u64, cap: u64) -> Trial {
        let started = Instant::now();
        let (schedules, steps, failure) = match self {
            Searcher::Kdst(strategy) => kdst_search(strategy, Races::Auto, workload, trial, cap),
            Searcher::KdstCrashOnly(strategy) => {
                kdst_search(strategy, Races::Off, workload, trial, cap)
            }
            Searcher::ShuttleRandom | Searcher::ShuttlePct3 => {
                let n = usize::try_from(cap).expect("fits");
                let pct = self == Searcher::ShuttlePct3;
                let test = workload.shuttle();
                take_steps();
                let (executions, failure) = if pct {
                    let (scheduler, counters) =
                        Counting::new(PctScheduler::new_from_seed(trial, 3, n));
                    let failure = catch(move || {
                        shuttle_run(scheduler, test);
                    });
                    (counters.executions.get(), failure)
                } else {
                    let (scheduler, counters) =
                        Counting::new(RandomScheduler::new_from_seed(trial, n));
                    let failure = catch(move || {
                        shuttle_run(scheduler, test);
                    });
                    (counters.executions.get(), failure)
                };
                (executions, take_steps(), failure)
            }
            Searcher::Loom(preemptions) => {
                let bounds = LoomBounds {
                    preemptions,
                    executions: Some(cap),
                    branches: LoomBounds::DEFAULT_BRANCHES,
                };
                let test = workload.loom();
                take_steps();
                let failure = catch(move || {
                    loom_check(bounds, test);
                });
                (loom_executions(), take_steps(), failure)
            }
        };
        if let Some(message) = &failure {
            assert!(
                message.contains(workload.expect()) || message.starts_with(RACE),
                "{}: {workload} failed otherwise than expected: {message}",
                self.label()
            );
        }
        Trial { schedules, steps, found: failure.is_some(), wall: started.elapsed() }
    }
}

/// Runs `f` quietly; returns the panic's message if it panicked.
fn catch(f: impl FnOnce()) -> Option<String> {
    quietly(|| panic::catch_unwind(AssertUnwindSafe(f)))
        .err()
        .map(|payload| payload_text(&*payload))
}

thread_local! {
    /// The explorer every kdst search clones: `Explorer::new` asks the OS for the available
    /// parallelism (about 30 µs on Linux, reading cgroup files), which would otherwise be most
    /// of the wall time of a search that fails at its first schedule.
    static BASE: Explorer = Explorer::new().jobs(1).stop_at_first(true);
}

/// A kdst search: the seeds `trial · 2^32 ..` in order, on the calling thread, stopping at the
/// first failure; returns (schedules, steps, failure message).
fn kdst_search(
    strategy: &str,
    races: Races,
    workload: Workload,
    trial: u64,
    cap: u64,
) -> (u64, u64, Option<String>) {
    let base = trial << 32;
    let setup = workload.kdst();
    let summary = quietly(|| {
        BASE.with(Explorer::clone)
            .seeds(base..base + cap)
            .config(Config::default().with_races(races))
            .strategy(strategy.parse().expect("a known strategy"))
            .run(|sim, seed| sim.run(seed, setup))
    });
    assert!(summary.limits.is_empty(), "kdst {strategy}: {workload} reached a limit: {summary}");
    let failure = summary.failures.first().map(|found| {
        let expected = match workload {
            Workload::GoMap if found.failure.message.starts_with(RACE) => FailureKind::DataRace,
            Workload::GoMap => FailureKind::GoFatal,
            Workload::Recreate(_) => FailureKind::Panic,
        };
        assert_eq!(found.failure.kind, expected, "kdst {strategy}: {workload}: {found}");
        found.failure.message.clone()
    });
    (summary.schedules, summary.steps, failure)
}

/// The trials of one searcher.
#[derive(Clone, Debug)]
pub struct Line {
    /// Who searched.
    pub searcher: Searcher,
    /// One per seed (one for a deterministic searcher).
    pub trials: Vec<Trial>,
    /// The cap on schedules per trial.
    pub cap: u64,
}

impl Line {
    fn found(&self) -> usize {
        self.trials.iter().filter(|trial| trial.found).count()
    }

    /// Schedules to the first failure (censored at the cap).
    pub fn schedules(&self) -> Spread {
        Spread::of(&self.trials.iter().map(|trial| trial.schedules as f64).collect::<Vec<_>>())
    }

    fn steps(&self) -> Spread {
        Spread::of(&self.trials.iter().map(|trial| trial.steps as f64).collect::<Vec<_>>())
    }

    fn wall(&self) -> Spread {
        Spread::of(&self.trials.iter().map(|trial| trial.wall.as_secs_f64()).collect::<Vec<_>>())
    }

    /// `min / median / max`, marking values at the cap of a search that found nothing as `≥`.
    fn show(&self, spread: Spread, cap: Option<f64>) -> String {
        let all_found = self.found() == self.trials.len();
        let one = |value: f64| {
            let text = if value.fract() == 0.0 { thousands(value) } else { format!("{value:.1}") };
            match cap {
                Some(cap) if !all_found && value >= cap => format!("≥{text}"),
                _ => text,
            }
        };
        format!("{} / {} / {}", one(spread.min), one(spread.median), one(spread.max))
    }
}

/// How kdst's default did against the best peer on one workload.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// kdst portfolio's median and max schedules to the first failure.
    pub kdst: (f64, f64),
    /// The best peer's median (and who) and the best peer's max (and who).
    pub best_median: (f64, String),
    /// The best peer's max, and who.
    pub best_max: (f64, String),
    /// Whether every kdst portfolio trial found the failure.
    pub kdst_found_all: bool,
}

impl Verdict {
    /// The verdict as one tab-separated line, for a parent process.
    fn encode(&self, workload: Workload) -> String {
        format!(
            "{VERDICT}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            workload.code(),
            self.kdst.0,
            self.kdst.1,
            self.best_median.0,
            self.best_median.1,
            self.best_max.0,
            self.best_max.1,
            self.kdst_found_all
        )
    }

    /// Parses [`Verdict::encode`]'s line.
    fn decode(line: &str) -> Option<(Workload, Verdict)> {
        let fields: Vec<&str> = line.strip_prefix(VERDICT)?.trim_start().split('\t').collect();
        let [code, kdst_median, kdst_max, median, median_who, max, max_who, found] =
            fields.as_slice()
        else {
            return None;
        };
        let verdict = Verdict {
            kdst: (kdst_median.parse().ok()?, kdst_max.parse().ok()?),
            best_median: (median.parse().ok()?, (*median_who).to_string()),
            best_max: (max.parse().ok()?, (*max_who).to_string()),
            kdst_found_all: found.parse().ok()?,
        };
        Some((Workload::parse(code)?, verdict))
    }

    /// Whether the target holds at the median.
    pub fn median_met(&self) -> bool {
        self.kdst_found_all && self.kdst.0 <= self.best_median.0
    }

    /// Whether the target holds at the maximum.
    pub fn max_met(&self) -> bool {
        self.kdst_found_all && self.kdst.1 <= self.best_max.0
    }
}

/// The command-line flag of the child process: `--child-races TRIALS CAP CODE...`.
pub const CHILD_FLAG: &str = "--child-races";

/// The prefix of a verdict line on the child's standard output.
const VERDICT: &str = "@verdict";

/// The child's main: runs each workload, printing its table and its verdict line.
pub fn child(trials: u64, cap: u64, codes: &[String]) {
    crate::install_hooks();
    for code in codes {
        let workload = Workload::parse(code).unwrap_or_else(|| panic!("unknown workload {code}"));
        let verdict = run(workload, trials, cap);
        println!("{}", verdict.encode(workload));
    }
}

/// Runs `workloads` in a child process of this binary, forwarding its tables; returns the
/// verdicts.
///
/// A child, because shuttle 0.9.9 writes a failure report to standard error at every failing
/// schedule (`test panicked in task …`, `failing seed: …`) whatever its configuration, and a
/// search panics by design hundreds of times: the child's standard error is discarded.
pub fn run_in_child(workloads: &[Workload], trials: u64, cap: u64) -> Vec<(Workload, Verdict)> {
    eprintln!("W2/W3 in a child process (shuttle's failure reports on its stderr are discarded)");
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut args = vec![CHILD_FLAG.to_string(), trials.to_string(), cap.to_string()];
    args.extend(workloads.iter().map(|workload| workload.code()));
    let output = std::process::Command::new(exe)
        .args(&args)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("the child starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child {args:?} failed after:\n{stdout}");
    let mut verdicts = Vec::new();
    for line in stdout.lines() {
        match Verdict::decode(line) {
            Some(verdict) => verdicts.push(verdict),
            None => println!("{line}"),
        }
    }
    verdicts
}

/// Runs `workload` under every searcher over seeds `1..=trials`; prints the table; returns the
/// verdict for the target.
pub fn run(workload: Workload, trials: u64, cap: u64) -> Verdict {
    eprintln!("{workload}");
    let mut lines = Vec::new();
    for searcher in Searcher::ALL {
        eprintln!("  {}", searcher.label());
        let seeds = if searcher.deterministic() { 1..=1 } else { 1..=trials };
        let trials = seeds.map(|trial| searcher.search(workload, trial, cap)).collect();
        lines.push(Line { searcher, trials, cap });
    }
    let mut table = Table::new(&[
        "tool, strategy",
        "failed / searches",
        "schedules to 1st failure: min / median / max",
        "steps to 1st failure: min / median / max",
        "wall to 1st failure, median",
    ]);
    for line in &lines {
        let searches = if line.searcher.deterministic() {
            format!("{} / 1 (deterministic)", line.found())
        } else {
            format!("{} / {}", line.found(), line.trials.len())
        };
        table.row(vec![
            line.searcher.label(),
            searches,
            line.show(line.schedules(), Some(line.cap as f64)),
            line.show(line.steps(), None),
            format!("{:.1} µs", line.wall().median * 1e6),
        ]);
    }
    println!("### {workload}\n");
    println!(
        "Seeds 1..={trials} (one search per seed, from that seed; loom is deterministic: one \
         search); at most {} schedules per search.\n",
        thousands(cap as f64)
    );
    println!("{}", table.render());

    let kdst = lines.iter().find(|line| line.searcher == Searcher::Kdst("portfolio")).expect("ran");
    let peers: Vec<&Line> = lines.iter().filter(|line| line.searcher.is_peer()).collect();
    let best = |pick: fn(Spread) -> f64| {
        peers
            .iter()
            .filter(|line| line.found() > 0)
            .map(|line| (pick(line.schedules()), line.searcher.label()))
            .min_by(|a, b| a.0.partial_cmp(&b.0).expect("no NaN"))
            .unwrap_or((f64::INFINITY, "none found it".to_string()))
    };
    Verdict {
        kdst: (kdst.schedules().median, kdst.schedules().max),
        best_median: best(|spread| spread.median),
        best_max: best(|spread| spread.max),
        kdst_found_all: kdst.found() == kdst.trials.len(),
    }
}

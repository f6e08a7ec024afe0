//! The scenario contract: typed parameter keys read in their declared unit, metadata checked
//! when a scenario is registered, and a registry's look-ups and messages.

use std::time::Duration;

use scenarios::prelude::*;
use scenarios::{MetaError, ParamError, TargetError};

const DELAY: Key<Duration> = Key::millis("delay-ms", "a delay", 250).range(0, 10_000);
const LAG: Key<Duration> = Key::micros("lag-us", "a lag", 1_500).swarm(&[0, 1_500, 50_000]);
const TIMEOUT: Key<Duration> = Key::seconds("timeout-s", "a timeout", 30).range(1, 600);
const WORKERS: Key<usize> = Key::count("workers", "workers", 2).range(1, 16).swarm(&[1, 2, 8]);
const CHECK: Key<bool> = Key::flag("e2e-check", "run the end-to-end check", true);
const FAULTS: Key<f64> = Key::percent("fault-percent", "requests that fail", 25);

const PARAMS: &[Param] =
    &[DELAY.param, LAG.param, TIMEOUT.param, WORKERS.param, CHECK.param, FAULTS.param];
const BUGGY: Variant = Variant::fails("buggy", "fails", FailureKind::Invariant, "broken");
const FIXED: Variant = Variant::holds("fixed", "holds");

/// A scenario with the metadata it is given, whose runs end at once.
struct Toy(&'static Meta);

impl Scenario for Toy {
    fn meta(&self) -> &'static Meta {
        self.0
    }
    fn setup(&self, _variant: &Variant, _params: &Params) {
        spawn("main", async {});
    }
}

const TOY: Meta = Meta {
    name: "toy",
    summary: "a scenario for the contract's tests",
    upstream: &[],
    variants: &[BUGGY, FIXED],
    params: PARAMS,
};

/// Each key reads its value in its type, converted from its declared unit.
#[test]
fn keys_read_values_in_their_declared_unit() {
    let params = Params::of(PARAMS);
    assert_eq!(params.get(DELAY), Duration::from_millis(250));
    assert_eq!(params.get(LAG), Duration::from_micros(1_500));
    assert_eq!(params.get(TIMEOUT), Duration::from_secs(30));
    assert_eq!(params.get(WORKERS), 2);
    assert!(params.get(CHECK));
    assert_eq!(params.get(FAULTS), 0.25);
    let set = params.with("delay-ms", 7).and_then(|p| p.with("e2e-check", 0)).expect("in range");
    assert_eq!(set.get(DELAY), Duration::from_millis(7));
    assert!(!set.get(CHECK));
    let units: Vec<&str> = PARAMS.iter().map(|p| p.unit.symbol()).collect();
    assert_eq!(units, ["ms", "µs", "s", "count", "bool", "%"]);
    assert_eq!((FAULTS.param.min, FAULTS.param.max), (0, 100), "a percent is 0..=100");
    assert_eq!((CHECK.param.min, CHECK.param.max), (0, 1), "a flag is 0 or 1");
}

/// Setting a parameter checks its name and range, with messages that name the problem.
#[test]
fn setting_a_parameter_checks_name_and_range() {
    let mut params = Params::of(PARAMS);
    let error = params.set("delay-ms", 10_001).unwrap_err();
    assert_eq!(
        error,
        ParamError::OutOfRange { name: "delay-ms", value: 10_001, min: 0, max: 10_000 }
    );
    assert_eq!(error.to_string(), "parameter delay-ms=10001 is out of range 0..=10000");
    let error = params.set("dealy-ms", 1).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown parameter \"dealy-ms\" (known: delay-ms, lag-us, timeout-s, workers, \
         e2e-check, fault-percent)"
    );
    assert_eq!(params, Params::of(PARAMS), "a refused value changes nothing");
    assert!(!params.is_pinned("workers"));
    params.set("workers", 16).expect("in range");
    assert!(params.is_pinned("workers"));
}

/// The swarm draws each unpinned parameter from its list, the same way for the same seed, and
/// leaves pinned ones and those without a list alone.
#[test]
fn the_swarm_draws_from_the_lists_and_keeps_pinned_values() {
    let params = Params::of(PARAMS);
    for seed in 0..200 {
        let drawn = params.swarm(seed);
        assert_eq!(drawn, params.swarm(seed), "seed {seed} draws the same each time");
        assert!(WORKERS.param.swarm.contains(&drawn.raw("workers")));
        assert!(LAG.param.swarm.contains(&drawn.raw("lag-us")));
        assert_eq!(drawn.get(DELAY), params.get(DELAY), "no swarm list: the default");
    }
    let drawn: std::collections::BTreeSet<u64> =
        (0..200).map(|seed| params.swarm(seed).raw("workers")).collect();
    assert_eq!(drawn.into_iter().collect::<Vec<_>>(), [1, 2, 8], "every value is drawn");
    let pinned = params.with("workers", 5).expect("in range");
    assert!((0..200).all(|seed| pinned.swarm(seed).raw("workers") == 5));
}

/// Registration checks the metadata the compiler cannot, and refuses a second scenario of a
/// name; each refusal names the scenario and the problem.
#[test]
fn registration_checks_metadata_and_names() {
    const NO_VARIANTS: Meta = Meta { variants: &[], ..TOY };
    const SPACED: Meta = Meta { name: "my toy", ..TOY };
    const TWICE: Meta = Meta { variants: &[BUGGY, BUGGY], ..TOY };
    const RESERVED: Meta = Meta { params: &[Key::count("variant", "x", 1).param], ..TOY };
    const DOUBLE: Meta = Meta { params: &[WORKERS.param, WORKERS.param], ..TOY };
    let refused = |meta: &'static Meta| {
        Registry::new("my-kdst").register(Toy(meta)).expect_err("refused").to_string()
    };
    assert_eq!(refused(&NO_VARIANTS), "scenario \"toy\": it has no variants");
    assert_eq!(
        refused(&SPACED),
        "scenario \"my toy\": its name must be non-empty and without spaces"
    );
    assert_eq!(refused(&TWICE), "scenario \"toy\": two variants are named \"buggy\"");
    assert_eq!(refused(&RESERVED), "scenario \"toy\": parameter \"variant\": the name is reserved");
    assert_eq!(refused(&DOUBLE), "scenario \"toy\": two parameters are named \"workers\"");
    let mut registry = Registry::new("my-kdst");
    registry.register(Toy(&TOY)).expect("valid");
    let error: MetaError = registry.register(Toy(&TOY)).unwrap_err();
    assert_eq!(error.problem, "another registered scenario has this name");
    assert_eq!(registry.names(), ["toy"]);
    const SHADOW: Meta = Meta { name: "cert-manager-scheme-race", ..TOY };
    let error = Registry::builtin().register(Toy(&SHADOW)).unwrap_err();
    assert_eq!(error.problem, "another registered scenario has this name", "no shadowing");
}

/// A registry resolves names with suggestions, in the words of its own command line, and the
/// targets it makes print replay commands that start with that command.
#[test]
fn a_registry_resolves_names_in_its_own_command_line() {
    let registry = Registry::builtin().command("cargo run --example mine --").with(Toy(&TOY));
    assert_eq!(registry.command_line(), "cargo run --example mine --");
    assert_eq!(registry.names().last(), Some(&"toy"));
    let error = registry.target("tyo", None).unwrap_err();
    assert_eq!(
        error,
        TargetError::UnknownScenario {
            name: "tyo".to_string(),
            suggestion: Some("toy".to_string()),
            list: "cargo run --example mine -- list".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        "unknown scenario \"tyo\" (did you mean \"toy\"? `cargo run --example mine -- list` shows all)"
    );
    let error = registry.target("toy", Some("fixd")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "scenario toy has no variant \"fixd\" (did you mean \"fixed\"?); its variants: buggy, fixed"
    );
    let target = registry.target("toy", None).expect("known");
    assert!(target.variant().is(&BUGGY), "the first variant by default");
    let replay = target.replay_command(3, StrategySpec::default()).expect("a CLI replays it");
    assert!(replay.starts_with("cargo run --example mine -- replay toy --variant buggy --seed 3"));
    let unregistered = Target::of(Toy(&TOY), Some("fixed")).expect("known");
    assert_eq!(unregistered.replay_command(3, StrategySpec::default()), None, "no CLI knows it");
}

/// `Target::check` runs a scenario under `cargo test`; the same seeds give the same report.
#[test]
fn target_check_runs_seeds_deterministically() {
    let target = Target::of(Toy(&TOY), Some("fixed")).expect("known").with_swarm(true);
    let first = target.check(Check::new("toy").seeds(50));
    assert_eq!(first.seeds, 50);
    assert_eq!(first, target.check(Check::new("toy").seeds(50)));
}

//! Snapshots: the rendered head of every scenario variant's trace at a fixed seed, pinned with
//! insta, so a change in any controller model, the API server or the executor shows up in review
//! as a diff of the story it tells. Review an intended change with `cargo insta review` (or
//! re-run with `INSTA_UPDATE=always` and read the diff).

use scenarios::{Params, all, run};
use sim_core::Simulation;

/// The seed every snapshot runs.
const SEED: u64 = 1;
/// Events kept per snapshot: enough to read the start of the story, short enough to review.
const EVENTS_MAX: usize = 60;

/// Every variant of every registered scenario, seed 1, default parameters: the first 60 events,
/// the summary line and the outcome, in a snapshot named `trace__{scenario}__{variant}`.
#[test]
fn every_scenario_variant_trace_head_matches_its_snapshot() {
    let mut sim = Simulation::default();
    let mut checked = 0;
    for scenario in all() {
        let params = Params::defaults(scenario.as_ref());
        for variant in scenario.variants() {
            run(&mut sim, scenario.as_ref(), variant.name, &params, SEED);
            let name = format!("trace__{}__{}", scenario.name(), variant.name);
            let description = format!(
                "{} {} (seed {SEED}, default parameters): {}",
                scenario.name(),
                variant.name,
                variant.summary
            );
            insta::with_settings!({ description => description, omit_expression => true }, {
                insta::assert_snapshot!(name, sim.trace().render_head(EVENTS_MAX));
            });
            checked += 1;
        }
    }
    assert!(checked >= 2 * all().len(), "every scenario has a buggy and a fixed variant");
}

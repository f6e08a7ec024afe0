//! The generic oracles at run time: eventually stable reconciliation and the differential
//! comparison with a reference run, declared once per scenario ([`Oracles`]), never per bug.
//!
//! A workload awaits [`Oracles::settle`] after its last user action. It waits until no object of
//! the chosen kinds has been written for [`Oracles::quiet`] of virtual time (perturbations that
//! delay a controller, a restart, a withheld event, are over by then). If that does not happen
//! within [`Oracles::bound`], the run fails with a [`FailureKind::Liveness`] naming what kept
//! changing, how often and until when (Anvil's ESR: once the desired state stops changing, the
//! cluster must settle). Then it captures the masked [`EndState`] and the [`UpdateSummary`] and:
//!
//! - in a reference run ([`record_reference`]), keeps them as the [`Reference`];
//! - in a run compared with a reference ([`compare_with`]), fails with a
//!   [`FailureKind::Invariant`] if the end state differs (the object diff in the details) or if
//!   any object's ADDED or DELETED count differs (Sieve's state-update summary, as a table).
//!
//! Which run is the reference is the harness's business: `scenarios`' `Target` runs the same
//! workload without perturbations and caches the result. The server must keep a write log
//! ([`crate::ServerConfig::with_update_summary`]).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use sim_core::{FailureKind, SimTime};

use super::{CountTable, EndState, Mask, Stability, UpdateSummary};
use crate::server::ApiServer;

/// A reference run's outcome: its masked end state and its per-object counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The masked end state.
    pub state: EndState,
    /// The per-object ADDED and DELETED counts.
    pub summary: UpdateSummary,
}

/// What [`Oracles::settle`] does with the end state on this thread's next run.
enum Slot {
    /// Nothing: only eventually stable reconciliation is checked.
    Off,
    /// Keep it: this is the reference run.
    Record(Option<Reference>),
    /// Compare with this reference.
    Compare(Arc<Reference>),
}

thread_local! {
    static SLOT: RefCell<Slot> = const { RefCell::new(Slot::Off) };
}

/// Makes this thread's next runs reference runs: [`Oracles::settle`] keeps what it captures,
/// for [`take_reference`].
pub fn record_reference() {
    SLOT.with(|slot| *slot.borrow_mut() = Slot::Record(None));
}

/// The reference the last run on this thread recorded (after [`record_reference`]), if it got
/// as far as settling.
pub fn take_reference() -> Option<Reference> {
    SLOT.with(|slot| match std::mem::replace(&mut *slot.borrow_mut(), Slot::Off) {
        Slot::Record(reference) => reference,
        _ => None,
    })
}

/// Makes this thread's next runs compare their end state with `reference` (`None`: compare with
/// nothing, check only that the cluster settles).
pub fn compare_with(reference: Option<Arc<Reference>>) {
    let slot = reference.map_or(Slot::Off, Slot::Compare);
    SLOT.with(|current| *current.borrow_mut() = slot);
}

/// The generic oracles of one scenario: which kinds to compare, what to mask, how long the
/// cluster must stay quiet and how long it may take.
#[derive(Clone, Debug)]
pub struct Oracles {
    kinds: Vec<(String, String)>,
    mask: Mask,
    quiet: Duration,
    bound: Duration,
    poll: Duration,
}

impl Oracles {
    /// Oracles over `kinds` (`(apiVersion, kind)`; empty: every kind) with the default mask, a
    /// quiet period of 20 s and a bound of 10 minutes of virtual time.
    pub fn new(kinds: &[(&str, &str)]) -> Self {
        Oracles {
            kinds: kinds.iter().map(|&(a, k)| (a.to_string(), k.to_string())).collect(),
            mask: Mask::default(),
            quiet: Duration::from_secs(20),
            bound: Duration::from_secs(600),
            poll: Duration::from_millis(500),
        }
    }

    /// Replaces the mask (fields the scenario declares nondeterministic).
    pub fn with_mask(mut self, mask: Mask) -> Self {
        self.mask = mask;
        self
    }

    /// Sets how long no object may change for the cluster to count as settled, and how long
    /// after the last user action it may take.
    pub fn with_settling(mut self, quiet: Duration, bound: Duration) -> Self {
        self.quiet = quiet;
        self.bound = bound;
        self
    }

    /// The quiet period.
    pub fn quiet(&self) -> Duration {
        self.quiet
    }

    /// The bound on settling.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The mask.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    fn kinds(&self) -> Vec<(&str, &str)> {
        self.kinds.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect()
    }

    /// Waits until the cluster settles, then records or compares its end state (see the module
    /// docs). Await it after the workload's last user action.
    ///
    /// # Panics
    /// If `server` keeps no write log ([`crate::ServerConfig::with_update_summary`]).
    pub async fn settle(&self, server: &ApiServer) {
        let kinds = self.kinds();
        let start = sim_core::now();
        loop {
            let stability = Stability::capture(server, &kinds, &self.mask)
                .expect("kdst: Oracles::settle needs ServerConfig::with_update_summary(true)");
            let now = sim_core::now();
            let last = stability.last_write_overall().map_or(SimTime::ZERO, |(time, _)| time);
            if now - last >= self.quiet {
                break;
            }
            if now - start >= self.bound {
                let churn: Vec<String> =
                    stability.since(start).iter().take(20).map(ToString::to_string).collect();
                sim_core::fail(
                    FailureKind::Liveness,
                    format!(
                        "the cluster did not settle within {:?} of the last user action \
                         (no {:?} without a write)",
                        self.bound, self.quiet
                    ),
                    format!("what kept changing:\n  {}", churn.join("\n  ")),
                );
            }
            sim_core::sleep(self.poll).await;
        }
        let state = EndState::capture(server, &kinds, &self.mask);
        let summary = UpdateSummary::capture(server, &kinds, &self.mask)
            .expect("kdst: Oracles::settle needs ServerConfig::with_update_summary(true)");
        let reference = SLOT.with(|slot| match &mut *slot.borrow_mut() {
            Slot::Off => None,
            Slot::Record(kept) => {
                *kept = Some(Reference { state: state.clone(), summary: summary.clone() });
                None
            }
            Slot::Compare(reference) => Some(reference.clone()),
        });
        let Some(reference) = reference else { return };
        let diff = state.diff(&reference.state);
        let counts = summary.diff(&reference.summary);
        sim_core::event(format!(
            "settled: {} objects, {} differences from the reference run",
            state.len(),
            diff.len() + counts.len()
        ));
        if !diff.is_empty() {
            let table = if counts.is_empty() {
                String::new()
            } else {
                format!("\n\nADDED/DELETED counts that differ:\n{}", CountTable(&counts))
            };
            sim_core::fail(
                FailureKind::Invariant,
                format!(
                    "the end state differs from the reference run without perturbations \
                     ({} differences)",
                    diff.len()
                ),
                format!("{diff}{table}"),
            );
        }
        if !counts.is_empty() {
            sim_core::fail(
                FailureKind::Invariant,
                format!(
                    "the ADDED/DELETED counts of {} objects differ from the reference run \
                     without perturbations",
                    counts.len()
                ),
                CountTable(&counts).to_string(),
            );
        }
    }
}

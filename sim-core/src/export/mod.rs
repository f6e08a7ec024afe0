//! Trace exports for tools other than a terminal.
//!
//! - [`perfetto`](fn@crate::export::perfetto) writes Chrome trace event JSON: open it in
//!   <https://ui.perfetto.dev> or `chrome://tracing` for one track per task, virtual time on the
//!   axis, and API calls as slices.
//! - [`mermaid`](fn@crate::export::mermaid) writes a Mermaid `sequenceDiagram`: paste it into a
//!   Markdown file or an issue for tasks as participants and API calls as arrows, compacted.
//!
//! Both are pure functions of the [`Trace`]: the same trace gives the same bytes.
//!
//! Calls are the structured span records that [`call_begin`](crate::export::call_begin) and
//! [`call_end`](crate::export::call_end) put in the trace (the fake API server's client records
//! one per request); everything else comes from the trace's events.
//!
//! ```
//! use std::time::Duration;
//! use sim_core::export::{call_begin, call_end, mermaid, perfetto};
//! use sim_core::{Simulation, event, sleep, spawn};
//!
//! let mut sim = Simulation::default();
//! sim.run(7, || {
//!     spawn("controller", async {
//!         event("reconcile default/web");
//!         let call = call_begin("API server", "UPDATE Deployment default/web");
//!         sleep(Duration::from_millis(2)).await;
//!         call_end(call, "rv 12");
//!     });
//! });
//! let json = perfetto(sim.trace());
//! assert!(json.contains(r#""name":"UPDATE Deployment default/web","cat":"call","ph":"X""#));
//! let diagram = mermaid(sim.trace(), 100);
//! assert!(diagram.contains("T0->>C0: UPDATE Deployment default/web"));
//! assert!(diagram.contains("C0-->>T0: rv 12"));
//! ```

mod mermaid;
mod perfetto;

use std::collections::BTreeMap;

pub use self::mermaid::mermaid;
pub use self::perfetto::perfetto;
pub use crate::trace::{CallId, call_begin, call_end};

use crate::trace::{EventKind, Trace};

/// The calls of a trace: for each [`EventKind::CallBegin`] (by index in [`Trace::events`]), the
/// index of its [`EventKind::CallEnd`]. A begin without an entry was still in flight when the
/// run ended. An end that does not match a begin of the same task is ignored.
fn call_ends(trace: &Trace) -> BTreeMap<usize, usize> {
    let events = trace.events();
    let mut ends = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        let EventKind::CallEnd { begin, .. } = event.kind else { continue };
        let matches = begin < index
            && events[begin].task == event.task
            && matches!(events[begin].kind, EventKind::CallBegin { .. });
        if matches {
            ends.entry(begin).or_insert(index);
        }
    }
    ends
}

/// The first line of the run's failure, if it failed or hit a limit.
fn failure_line(trace: &Trace) -> Option<String> {
    let failure = trace.outcome()?.failure()?;
    Some(failure.to_string().lines().next().unwrap_or_default().to_string())
}

//! The record of a run: one packed word per step, the strategy's draws, and labelled events.
//!
//! Steps say which task ran, whether there was a choice, and whether the choice was a preemption
//! (the previous task could have continued). Events are what tasks said they did
//! ([`crate::event()`]) plus the executor's own spawn/exit/failure lines; they render as stable
//! text, one line per event, for humans and insta snapshots. [`Trace::hash`] identifies a run: same
//! code, seed and parameters give the same hash in any process on any machine.
//!
//! Calls between actors (an API request and its response) are recorded as structured span
//! records, [`EventKind::CallBegin`] and [`EventKind::CallEnd`], with [`call_begin`] and
//! [`call_end`]. They exist for the exports ([`crate::export`]: a Perfetto slice, a Mermaid
//! arrow) and stay out of the text rendering and the hash: the actors' own event lines already
//! tell the story, so recording spans changes no trace text or hash.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::context;
use crate::failure::Outcome;
use crate::rng::{FNV_OFFSET, fnv1a_extend};
use crate::{SimTime, TaskId};

const TASK_MASK: u32 = (1 << 30) - 1;
const CHOICE_BIT: u32 = 1 << 30;
const PREEMPT_BIT: u32 = 1 << 31;

/// The largest task id a step record can hold.
pub(crate) const TASK_ID_MAX: u32 = TASK_MASK;

/// One step: which task ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The task polled at this step.
    pub task: TaskId,
    /// More than one task was runnable.
    pub choice: bool,
    /// The task that ran the step before was still runnable and another was picked.
    pub preemption: bool,
}

impl StepRecord {
    #[inline]
    pub(crate) fn pack(task: u32, choice: bool, preemption: bool) -> u32 {
        debug_assert!(task <= TASK_MASK);
        task | if choice { CHOICE_BIT } else { 0 } | if preemption { PREEMPT_BIT } else { 0 }
    }

    pub(crate) fn unpack(word: u32) -> StepRecord {
        StepRecord {
            task: TaskId(word & TASK_MASK),
            choice: word & CHOICE_BIT != 0,
            preemption: word & PREEMPT_BIT != 0,
        }
    }
}

/// What an event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The task spawned `child`.
    Spawn {
        /// The new task.
        child: TaskId,
    },
    /// The task finished.
    Exit,
    /// A line the task emitted with [`crate::event()`].
    Message(Cow<'static, str>),
    /// The task sent `request` to `callee` ([`call_begin`]): the start of a span that a
    /// [`EventKind::CallEnd`] closes. Not rendered, not hashed (see [`EventKind::is_call`]).
    CallBegin {
        /// Who serves the call, e.g. `API server`.
        callee: Cow<'static, str>,
        /// What was asked, e.g. `GET Secret sandbox/cert-0-tls`.
        request: Cow<'static, str>,
    },
    /// The response to the call begun at `Trace::events()[begin]` arrived ([`call_end`]). A call
    /// still in flight when the run ended has no end record. Not rendered, not hashed.
    CallEnd {
        /// The index in [`Trace::events`] of the call's [`EventKind::CallBegin`].
        begin: usize,
        /// What came back, e.g. `rv 12` or `409 Conflict`.
        response: Cow<'static, str>,
    },
}

impl EventKind {
    /// Whether this is a span record of a call ([`EventKind::CallBegin`], [`EventKind::CallEnd`]):
    /// structured data for the exports, left out of [`Trace::render`], [`Trace::render_head`],
    /// [`Trace::last_events_of`] and [`Trace::hash`].
    pub fn is_call(&self) -> bool {
        matches!(self, EventKind::CallBegin { .. } | EventKind::CallEnd { .. })
    }
}

/// A labelled event at a step and virtual time, from a task (or from setup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The step during which it was emitted.
    pub step: u64,
    /// Virtual time in nanoseconds.
    pub time_ns: u64,
    /// The emitting task; `TaskId(u32::MAX)` for the setup closure.
    pub task: TaskId,
    /// What happened.
    pub kind: EventKind,
}

/// The record of the last run of a [`crate::Simulation`].
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub(crate) seed: u64,
    pub(crate) strategy: &'static str,
    pub(crate) steps: Vec<u32>,
    pub(crate) draws: Vec<(u64, u64)>,
    pub(crate) events: Vec<Event>,
    pub(crate) task_names: Vec<Cow<'static, str>>,
    pub(crate) end_time_ns: u64,
    pub(crate) outcome: Option<Outcome>,
}

impl Trace {
    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The strategy's name.
    pub fn strategy(&self) -> &'static str {
        self.strategy
    }

    /// The number of steps taken.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step was taken.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps, in order.
    pub fn steps(&self) -> impl DoubleEndedIterator<Item = StepRecord> + ExactSizeIterator + '_ {
        self.steps.iter().map(|&word| StepRecord::unpack(word))
    }

    /// The task polled at each step.
    pub fn step_tasks(&self) -> Vec<TaskId> {
        self.steps().map(|step| step.task).collect()
    }

    /// The strategy's draws: (step, value).
    pub fn draws(&self) -> &[(u64, u64)] {
        &self.draws
    }

    /// The events, in order, including the call span records that the text rendering and the
    /// hash leave out ([`EventKind::is_call`]).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many steps were preemptions.
    pub fn preemptions(&self) -> usize {
        self.steps().filter(|step| step.preemption).count()
    }

    /// How many steps had more than one runnable task.
    pub fn choices(&self) -> usize {
        self.steps().filter(|step| step.choice).count()
    }

    /// The virtual time at which the run ended.
    pub fn end_time(&self) -> SimTime {
        SimTime::from_nanos(self.end_time_ns)
    }

    /// How the run ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The name of a task of this run (`setup` for the setup closure).
    pub fn task_name(&self, task: TaskId) -> &str {
        self.task_names.get(task.0 as usize).map_or("setup", |name| name)
    }

    /// The number of tasks spawned.
    pub fn tasks(&self) -> usize {
        self.task_names.len()
    }

    /// A stable 64-bit hash of everything the run did: steps, draws, events and outcome.
    pub fn hash(&self) -> u64 {
        let mut hash = FNV_OFFSET;
        hash = fnv1a_extend(hash, &self.seed.to_le_bytes());
        for &word in &self.steps {
            hash = fnv1a_extend(hash, &word.to_le_bytes());
        }
        for &(step, value) in &self.draws {
            hash = fnv1a_extend(hash, &step.to_le_bytes());
            hash = fnv1a_extend(hash, &value.to_le_bytes());
        }
        let mut line = String::new();
        for event in self.rendered_events() {
            line.clear();
            self.write_event(&mut line, event, 0);
            hash = fnv1a_extend(hash, line.as_bytes());
        }
        if let Some(outcome) = &self.outcome {
            hash = fnv1a_extend(hash, outcome.to_string().as_bytes());
        }
        fnv1a_extend(hash, &self.end_time_ns.to_le_bytes())
    }

    /// The text of one event, without padding.
    pub fn event_text(&self, event: &Event) -> String {
        match &event.kind {
            EventKind::Spawn { child } => {
                format!("spawn {} (task {})", self.task_name(*child), child.0)
            }
            EventKind::Exit => "exit".to_string(),
            EventKind::Message(text) => text.to_string(),
            EventKind::CallBegin { callee, request } => format!("call {callee}: {request}"),
            EventKind::CallEnd { begin, response } => {
                format!("response to event {begin}: {response}")
            }
        }
    }

    /// The events the text rendering and the hash cover: all but the call span records.
    fn rendered_events(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.events.iter().filter(|event| !event.kind.is_call())
    }

    fn write_event(&self, out: &mut String, event: &Event, name_width: usize) {
        let time = SimTime::from_nanos(event.time_ns);
        let name = self.task_name(event.task);
        let _ = write!(out, "{time:>14} #{:<7} {name:<name_width$}  ", event.step);
        match &event.kind {
            EventKind::Message(text) => out.push_str(text),
            _ => out.push_str(&self.event_text(event)),
        }
    }

    /// Renders the events, one line each: virtual time, step, task, text. Then a last line with
    /// the outcome. Stable: a snapshot of it changes only when behaviour changes.
    pub fn render(&self) -> String {
        self.render_head(usize::MAX)
    }

    /// Like [`Trace::render`], keeping only the first `events_max` events and a summary line of
    /// how many were left out, so snapshots of long runs stay reviewable.
    pub fn render_head(&self, events_max: usize) -> String {
        let name_width = self.task_names.iter().map(|name| name.len()).max().unwrap_or(0).max(5);
        let mut out = String::new();
        let mut events = self.rendered_events();
        for event in events.by_ref().take(events_max) {
            self.write_event(&mut out, event, name_width);
            out.push('\n');
        }
        let more = events.count();
        if more > 0 {
            let _ = writeln!(out, "... {more} more events");
        }
        let _ = writeln!(
            out,
            "-- {} steps ({} with a choice, {} preemptions), {} tasks, {} draws, ended at t={}",
            self.len(),
            self.choices(),
            self.preemptions(),
            self.tasks(),
            self.draws.len(),
            self.end_time()
        );
        if let Some(outcome) = &self.outcome {
            let _ = writeln!(out, "-- {outcome}");
        }
        out
    }

    /// Renders every step: `#step task-name` with `*` marking preemptions. For debugging.
    pub fn render_steps(&self) -> String {
        let mut out = String::new();
        for (index, step) in self.steps().enumerate() {
            let mark = if step.preemption { "*" } else { " " };
            let _ = writeln!(out, "#{index:<7}{mark} {}", self.task_name(step.task));
        }
        out
    }

    /// The last `count` events of the task `failure` names and then of each task it involved
    /// (the writer a Go fatal error collided with, the tasks a deadlock blocked), rendered: the
    /// "last events of each task involved" of a failure report.
    pub fn involved_events(&self, failure: &crate::Failure, count: usize) -> Vec<String> {
        let mut tasks: Vec<TaskId> =
            failure.task.into_iter().chain(failure.involved.iter().copied()).collect();
        tasks.dedup();
        tasks.into_iter().flat_map(|task| self.last_events_of(task, count)).collect()
    }

    /// The perturbations the run made ([`crate::perturb`]: the events that begin with
    /// `perturbation `), rendered, in order; for failure reports.
    pub fn perturbation_events(&self) -> Vec<String> {
        self.rendered_events()
            .filter(|event| {
                matches!(&event.kind, EventKind::Message(text) if text.starts_with("perturbation "))
            })
            .map(|event| {
                let mut line = String::new();
                self.write_event(&mut line, event, 0);
                line
            })
            .collect()
    }

    /// The last `count` events of `task`, rendered; for failure reports.
    pub fn last_events_of(&self, task: TaskId, count: usize) -> Vec<String> {
        let mut lines: Vec<String> = self
            .rendered_events()
            .rev()
            .filter(|event| event.task == task)
            .take(count)
            .map(|event| {
                let mut line = String::new();
                self.write_event(&mut line, event, 0);
                line
            })
            .collect();
        lines.reverse();
        lines
    }
}

/// Emits an event from the running task: one line of the run's story.
///
/// ```
/// # use sim_core::{Simulation, spawn, event};
/// let mut sim = Simulation::default();
/// sim.run(1, || {
///     spawn("controller", async { event("created CertificateRequest cert-1-7") });
/// });
/// assert!(sim.trace().render().contains("controller  created CertificateRequest cert-1-7"));
/// ```
///
/// # Panics
/// Outside a simulation.
pub fn event(text: impl Into<Cow<'static, str>>) {
    let text = text.into();
    context::with("event", |ctx| context::push_event(ctx, EventKind::Message(text)));
}

/// A call in flight, from [`call_begin`]: hand it to [`call_end`] when the response arrives.
#[derive(Debug)]
#[must_use = "a call without its end shows as still in flight when the run ended"]
pub struct CallId {
    /// The index of the call's [`EventKind::CallBegin`] in [`Trace::events`].
    begin: usize,
}

/// Records that the running task sent `request` to `callee` (an API request, an RPC): the start
/// of a span in the trace exports. Not a scheduling point and not part of the text rendering or
/// the hash; it counts toward `Config::events_max` like any event.
///
/// ```
/// # use sim_core::export::{call_begin, call_end};
/// # use sim_core::{EventKind, Simulation, sleep, spawn};
/// # use std::time::Duration;
/// let mut sim = Simulation::default();
/// sim.run(1, || {
///     spawn("controller", async {
///         let call = call_begin("API server", "GET Secret default/tls");
///         sleep(Duration::from_millis(1)).await;
///         call_end(call, "404 NotFound");
///     });
/// });
/// let trace = sim.trace();
/// assert!(trace.events().iter().any(|e| matches!(e.kind, EventKind::CallEnd { .. })));
/// assert!(!trace.render().contains("GET Secret")); // spans are for the exports
/// ```
///
/// # Panics
/// Outside a simulation.
pub fn call_begin(
    callee: impl Into<Cow<'static, str>>,
    request: impl Into<Cow<'static, str>>,
) -> CallId {
    let kind = EventKind::CallBegin { callee: callee.into(), request: request.into() };
    context::with("call_begin", |ctx| {
        let begin = ctx.state.borrow().events.len();
        context::push_event(ctx, kind);
        CallId { begin }
    })
}

/// Records that the response to `call` arrived, with what came back: the end of its span.
///
/// # Panics
/// Outside a simulation.
pub fn call_end(call: CallId, response: impl Into<Cow<'static, str>>) {
    let kind = EventKind::CallEnd { begin: call.begin, response: response.into() };
    context::with("call_end", |ctx| context::push_event(ctx, kind));
}

/// Formats and emits an event: `event!("created {name}")`.
#[macro_export]
macro_rules! event {
    ($($arg:tt)*) => {
        $crate::event(::std::format!($($arg)*))
    };
}

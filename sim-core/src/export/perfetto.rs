//! Chrome trace event JSON (the "JSON Object Format" of the Trace Event Format), which the
//! Perfetto UI and `chrome://tracing` open.
//!
//! Process 1 is the run (named `kdst seed N`); each task is a thread of it whose tid is the task
//! id (the setup closure is tid 4294967295, `u32::MAX`, as in [`crate::Event::task`]). Events
//! become thread-scoped instants, calls become complete events (`"ph":"X"`) from request to
//! response, and the failure an instant on the failing task (global when no task failed).
//! Timestamps are virtual time in microseconds with nanosecond decimals, written exactly (no
//! floating-point rounding). One trace event per line, so exports diff well.

use std::fmt::Write as _;

use super::{call_ends, failure_line};
use crate::TaskId;
use crate::trace::{Event, EventKind, Trace};

/// The process every track belongs to.
const PID: u32 = 1;
/// The setup closure's track: its [`TaskId`] in events.
const SETUP_TID: u32 = u32::MAX;

/// The trace as Chrome trace event JSON: one track per task, events as instants, calls as
/// slices, the failure as a final instant. Deterministic: the same trace gives the same bytes.
///
/// ```
/// use sim_core::{Simulation, event, spawn};
///
/// let mut sim = Simulation::default();
/// sim.run(1, || {
///     spawn("worker", async { event("hello") });
/// });
/// let json = sim_core::export::perfetto(sim.trace());
/// assert!(json.starts_with(r#"{"displayTimeUnit":"ns","#));
/// let track = r#"{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":0,"args":{"name":"#;
/// assert!(json.contains(&format!(r#"{track}"worker"}}}}"#)));
/// assert!(json.contains(r#"{"name":"hello","cat":"event","ph":"i","s":"t","ts":"#));
/// ```
pub fn perfetto(trace: &Trace) -> String {
    let mut out = String::with_capacity(256 + trace.events().len() * 128);
    out.push_str(r#"{"displayTimeUnit":"ns","otherData":{"seed":"#);
    json_string(&mut out, &trace.seed().to_string());
    out.push_str(r#","strategy":"#);
    json_string(&mut out, trace.strategy());
    out.push_str(r#","outcome":"#);
    let outcome = trace.outcome().map_or_else(|| "none".to_string(), ToString::to_string);
    json_string(&mut out, &outcome);
    out.push_str("},\n\"traceEvents\":[\n");
    let mut lines = Lines { out, first: true };
    write_tracks(&mut lines, trace);
    write_events(&mut lines, trace);
    write_failure(&mut lines, trace);
    let mut out = lines.out;
    out.push_str("\n]}\n");
    out
}

/// The array of trace events being written: one per line, comma-separated.
struct Lines {
    out: String,
    first: bool,
}

impl Lines {
    /// Starts a new trace event object (after a separator) and returns the buffer.
    fn next(&mut self) -> &mut String {
        if !self.first {
            self.out.push_str(",\n");
        }
        self.first = false;
        &mut self.out
    }
}

/// Metadata: the process name, then each task's track name and order (setup's first, when it
/// emitted anything or the failure has no task).
fn write_tracks(lines: &mut Lines, trace: &Trace) {
    let name = format!("kdst seed {}", trace.seed());
    metadata(lines, "process_name", 0, |out| name_arg(out, &name));
    let setup_used = trace.events().iter().any(|event| event.task.0 == SETUP_TID)
        || trace.outcome().and_then(|o| o.failure()).is_some_and(|f| f.task.is_none());
    if setup_used {
        metadata(lines, "thread_name", SETUP_TID, |out| name_arg(out, "setup"));
        metadata(lines, "thread_sort_index", SETUP_TID, |out| sort_arg(out, -1));
    }
    for task in 0..trace.tasks() as u32 {
        let name = trace.task_name(TaskId(task));
        metadata(lines, "thread_name", task, |out| name_arg(out, name));
        metadata(lines, "thread_sort_index", task, |out| sort_arg(out, i64::from(task)));
    }
}

fn metadata(lines: &mut Lines, name: &str, tid: u32, args: impl FnOnce(&mut String)) {
    let out = lines.next();
    let _ = write!(out, r#"{{"name":"{name}","ph":"M","ts":0,"pid":{PID},"tid":{tid},"args":"#);
    args(out);
    out.push('}');
}

fn name_arg(out: &mut String, name: &str) {
    out.push_str(r#"{"name":"#);
    json_string(out, name);
    out.push('}');
}

fn sort_arg(out: &mut String, index: i64) {
    let _ = write!(out, r#"{{"sort_index":{index}}}"#);
}

/// Every event in trace order: calls as slices at their begin, the rest as instants.
fn write_events(lines: &mut Lines, trace: &Trace) {
    let events = trace.events();
    let ends = call_ends(trace);
    for (index, event) in events.iter().enumerate() {
        match &event.kind {
            EventKind::CallBegin { callee, request } => {
                let end = ends.get(&index).map(|&end| &events[end]);
                write_call(lines, trace, event, end, callee, request);
            }
            EventKind::CallEnd { .. } => {}
            EventKind::Spawn { .. } => write_instant(lines, trace, event, "spawn"),
            EventKind::Exit => write_instant(lines, trace, event, "exit"),
            EventKind::Message(_) => write_instant(lines, trace, event, "event"),
        }
    }
}

fn write_instant(lines: &mut Lines, trace: &Trace, event: &Event, category: &str) {
    let out = lines.next();
    out.push_str(r#"{"name":"#);
    json_string(out, &trace.event_text(event));
    let _ = write!(out, r#","cat":"{category}","ph":"i","s":"t","ts":"#);
    micros(out, event.time_ns);
    let _ =
        write!(out, r#","pid":{PID},"tid":{},"args":{{"step":{}}}}}"#, event.task.0, event.step);
}

/// A call as a complete event; one still in flight when the run ended lasts until the end.
fn write_call(
    lines: &mut Lines,
    trace: &Trace,
    begin: &Event,
    end: Option<&Event>,
    callee: &str,
    request: &str,
) {
    let end_ns = end.map_or(trace.end_time().as_nanos(), |end| end.time_ns);
    let out = lines.next();
    out.push_str(r#"{"name":"#);
    json_string(out, request);
    out.push_str(r#","cat":"call","ph":"X","ts":"#);
    micros(out, begin.time_ns);
    out.push_str(r#","dur":"#);
    micros(out, end_ns.saturating_sub(begin.time_ns));
    let _ = write!(out, r#","pid":{PID},"tid":{},"args":{{"callee":"#, begin.task.0);
    json_string(out, callee);
    let _ = write!(out, r#","begin_step":{}"#, begin.step);
    match end {
        Some(Event { kind: EventKind::CallEnd { response, .. }, step, .. }) => {
            out.push_str(r#","response":"#);
            json_string(out, response);
            let _ = write!(out, r#","end_step":{step}"#);
        }
        _ => out.push_str(r#","response":"none: still in flight when the run ended""#),
    }
    out.push_str("}}");
}

/// The failure (or limit) as an instant on the failing task, or a global one if none failed.
fn write_failure(lines: &mut Lines, trace: &Trace) {
    let Some(failure) = trace.outcome().and_then(|outcome| outcome.failure()) else { return };
    let name = failure_line(trace).unwrap_or_default();
    let (tid, scope) = match failure.task {
        Some(task) => (task.0, "t"),
        None => (SETUP_TID, "g"),
    };
    let category = if failure.kind.is_limit() { "limit" } else { "failure" };
    let out = lines.next();
    out.push_str(r#"{"name":"#);
    json_string(out, &name);
    let _ = write!(out, r#","cat":"{category}","ph":"i","s":"{scope}","ts":"#);
    micros(out, failure.time.as_nanos());
    let _ = write!(out, r#","pid":{PID},"tid":{tid},"args":{{"step":{},"kind":"#, failure.step);
    json_string(out, failure.kind.name());
    out.push_str(r#","failure":"#);
    json_string(out, &failure.to_string());
    out.push_str(r#","involved":["#);
    for (position, task) in failure.involved.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", task.0);
    }
    out.push_str("]}}");
}

/// Nanoseconds as a JSON number of microseconds, exact: `1520345` → `1520.345`.
fn micros(out: &mut String, nanos: u64) {
    let _ = write!(out, "{}.{:03}", nanos / 1_000, nanos % 1_000);
}

/// `text` as a JSON string literal (RFC 8259: quote, backslash and control characters escaped).
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

//! A Mermaid `sequenceDiagram` of a run, compacted so long runs stay readable.
//!
//! Syntax rules relied on (Mermaid's `sequenceDiagram.jison` and its entity pre-pass):
//! - participants are declared first, `participant ALIAS as display name`; aliases are `SETUP`,
//!   `C<n>` (callees) and `T<id>` (tasks): letters and digits, not a keyword, no `-`, `>`, `:`,
//!   `,`, `;`, `+`;
//! - message and note text runs from the `:` to the end of the line, but `;` ends a statement,
//!   `#` starts a comment and `%%` too, so these (and `<`, `>`, `&`, `"`, which the renderer
//!   treats as HTML) are written as entity codes (`#59;`) that Mermaid decodes before drawing;
//!   line breaks and control characters become spaces; text is never empty;
//! - arrows used: `->>` (request), `-->>` (response), `-)` (spawn); notes `Note over A` or
//!   `Note over A,B`; `loop <text>` … `end` around a repeated block.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{call_ends, failure_line};
use crate::TaskId;
use crate::trace::{EventKind, Trace};

/// The longest block of lines that compaction recognises as repeating (a request and its
/// response is 2; a request, a response and a note about them is 3).
const BLOCK_MAX: usize = 4;

/// The run as a Mermaid `sequenceDiagram`: the tasks that appear (and the setup closure) and
/// each callee (the API server) as participants; each call as an arrow from the task with the
/// request and a dashed arrow back with the response; a spawn as an async arrow to the child
/// (except the setup closure's: those are the cast); every other event as a note over its
/// task; the failure as a final note.
///
/// Messages a task emits while one of its calls is in flight are that call's own account (the
/// API server's line for the verb, an injected fault): the arrows stand for them and they are
/// left out. Runs of identical lines collapse into one line marked `×N`; a repeated block of up
/// to four lines becomes a `loop N times` block. At most `max_messages` lines of the run are
/// drawn, then a note says how many were left out; the failure note always comes last.
/// Mermaid refuses diagrams over 50,000 characters by default (`maxTextSize`), which a
/// `max_messages` of a few hundred stays under.
///
/// ```
/// use sim_core::{Simulation, event, spawn};
///
/// let mut sim = Simulation::default();
/// sim.run(1, || {
///     spawn("worker (1)", async {
///         for _ in 0..3 {
///             event("poll; nothing # to do");
///         }
///     });
/// });
/// let diagram = sim_core::export::mermaid(sim.trace(), 50);
/// assert!(diagram.starts_with("sequenceDiagram\n"));
/// assert!(diagram.contains("participant T0 as worker (1)\n"));
/// assert!(diagram.contains("Note over T0: poll#59; nothing #35; to do ×3\n"));
/// ```
pub fn mermaid(trace: &Trace, max_messages: usize) -> String {
    let lines = lines(trace);
    let groups = compact(&lines);
    let (kept, covered) = within_budget(&groups, max_messages);
    let left_out = lines.len() - covered;
    let failure = trace.outcome().and_then(|outcome| outcome.failure());
    let failing = failure.and_then(|failure| failure.task).map(actor_of);

    let mut actors: Vec<Actor> =
        kept.iter().flat_map(|group| group.block.iter()).flat_map(Line::actors).collect();
    actors.extend(failing);
    if actors.is_empty() && (left_out > 0 || failure.is_some()) {
        // The closing notes need someone to stand over.
        actors.extend(lines.get(covered).map_or(vec![Actor::Setup], Line::actors));
    }
    actors.sort();
    actors.dedup();

    let mut out = String::from("sequenceDiagram\n");
    let title = format!("kdst seed {}, strategy {}", trace.seed(), trace.strategy());
    let _ = writeln!(out, "    title {}", text(&title));
    write_participants(&mut out, trace, &actors, &callees(trace));
    for group in kept {
        write_group(&mut out, group);
    }
    if left_out > 0 {
        let end = trace.end_time();
        let note = format!("… {left_out} more messages left out (the run ended at t={end})");
        write_note(&mut out, &actors, None, &note);
    }
    if let (Some(line), Some(failure)) = (failure_line(trace), failure) {
        write_note(&mut out, &actors, failure.task.map(actor_of), &line);
    }
    out
}

/// The groups drawn within `max_messages` lines, and how many lines of the run they cover.
fn within_budget<'a>(groups: &'a [Group<'a>], max_messages: usize) -> (&'a [Group<'a>], usize) {
    let (mut shown, mut covered) = (0, 0);
    for (index, group) in groups.iter().enumerate() {
        if shown + group.block.len() > max_messages {
            return (&groups[..index], covered);
        }
        shown += group.block.len();
        covered += group.block.len() * group.repeats;
    }
    (groups, covered)
}

/// A closing note over `over`, or across every participant when `None`.
fn write_note(out: &mut String, actors: &[Actor], over: Option<Actor>, note: &str) {
    debug_assert!(
        !actors.is_empty() && over.is_none_or(|actor| actors.contains(&actor)),
        "a closing note stands over declared participants"
    );
    let span = match (over, actors.first(), actors.last()) {
        (Some(actor), _, _) => alias(actor),
        (None, Some(&first), Some(&last)) if first != last => {
            format!("{},{}", alias(first), alias(last))
        }
        (None, Some(&only), _) => alias(only),
        (None, None, _) => alias(Actor::Setup),
    };
    let _ = writeln!(out, "    Note over {span}: {}", text(note));
}

/// Who takes part. The derived order is the declaration order: setup, callees, tasks by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Setup,
    /// A callee, by order of first appearance.
    Callee(usize),
    Task(u32),
}

fn actor_of(task: TaskId) -> Actor {
    if task.0 == u32::MAX { Actor::Setup } else { Actor::Task(task.0) }
}

/// The alias a participant is declared and referred to by.
fn alias(actor: Actor) -> String {
    match actor {
        Actor::Setup => "SETUP".to_string(),
        Actor::Callee(index) => format!("C{index}"),
        Actor::Task(id) => format!("T{id}"),
    }
}

/// One line of the diagram, before escaping.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Arrow { from: Actor, to: Actor, arrow: &'static str, text: String },
    Note { over: Actor, text: String },
}

impl Line {
    fn actors(&self) -> Vec<Actor> {
        match self {
            Line::Arrow { from, to, .. } => vec![*from, *to],
            Line::Note { over, .. } => vec![*over],
        }
    }

    fn write(&self, out: &mut String, indent: &str, suffix: &str) {
        let (head, body) = match self {
            Line::Arrow { from, to, arrow, text } => {
                (format!("{}{arrow}{}", alias(*from), alias(*to)), text)
            }
            Line::Note { over, text } => (format!("Note over {}", alias(*over)), text),
        };
        let _ = writeln!(out, "{indent}{head}: {}", text(&format!("{body}{suffix}")));
    }
}

/// The callees' names, indexed as in [`Actor::Callee`].
fn callees(trace: &Trace) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for event in trace.events() {
        if let EventKind::CallBegin { callee, .. } = &event.kind
            && !names.contains(&callee.as_ref())
        {
            names.push(callee);
        }
    }
    names
}

/// Every line the run gives, in trace order, before compaction.
fn lines(trace: &Trace) -> Vec<Line> {
    let events = trace.events();
    let ends = call_ends(trace);
    let callees = callees(trace);
    let callee_of = |begin: usize| match &events[begin].kind {
        EventKind::CallBegin { callee, .. } => {
            Actor::Callee(callees.iter().position(|name| name == callee).unwrap_or_default())
        }
        _ => Actor::Callee(0),
    };
    // Calls in flight per task: that task's messages meanwhile are the call's own account.
    let mut in_flight: BTreeMap<TaskId, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let actor = actor_of(event.task);
        match &event.kind {
            EventKind::CallBegin { request, .. } => {
                *in_flight.entry(event.task).or_default() += 1;
                let to = callee_of(index);
                lines.push(Line::Arrow {
                    from: actor,
                    to,
                    arrow: "->>",
                    text: request.to_string(),
                });
            }
            EventKind::CallEnd { begin, response } => {
                if ends.get(begin) != Some(&index) {
                    continue;
                }
                if let Some(count) = in_flight.get_mut(&event.task) {
                    *count = count.saturating_sub(1);
                }
                let from = callee_of(*begin);
                lines.push(Line::Arrow {
                    from,
                    to: actor,
                    arrow: "-->>",
                    text: response.to_string(),
                });
            }
            // The setup closure's spawns are the cast, which the participant list already shows.
            EventKind::Spawn { .. } if actor == Actor::Setup => {}
            EventKind::Spawn { child } => {
                let to = actor_of(*child);
                lines.push(Line::Arrow { from: actor, to, arrow: "-)", text: "spawn".to_string() });
            }
            EventKind::Exit => lines.push(Line::Note { over: actor, text: "exit".to_string() }),
            EventKind::Message(message) => {
                if in_flight.get(&event.task).copied().unwrap_or(0) == 0 {
                    lines.push(Line::Note { over: actor, text: message.to_string() });
                }
            }
        }
    }
    lines
}

/// A block of lines repeated `repeats` times in a row.
struct Group<'a> {
    block: &'a [Line],
    repeats: usize,
}

/// Greedy run-length compaction: at each position, the block length (1..=[`BLOCK_MAX`]) whose
/// back-to-back repeats cover the most lines (ties to the shorter block).
fn compact(lines: &[Line]) -> Vec<Group<'_>> {
    let mut groups = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let (mut best_len, mut best_repeats) = (1, 1);
        for len in 1..=BLOCK_MAX {
            let block = &lines[at..(at + len).min(lines.len())];
            let mut repeats = 1;
            while lines.get(at + repeats * len..at + (repeats + 1) * len) == Some(block) {
                repeats += 1;
            }
            if repeats > 1 && len * repeats > best_len * best_repeats {
                (best_len, best_repeats) = (len, repeats);
            }
        }
        groups.push(Group { block: &lines[at..at + best_len], repeats: best_repeats });
        at += best_len * best_repeats;
    }
    groups
}

fn write_group(out: &mut String, group: &Group<'_>) {
    match (group.block, group.repeats) {
        ([line], 1) => line.write(out, "    ", ""),
        ([line], repeats) => line.write(out, "    ", &format!(" ×{repeats}")),
        (block, repeats) => {
            let _ = writeln!(out, "    loop {repeats} times");
            for line in block {
                line.write(out, "        ", "");
            }
            out.push_str("    end\n");
        }
    }
}

fn write_participants(out: &mut String, trace: &Trace, actors: &[Actor], callees: &[&str]) {
    let task_name = |actor: Actor| match actor {
        Actor::Task(id) => Some(trace.task_name(TaskId(id))),
        _ => None,
    };
    for &actor in actors {
        let name = match actor {
            Actor::Setup => "setup".to_string(),
            Actor::Callee(index) => callees.get(index).copied().unwrap_or("callee").to_string(),
            Actor::Task(id) => {
                let name = trace.task_name(TaskId(id));
                let shared = actors.iter().filter(|&&other| task_name(other) == Some(name)).count();
                if shared > 1 { format!("{name} (task {id})") } else { name.to_string() }
            }
        };
        let _ = writeln!(out, "    participant {} as {}", alias(actor), text(&name));
    }
}

/// `raw` as Mermaid text: the characters Mermaid's lexer or its HTML rendering would take as
/// syntax become entity codes, control characters become spaces, and it is never empty.
fn text(raw: &str) -> String {
    // Mermaid's entity pre-pass drops the `;` of an entity in a line matching
    // `style.*:\S*#.*;` (or `classDef…`): in such text a `:` is an entity too.
    let colons = raw.contains("style") || raw.contains("classDef");
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.trim().chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '%' => out.push_str("#37;"),
            '<' => out.push_str("#60;"),
            '>' => out.push_str("#62;"),
            '&' => out.push_str("#38;"),
            '"' => out.push_str("#34;"),
            ':' if colons => out.push_str("#58;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    // A leading `wrap:` or `nowrap:` (optionally after a `:`) is a Mermaid directive.
    let directive = ["wrap:", "nowrap:", ":wrap:", ":nowrap:"];
    if directive.iter().any(|prefix| out.starts_with(prefix)) {
        let first = out.chars().next().map_or(0, u32::from);
        out.replace_range(..1, &format!("#{first};"));
    }
    if out.is_empty() {
        out.push('…');
    }
    out
}

//! Trace exports: the Perfetto (Chrome trace event) JSON parses and has every field the format
//! requires, one named track per task and a slice per API call; the Mermaid diagram passes a
//! line-by-line syntax check, stays within its message budget and compacts repeats; both are
//! deterministic; the call spans behind them leave the text trace and its hash untouched.

use std::collections::BTreeSet;
use std::time::Duration;

use scenarios::{Params, find, run};
use serde_json::Value;
use sim_core::export::{call_begin, call_end, mermaid, perfetto};
use sim_core::{EventKind, FailureKind, Outcome, Simulation, TaskId, Trace, event, sleep, spawn};

/// Runs `scenario`'s `variant` at `seed` with default parameters.
fn scenario_run(sim: &mut Simulation, scenario: &str, variant: &str, seed: u64) -> Outcome {
    let scenario = find(scenario).expect("registered scenario");
    let params = Params::defaults(scenario.as_ref());
    run(sim, scenario.as_ref(), variant, &params, seed)
}

/// The first seed below 1,000 at which `scenario`'s `variant` fails, and a simulation holding
/// that run's trace.
fn failing_run(scenario: &str, variant: &str) -> (u64, Simulation) {
    let mut sim = Simulation::default();
    let seed = (0..1_000)
        .find(|&seed| scenario_run(&mut sim, scenario, variant, seed).is_failure())
        .unwrap_or_else(|| panic!("{scenario} {variant}: no failure within 1,000 seeds"));
    (seed, sim)
}

/// The livelock of cert-manager's foreground deletion: a long run full of API calls.
fn cert_manager_livelock() -> (u64, Simulation) {
    failing_run("cert-manager-foreground-deletion", "buggy")
}

/// Submariner's `LogIfChanged` Go map crash: API calls, then `fatal error: concurrent map …`.
fn go_map_crash() -> (u64, Simulation) {
    let (seed, sim) = failing_run("submariner-logifchanged", "buggy");
    let failure = sim.trace().outcome().and_then(Outcome::failure).expect("failed");
    assert_eq!(failure.kind, FailureKind::GoFatal, "{failure}");
    (seed, sim)
}

fn calls(trace: &Trace) -> usize {
    trace.events().iter().filter(|e| matches!(e.kind, EventKind::CallBegin { .. })).count()
}

// ---------------------------------------------------------------------------------------------
// Perfetto: the Chrome trace event format.

/// What the Chrome trace event format requires of one event, checked field by field.
fn check_event(event: &Value) -> Result<(), String> {
    let object = event.as_object().ok_or("an event is not an object")?;
    let name = object.get("name").and_then(Value::as_str).ok_or("no string `name`")?;
    let ph = object.get("ph").and_then(Value::as_str).ok_or("no string `ph`")?;
    let ts = object.get("ts").and_then(Value::as_f64).ok_or("no number `ts`")?;
    if ts < 0.0 {
        return Err(format!("negative ts {ts}"));
    }
    for id in ["pid", "tid"] {
        object.get(id).and_then(Value::as_u64).ok_or(format!("no integer `{id}`"))?;
    }
    match ph {
        "X" => {
            let dur = object.get("dur").and_then(Value::as_f64).ok_or("X without number `dur`")?;
            if dur < 0.0 {
                return Err(format!("slice {name:?} has negative dur {dur}"));
            }
        }
        "i" => {
            let scope = object.get("s").and_then(Value::as_str).ok_or("i without `s`")?;
            if !["t", "p", "g"].contains(&scope) {
                return Err(format!("instant scope {scope:?}"));
            }
        }
        "M" => {
            let args = object.get("args").and_then(Value::as_object).ok_or("M without args")?;
            let known = ["process_name", "thread_name", "thread_sort_index", "process_sort_index"];
            if !known.contains(&name) {
                return Err(format!("unknown metadata event {name:?}"));
            }
            if name.ends_with("_name") && !args.get("name").is_some_and(Value::is_string) {
                return Err(format!("{name} without a string args.name"));
            }
        }
        other => return Err(format!("unexpected phase {other:?}")),
    }
    Ok(())
}

/// Parses an export and checks the file's shape and every event in it; returns the events.
fn check_perfetto(json: &str) -> Result<Vec<Value>, String> {
    let document: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let unit = document.get("displayTimeUnit").and_then(Value::as_str);
    if !matches!(unit, Some("ms" | "ns")) {
        return Err(format!("displayTimeUnit {unit:?}"));
    }
    let events =
        document.get("traceEvents").and_then(Value::as_array).ok_or("no traceEvents array")?;
    for (index, event) in events.iter().enumerate() {
        check_event(event).map_err(|e| format!("event {index}: {e}: {event}"))?;
    }
    Ok(events.clone())
}

fn field<'a>(event: &'a Value, key: &str) -> &'a Value {
    &event[key]
}

fn with_phase<'a>(events: &'a [Value], ph: &str) -> impl Iterator<Item = &'a Value> {
    events.iter().filter(move |e| field(e, "ph") == ph)
}

/// The checks every export of a scenario trace must pass: named tracks for every task and
/// every track used, one slice per call with its response, one instant per event, timestamps
/// that are the events' virtual times, and the failure on the failing task.
fn check_scenario_export(trace: &Trace) {
    let json = perfetto(trace);
    let events = check_perfetto(&json).unwrap_or_else(|e| panic!("{e}"));

    let process: Vec<&Value> =
        with_phase(&events, "M").filter(|e| field(e, "name") == "process_name").collect();
    assert_eq!(process.len(), 1);
    assert_eq!(process[0]["args"]["name"], format!("kdst seed {}", trace.seed()).as_str());

    let named: Vec<(u64, &str)> = with_phase(&events, "M")
        .filter(|e| field(e, "name") == "thread_name")
        .map(|e| (e["tid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap()))
        .collect();
    for task in 0..trace.tasks() as u32 {
        let expected = trace.task_name(TaskId(task));
        assert!(named.contains(&(u64::from(task), expected)), "task {task} ({expected}) unnamed");
    }
    let tids: BTreeSet<u64> = named.iter().map(|(tid, _)| *tid).collect();
    assert_eq!(tids.len(), named.len(), "a track named twice");
    for event in events.iter().filter(|e| field(e, "ph") != "M") {
        let tid = event["tid"].as_u64().unwrap();
        assert!(tids.contains(&tid), "event on unnamed track {tid}: {event}");
    }

    // One slice per call, in order, on the caller's track, each with its response.
    let end_us = trace.end_time().as_nanos() as f64 / 1_000.0;
    let begins: Vec<_> = trace
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallBegin { request, .. } => Some((e, request.to_string())),
            _ => None,
        })
        .collect();
    let slices: Vec<&Value> = with_phase(&events, "X").collect();
    assert_eq!(slices.len(), begins.len(), "one slice per call");
    assert!(!slices.is_empty(), "a scenario trace without API calls");
    for (slice, (begin, request)) in slices.iter().zip(&begins) {
        assert_eq!(slice["name"], request.as_str());
        assert_eq!(slice["tid"].as_u64(), Some(u64::from(begin.task.0)));
        let ts = slice["ts"].as_f64().unwrap();
        assert!((ts - begin.time_ns as f64 / 1_000.0).abs() < 1e-3, "{slice}");
        let dur = slice["dur"].as_f64().unwrap();
        assert!(ts + dur <= end_us + 1e-3, "slice past the end of the run: {slice}");
        assert!(slice["args"]["response"].is_string(), "{slice}");
    }
    assert!(slices.iter().any(|s| s["dur"].as_f64().unwrap() > 0.0), "calls take virtual time");

    // One instant per rendered event, at its virtual time, plus the failure.
    let rendered: Vec<_> = trace.events().iter().filter(|e| !e.kind.is_call()).collect();
    let failure = trace.outcome().and_then(Outcome::failure);
    let instants: Vec<&Value> = with_phase(&events, "i").collect();
    assert_eq!(instants.len(), rendered.len() + usize::from(failure.is_some()));
    for (instant, event) in instants.iter().zip(&rendered) {
        assert_eq!(instant["name"], trace.event_text(event).as_str());
        let ts = instant["ts"].as_f64().unwrap();
        assert!((ts - event.time_ns as f64 / 1_000.0).abs() < 1e-3, "{instant}");
        assert_eq!(instant["args"]["step"].as_u64(), Some(event.step));
    }
    if let Some(failure) = failure {
        let last = instants.last().expect("the failure instant");
        assert!(last["name"].as_str().unwrap().contains(&failure.message), "{last}");
        assert_eq!(last["cat"], "failure");
        assert_eq!(last["args"]["failure"], failure.to_string().as_str());
        match failure.task {
            Some(task) => {
                assert_eq!(
                    (last["tid"].as_u64(), &last["s"]),
                    (Some(u64::from(task.0)), &"t".into())
                )
            }
            None => assert_eq!(last["s"], "g", "a failure without a task is global: {last}"),
        }
    }
}

#[test]
fn perfetto_export_of_a_livelock_is_well_formed() {
    let (_, sim) = cert_manager_livelock();
    check_scenario_export(sim.trace());
}

#[test]
fn perfetto_export_of_a_go_map_crash_is_well_formed() {
    let (_, sim) = go_map_crash();
    check_scenario_export(sim.trace());
    let json = perfetto(sim.trace());
    assert!(json.contains("fatal error: concurrent map"));
}

#[test]
fn perfetto_export_is_deterministic() {
    let (seed, sim) = go_map_crash();
    let first = perfetto(sim.trace());
    let mut again = Simulation::default();
    scenario_run(&mut again, "submariner-logifchanged", "buggy", seed);
    assert_eq!(first, perfetto(again.trace()), "seed {seed} exported twice");
    scenario_run(&mut again, "submariner-logifchanged", "buggy", seed + 1);
    assert_ne!(first, perfetto(again.trace()), "another seed, another export");
}

/// A call still in flight when the run ends is a slice to the end of the run, marked so; names
/// with JSON's special characters survive the round trip.
#[test]
fn perfetto_export_escapes_names_and_shows_unfinished_calls() {
    let name = "ctl \"q\" \\ back\nline\ttab \u{1} ünï/(*)";
    let mut sim = Simulation::default();
    sim.run(3, || {
        spawn(name, async {
            event("said \"hi\"\r\n");
            let _call = call_begin("API server", "WATCH Pod in all namespaces");
            sleep(Duration::from_secs(1)).await;
            sim_core::fail(FailureKind::Invariant, "stopped mid-call", "");
        });
    });
    let trace = sim.trace();
    let events = check_perfetto(&perfetto(trace)).unwrap_or_else(|e| panic!("{e}"));
    let thread = events.iter().find(|e| e["name"] == "thread_name" && e["tid"] == 0).unwrap();
    assert_eq!(thread["args"]["name"], name);
    assert!(events.iter().any(|e| e["name"] == "said \"hi\"\r\n"));
    let slice = with_phase(&events, "X").next().expect("the unfinished call");
    let begin = trace.events().iter().find(|e| e.kind.is_call()).expect("the call's begin");
    let dur = slice["dur"].as_f64().unwrap();
    let expected = (trace.end_time().as_nanos() - begin.time_ns) as f64 / 1_000.0;
    assert!(dur >= 1_000_000.0 && (dur - expected).abs() < 1e-3, "{slice}");
    assert!(slice["args"]["response"].as_str().unwrap().contains("in flight"), "{slice}");
    assert!(events.iter().any(|e| e["cat"] == "failure" && e["tid"] == 0));
}

/// The checker rejects what the format forbids, so the tests above can fail.
#[test]
fn perfetto_checker_rejects_malformed_events() {
    let bad = [
        r#"{"name":"a","ph":"X","ts":1,"pid":1,"tid":0}"#,
        r#"{"name":"a","ph":"X","ts":1,"dur":-2,"pid":1,"tid":0}"#,
        r#"{"name":"a","ph":"i","ts":1,"pid":1,"tid":0}"#,
        r#"{"name":"a","ph":"i","s":"t","pid":1,"tid":0}"#,
        r#"{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":0}"#,
        r#"{"ph":"i","s":"t","ts":1,"pid":1,"tid":0}"#,
        r#"{"name":"a","ph":"i","s":"t","ts":1,"pid":1}"#,
    ];
    for event in bad {
        let json = format!(r#"{{"displayTimeUnit":"ns","traceEvents":[{event}]}}"#);
        assert!(check_perfetto(&json).is_err(), "accepted {event}");
    }
}

// ---------------------------------------------------------------------------------------------
// Mermaid: a line-by-line syntax check of what the exporter relies on.

const ARROWS: [&str; 8] = ["-->>", "->>", "-->", "->", "--x", "-x", "--)", "-)"];
const KEYWORDS: [&str; 12] = [
    "end",
    "loop",
    "alt",
    "else",
    "opt",
    "par",
    "and",
    "note",
    "over",
    "participant",
    "actor",
    "box",
];

/// What a diagram contains, for the tests' own checks.
#[derive(Debug, Default)]
struct Diagram {
    /// Alias → display name (entities decoded).
    participants: Vec<(String, String)>,
    /// Arrow and note lines drawn.
    messages: usize,
    /// How many trace lines the messages stand for (`×N`, `loop N times`).
    represented: usize,
    notes: Vec<(String, String)>,
    /// Texts of arrows (decoded).
    arrows: Vec<(String, String, String)>,
    left_out: usize,
}

/// Mermaid text: no `;`, `#` or `%%` outside entity codes `#<digits>;`, no raw HTML characters
/// or control characters, not empty. Returns the decoded text.
fn check_text(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("empty text".into());
    }
    if raw.contains("%%") {
        return Err(format!("`%%` starts a comment: {raw:?}"));
    }
    let mut decoded = String::new();
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if c == '#' {
            let end = rest.find(';').ok_or_else(|| format!("`#` without `;`: {raw:?}"))?;
            let code: u32 = rest[1..end].parse().map_err(|_| format!("bad entity in {raw:?}"))?;
            decoded.push(char::from_u32(code).ok_or("entity out of range")?);
            rest = &rest[end + 1..];
            continue;
        }
        if c == ';' || c.is_control() || "<>\"&".contains(c) {
            return Err(format!("unescaped {c:?} in {raw:?}"));
        }
        decoded.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if ["wrap:", "nowrap:", ":wrap:", ":nowrap:"].iter().any(|p| raw.starts_with(p)) {
        return Err(format!("text starts with a wrap directive: {raw:?}"));
    }
    // Mermaid's entity pre-pass cuts the last `;` of a line matching `style.*:\S*#.*;`.
    if (raw.contains("style") || raw.contains("classDef")) && raw.contains(':') {
        return Err(format!("`:` in a text with `style` or `classDef`: {raw:?}"));
    }
    Ok(decoded)
}

fn check_alias(alias: &str) -> Result<(), String> {
    let mut chars = alias.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || KEYWORDS.contains(&alias.to_lowercase().as_str()) {
        return Err(format!("invalid alias {alias:?}"));
    }
    Ok(())
}

/// `×N` at the end of a text: how many trace lines it stands for.
fn repeats(text: &str) -> usize {
    text.rsplit_once(" ×").and_then(|(_, n)| n.parse().ok()).unwrap_or(1)
}

/// Checks a diagram line by line and returns what it holds.
fn check_mermaid(diagram: &str) -> Result<Diagram, String> {
    let mut lines = diagram.lines();
    if lines.next() != Some("sequenceDiagram") {
        return Err("no `sequenceDiagram` header".into());
    }
    let mut out = Diagram::default();
    let mut declared = BTreeSet::new();
    let mut statements_started = false;
    let mut loop_repeats: Option<usize> = None;
    let known = |declared: &BTreeSet<String>, alias: &str| {
        if declared.contains(alias) { Ok(()) } else { Err(format!("undeclared {alias:?}")) }
    };
    for (number, line) in lines.enumerate() {
        let number = number + 2;
        let line = line.trim();
        let at = |e: String| format!("line {number} {line:?}: {e}");
        if line.is_empty() {
            continue;
        }
        if let Some(title) = line.strip_prefix("title ") {
            check_text(title).map_err(at)?;
        } else if let Some(rest) = line.strip_prefix("participant ") {
            if statements_started {
                return Err(at("participant declared after the first message".into()));
            }
            let (alias, name) = rest.split_once(" as ").ok_or_else(|| at("no ` as `".into()))?;
            check_alias(alias).map_err(at)?;
            let name = check_text(name).map_err(at)?;
            if !declared.insert(alias.to_string()) {
                return Err(at("declared twice".into()));
            }
            out.participants.push((alias.to_string(), name));
        } else if let Some(text) = line.strip_prefix("loop ") {
            statements_started = true;
            if loop_repeats.is_some() {
                return Err(at("nested loop".into()));
            }
            check_text(text).map_err(at)?;
            let count = text.strip_suffix(" times").and_then(|n| n.parse().ok());
            loop_repeats = Some(count.ok_or_else(|| at("loop without a count".into()))?);
        } else if line == "end" {
            if loop_repeats.take().is_none() {
                return Err(at("`end` outside a loop".into()));
            }
        } else if let Some(rest) = line.strip_prefix("Note over ") {
            statements_started = true;
            let (actors, text) =
                rest.split_once(": ").ok_or_else(|| at("note without `: `".into()))?;
            for actor in actors.split(',') {
                known(&declared, actor).map_err(at)?;
            }
            let text = check_text(text).map_err(at)?;
            out.messages += 1;
            if let Some(count) = text.strip_prefix("… ").and_then(|t| t.split(' ').next()) {
                out.left_out += count.parse::<usize>().map_err(|e| at(e.to_string()))?;
            } else {
                out.represented += repeats(&text) * loop_repeats.unwrap_or(1);
            }
            out.notes.push((actors.to_string(), text));
        } else {
            statements_started = true;
            let (head, text) = line.split_once(": ").ok_or_else(|| at("no `: ` text".into()))?;
            let (from, to) = ARROWS
                .iter()
                .find_map(|arrow| head.split_once(arrow))
                .ok_or_else(|| at("no arrow".into()))?;
            for actor in [from, to] {
                check_alias(actor).map_err(at)?;
                known(&declared, actor).map_err(at)?;
            }
            let text = check_text(text).map_err(at)?;
            out.messages += 1;
            out.represented += repeats(&text) * loop_repeats.unwrap_or(1);
            out.arrows.push((from.to_string(), to.to_string(), text));
        }
    }
    if loop_repeats.is_some() {
        return Err("unclosed loop".into());
    }
    Ok(out)
}

fn alias_of(diagram: &Diagram, display: &str) -> Option<String> {
    diagram.participants.iter().find(|(_, name)| name == display).map(|(alias, _)| alias.clone())
}

#[test]
fn mermaid_of_a_livelock_is_valid_and_stays_within_its_budget() {
    let (_, sim) = cert_manager_livelock();
    let trace = sim.trace();
    let max = 150;
    let text = mermaid(trace, max);
    let diagram = check_mermaid(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The run's lines, then the left-out note and the failure note.
    assert!(diagram.messages <= max + 2, "{} messages", diagram.messages);
    assert!(
        diagram.left_out > 1_000,
        "a livelock leaves most of the run out: {}",
        diagram.left_out
    );
    assert!(text.len() < 50_000, "over Mermaid's default maxTextSize: {}", text.len());
    let api = alias_of(&diagram, "API server").expect("the API server participant");
    let requests = diagram.arrows.iter().filter(|(_, to, _)| *to == api).count();
    let responses = diagram.arrows.iter().filter(|(from, _, _)| *from == api).count();
    assert!(requests > 0 && responses > 0, "{text}");
    assert!(diagram.arrows.iter().any(|(_, to, t)| *to == api && t.starts_with("LIST ")));
    let failure = trace.outcome().and_then(Outcome::failure).expect("failed");
    let (over, last) = diagram.notes.last().expect("the failure note");
    let start: String = failure.message.chars().take(40).collect();
    assert!(last.contains("failure (liveness)") && last.contains(&start), "{last}");
    match failure.task {
        Some(task) => assert_eq!(over, &format!("T{}", task.0)),
        None => assert!(over.contains(','), "a failure without a task spans the diagram: {over}"),
    }
    for (alias, name) in &diagram.participants {
        if let Some(id) = alias.strip_prefix('T') {
            let id: u32 = id.parse().expect("task alias");
            assert!(name.starts_with(trace.task_name(TaskId(id))), "{alias} as {name}");
        }
    }
}

#[test]
fn mermaid_of_a_go_map_crash_ends_on_the_crashing_task() {
    let (_, sim) = go_map_crash();
    let trace = sim.trace();
    let text = mermaid(trace, 100_000);
    let diagram = check_mermaid(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(diagram.left_out, 0);
    let failure = trace.outcome().and_then(Outcome::failure).expect("failed");
    let task = failure.task.expect("a crashing task");
    let (over, last) = diagram.notes.last().expect("the failure note");
    assert_eq!(over, &format!("T{}", task.0));
    assert!(last.contains("fatal error: concurrent map"), "{last}");
    // Every spawn by a task is an arrow (the setup closure's are the participant list).
    let spawns = trace
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Spawn { .. }) && e.task.0 != u32::MAX);
    let from_arrows = diagram.arrows.iter().filter(|(_, _, t)| t.starts_with("spawn")).count();
    assert_eq!(spawns.count(), from_arrows);
    let api = alias_of(&diagram, "API server").expect("the API server participant");
    let requests: usize =
        diagram.arrows.iter().filter(|(_, to, _)| *to == api).map(|(_, _, t)| repeats(t)).sum();
    assert!(requests <= calls(trace) && requests > 0, "{requests} of {}", calls(trace));
}

#[test]
fn mermaid_is_deterministic() {
    let (seed, sim) = go_map_crash();
    let first = mermaid(sim.trace(), 300);
    let mut again = Simulation::default();
    scenario_run(&mut again, "submariner-logifchanged", "buggy", seed);
    assert_eq!(first, mermaid(again.trace(), 300), "seed {seed} exported twice");
    scenario_run(&mut again, "submariner-logifchanged", "buggy", seed + 1);
    assert_ne!(first, mermaid(again.trace(), 300), "another seed, another diagram");
}

/// Repeats collapse (`×N` for a line, `loop N times` for a block), every trace line is
/// accounted for (drawn, collapsed or counted as left out), and the budget holds at every size.
#[test]
fn mermaid_compacts_repeats_and_accounts_for_every_line() {
    let mut sim = Simulation::default();
    sim.run(5, || {
        spawn("poller", async {
            for _ in 0..40 {
                event("nothing to do");
            }
            for _ in 0..25 {
                let call = call_begin("API server", "GET ConfigMap default/settings");
                sleep(Duration::from_millis(1)).await;
                event("API GET configmaps default/settings → rv 3");
                call_end(call, "rv 3");
            }
            for round in 0..30 {
                event(format!("round {round}"));
            }
        });
    });
    let trace = sim.trace();
    // 40 notes, 25 × (request, response), 30 notes, exit (setup's spawn is the participant list).
    let total = 40 + 50 + 30 + 1;
    let full = mermaid(trace, 1_000);
    let diagram = check_mermaid(&full).unwrap_or_else(|e| panic!("{e}\n{full}"));
    assert!(full.contains("    Note over T0: nothing to do ×40\n"), "{full}");
    let block = "    loop 25 times\n        T0->>C0: GET ConfigMap default/settings\n        \
                 C0-->>T0: rv 3\n    end\n";
    assert!(full.contains(block), "{full}");
    assert!(!full.contains("configmaps"), "the call's own messages are the arrows");
    assert_eq!((diagram.represented, diagram.left_out), (total, 0));
    assert_eq!(diagram.messages, 1 + 2 + 30 + 1);
    for max in [0, 1, 2, 3, 10, 33, 34, 100] {
        let text = mermaid(trace, max);
        let diagram = check_mermaid(&text).unwrap_or_else(|e| panic!("max {max}: {e}\n{text}"));
        let left_out_note = usize::from(diagram.left_out > 0);
        assert!(diagram.messages - left_out_note <= max, "max {max}:\n{text}");
        assert_eq!(diagram.represented + diagram.left_out, total, "max {max}:\n{text}");
        // The whole run is 34 lines: a budget of 34 draws it all, a smaller one leaves some out.
        assert_eq!(diagram.left_out == 0, max >= 34, "max {max}:\n{text}");
    }
}

/// Names and messages full of Mermaid syntax are declared, escaped, and decode to the original.
#[test]
fn mermaid_escapes_names_and_messages() {
    let names =
        ["gc/monitor secret.v1/reflector (3)", "a;b #c %%d <e> \"f\" & g*", "wrap: x", "end"];
    let message = "x: 50%; #1 <b>bold</b> → \"q\" & style:#fff;";
    let mut sim = Simulation::default();
    sim.run(2, || {
        for name in names {
            spawn(name, async move {
                event(message);
                event("");
            });
        }
        spawn("dup", async {
            spawn("child", async {});
        });
        spawn("dup", async {});
    });
    let text = mermaid(sim.trace(), 1_000);
    let diagram = check_mermaid(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for name in names {
        assert!(alias_of(&diagram, name).is_some(), "{name:?} not declared:\n{text}");
    }
    assert!(
        alias_of(&diagram, "dup (task 4)").is_some()
            && alias_of(&diagram, "dup (task 5)").is_some()
    );
    assert_eq!(diagram.notes.iter().filter(|(_, t)| t == message).count(), names.len(), "{text}");
    let spawn = ("T4".to_string(), "T6".to_string(), "spawn".to_string());
    assert!(diagram.arrows.contains(&spawn), "a task's spawn is an arrow:\n{text}");
    assert!(!text.contains("SETUP-)"), "the setup closure's spawns are the participant list");
}

/// The checker rejects what Mermaid's grammar rejects or misreads, so the tests above can fail.
#[test]
fn mermaid_checker_rejects_malformed_diagrams() {
    let head = "sequenceDiagram\n    participant T0 as a\n    participant C0 as b\n";
    let bad = [
        "graph TD\n".to_string(),
        format!("{head}    T0->>T1: undeclared\n"),
        format!("{head}    T0=>>C0: arrow\n"),
        format!("{head}    T0->>C0: raw; semicolon\n"),
        format!("{head}    T0->>C0: raw # comment\n"),
        format!("{head}    T0->>C0: %% comment\n"),
        format!("{head}    T0->>C0:\n"),
        format!("{head}    Note over T0 no colon\n"),
        format!("{head}    Note over T0,T9: undeclared\n"),
        format!("{head}    T0->>C0: x\n    participant T1 as late\n"),
        format!("{head}    loop 2 times\n    T0->>C0: x\n"),
        format!("{head}    end\n"),
        "sequenceDiagram\n    participant end as keyword\n".to_string(),
        "sequenceDiagram\n    participant T-0 as dash\n".to_string(),
    ];
    for diagram in &bad {
        assert!(check_mermaid(diagram).is_err(), "accepted:\n{diagram}");
    }
    let good =
        format!("{head}    T0->>C0: GET #35;1\n    C0-->>T0: rv 2 ×3\n    Note over T0,C0: ok\n");
    let diagram = check_mermaid(&good).expect("a valid diagram");
    assert_eq!((diagram.messages, diagram.represented), (3, 5));
}

// ---------------------------------------------------------------------------------------------
// Call spans stay out of the text trace and its hash.

/// The same program with and without call spans: same render, same hash, same last events, and
/// the spans are only in `events()`.
#[test]
fn call_spans_leave_the_rendered_trace_and_hash_unchanged() {
    fn program(spans: bool) {
        for worker in 0..3 {
            spawn(format!("worker-{worker}"), async move {
                for round in 0..4 {
                    let call = spans.then(|| call_begin("API server", format!("GET x/{round}")));
                    sleep(Duration::from_micros(100 * (worker + 1))).await;
                    event(format!("got x/{round}"));
                    if let Some(call) = call {
                        call_end(call, "rv 1");
                    }
                }
            });
        }
    }
    let mut with = Simulation::default();
    let mut without = Simulation::default();
    for seed in 0..20 {
        with.run(seed, || program(true));
        without.run(seed, || program(false));
        let (a, b) = (with.trace(), without.trace());
        assert_eq!(a.render(), b.render(), "seed {seed}");
        assert_eq!(a.render_head(10), b.render_head(10), "seed {seed}");
        assert_eq!(a.hash(), b.hash(), "seed {seed}");
        assert_eq!(a.last_events_of(TaskId(1), 3), b.last_events_of(TaskId(1), 3), "seed {seed}");
        assert_eq!(a.events().len(), b.events().len() + 2 * 12, "seed {seed}");
        assert_eq!(calls(a), 12);
    }
}

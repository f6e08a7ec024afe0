//! `GoMap`: a map with the Go runtime's concurrent-access check.
//!
//! Go's map write sets a `hashWriting` flag for the duration of the write; a read that sees the
//! flag dies with `fatal error: concurrent map read and map write`, a second writer with
//! `fatal error: concurrent map writes`, an iteration step with
//! `fatal error: concurrent map iteration and map write` (`runtime/map.go`: `mapaccess1`,
//! `mapassign`, `mapdelete`, `mapiternext`). Nothing stops a write from starting while a read is
//! in progress; only what sees the flag dies. Detection is therefore schedule-dependent, and so
//! it is here:
//!
//! - a write is: scheduling point, check and set the flag, **scheduling point** (the window in
//!   which Go can be preempted mid-write), mutate, clear the flag;
//! - a read is: scheduling point, check the flag, read;
//! - an iteration is a read check at every element, with a scheduling point between elements.
//!
//! A fatal error ends the run (Go's `throw`: no recover) with [`FailureKind::GoFatal`] and a
//! report in the shape of a Go goroutine dump naming both tasks and their frame labels.
//!
//! With the race detector on ([`crate::race`]), every access is also checked against the
//! earlier ones by happens-before, as `go test -race` does: a race is reported whether or not the
//! two accesses overlapped, usually long before the flag above is seen.
//!
//! Like a Go map value, a `GoMap` is a reference: clones share one map.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use crate::context::{self, Context, NO_TASK};
use crate::failure::FailureKind;
use crate::footprint::Resource;
use crate::race::RaceVar;
use crate::task::yield_now;
use crate::{SimTime, TaskId};

/// Go's text for two overlapping writes.
pub const CONCURRENT_WRITES: &str = "fatal error: concurrent map writes";
/// Go's text for a read during a write.
pub const CONCURRENT_READ_WRITE: &str = "fatal error: concurrent map read and map write";
/// Go's text for an iteration during a write.
pub const CONCURRENT_ITERATION_WRITE: &str = "fatal error: concurrent map iteration and map write";

#[derive(Clone, Copy, Debug)]
struct Writer {
    task: u32,
    step: u64,
    time_ns: u64,
    op: &'static str,
}

struct Inner<K, V> {
    name: Cow<'static, str>,
    data: RefCell<BTreeMap<K, V>>,
    writing: Cell<Option<Writer>>,
    /// What steps that use the map touch: reads read it, writes write it.
    resource: Resource,
    /// What the race detector knows of the map's accesses ([`crate::race`]).
    race: RaceVar,
}

/// A map that crashes the run as Go does on unsynchronised concurrent access.
pub struct GoMap<K, V> {
    inner: Rc<Inner<K, V>>,
}

impl<K, V> Clone for GoMap<K, V> {
    fn clone(&self) -> Self {
        GoMap { inner: self.inner.clone() }
    }
}

impl<K: Ord + Clone, V: Clone> GoMap<K, V> {
    /// An empty map; `name` (the Go variable, e.g. `loggedImages`) appears in crash reports.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        let race = RaceVar::described(format!("map \"{name}\""));
        GoMap {
            inner: Rc::new(Inner {
                race,
                name,
                data: RefCell::new(BTreeMap::new()),
                writing: Cell::new(None),
                resource: Resource::new(),
            }),
        }
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `m[key] = value` (Go's `mapassign`); returns the previous value.
    pub async fn insert(&self, key: K, value: V) -> Option<V> {
        self.write("runtime.mapassign", move |data| data.insert(key, value)).await
    }

    /// `delete(m, key)` (Go's `mapdelete`); returns the removed value.
    pub async fn remove(&self, key: &K) -> Option<V> {
        self.write("runtime.mapdelete", |data| data.remove(key)).await
    }

    /// `clear(m)`.
    pub async fn clear(&self) {
        self.write("runtime.mapclear", BTreeMap::clear).await;
    }

    /// `v, ok := m[key]` (Go's `mapaccess2`).
    pub async fn get(&self, key: &K) -> Option<V> {
        self.read("runtime.mapaccess2", |data| data.get(key).cloned()).await
    }

    /// `_, ok := m[key]`.
    pub async fn contains_key(&self, key: &K) -> bool {
        self.read("runtime.mapaccess2", |data| data.contains_key(key)).await
    }

    /// `len(m)`: like Go's, it does not check the writing flag and is not a scheduling point.
    pub fn len(&self) -> usize {
        self.inner.resource.read();
        self.inner.race.read("len");
        self.inner.data.borrow().len()
    }

    /// `len(m) == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `for k, v := range m { if !f(k, v) { break } }`: checks the flag at every element, with a
    /// scheduling point between elements. Keys are visited in order (Go randomises the start;
    /// the interleaving, not the order, is what the crash depends on).
    pub async fn range(&self, mut f: impl FnMut(&K, &V) -> bool) {
        yield_now().await;
        self.inner.resource.read();
        let keys: Vec<K> = self.inner.data.borrow().keys().cloned().collect();
        for (index, key) in keys.iter().enumerate() {
            if index > 0 {
                yield_now().await;
            }
            self.inner.race.read("runtime.mapiternext");
            self.check_flag(CONCURRENT_ITERATION_WRITE, "runtime.mapiternext");
            let value = self.inner.data.borrow().get(key).cloned();
            if let Some(value) = value
                && !f(key, &value)
            {
                break;
            }
        }
    }

    /// A copy of the entries, read with an iteration (so it crashes as a `range` would).
    pub async fn entries(&self) -> Vec<(K, V)> {
        let mut entries = Vec::with_capacity(self.len());
        self.range(|key, value| {
            entries.push((key.clone(), value.clone()));
            true
        })
        .await;
        entries
    }

    /// A copy of the contents without any check or scheduling point: for oracles and tests,
    /// not for modelled Go code.
    pub fn snapshot(&self) -> BTreeMap<K, V> {
        self.inner.resource.read();
        self.inner.data.borrow().clone()
    }

    async fn read<R>(&self, op: &'static str, f: impl FnOnce(&BTreeMap<K, V>) -> R) -> R {
        yield_now().await;
        self.inner.race.read(op);
        self.check_flag(CONCURRENT_READ_WRITE, op);
        f(&self.inner.data.borrow())
    }

    async fn write<R>(&self, op: &'static str, f: impl FnOnce(&mut BTreeMap<K, V>) -> R) -> R {
        yield_now().await;
        self.inner.resource.write();
        self.inner.race.write(op);
        self.check_flag(CONCURRENT_WRITES, op);
        let flag = WritingFlag::set(&self.inner.writing, op);
        yield_now().await;
        self.inner.resource.write();
        let result = f(&mut self.inner.data.borrow_mut());
        drop(flag);
        result
    }

    /// Dies with `text` if a write is in progress.
    fn check_flag(&self, text: &'static str, op: &'static str) {
        self.inner.resource.read();
        if let Some(writer) = self.inner.writing.get() {
            fatal(text, &self.inner.name, op, writer);
        }
    }
}

/// The `hashWriting` flag held by one write; cleared when the write ends or is cancelled.
struct WritingFlag<'a> {
    flag: &'a Cell<Option<Writer>>,
}

impl<'a> WritingFlag<'a> {
    fn set(flag: &'a Cell<Option<Writer>>, op: &'static str) -> Self {
        let writer = context::with("GoMap write", |ctx| Writer {
            task: ctx.current.get(),
            step: ctx.step.get(),
            time_ns: ctx.now.get(),
            op,
        });
        flag.set(Some(writer));
        WritingFlag { flag }
    }
}

impl Drop for WritingFlag<'_> {
    fn drop(&mut self) {
        self.flag.set(None);
    }
}

/// Go's `throw`: records the fatal error with a goroutine dump and unwinds the task.
fn fatal(text: &'static str, map: &str, op: &'static str, writer: Writer) -> ! {
    context::with("GoMap", |ctx| {
        let current = ctx.current.get();
        let mut dump = String::new();
        goroutine(ctx, &mut dump, current, "running", op, map, None);
        let since = format!(
            "holds the map's writing flag since step {}, t={}",
            writer.step,
            SimTime::from_nanos(writer.time_ns)
        );
        let status = if ctx.runq.borrow().is_queued(writer.task) { "runnable" } else { "waiting" };
        dump.push('\n');
        goroutine(ctx, &mut dump, writer.task, status, writer.op, map, Some(&since));
        let mut failure = context::failure_here(ctx, FailureKind::GoFatal, text.to_string(), dump);
        if writer.task != current {
            failure.involved.push(TaskId(writer.task));
        }
        context::abort_with(ctx, failure)
    })
}

/// One goroutine of a dump: header, the runtime frame, the task's labels innermost first, and
/// the `created by` line.
fn goroutine(
    ctx: &Context,
    out: &mut String,
    task: u32,
    status: &str,
    op: &str,
    map: &str,
    note: Option<&str>,
) {
    let state = ctx.state.borrow();
    let _ = writeln!(out, "goroutine {task} [{status}]: task \"{}\"", state.task_name(task));
    let _ = write!(out, "{op}(map \"{map}\")");
    match note {
        Some(note) => {
            let _ = writeln!(out, "  // {note}");
        }
        None => out.push('\n'),
    }
    if let Some(meta) = state.tasks.get(task as usize) {
        for frame in meta.frames.iter().rev() {
            let _ = writeln!(out, "{frame}");
        }
        if meta.parent == NO_TASK {
            let _ = writeln!(out, "created by setup");
        } else {
            let parent = state.task_name(meta.parent);
            let _ = writeln!(out, "created by \"{parent}\" in goroutine {}", meta.parent);
        }
    }
}

//! User oracles: safety invariants checked after every step, and liveness deadlines in virtual
//! time.
//!
//! The built-in oracles (panic, Go fatal error, deadlock, limits) need no registration; these two
//! are how a test states what "correct" means for its program.

use std::borrow::Cow;
use std::rc::Rc;
use std::time::Duration;

use crate::SimTime;
use crate::context::{self, Context};
use crate::failure::{Failure, FailureKind};
use crate::time::duration_nanos;

type Check = Rc<dyn Fn() -> Result<(), String>>;

struct Always {
    name: Cow<'static, str>,
    check: Check,
}

struct Eventually {
    name: Cow<'static, str>,
    registered_ns: u64,
    deadline_ns: u64,
    check: Check,
}

/// The oracles registered in the current run.
pub(crate) struct Oracles {
    always: Vec<Always>,
    eventually: Vec<Eventually>,
}

impl Oracles {
    pub const fn new() -> Self {
        Oracles { always: Vec::new(), eventually: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.always.clear();
        self.eventually.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.always.is_empty() && self.eventually.is_empty()
    }

    /// The earliest pending liveness deadline: the clock must stop there.
    pub fn next_deadline(&self) -> Option<u64> {
        self.eventually.iter().map(|property| property.deadline_ns).min()
    }
}

/// Registers a safety invariant, checked after every step from now on. `check` returns
/// `Err(what is wrong)` when the invariant is broken; the run then fails with kind
/// [`FailureKind::Invariant`] at that step.
///
/// `check` runs between steps, outside any task: it may read shared state (`Rc<RefCell<_>>`)
/// and [`crate::now`], but must not await or spawn.
///
/// # Panics
/// Outside a simulation.
pub fn always(
    name: impl Into<Cow<'static, str>>,
    check: impl Fn() -> Result<(), String> + 'static,
) {
    let invariant = Always { name: name.into(), check: Rc::new(check) };
    context::with("always", |ctx| {
        ctx.state.borrow_mut().oracles.always.push(invariant);
        ctx.has_oracles.set(true);
        ctx.next_event.set(0);
    });
}

/// Registers a liveness property: `check` must return `Ok` at some step within `within` of
/// virtual time from now, or the run fails with kind [`FailureKind::Liveness`] at the deadline.
/// Once it held, it is satisfied and no longer checked. The clock stops at the deadline even
/// when nothing else is scheduled then. If the run completes first and `check` still fails,
/// that is a failure too: nothing can make it hold any more.
///
/// # Panics
/// Outside a simulation.
pub fn eventually(
    name: impl Into<Cow<'static, str>>,
    within: Duration,
    check: impl Fn() -> Result<(), String> + 'static,
) {
    context::with("eventually", |ctx| {
        let now = ctx.now.get();
        let property = Eventually {
            name: name.into(),
            registered_ns: now,
            deadline_ns: now.saturating_add(duration_nanos(within)),
            check: Rc::new(check),
        };
        ctx.state.borrow_mut().oracles.eventually.push(property);
        ctx.has_oracles.set(true);
        ctx.next_event.set(0);
    });
}

/// Checks every oracle after a step. `final_check` is set when the run is about to complete:
/// pending liveness properties then fail at once. Returns the first failure.
pub(crate) fn check(ctx: &Context, final_check: bool) -> Option<Failure> {
    // Take the oracles out so checks can read the context (e.g. `now()`) without a double
    // borrow; put them back (before any registered meanwhile) whatever happens.
    let (always, mut eventually) = {
        let oracles = &mut ctx.state.borrow_mut().oracles;
        (std::mem::take(&mut oracles.always), std::mem::take(&mut oracles.eventually))
    };
    let now = ctx.now.get();
    let mut failure = None;
    for invariant in &always {
        if let Err(what) = (invariant.check)() {
            let name = &invariant.name;
            failure = Some(oracle_failure(ctx, FailureKind::Invariant, name, what));
            break;
        }
    }
    if failure.is_none() {
        failure = check_eventually(ctx, &mut eventually, now, final_check);
    }
    let mut state = ctx.state.borrow_mut();
    let oracles = &mut state.oracles;
    let added_always = std::mem::replace(&mut oracles.always, always);
    oracles.always.extend(added_always);
    let added_eventually = std::mem::replace(&mut oracles.eventually, eventually);
    oracles.eventually.extend(added_eventually);
    ctx.has_oracles.set(!oracles.is_empty());
    failure
}

/// Drops satisfied liveness properties; fails the first one past its deadline.
fn check_eventually(
    ctx: &Context,
    properties: &mut Vec<Eventually>,
    now: u64,
    final_check: bool,
) -> Option<Failure> {
    let mut failure = None;
    properties.retain(|property| {
        if failure.is_some() {
            return true;
        }
        let Err(why) = (property.check)() else { return false };
        if final_check || now >= property.deadline_ns {
            let within = Duration::from_nanos(property.deadline_ns - property.registered_ns);
            let since = SimTime::from_nanos(property.registered_ns);
            let message = if now < property.deadline_ns {
                format!("the run ended before it held (deadline {within:?} after t={since}): {why}")
            } else {
                format!("did not hold within {within:?} of virtual time after t={since}: {why}")
            };
            failure = Some(oracle_failure(ctx, FailureKind::Liveness, &property.name, message));
        }
        true
    });
    failure
}

fn oracle_failure(ctx: &Context, kind: FailureKind, name: &str, what: String) -> Failure {
    let mut failure = context::failure_here(ctx, kind, format!("{name}: {what}"), String::new());
    // Oracles run between steps: no task is to blame.
    failure.task = None;
    failure.task_name = None;
    failure
}

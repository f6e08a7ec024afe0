//! The scenarios a `kdst` binary knows: the built-in ones, and a user's own.
//!
//! ```
//! use scenarios::Registry;
//!
//! let registry = Registry::builtin();
//! assert!(registry.find("submariner-logifchanged").is_some());
//! let target = registry.target("submariner-logifchanged", Some("fixed")).unwrap();
//! assert_eq!(target.file_name(), "submariner-logifchanged.fixed");
//! ```
//!
//! A user's crate builds its own `kdst` with its scenarios beside the built-in ones:
//!
//! ```no_run
//! # use scenarios::prelude::*;
//! # struct MyScenario;
//! # const META: Meta = Meta { name: "mine", summary: "", upstream: &[], variants: &[Variant::holds("fixed", "")], params: &[] };
//! # impl Scenario for MyScenario {
//! #     fn meta(&self) -> &'static Meta { &META }
//! #     fn setup(&self, _: &Variant, _: &Params) {}
//! # }
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::builtin().command("cargo run --bin my-kdst --").with(MyScenario);
//!     scenarios::cli::main(registry)
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use sim_core::Schedule;

use crate::target::closest;
use crate::{MetaError, Scenario, Target, TargetError};

/// The command of the built-in `kdst` binary.
const KDST: &str = "kdst";

/// Scenarios by name, and the command line that runs the CLI built on them (for the replay
/// commands that reports print).
#[derive(Clone)]
pub struct Registry {
    command: String,
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    scenario: Arc<dyn Scenario>,
    /// One of `scenarios`' own: `kdst-tests`' scenario replay test can run it.
    builtin: bool,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("command", &self.command)
            .field("scenarios", &self.names())
            .finish()
    }
}

impl Registry {
    /// No scenarios yet; `command` is the command line that runs the CLI built on this
    /// registry (`cargo run --example my_scenarios --`), which replay commands start with.
    pub fn new(command: &str) -> Self {
        Registry { command: command.to_string(), entries: Vec::new() }
    }

    /// The scenarios of this crate, in the order `kdst list` shows them, for the `kdst` binary.
    pub fn builtin() -> Self {
        let scenarios: [Arc<dyn Scenario>; 10] = [
            Arc::new(crate::cert_manager_foreground::ForegroundDeletion),
            Arc::new(crate::cert_manager_scheme::SchemeRace),
            Arc::new(crate::capsule::ReplicationWrites),
            Arc::new(crate::submariner::LogIfChanged),
            Arc::new(crate::informer_cache::CacheLocking),
            Arc::new(crate::syncmap_lost_update::LoadOrStore),
            Arc::new(crate::mongodb_secrets::CrashBetweenSecrets),
            Arc::new(crate::zookeeper_pvc::StalePvcCleanup),
            Arc::new(crate::rabbitmq_resize::CrashMidResize),
            Arc::new(crate::cassandra_pvc::UnobservedPodDeletion),
        ];
        let entries = scenarios.into_iter().map(|scenario| Entry { scenario, builtin: true });
        Registry { command: KDST.to_string(), entries: entries.collect() }
    }

    /// The same registry run by `command` instead (see [`Registry::new`]).
    pub fn command(mut self, command: &str) -> Self {
        self.command = command.to_string();
        self
    }

    /// The command line that runs the CLI built on this registry.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// Adds `scenario`, after checking its metadata ([`crate::Meta::validate`]) and that no
    /// registered scenario has its name.
    ///
    /// # Errors
    /// The problem with the metadata, or the name already taken.
    pub fn register(&mut self, scenario: impl Scenario + 'static) -> Result<(), MetaError> {
        let meta = scenario.meta();
        meta.validate()?;
        if self.find(meta.name).is_some() {
            let problem = "another registered scenario has this name".to_string();
            return Err(MetaError { scenario: meta.name, problem });
        }
        self.entries.push(Entry { scenario: Arc::new(scenario), builtin: false });
        Ok(())
    }

    /// The same registry with `scenario` added ([`Registry::register`]).
    ///
    /// # Panics
    /// If [`Registry::register`] refuses it: a bug in the scenario's metadata, shown by the
    /// first run of the program.
    pub fn with(mut self, scenario: impl Scenario + 'static) -> Self {
        if let Err(error) = self.register(scenario) {
            panic!("kdst: cannot register {error}");
        }
        self
    }

    /// The scenarios, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Scenario> {
        self.entries.iter().map(|entry| entry.scenario.as_ref())
    }

    /// The scenario names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|scenario| scenario.name()).collect()
    }

    /// The scenario named `name`.
    pub fn find(&self, name: &str) -> Option<&dyn Scenario> {
        self.entry(name).map(|entry| entry.scenario.as_ref())
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.scenario.name() == name)
    }

    /// The scenario named `scenario` with `variant` (its first, buggy, variant when `None`), at
    /// its default parameters, without the swarm; its reports print this registry's replay
    /// commands.
    ///
    /// # Errors
    /// An unknown scenario or variant, with the closest name when one is close.
    pub fn target(&self, scenario: &str, variant: Option<&str>) -> Result<Target, TargetError> {
        let Some(entry) = self.entry(scenario) else {
            return Err(TargetError::UnknownScenario {
                name: scenario.to_string(),
                suggestion: closest(scenario, &self.names()).map(str::to_string),
                list: format!("{} list", self.command),
            });
        };
        let target = Target::of_shared(entry.scenario.clone(), variant)?;
        let cargo_test = entry.builtin && self.command == KDST;
        Ok(target.replayed_by(&self.command, cargo_test))
    }

    /// The target a schedule file was written for, with its parameters pinned as they ran.
    ///
    /// # Errors
    /// A schedule of no registered scenario, or one without a valid variant or parameters.
    pub fn target_from_schedule(&self, schedule: &Schedule) -> Result<Target, TargetError> {
        let lookup =
            |key: &str| schedule.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let mut target = match self.target(&schedule.test, lookup("variant")) {
            Ok(target) => target,
            Err(TargetError::UnknownScenario { .. }) => {
                return Err(TargetError::Schedule(format!(
                    "the schedule belongs to {:?}, which is not a scenario of `{}` (a schedule \
                     written by a cargo test replays with SIM_SCHEDULE, or with its own program)",
                    schedule.test, self.command
                )));
            }
            Err(error) => return Err(TargetError::Schedule(format!("the schedule: {error}"))),
        };
        target.pin_schedule_params(schedule)?;
        Ok(target)
    }
}

/// Every built-in scenario, in the order `kdst list` shows them.
pub fn all() -> Vec<Arc<dyn Scenario>> {
    Registry::builtin().entries.into_iter().map(|entry| entry.scenario).collect()
}

/// The built-in scenario named `name`.
pub fn find(name: &str) -> Option<Arc<dyn Scenario>> {
    all().into_iter().find(|s| s.name() == name)
}

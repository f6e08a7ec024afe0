//! # scenarios: real Kubernetes controller bugs, buggy and fixed
//!
//! Faithful models of the controller bugs of `docs/08-fidelity.md` (bugs A–E), running on
//! [`apiserver_fake`] and [`sim_core`]. Each [`Scenario`] has variants (the buggy upstream
//! version and its real fix), parameters with defaults and ranges, a setup that spawns its
//! tasks and registers the oracles that name the bug in the upstream's own words, and the
//! upstream issue and fix it models.
//!
//! ```
//! use scenarios::{Params, Registry, run};
//! use sim_core::Simulation;
//!
//! let registry = Registry::builtin();
//! let scenario = registry.find("submariner-logifchanged").expect("registered");
//! let params = Params::defaults(scenario);
//! let mut sim = Simulation::default();
//! // The fixed variant (sync.Map Swap) never crashes.
//! for seed in 0..20 {
//!     let outcome = run(&mut sim, scenario, "fixed", &params, seed);
//!     assert!(outcome.failure().is_none(), "seed {seed}: {outcome}");
//! }
//! ```

pub mod capsule;
pub mod cassandra_pvc;
pub mod cert_manager_foreground;
pub mod cert_manager_scheme;
pub mod cli;
pub mod informer_cache;
pub mod mongodb_secrets;
mod params;
pub mod rabbitmq_resize;
mod registry;
mod scenario;
pub mod submariner;
pub mod syncmap_lost_update;
mod target;
pub mod zookeeper_pvc;

/// The Kubernetes machinery the scenarios run on.
pub use apiserver_fake;
pub use params::{
    API_LATENCY, CACHE_LAG, FromParam, Key, Param, ParamError, Params, Unit, client_config,
    informer_config, informer_config_with,
};
pub use registry::{Registry, all, find};
pub use scenario::{Expect, Meta, MetaError, Scenario, Variant, reference, run};
/// The simulator the scenarios run on.
pub use sim_core;
pub use target::{Target, TargetError, closest, schedule_strategy};

/// One import for a scenario author: the scenario contract, the simulator's task, time and
/// oracle functions, and the fake API server's clients, informers and controllers.
///
/// ```
/// use scenarios::prelude::*;
/// ```
pub mod prelude {
    pub use crate::apiserver_fake::{
        Action, ApiError, ApiServer, Client, ClientConfig, Controller, DeleteOptions, Faults,
        Informer, InformerConfig, Latency, Object, ObjectKey, ReconcileError, ReconcileResult,
        ServerConfig,
    };
    pub use crate::{
        API_LATENCY, CACHE_LAG, Expect, Key, Meta, Param, Params, Registry, Scenario, Target, Unit,
        Variant, client_config, informer_config,
    };
    pub use sim_core::{
        Check, FailureKind, Outcome, Simulation, StrategySpec, always, event, eventually, sleep,
        spawn,
    };
    pub use std::time::Duration;
}

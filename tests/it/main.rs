//! kdst's integration tests: one test binary, one module per concern.

mod apiserver;
mod determinism;
mod executor;
mod gc;
mod gomap;
mod model;
mod oracles;
mod replay;
mod scenarios;
mod scenarios_cert_manager;
mod scenarios_gomap;
mod scenarios_patterns;
mod shrink;
mod sync;
mod time;
mod workqueue;

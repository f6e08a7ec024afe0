//! kdst's integration tests: one test binary, one module per concern.

mod apiserver;
mod check;
mod codemap;
mod determinism;
mod dfs;
mod dfs_delays;
mod dfs_por;
mod executor;
mod explore;
mod export;
mod gc;
mod gomap;
mod model;
mod oracles;
mod pct;
mod replay;
mod scenario_replay;
mod scenarios;
mod scenarios_cert_manager;
mod scenarios_gomap;
mod scenarios_patterns;
mod shrink;
mod snapshots;
mod sync;
mod time;
mod workqueue;

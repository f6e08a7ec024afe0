//! kube-rs operators as kdst scenarios, with the `kdst` command line over them.
//!
//! ```text
//! cargo run --release --manifest-path kdst-kube/Cargo.toml --example kube_operators -- list
//! cargo run --release --manifest-path kdst-kube/Cargo.toml --example kube_operators -- explore kube-app-stale-delete
//! cargo run --release --manifest-path kdst-kube/Cargo.toml --example kube_operators -- explore kube-cert-foreground
//! ```
//!
//! Each operator is ordinary kube-rs code (`app.rs`, `certs.rs`): `#[derive(CustomResource)]`
//! types, `Api<K>`, `kube::runtime::finalizer`, and a `Controller` built and run exactly as
//! with kube-runtime; the one kdst line is `use kdst_kube::Controller`. This file turns them
//! into scenarios: the cluster, the processes the operators run in, the user's workload, and
//! the oracles (generic ones for the app operator; liveness for the certificate one).

use std::process::ExitCode;

use scenarios::Registry;

#[path = "kube_operators/scenarios.rs"]
mod kube_scenarios;

/// The command line that runs this program (the replay commands it prints start with it).
const COMMAND: &str =
    "cargo run --release --manifest-path kdst-kube/Cargo.toml --example kube_operators --";

/// This program's scenarios.
fn registry() -> Registry {
    kube_scenarios::register(Registry::new(COMMAND))
}

fn main() -> ExitCode {
    scenarios::cli::main(registry())
}

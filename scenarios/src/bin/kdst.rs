//! `kdst`: find, replay, shrink and show failures of the built-in scenarios.
//!
//! The command line lives in [`scenarios::cli`]; a crate with its own scenarios builds the same
//! binary over its own [`scenarios::Registry`].

use std::process::ExitCode;

fn main() -> ExitCode {
    scenarios::cli::main(scenarios::Registry::builtin())
}

//! Tests: oracles.

//! Tests: executor.

//! Tests: time.

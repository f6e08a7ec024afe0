//! Tests: gomap.

//! Tests: strategic merge patch.

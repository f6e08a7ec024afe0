//! Shared helpers for kdst's integration tests (the tests live in `tests/it/`).

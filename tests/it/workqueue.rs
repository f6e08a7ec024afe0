//! Work-queue guarantees (placeholder, being written).

//! Tests: ARCHITECTURE.md's codemap names every source file of the repository, so that the map a
//! newcomer reads is never behind the code. A row is `` | `path` | … `` at the start of a table
//! line; a row for a folder (`` `tests/it/apiserver/` ``) covers the files in it.

use std::path::{Path, PathBuf};

/// The folders whose `.rs` files the codemap must name.
const SOURCE_DIRS: &[&str] = &[
    "sim-core/src",
    "sim-core/benches",
    "apiserver-fake/src",
    "scenarios/src",
    "scenarios/examples",
    "scenarios/tests",
    "tests/it",
    "tests/src",
    "bench-peers/src",
    "kdst-kube/src",
    "kdst-kube/tests",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.map(|entry| entry.expect("a dir entry").path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_has_a_codemap_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let rows: Vec<&str> = map
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files under {root:?}", files.len());
    let missing: Vec<String> = files
        .iter()
        .map(|file| file.strip_prefix(root).expect("under the root").display().to_string())
        .filter(|file| {
            !rows.iter().any(|row| row == file || (row.ends_with('/') && file.starts_with(row)))
        })
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md's codemap has no row for: {missing:?}");
}

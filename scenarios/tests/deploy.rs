//! The files that run kdst on engines people already have — the Kubernetes Indexed Job and the
//! CI matrix workflow — are checked here: their shapes (shard counts match, the shard index is
//! the engine's), and their commands, run locally shard by shard with the engine's variables
//! filled in, whose JSON results `kdst merge` folds into what one run over the whole range finds.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).expect("the file exists");
    serde_yaml_ng::from_str(&text).expect("valid YAML")
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kdst-deploy-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `script` with `sh -c` in `dir` with `vars`; (exit code, stdout).
fn sh(script: &str, dir: &Path, vars: &[(&str, String)]) -> (i32, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("kdst: "), "{script}: {stderr}");
    (output.status.code().unwrap_or(-1), String::from_utf8(output.stdout).expect("utf-8"))
}

/// The number `N` in `--shard …/N`.
fn shard_count(command: &str) -> u64 {
    let after = command.split("--shard ").nth(1).expect("a --shard flag");
    let count = &after[after.find("}/").map_or_else(|| after.find('/').unwrap(), |i| i + 1) + 1..];
    let digits: String = count.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a shard count")
}

fn kdst() -> &'static str {
    env!("CARGO_BIN_EXE_kdst")
}

/// `kdst merge` of `files` in `dir`, as JSON.
fn merge(dir: &Path, files: &[String]) -> serde_json::Value {
    let output = Command::new(kdst())
        .arg("merge")
        .args(files)
        .args(["--format", "json"])
        .current_dir(dir)
        .output()
        .expect("kdst runs");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// What one run over the whole range finds: (failures, schedules, report seeds).
fn whole(dir: &Path, scenario: &str, variant: &str, seeds: &str) -> serde_json::Value {
    let output = Command::new(kdst())
        .args(["explore", scenario, "--variant", variant, "--seeds", seeds, "--all-failures"])
        .args(["--jobs", "1", "--format", "json", "--save-dir"])
        .arg(dir.join("whole"))
        .output()
        .expect("kdst runs");
    assert_eq!(output.status.code(), Some(1));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn same_findings(merged: &serde_json::Value, whole: &serde_json::Value) {
    for field in ["schedules", "failures", "limits"] {
        assert_eq!(merged["search"][field], whole["search"][field], "{field}");
    }
    assert!(!merged["search"]["failures"].as_array().unwrap().is_empty());
}

#[test]
fn the_indexed_job_shards_by_completion_index_and_its_results_merge() {
    let job = yaml("deploy/kubernetes/indexed-job.yaml");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64().unwrap(), completions);
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/bin/sh");
    let script = container["args"][0].as_str().unwrap();
    assert!(script.contains("--shard ${JOB_COMPLETION_INDEX}/"), "{script}");
    assert_eq!(shard_count(script), completions);
    assert!(script.contains("--format json"), "{script}");

    // Each pod's command, with a small seed range, the binary under test, and the index the Job
    // controller would set.
    let dir = scratch("job");
    let script = script
        .replace("/usr/local/bin/kdst", kdst())
        .replace("--seeds 0..8000000", "--seeds 0..96")
        .replace("--jobs 2", "--jobs 1");
    let mut files = Vec::new();
    for index in 0..completions {
        let (code, stdout) = sh(&script, &dir, &[("JOB_COMPLETION_INDEX", index.to_string())]);
        assert_eq!(code, 0, "shard {index}: the wrapper turns 'failure found' into success");
        let file = format!("shard-{index}.json");
        std::fs::write(dir.join(&file), stdout).unwrap();
        files.push(file);
    }
    let merged = merge(&dir, &files);
    same_findings(&merged, &whole(&dir, "cert-manager-scheme-race", "buggy", "0..96"));
}

#[test]
fn the_ci_matrix_shards_by_matrix_index_and_its_results_merge() {
    let workflow = yaml(".github/workflows/kdst-explore.yml");
    let shard_job = &workflow["jobs"]["shard"];
    let matrix: Vec<u64> = shard_job["strategy"]["matrix"]["shard"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let steps = shard_job["steps"].as_sequence().unwrap();
    let explore = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .find(|run| run.contains("kdst explore"))
        .expect("an explore step");
    assert_eq!(matrix, (0..shard_count(explore)).collect::<Vec<_>>());
    let merge_step = workflow["jobs"]["merge"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .find(|run| run.contains("kdst merge"))
        .expect("a merge step");
    assert!(merge_step.contains("shard-*.json"));
    let inputs = &workflow["on"]["workflow_dispatch"]["inputs"];
    let (scenario, variant) = (
        inputs["scenario"]["default"].as_str().unwrap(),
        inputs["variant"]["default"].as_str().unwrap(),
    );

    let dir = scratch("matrix");
    let mut files = Vec::new();
    for shard in &matrix {
        let script = explore
            .replace("./target/release/kdst", kdst())
            .replace("${{ inputs.scenario }}", scenario)
            .replace("${{ inputs.variant }}", variant)
            .replace("${{ inputs.seeds }}", "0..160")
            .replace("${{ matrix.shard }}", &shard.to_string());
        let (code, _) = sh(&script, &dir, &[]);
        assert_eq!(code, 0, "shard {shard}");
        files.push(format!("shard-{shard}.json"));
    }
    let merged = merge(&dir, &files);
    same_findings(&merged, &whole(&dir, scenario, variant, "0..160"));
}

//! The regression file of a [`crate::Check`] (proptest's `proptest-regressions/`, for kdst): a
//! seed that failed is appended as `seed N strategy S # <the failure>`, and every later run of
//! the check runs the recorded cases first. See the module docs of `check`.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Outcome;
use crate::strategy::StrategySpec;

/// The regression file of the check named `name`:
/// `$CARGO_MANIFEST_DIR/kdst-regressions/<name>.txt`, unless turned off (`on` false:
/// `Check::regressions(false)`; `SIM_REGRESSIONS=off`) or not under cargo.
pub(crate) fn regression_file(
    name: &str,
    on: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    if !on || env("SIM_REGRESSIONS").as_deref() == Some("off") {
        return None;
    }
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?).join("kdst-regressions");
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    Some(dir.join(format!("{file}.txt")))
}

/// The cases of a regression file: `seed N strategy S`, one a line (the rest of a line after
/// `#`, and lines that start with `#`, are for people).
///
/// # Panics
/// On a line that is not a case, naming the file and the line.
pub(crate) fn read_regressions(file: &std::path::Path) -> Vec<(u64, StrategySpec)> {
    match std::fs::read_to_string(file) {
        Ok(text) => parse_regressions(file, &text),
        Err(_) => Vec::new(),
    }
}

/// [`read_regressions`] of `text`, the contents of `file`.
fn parse_regressions(file: &std::path::Path, text: &str) -> Vec<(u64, StrategySpec)> {
    let mut cases = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let case = line.split('#').next().unwrap_or("").trim();
        if case.is_empty() {
            continue;
        }
        let words: Vec<&str> = case.split_whitespace().collect();
        let parsed = match words[..] {
            ["seed", seed, "strategy", strategy] => {
                seed.parse().ok().zip(strategy.parse::<StrategySpec>().ok())
            }
            _ => None,
        };
        match parsed {
            Some(case) => cases.push(case),
            None => panic!(
                "kdst: {}:{}: not a recorded case (expected `seed N strategy S`): {line:?}",
                file.display(),
                number + 1
            ),
        }
    }
    cases
}

/// Appends the case `seed` under `spec` to the regression file (made with its header if new),
/// unless it is there already. The file is replaced whole (written beside it, then renamed), so
/// an interrupted write leaves the old one.
pub(crate) fn record_regression(
    file: &std::path::Path,
    seed: u64,
    spec: StrategySpec,
    outcome: &Outcome,
) -> std::io::Result<()> {
    let mut text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::from(
            "# kdst regressions: seeds that failed this check, run first by every later run.\n\
             # Commit this file. A line is `seed N strategy S`; what follows `#` is for people.\n",
        ),
        Err(error) => return Err(error),
    };
    if parse_regressions(file, &text).contains(&(seed, spec)) {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let found = outcome.to_string();
    let found = found.lines().next().unwrap_or("");
    let _ = writeln!(text, "seed {seed} strategy {spec} # {found}");
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let staged = file.with_extension("txt.tmp");
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, file)
}

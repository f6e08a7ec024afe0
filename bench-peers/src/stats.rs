//! Spreads, timing and markdown tables.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The minimum, median and maximum of some measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The smallest value.
    pub min: f64,
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`.
    ///
    /// # Panics
    /// If `values` is empty or holds a NaN.
    pub fn of(values: &[f64]) -> Spread {
        assert!(!values.is_empty(), "a spread of nothing");
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let mid = sorted.len() / 2;
        let median =
            if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 };
        Spread { min: sorted[0], median, max: sorted[sorted.len() - 1] }
    }

    /// `median [min..max]`, each formatted by `format`.
    pub fn show(&self, format: impl Fn(f64) -> String) -> String {
        format!("{} [{}..{}]", format(self.median), format(self.min), format(self.max))
    }
}

/// The work done by one measured batch of executions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Executions (schedules) run.
    pub executions: u64,
    /// Steps, counted as the benchmark documents.
    pub steps: u64,
}

/// One timed batch.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// What the batch did.
    pub work: Work,
    /// How long it took.
    pub wall: Duration,
}

impl Sample {
    /// Executions per second.
    pub fn executions_per_second(&self) -> f64 {
        self.work.executions as f64 / self.wall.as_secs_f64()
    }

    /// Steps per second.
    pub fn steps_per_second(&self) -> f64 {
        self.work.steps as f64 / self.wall.as_secs_f64()
    }

    /// Microseconds per execution.
    pub fn micros_per_execution(&self) -> f64 {
        self.wall.as_secs_f64() * 1e6 / self.work.executions as f64
    }
}

/// Times `run(units)`.
pub fn time(units: u64, run: &mut dyn FnMut(u64) -> Work) -> Sample {
    let started = Instant::now();
    let work = run(units);
    Sample { work: std::hint::black_box(work), wall: started.elapsed() }
}

/// How many units `run` needs to take about `target` of wall time: grows the count fourfold until
/// a batch takes an eighth of the target, then scales it.
pub fn calibrate(target: Duration, run: &mut dyn FnMut(u64) -> Work) -> u64 {
    let mut units = 1u64;
    loop {
        let sample = time(units, run);
        let elapsed = sample.wall.as_secs_f64().max(1e-9);
        if elapsed >= target.as_secs_f64() / 8.0 || units >= 1 << 40 {
            let scaled = units as f64 * target.as_secs_f64() / elapsed;
            return scaled.ceil().max(1.0) as u64;
        }
        units *= 4;
    }
}

/// A markdown table, built row by row.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(ToString::to_string).collect(), rows: Vec::new() }
    }

    /// Adds a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "a row with the wrong width");
        self.rows.push(cells);
    }

    /// The table as markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0.0 { format!("-{out}") } else { out }
}

/// A rate in millions with one or two decimals: `83.3`, `0.42`.
pub fn millions(value: f64) -> String {
    let m = value / 1e6;
    if m >= 10.0 { format!("{m:.1}") } else { format!("{m:.2}") }
}

/// A ratio: `12.3×`, `0.41×`.
pub fn ratio(value: f64) -> String {
    if value >= 10.0 { format!("{value:.1}×") } else { format!("{value:.2}×") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Spread { min: 1.0, median: 2.0, max: 3.0 });
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(millions(83_300_000.0), "83.3");
        assert_eq!(ratio(0.414), "0.41×");
    }

    #[test]
    fn tables_are_markdown() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        assert_eq!(table.render(), "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}

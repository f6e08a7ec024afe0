//! `kdst merge`: the JSON results of explore shards as one summary.

use std::fmt::Write as _;
use std::path::Path;

use sim_core::ExploreSummary;

use super::args::MergeArgs;
use super::output::{Document, ReportDoc, SCHEMA, finish};
use super::sinks::read_input;
use super::{Result, Usage};

pub(crate) fn merge(args: &MergeArgs) -> Result<bool> {
    let mut merged: Option<Document> = None;
    for path in &args.files {
        let text = read_input(path, "explore result")?;
        let document: Document = serde_json::from_slice(&text).map_err(|error| {
            Usage(format!("{}: not a kdst explore result: {error}", path.display()))
        })?;
        if document.kdst != SCHEMA {
            return Err(Usage(format!(
                "{}: schema version {} (this kdst reads {SCHEMA})",
                path.display(),
                document.kdst
            )));
        }
        if document.search.as_ref().is_some_and(|search| search.systematic.is_some()) {
            return Err(Usage(format!(
                "{}: a bounded exhaustive search ({}) is one search of seed 0: there is nothing to merge it with",
                path.display(),
                document.strategy
            )));
        }
        if document.search.is_none() {
            return Err(Usage(format!(
                "{}: the result of `kdst {}`, not of `kdst explore`",
                path.display(),
                document.command
            )));
        }
        check_search(path, document.search.as_ref().expect("checked"))?;
        merged = Some(match merged {
            None => document,
            Some(so_far) => {
                let same = (
                    &so_far.scenario,
                    &so_far.variant,
                    &so_far.strategy,
                    so_far.swarm,
                    &so_far.params,
                ) == (
                    &document.scenario,
                    &document.variant,
                    &document.strategy,
                    document.swarm,
                    &document.params,
                );
                if !same {
                    return Err(Usage(format!(
                        "{}: {} {} with strategy {} and params {:?} cannot merge with {} {} with strategy {} and params {:?}",
                        path.display(),
                        document.scenario,
                        document.variant,
                        document.strategy,
                        document.params,
                        so_far.scenario,
                        so_far.variant,
                        so_far.strategy,
                        so_far.params
                    )));
                }
                check_disjoint(
                    path,
                    so_far.search.as_ref().expect("checked"),
                    document.search.as_ref().expect("checked"),
                )?;
                merge_two(so_far, document)
            }
        });
    }
    let mut document = merged.expect("clap requires a file");
    document.command = "merge".to_string();
    if let Some(search) = &mut document.search {
        // One file alone is a merge too: of the shards it holds, checked for the rest.
        search.merged = true;
    }
    let summary = document.search.as_ref().expect("checked");
    let verdict = summary.verdict();
    document.verdict = verdict.to_string();
    let mut text = format!(
        "kdst merge: {} results of {} --variant {} (strategy {})\n{summary}\n",
        args.files.len(),
        document.scenario,
        document.variant,
        document.strategy
    );
    for report in &document.reports {
        let _ = write!(text, "=== seed {} ===\n{}", report.seed, report.report);
    }
    let ok = verdict.passed();
    finish(args.format, &document, &text, &[])?;
    Ok(ok)
}

/// One result's own summary is well-formed: a seed range that does not run backwards, and
/// shards `i/n` with `i < n`.
fn check_search(path: &Path, search: &ExploreSummary) -> Result<()> {
    if search.seeds.start > search.seeds.end {
        return Err(Usage(format!(
            "{}: the seed range {}..{} runs backwards",
            path.display(),
            search.seeds.start,
            search.seeds.end
        )));
    }
    if search.shards.is_empty() {
        return Err(Usage(format!("{}: the result names no shard", path.display())));
    }
    if let Some((i, n)) = search.shards.iter().find(|(i, n)| i >= n) {
        return Err(Usage(format!("{}: shard {i}/{n} does not exist", path.display())));
    }
    Ok(())
}

/// The result in `path` and the ones merged so far are shards of one search: the same seed
/// range (or both time-budgeted), one split `n`, and no shard twice (a file given twice, or a
/// merged result beside one of its own shards, would count seeds twice).
fn check_disjoint(path: &Path, so_far: &ExploreSummary, next: &ExploreSummary) -> Result<()> {
    let range = |search: &ExploreSummary| match search.time_budget {
        Some(_) => "a time budget".to_string(),
        None => format!("seeds {}..{}", search.seeds.start, search.seeds.end),
    };
    if (so_far.seeds.clone(), so_far.time_budget.is_some())
        != (next.seeds.clone(), next.time_budget.is_some())
    {
        return Err(Usage(format!(
            "{}: searched {}, the results before it {}: shards of one search share their seeds",
            path.display(),
            range(next),
            range(so_far)
        )));
    }
    let n = so_far.shards[0].1;
    if let Some((i, m)) = next.shards.iter().find(|(_, m)| *m != n) {
        return Err(Usage(format!(
            "{}: shard {i}/{m} is not one of the {n} shards of the results before it",
            path.display()
        )));
    }
    if let Some((i, n)) = next.shards.iter().find(|shard| so_far.shards.contains(shard)) {
        return Err(Usage(format!(
            "{}: shard {i}/{n} is already in the merge (a file given twice, or a merged result \
             beside one of its shards)",
            path.display()
        )));
    }
    Ok(())
}

/// Two explore results as one: the summaries merge (sim-core's rules: distinct failures by kind
/// and place, the lowest seed kept), and each remaining failure keeps the report of its seed.
fn merge_two(a: Document, b: Document) -> Document {
    let summary: ExploreSummary =
        a.search.clone().expect("checked").merge(b.search.clone().expect("checked"));
    let mut reports: Vec<ReportDoc> = a.reports.into_iter().chain(b.reports).collect();
    let kept: Vec<u64> =
        summary.failures.iter().chain(&summary.limits).map(|found| found.seed).collect();
    reports.retain(|report| kept.contains(&report.seed));
    reports.sort_by_key(|report| report.seed);
    reports.dedup_by_key(|report| report.seed);
    Document { search: Some(summary), reports, ..a }
}

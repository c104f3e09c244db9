//! The synthetic benchmark's results and their report: medians and the other statistics, the tables,
//! and the small formatting helpers `--real` shares.

use super::floor::FloorRun;
use super::prci::PrciRun;
use super::process::mem_total;
use super::Args;
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) struct Results<'a> {
    pub(crate) args: &'a Args,
    /// Load average at the start and at the end.
    pub(crate) load: (String, String),
    pub(crate) cores: usize,
    pub(crate) prci_jobs: usize,
    pub(crate) baseline_jobs: usize,
    pub(crate) rdep: &'a str,
    pub(crate) what: &'a str,
    pub(crate) setup: &'a [(String, f64)],
    pub(crate) cold: &'a [PrciRun],
    pub(crate) hot: &'a [PrciRun],
    pub(crate) baseline: &'a [f64],
    pub(crate) baseline_cpu: &'a [f64],
    pub(crate) baseline_results: usize,
    pub(crate) floor_both: &'a [FloorRun],
    pub(crate) floor_merge: &'a [FloorRun],
    /// Load average when each round started.
    pub(crate) round_load: &'a [String],
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn runs_list(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" ")
}

pub(crate) fn classes(findings: &Value) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in findings.as_array().into_iter().flatten() {
        *counts.entry(f["__class__"].as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
}

fn timing(run: &PrciRun, key: &str) -> Option<f64> {
    run.report["timings"][key].as_f64()
}

/// The synthetic benchmark's report: what was measured, setup, wall-clock and CPU tables, each round,
/// ratios, and prci's own timings.
pub(crate) fn print_results(r: &Results) {
    print_header(r);
    print_wall(r);
    print_cpu(r);
    print_rounds(r);
    print_ratios(r);
    print_prci_timings(r);
}

/// A row of a table: label, median, min, and every run.
fn row(label: &str, v: &[f64]) {
    println!("  {label:<58} {:>8.2} {:>8.2}   [{}]", median(v), min(v), runs_list(v));
}

fn walls(runs: &[PrciRun]) -> Vec<f64> {
    runs.iter().map(|x| x.wall).collect()
}

fn floor_walls(runs: &[FloorRun]) -> Vec<f64> {
    runs.iter().map(|f| f.wall).collect()
}

/// The machine, the tools, the pull requests, prci's plan, and the untimed setup steps.
fn print_header(r: &Results) {
    let report = &r.cold[0].report;
    println!();
    println!("prci-bench: one-package pull request on a generated {}-package repository", r.args.packages);
    println!(
        "  machine: {} cores, {} RAM; pkgcheck {} / pkgcore {}",
        r.cores,
        mem_total(),
        report["tools"]["pkgcheck"].as_str().unwrap_or("?"),
        report["tools"]["pkgcore"].as_str().unwrap_or("?")
    );
    println!("  load average at start: {}; at end: {} (other work on the machine skews every number)", r.load.0, r.load.1);
    println!("  pull requests: one per prci run, each changing another package like this: {} ({} has RDEPEND on it)", r.what, r.rdep);
    println!(
        "  prci's plan (first run): targets [{}]; repo-pass checks on both sides: {}; verdict {}; new: {}; fixed: {}",
        report["scan"]["targets"].as_array().map(|a| a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
        r.cold[0].merge_repo.describe(),
        report["verdict"].as_str().unwrap_or("?"),
        classes(&report["new"]),
        classes(&report["fixed"])
    );
    println!(
        "  baseline full scan: {} results; prci/floor pkgcheck -j {} per side; baseline -j {}",
        r.baseline_results, r.prci_jobs, r.baseline_jobs
    );

    println!();
    println!("setup (once, not in the table)                                   seconds");
    for (label, s) in r.setup {
        println!("  {label:<84} {s:>8.2}");
    }
}

/// The wall-clock table.
fn print_wall(r: &Results) {
    let k = r.args.runs;
    println!();
    println!("measurement ({k} runs each; seconds of wall clock)                   median      min   [runs]");
    row("a. prci check, cold base-results cache (first PR on a base)", &walls(r.cold));
    row("b. prci check of the next PR, same base (warm cache)", &walls(r.hot));
    row(&format!("c. baseline: full-tree pkgcheck scan -j {}, one tree", r.baseline_jobs), r.baseline);
    let doubled: Vec<f64> = r.baseline.iter().map(|v| v * 2.0).collect();
    row("   c x2: Gentoo CI scans head and base", &doubled);
    row("d. floor of a: its pkgcheck runs, bare, both sides at once", &floor_walls(r.floor_both));
    let parts = |f: &[FloorRun], pick: fn(&FloorRun) -> f64| f.iter().map(pick).collect::<Vec<f64>>();
    row("      of d: base side's repo-pass checks (prci's log)", &parts(r.floor_both, |f| f.base_repo_pass));
    row("      of d: merge side's repo-pass checks (prci's log)", &parts(r.floor_both, |f| f.repo_pass));
    row("   d': floor of b (no base repo pass: cached)", &floor_walls(r.floor_merge));
    row("      of d': merge side's repo-pass checks (prci's log)", &parts(r.floor_merge, |f| f.repo_pass));
    row("      of d': merge side's package targets (atoms on stdin)", &parts(r.floor_merge, |f| f.targets));
}

/// The CPU-time table and its ratios.
fn print_cpu(r: &Results) {
    println!();
    println!("CPU time (user + system of every process the measurement ran; seconds)  median      min   [runs]");
    let cpus = |runs: &[PrciRun]| runs.iter().map(|x| x.cpu).collect::<Vec<f64>>();
    let (cc, ch) = (cpus(r.cold), cpus(r.hot));
    let fbc: Vec<f64> = r.floor_both.iter().map(|f| f.cpu).collect();
    let fmc: Vec<f64> = r.floor_merge.iter().map(|f| f.cpu).collect();
    row("a. prci check, cold base-results cache", &cc);
    row("b. prci check, warm base-results cache", &ch);
    row("c. baseline: full-tree pkgcheck scan, one tree", r.baseline_cpu);
    row("d. floor of a", &fbc);
    row("   d': floor of b", &fmc);
    let (mcc, mch, mbc) = (median(&cc), median(&ch), median(r.baseline_cpu));
    println!("  baseline / prci cold {:.2}x, baseline / prci warm {:.2}x (x2 scans: {:.2}x, {:.2}x); prci cold / floor {:.2}x, prci warm / floor' {:.2}x",
        mbc / mcc, mbc / mch, 2.0 * mbc / mcc, 2.0 * mbc / mch, mcc / median(&fbc), mch / median(&fmc));
}

/// A prci run's wall time and its steps: regen + scan + confirm + rest.
fn steps(x: &PrciRun) -> String {
    let g = |k: &str| timing(x, k).unwrap_or(f64::NAN);
    format!(
        "{:6.2} = {:5.2} + {:5.2} + {:4.2} + {:4.2}",
        x.wall,
        g("regen_seconds"),
        g("scan_seconds"),
        g("confirm_seconds"),
        x.wall - g("regen_seconds") - g("scan_seconds") - g("confirm_seconds")
    )
}

/// Every round on its own.
fn print_rounds(r: &Results) {
    println!();
    println!("per round (seconds; prci as wall = regen + scan + confirm + rest)");
    for i in 0..r.args.runs {
        println!("  round {}  load {}", i + 1, r.round_load.get(i).map_or("?", String::as_str));
        println!("    a. cold   {}", steps(&r.cold[i]));
        println!("    b. warm   {}", steps(&r.hot[i]));
        println!(
            "    c. {:.2}   d. {:.2} (merge side {:.2}, base side {:.2})   d'. {:.2} (merge side {:.2} = repo checks {:.2} + targets {:.2})",
            r.baseline[i],
            r.floor_both[i].wall,
            r.floor_both[i].side_wall,
            r.floor_both[i].base_wall.unwrap_or(f64::NAN),
            r.floor_merge[i].wall,
            r.floor_merge[i].side_wall,
            r.floor_merge[i].repo_pass,
            r.floor_merge[i].targets
        );
        println!("       repo-pass checks scanned: a. {}   b. {}", r.cold[i].merge_repo.describe(), r.hot[i].merge_repo.describe());
    }
}

/// Ratios of the wall-clock medians.
fn print_ratios(r: &Results) {
    println!();
    println!("ratios (of medians)");
    let (mc, mh, mb) = (median(&walls(r.cold)), median(&walls(r.hot)), median(r.baseline));
    let (mfb, mfm) = (median(&floor_walls(r.floor_both)), median(&floor_walls(r.floor_merge)));
    println!("  baseline / prci cold               {:>7.2}x   (x2 scans: {:.2}x)", mb / mc, 2.0 * mb / mc);
    println!("  baseline / prci warm               {:>7.2}x   (x2 scans: {:.2}x)", mb / mh, 2.0 * mb / mh);
    println!("  prci cold / floor of a             {:>7.2}x   (overhead {:+.2} s)", mc / mfb, mc - mfb);
    println!("  prci warm / floor of b             {:>7.2}x   (overhead {:+.2} s)", mh / mfm, mh - mfm);
    println!("  baseline / floor of a              {:>7.2}x   (the best prci could do, cold)", mb / mfb);
    println!("  baseline / floor of b              {:>7.2}x   (the best prci could do, warm)", mb / mfm);
}

/// The keys of prci's report `timings` to show: pipeline order first, then any step this version of
/// prci does not know; only those some run reports.
fn timing_keys(r: &Results) -> Vec<String> {
    let mut keys: Vec<String> =
        ["fetch", "merge", "checkout", "regen", "plan", "scan", "confirm"].iter().map(|k| format!("{k}_seconds")).collect();
    for run in r.cold.iter().chain(r.hot) {
        if let Some(map) = run.report["timings"].as_object() {
            for key in map.keys() {
                if !keys.contains(key) && key != "total_seconds" {
                    keys.push(key.clone());
                }
            }
        }
    }
    keys.retain(|k| r.cold.iter().chain(r.hot).any(|x| timing(x, k).is_some()));
    keys
}

/// prci's own timings (its report's `timings`), what lies between and around them, and its peak RSS.
fn print_prci_timings(r: &Results) {
    println!();
    println!("prci's own timings (report `timings`, median of runs; seconds)           cold     warm");
    let keys = timing_keys(r);
    let med = |runs: &[PrciRun], key: &str| median(&runs.iter().filter_map(|x| timing(x, key)).collect::<Vec<f64>>());
    for key in &keys {
        println!("  {:<66} {:>8.2} {:>8.2}", key.trim_end_matches("_seconds"), med(r.cold, key), med(r.hot, key));
    }
    let inside = |runs: &[PrciRun]| {
        median(
            &runs
                .iter()
                .filter_map(|x| {
                    let total = timing(x, "total_seconds")?;
                    let steps: f64 = keys.iter().filter_map(|k| timing(x, k)).sum();
                    Some(total - steps)
                })
                .collect::<Vec<f64>>(),
        )
    };
    println!("  {:<66} {:>8.2} {:>8.2}", "(inside total, between the steps)", inside(r.cold), inside(r.hot));
    println!("  {:<66} {:>8.2} {:>8.2}", "total", med(r.cold, "total_seconds"), med(r.hot, "total_seconds"));
    let outside = |runs: &[PrciRun]| median(&runs.iter().filter_map(|x| Some(x.wall - timing(x, "total_seconds")?)).collect::<Vec<f64>>());
    println!("  {:<66} {:>8.2} {:>8.2}", "process wall minus total (start-up: tool versions, config)", outside(r.cold), outside(r.hot));
    let peak = |runs: &[PrciRun]| runs.iter().map(|x| x.peak_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!("  {:<66} {:>8.1} {:>8.1}", "peak RSS of the prci process itself, MiB (max; tools excluded)", peak(r.cold), peak(r.hot));
    println!();
}

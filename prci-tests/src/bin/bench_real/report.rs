//! The report of `--real`: the markdown table (one row per case, the targets of issue 8 marked
//! PASS/MISS), how the tree was built and timed, and every run with its steps and its floor.

use super::cases::{Case, Measured};
use crate::prci::{PrciRun, RepoWork};
use crate::process::mem_total;
use crate::results::classes;
use fixtures::real_tree::{Analysis, PrKind, Spec, DISABLED_CHECK_ARG};
use serde_json::Value;
use std::path::Path;

pub(crate) struct Report<'a> {
    pub(crate) tree: &'a Value,
    pub(crate) tree_dir: &'a Path,
    pub(crate) spec: &'a Spec,
    pub(crate) analysis: &'a Analysis,
    pub(crate) cases: &'a [Case],
    pub(crate) full: f64,
    pub(crate) cores: usize,
    pub(crate) prci_jobs: usize,
    pub(crate) runs: usize,
    pub(crate) load: (String, String),
    pub(crate) measure_secs: f64,
    /// The workspace's commit when the benchmark started.
    pub(crate) commit: String,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn fmt_secs(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2}×")
    } else {
        format!("{v:.0}×")
    }
}

/// The targets of issue 8 that apply to a row, each marked PASS or MISS.
fn targets(case: &Case, full: f64) -> String {
    let prci = case.prci_secs();
    if prci.is_nan() {
        return "no report: MISS".into();
    }
    let speedup = full / prci;
    let floor = case.floor_secs();
    let mut out = Vec::new();
    if !case.cold {
        match case.kind {
            PrKind::Metadata => {
                out.push(format!("≥100× full: {}", mark(speedup >= 100.0)));
                if floor.is_nan() {
                    out.push("≤2× floor: MISS (no floor)".into());
                } else {
                    out.push(format!("≤2× floor: {}", mark(prci <= 2.0 * floor)));
                }
            }
            PrKind::Bump | PrKind::NewPackage => {
                out.push(format!("≥100× full: {}", mark(speedup >= 100.0)));
            }
            PrKind::KeywordDrop | PrKind::Eclass => {}
        }
        out.push(format!("< full: {}", mark(prci < full)));
    }
    out.push(format!("< 2 full: {}", mark(prci < 2.0 * full)));
    out.join("; ")
}

fn verdict(case: &Case) -> String {
    let runs = case.ok_runs();
    if runs.is_empty() {
        return "error".into();
    }
    let mut seen: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}/{}",
                r.report["verdict"].as_str().unwrap_or("?"),
                r.report["new"].as_array().map_or(0, Vec::len),
                r.report["fixed"].as_array().map_or(0, Vec::len)
            )
        })
        .collect();
    seen.dedup();
    seen.join(", ")
}

fn plan(case: &Case) -> String {
    let runs = case.ok_runs();
    let Some(r) = runs.first() else {
        return "—".into();
    };
    if r.report["scan"]["full"].as_bool() == Some(true) {
        return "full scan".into();
    }
    let n = r.report["scan"]["targets"].as_array().map_or(0, Vec::len);
    let repo = match &r.merge_repo {
        RepoWork::Nothing => "no repo pass".to_owned(),
        RepoWork::Pass => "whole repo pass".to_owned(),
        RepoWork::Checks(c) => c.join(","),
    };
    format!("{n} targets; {repo}")
}

/// The markdown table: one row per case.
pub(crate) fn table(cases: &[Case], full: f64) -> String {
    let mut out = String::new();
    out.push_str("| variant | PR | configured args | prci s | floor s | full scan s | full / prci | prci / floor | verdict new/fixed | plan (first run) | targets |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---|---|---|\n");
    for c in cases {
        let prci = c.prci_secs();
        let floor = c.floor_secs();
        let partial = c.runs.iter().any(|m| m.floor_failures > 0);
        let floor_text = if floor.is_nan() {
            if plan(c) == "full scan" {
                "full plan: not run".into()
            } else {
                "—".into()
            }
        } else if partial {
            format!("≥ {} (pkgcheck crashed)", fmt_secs(floor))
        } else {
            fmt_secs(floor)
        };
        let kind = if c.cold { "first PR on a new base (metadata)".to_owned() } else { c.kind.name().to_owned() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.variant.name(),
            kind,
            c.args.label(),
            fmt_secs(prci),
            floor_text,
            fmt_secs(full),
            fmt_ratio(full / prci),
            fmt_ratio(prci / floor),
            verdict(c),
            plan(c),
            targets(c, full)
        ));
    }
    out
}

pub(crate) fn print_report(r: &Report) {
    print_header(r);
    println!();
    print!("{}", table(r.cases, r.full));
    println!();
    println!("per run (seconds; prci = checkout + regen + plan + scan + confirm + rest)");
    for c in r.cases {
        for m in &c.runs {
            print_run(c, m);
        }
    }
    println!();
}

/// The versions of pkgcheck and pkgcore, from the first report.
fn tool_versions(cases: &[Case]) -> String {
    cases
        .iter()
        .flat_map(|c| c.ok_runs())
        .next()
        .map(|run| {
            format!(
                "pkgcheck {} / pkgcore {}",
                run.report["tools"]["pkgcheck"].as_str().unwrap_or("?"),
                run.report["tools"]["pkgcore"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "pkgcheck ?".into())
}

/// The tree, how it was built, the full-scan baseline, prci and the machine, the load.
fn print_header(r: &Report) {
    let tools = tool_versions(r.cases);
    let t = r.tree;
    let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
    println!();
    println!(
        "prci-bench --real: {} ebuilds ({} real ones of {}, their {} categories repeated {} times, each copy depending on its original)",
        t["ebuilds"],
        t["original_ebuilds"],
        r.spec.stem(),
        t["original_categories"].as_array().map_or(0, Vec::len),
        r.spec.copies
    );
    println!("  tree: {}", r.tree_dir.display());
    println!(
        "  built in {:.0} s: unpack {:.1}, copies {:.1}, pmaint regen -t {} {:.1} ({} md5-cache entries, regen exit {}), git {:.1}",
        f("build_seconds"),
        f("unpack_seconds"),
        f("copy_seconds"),
        r.cores,
        f("regen_seconds"),
        t["md5_cache_entries"],
        t["regen_exit"],
        f("commit_seconds")
    );
    println!(
        "  full-tree pkgcheck scan -j {} {DISABLED_CHECK_ARG} of the base tree: {:.1} s ({} results, {:.0} s CPU); Gentoo's method per PR (merge + base) = {:.1} s",
        t["full_scan"]["jobs"],
        r.full,
        t["full_scan"]["results"],
        t["full_scan"]["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        2.0 * r.full
    );
    println!(
        "  prci {}; {}; machine: {} cores, {} RAM; prci and floor pkgcheck -j {} per side",
        r.commit,
        tools,
        r.cores,
        mem_total(),
        r.prci_jobs
    );
    println!(
        "  load average at start: {}; at end: {}; measurement took {:.0} s; {} run(s) per case (median)",
        r.load.0, r.load.1, r.measure_secs, r.runs
    );
    let a = r.analysis;
    println!(
        "  pull requests on original packages (each has {} copies depending on it); the committed variant's PRs also update the md5-cache entries they affect",
        a.copies
    );
}

/// One measured run: prci's time and steps, its verdict, and its floor.
fn print_run(c: &Case, m: &Measured) {
    let head = format!("  {} {} {}{}: {}", c.variant.name(), c.args.slug(), m.branch, if c.cold { " (cold)" } else { "" }, m.change);
    println!("{head}");
    match &m.run {
        Err(e) => println!("    prci failed: {}", e.lines().take(3).collect::<Vec<_>>().join(" | ")),
        Ok(run) => {
            let g = |k: &str| run.report["timings"][format!("{k}_seconds")].as_f64().unwrap_or(0.0);
            let steps = g("checkout") + g("regen") + g("plan") + g("scan") + g("confirm");
            println!(
                "    prci {:.2} = {:.2} + {:.2} + {:.2} + {:.2} + {:.2} + {:.2}; CPU {:.1} s; verdict {}; new: {}; fixed: {}",
                run.wall,
                g("checkout"),
                g("regen"),
                g("plan"),
                g("scan"),
                g("confirm"),
                run.wall - steps,
                run.cpu,
                run.report["verdict"].as_str().unwrap_or("?"),
                classes(&run.report["new"]),
                classes(&run.report["fixed"])
            );
            print_floor(m, run);
        }
    }
}

/// The floor of a run (or why it has none), with the run's targets and repo pass.
fn print_floor(m: &Measured, run: &PrciRun) {
    let targets = run.report["scan"]["targets"].as_array().map_or(0, Vec::len);
    match &m.floor {
        Some(fl) => println!(
            "    floor {:.2} (merge side {:.2} = repo checks {:.2} + targets {:.2}; base side {:.2}{}){}; {} targets; repo pass: {}",
            fl.wall,
            fl.side_wall,
            fl.repo_pass,
            fl.targets,
            fl.base_wall.unwrap_or(f64::NAN),
            if m.floor_base_repo { format!(", its repo checks {:.2}", fl.base_repo_pass) } else { ", repo checks cached".into() },
            if m.floor_failures > 0 { format!(" [{} pkgcheck runs crashed: a lower bound]", m.floor_failures) } else { String::new() },
            targets,
            run.merge_repo.describe()
        ),
        None => println!(
            "    no floor ({}); {} targets; repo pass: {}",
            if run.report["scan"]["full"].as_bool() == Some(true) { "prci planned a full scan" } else { "it failed" },
            targets,
            run.merge_repo.describe()
        ),
    }
}

//! `prci replay`: for each commit of a range, compare `prci check` with the slow truth (full-tree scans of both sides), finding by finding.

use crate::check::{self, CheckError, CheckRequest, Context};
use checker::scan::Unit;
use findings;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One commit's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayResult {
    pub commit: String,
    pub agree: bool,
    /// Identities `prci check` calls new but the full scans do not, and the reverse.
    pub only_check_new: Vec<String>,
    pub only_truth_new: Vec<String>,
    pub only_check_fixed: Vec<String>,
    pub only_truth_fixed: Vec<String>,
    pub check_new: usize,
    pub check_fixed: usize,
    pub targets: usize,
    pub full: bool,
}

/// Commits of `from..to` along first parents, oldest first.
pub fn commits(repo: &Path, from: &str, to: &str) -> Result<Vec<String>, CheckError> {
    let r = git2::Repository::open(repo).map_err(|_| CheckError::Input(format!("{} is not a git repository", repo.display())))?;
    let from = trees::resolve(repo, from).map_err(|e| CheckError::Input(e.to_string()))?;
    let to = trees::resolve(repo, to).map_err(|e| CheckError::Input(e.to_string()))?;
    let mut walk = r.revwalk().map_err(|e| CheckError::Input(e.to_string()))?;
    walk.push(to).and_then(|_| walk.hide(from)).map_err(|e| CheckError::Input(e.to_string()))?;
    walk.simplify_first_parent().map_err(|e| CheckError::Input(e.to_string()))?;
    let mut out: Vec<String> = walk.flatten().map(|o| o.to_string()).collect();
    out.reverse();
    Ok(out)
}

/// Replay one commit against its first parent.
pub fn replay_one(ctx: &Context, repo: &Path, commit: &str) -> Result<ReplayResult, CheckError> {
    let req = CheckRequest {
        repo: repo.to_path_buf(),
        base: format!("{commit}^"),
        head: commit.to_owned(),
        pkgcheck_args: vec![],
        masters: vec![],
    };
    let checked = check::run(ctx, &req)?;
    let prepared = checked.prepared.as_ref().ok_or_else(|| CheckError::Input("nothing was prepared".into()))?;
    let scanner = ctx.scanner(&[]);
    let work = &ctx.settings.work.dir;
    let env_b = sandbox::tree_env(&ctx.checker.sandbox, work, &prepared.base_tree, &prepared.masters, &checked.scratch.join("truth-base"))
        .map_err(|e| CheckError::Input(e.to_string()))?;
    let env_m =
        sandbox::tree_env(&ctx.checker.sandbox, work, &prepared.merge_tree, &prepared.masters, &checked.scratch.join("truth-merge"))
            .map_err(|e| CheckError::Input(e.to_string()))?;
    let full_b = scanner.scan(&env_b, &Unit::Full, "truth-base").map_err(|e| CheckError::Input(e.to_string()))?;
    let full_m = scanner.scan(&env_m, &Unit::Full, "truth-merge").map_err(|e| CheckError::Input(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&checked.scratch);
    let truth = differ::classify(&full_b, &full_m, &Default::default());
    let r = &checked.report;
    let (only_check_new, only_truth_new) = diff_ids(&r.new, &truth.new);
    let (only_check_fixed, only_truth_fixed) = diff_ids(&r.fixed, &truth.fixed);
    let agree = only_check_new.is_empty() && only_truth_new.is_empty() && only_check_fixed.is_empty() && only_truth_fixed.is_empty();
    Ok(ReplayResult {
        commit: commit.to_owned(),
        agree,
        only_check_new,
        only_truth_new,
        only_check_fixed,
        only_truth_fixed,
        check_new: r.new.len(),
        check_fixed: r.fixed.len(),
        targets: r.scan.targets.len(),
        full: r.scan.full,
    })
}

/// Identities in `a` but not `b` and the reverse, as multisets.
fn diff_ids(a: &[findings::Finding], b: &[findings::Finding]) -> (Vec<String>, Vec<String>) {
    let count = |l: &[findings::Finding]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for f in l {
            *m.entry(findings::identity(f).replace('\u{1f}', " ")).or_insert(0) += 1;
        }
        m
    };
    let (ca, cb) = (count(a), count(b));
    let mut only_a = Vec::new();
    let mut only_b = Vec::new();
    for k in ca.keys().chain(cb.keys()) {
        let d = ca.get(k).copied().unwrap_or(0) - cb.get(k).copied().unwrap_or(0);
        if d > 0 && !only_a.contains(k) {
            only_a.push(k.clone());
        }
        if d < 0 && !only_b.contains(k) {
            only_b.push(k.clone());
        }
    }
    (only_a, only_b)
}

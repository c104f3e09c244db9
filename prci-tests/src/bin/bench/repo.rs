//! The generated repository's git side: which packages the pull requests change, the pull request
//! branches themselves, checking a branch out, and copying a directory tree.

use super::Change;
use anyhow::{bail, Context as _, Result};
use git2::{BranchType, FileMode, Repository, Signature, Time};
use std::path::Path;

/// Name of the generated repository.
pub(crate) const REPO_NAME: &str = "bench";
/// Branches holding the pull requests: `bench-pr-1`, `bench-pr-2`, …
pub(crate) fn pr_branch(k: usize) -> String {
    format!("bench-pr-{k}")
}
/// The licence a `license` pull request names (not in licenses/).
const BROKEN_LICENSE: &str = "Bench-Nonexistent-1.0";

/// The pull requests' packages and their reverse dependencies: packages `i` with `i % 5 == 3` from
/// the middle on, so that package `i + 7` (a multiple of 5) has `RDEPEND` on it; `i` is never a
/// multiple of 10, so it has one version (`-1.0`). `count` distinct ones (fewer on a tiny repository).
pub(crate) fn pick_packages(n: usize, count: usize) -> Vec<(usize, usize)> {
    let mut i = n / 2;
    while i % 5 != 3 {
        i += 1;
    }
    while i + 7 >= n {
        i -= 5;
    }
    let mut out = Vec::new();
    for k in 0..count {
        // Alternate above and below the middle so small repositories still have room.
        let step = 5 * k.div_ceil(2);
        let j = if k % 2 == 1 { i.checked_add(step) } else { i.checked_sub(step) };
        match j {
            Some(j) if j + 7 < n && j >= 3 => out.push((j, j + 7)),
            _ => break,
        }
    }
    out
}

/// Create (or reset) branch `branch`: one commit on master changing `atom`. Deterministic (fixed
/// author and time), so a reused directory gets the same sha. Returns the sha and a description.
pub(crate) fn make_pr(repo: &Path, atom: &str, change: Change, branch: &str) -> Result<(String, String)> {
    let git = Repository::open(repo)?;
    let master = git.find_branch("master", BranchType::Local)?.get().peel_to_commit()?;
    let tree = master.tree()?;
    let (_, pkg) = atom.split_once('/').context("atom without a category")?;
    let old_rel = format!("{atom}/{pkg}-1.0.ebuild");
    let entry = tree.get_path(Path::new(&old_rel)).with_context(|| format!("{old_rel} not in master"))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let (message, what) = match change {
        Change::License => {
            let blob = git.find_blob(entry.id())?;
            let text = std::str::from_utf8(blob.content())?;
            let mut replaced = false;
            let new: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("LICENSE=") {
                        replaced = true;
                        format!("LICENSE=\"{BROKEN_LICENSE}\"\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            if !replaced {
                bail!("{old_rel} has no LICENSE line");
            }
            update.upsert(&old_rel, git.blob(new.as_bytes())?, FileMode::Blob);
            (format!("{atom}: change LICENSE"), format!("{atom}-1.0 gets LICENSE=\"{BROKEN_LICENSE}\""))
        }
        Change::Bump => {
            let new_rel = format!("{atom}/{pkg}-1.1.ebuild");
            update.remove(&old_rel);
            update.upsert(&new_rel, entry.id(), FileMode::Blob);
            (format!("{atom}: bump to 1.1"), format!("{atom}-1.0 renamed to {pkg}-1.1"))
        }
    };
    let new_tree = git.find_tree(update.create_updated(&git, &tree)?)?;
    let sig = Signature::new("Test", "test@example.com", &Time::new(fixtures::repo::BASE_COMMIT_TIME + 86_400, 0))?;
    let oid = git.commit(None, &sig, &sig, &message, &new_tree, &[&master])?;
    git.reference(&format!("refs/heads/{branch}"), oid, true, "prci-bench: pull request")?;
    Ok((oid.to_string(), what))
}

/// Force the work tree to `branch` and point HEAD at it (the md5-cache is ignored, so it stays).
pub(crate) fn checkout_branch(repo: &Path, branch: &str) -> Result<()> {
    let git = Repository::open(repo)?;
    let commit = git.find_branch(branch, BranchType::Local)?.get().peel_to_commit()?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    git.checkout_tree(commit.as_object(), Some(&mut co))?;
    git.set_head(&format!("refs/heads/{branch}"))?;
    Ok(())
}

/// Copy the directory tree `from` to `to` (regular files only; `to` must not exist).
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copy to {}", target.display()))?;
        }
    }
    Ok(())
}

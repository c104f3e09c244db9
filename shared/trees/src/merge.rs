//! The deterministic merge of a pull request's head onto the base tip (the same SHA on every host), and the paths it changes.

use crate::TreesError;
use git2::{Oid, Repository};

/// What merging a head onto a base gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The commit to test: the base itself (nothing of the head is missing from it), the head (a fast-forward), or a
    /// merge commit made by prci.
    Merged(Oid),
    /// The head does not merge: the conflicting paths, sorted.
    Conflicts(Vec<String>),
}

/// Merge `head` onto `base` in the mirror: the tested commit, or the conflicting paths.
pub fn merge(mirror: &Repository, base: Oid, head: Oid) -> Result<MergeOutcome, TreesError> {
    if base == head || mirror.graph_descendant_of(base, head)? {
        return Ok(MergeOutcome::Merged(base)); // nothing of the head is missing from the base
    }
    if mirror.graph_descendant_of(head, base)? {
        return Ok(MergeOutcome::Merged(head)); // fast-forward
    }
    let base_c = mirror.find_commit(base)?;
    let head_c = mirror.find_commit(head)?;
    let mut index = mirror.merge_commits(&base_c, &head_c, None)?;
    if index.has_conflicts() {
        let mut paths: Vec<String> = index
            .conflicts()?
            .flatten()
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        return Ok(MergeOutcome::Conflicts(paths));
    }
    let tree = mirror.find_tree(index.write_tree_to(mirror)?)?;
    // A deterministic merge commit: the same base and head give the same SHA on every host.
    let when = head_c.committer().when();
    let sig = crate::signature(&when)?;
    let msg = format!("Merge {head} into {base}\n");
    Ok(MergeOutcome::Merged(mirror.commit(None, &sig, &sig, &msg, &tree, &[&base_c, &head_c])?))
}

/// Paths that differ between two commits' trees.
pub fn changed_paths(mirror: &Repository, a: Oid, b: Oid) -> Result<Vec<String>, TreesError> {
    let ta = mirror.find_commit(a)?.tree()?;
    let tb = mirror.find_commit(b)?.tree()?;
    Ok(diff_paths(mirror, &ta, &tb)?)
}

/// Paths that differ between two trees (both sides of each change), sorted.
pub fn diff_paths(repo: &Repository, ta: &git2::Tree, tb: &git2::Tree) -> Result<Vec<String>, git2::Error> {
    let diff = repo.diff_tree_to_tree(Some(ta), Some(tb), None)?;
    let mut paths = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(p) = file.path() {
                paths.push(p.to_string_lossy().into_owned());
            }
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

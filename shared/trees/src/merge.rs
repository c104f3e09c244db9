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

/// The paths among `paths` that `commit` holds as something host code and the tools must not follow: a symlink that
/// points out of the tree (an absolute target, or one climbing above the root), a submodule, or a path through a
/// `.git` directory. Each named with what it is, e.g. `profiles/repo_name (a symlink to /dev/zero)`.
pub fn escaping_paths(repo: &Repository, commit: Oid, paths: &[String]) -> Result<Vec<String>, TreesError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let mut found = Vec::new();
    for path in paths {
        if path.split('/').any(|c| c.eq_ignore_ascii_case(".git")) {
            found.push(format!("{path} (a .git path)"));
            continue;
        }
        let Ok(entry) = tree.get_path(std::path::Path::new(path)) else { continue }; // not on this side
        match entry.filemode() {
            0o120000 => {
                let blob = repo.find_blob(entry.id())?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                if link_escapes(path, &target) {
                    found.push(format!("{path} (a symlink to {target})"));
                }
            }
            0o160000 => found.push(format!("{path} (a submodule)")),
            _ => {}
        }
    }
    Ok(found)
}

/// Whether a symlink at `path` (relative to the tree's root) pointing at `target` leads out of the tree.
fn link_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth = path.matches('/').count();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
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

#[cfg(test)]
mod escaping_tests {
    use super::{escaping_paths, link_escapes};

    #[test]
    fn symlinks_out_submodules_and_git_paths_of_a_commit_are_named() {
        // (libgit2 refuses to write a `.git` tree entry, so that one is named by its path alone here.)
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let blob = |content: &[u8]| repo.blob(content).unwrap();
        let mut profiles = repo.treebuilder(None).unwrap();
        profiles.insert("repo_name", blob(b"/dev/zero"), 0o120000).unwrap();
        profiles.insert("arch.list", blob(b"amd64\n"), 0o100644).unwrap();
        profiles.insert("inside", blob(b"arch.list"), 0o120000).unwrap();
        let profiles = profiles.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("profiles", profiles, 0o040000).unwrap();
        root.insert("sub", blob(b"x"), 0o160000).unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commit = repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap();
        let paths: Vec<String> =
            ["profiles/repo_name", "profiles/arch.list", "profiles/inside", ".GIT/config", "sub", "gone"].map(String::from).to_vec();
        assert_eq!(
            escaping_paths(&repo, commit, &paths).unwrap(),
            ["profiles/repo_name (a symlink to /dev/zero)", ".GIT/config (a .git path)", "sub (a submodule)"]
        );
    }

    #[test]
    fn links_out_of_the_tree_are_told_from_links_inside_it() {
        assert!(link_escapes("profiles/repo_name", "/dev/zero"));
        assert!(link_escapes("metadata/md5-cache", "../../etc"));
        assert!(link_escapes("a", ".."));
        assert!(!link_escapes("app-misc/foo/files/x", "../../bar/files/y"));
        assert!(!link_escapes("app-misc/foo/files/x", "./y"));
        assert!(link_escapes("app-misc/foo/files/x", "../../../../y"));
    }
}

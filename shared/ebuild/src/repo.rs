//! A repository's identity as the tools read it: its name (`profiles/repo_name`, `metadata/layout.conf`), its first profile, and the view of it the tools get (name and path).

use std::path::{Path, PathBuf};

/// A repository as the tools must see it.
#[derive(Debug, Clone)]
pub struct RepoView {
    /// `profiles/repo_name`.
    pub name: String,
    /// The path the tools see (the sandbox mount point, or the real checkout).
    pub path: PathBuf,
}

/// Read `profiles/repo_name` (or `repo-name` in `metadata/layout.conf`) of a checkout.
pub fn repo_name(tree: &Path) -> Option<String> {
    if let Ok(name) = crate::untrusted::read_to_string(tree, "profiles/repo_name") {
        let name = name.trim();
        if !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    layout_value(tree, "repo-name")
}

/// One `key = value` of `metadata/layout.conf`.
pub fn layout_value(tree: &Path, key: &str) -> Option<String> {
    let text = crate::untrusted::read_to_string(tree, "metadata/layout.conf").ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The first profile listed in `profiles/profiles.desc` of the first repository that has one.
pub fn first_profile(trees: &[&Path]) -> Option<(usize, String)> {
    for (i, tree) in trees.iter().enumerate() {
        if let Ok(text) = crate::untrusted::read_to_string(tree, "profiles/profiles.desc") {
            if let Some(profile) = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| l.split_whitespace().nth(1))
                .find(|p| crate::untrusted::is_dir(tree, Path::new("profiles").join(p)))
            {
                return Some((i, profile.to_owned()));
            }
        }
    }
    None
}

//! The hermetic pkgcore configuration both tools get: a `repos.conf` naming the tree and its masters, and a `make.profile`.

use ebuild::repo::RepoView;
use std::path::Path;

/// Write a pkgcore config dir for `main` with `masters`; the profile comes from `profile_tree` (a path the tools see).
pub fn write_config(dir: &Path, main: &RepoView, masters: &[RepoView], profile: Option<&Path>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut conf = format!("[DEFAULT]\nmain-repo = {}\n\n", masters.first().unwrap_or(main).name);
    for repo in masters.iter().chain(std::iter::once(main)) {
        conf.push_str(&format!("[{}]\nlocation = {}\n\n", repo.name, repo.path.display()));
    }
    std::fs::write(dir.join("repos.conf"), conf)?;
    let link = dir.join("make.profile");
    let _ = std::fs::remove_file(&link);
    if let Some(profile) = profile {
        std::os::unix::fs::symlink(profile, &link)?;
    }
    Ok(())
}

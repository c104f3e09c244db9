//! After a regen, the merge tree's md5-cache entries of packages the pull request does not touch are made the base's: pull-request code runs while that cache is writable, and an entry it forged for another package must not outlive its job.
//!
//! An md5-cache entry is a function of its ebuild and the eclasses it inherits. Where neither differs between base
//! and merge (a package the pull request does not touch, inheriting no eclass it changes, by the base's entry), the
//! merge entry must equal the base's byte for byte; anything else in the merge cache for such a package (another
//! content, an entry the base does not have, a symlink, a directory) was written by code that ran in the regen.
//! The base's cache is trusted: only upstream's code ran on it.
//!
//! Only entries changed since the regen before the previous reconcile began need it (`since`): an entry's
//! status-change time (ctime) is set by the kernel on every write, rename, link or `utime` and cannot be set back by
//! the code that made it, so an entry of either side whose ctime is older is as that reconcile left it (entries that
//! reconcile skipped, of packages its pull request touched, were written by its regen: after `since`, so compared
//! again now). An entry the base has and the merge has lost is always looked at.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What was put right.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Entries rewritten with the base's content.
    pub restored: usize,
    /// Entries (or other files) the base does not have, removed.
    pub removed: usize,
}

/// The largest md5-cache entry read (real ones are a few KiB).
const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// Make every md5-cache entry of `merge` that the pull request (its `changed` paths) cannot have changed equal to
/// `base`'s. Entries of touched packages, and of packages whose base entry inherits a changed eclass, are left
/// as regen wrote them (the next job regenerates them: its plan sees them differ). With `since`, entries whose files
/// on both sides last changed before it are taken to be right (see the module's notes); with `only`, only those
/// categories are looked at (the only ones the regen could write).
pub fn reconcile(
    base: &Path,
    merge: &Path,
    changed: &[String],
    since: Option<SystemTime>,
    only: Option<&BTreeSet<String>>,
) -> std::io::Result<Reconciled> {
    let touched: BTreeSet<String> = changed.iter().filter_map(|p| ebuild::layout::package_of_path(p)).collect();
    let eclasses: BTreeSet<&str> =
        changed.iter().filter_map(|p| p.strip_prefix("eclass/").and_then(|e| e.strip_suffix(".eclass"))).collect();
    let (bcache, mcache) = (sandbox::md5_cache_of(base), sandbox::md5_cache_of(merge));
    let mut done = Reconciled::default();
    let categories = match only {
        Some(only) => only.clone(),
        None => {
            let mut all = names(&bcache, true);
            all.extend(names(&mcache, false));
            all
        }
    };
    for cat in categories {
        let mdir = mcache.join(&cat);
        if mdir.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&mdir)?;
            done.removed += 1;
        }
        let bdir = bcache.join(&cat);
        let mut entries = names(&bdir, true);
        entries.extend(names(&mdir, false));
        for pf in entries {
            // A merge entry gone (the base's is not) is a change too: it has no ctime to show it.
            let (base_entry, merge_entry) = (bdir.join(&pf), mdir.join(&pf));
            let gone = base_entry.symlink_metadata().is_ok() && merge_entry.symlink_metadata().is_err();
            if since.is_some_and(|t| !gone && !changed_since(&base_entry, t) && !changed_since(&merge_entry, t)) {
                continue;
            }
            let package = ebuild::layout::split_pf(&pf).map(|pn| format!("{cat}/{pn}"));
            if package.as_ref().is_some_and(|p| touched.contains(p)) {
                continue;
            }
            let target = mdir.join(&pf);
            match read_entry(&bdir.join(&pf)) {
                Some(entry) if inherits_any(&entry, &eclasses) => {}
                Some(entry) if read_entry(&target).as_deref() != Some(entry.as_slice()) => {
                    remove_any(&target)?;
                    std::fs::create_dir_all(&mdir)?;
                    std::fs::write(&target, &entry)?;
                    done.restored += 1;
                }
                Some(_) => {}
                // Not an entry at all, or one the base has not and no changed eclass explains.
                None if target.symlink_metadata().is_ok() && (package.is_none() || !touched_by_eclass(&target, &eclasses)) => {
                    remove_any(&target)?;
                    done.removed += 1;
                }
                None => {}
            }
        }
    }
    Ok(done)
}

/// Whether `path` (not followed) had its status changed at or after `t`; false when it does not exist.
fn changed_since(path: &Path, t: SystemTime) -> bool {
    let Ok(meta) = path.symlink_metadata() else { return false };
    let ctime = UNIX_EPOCH + Duration::new(u64::try_from(meta.ctime()).unwrap_or(0), u32::try_from(meta.ctime_nsec()).unwrap_or(0));
    ctime >= t
}

/// Names in `dir`: of the base's directories and regular files only (`trusted`); of everything in the merge's (a
/// symlink or special file there is foreign, to be removed).
fn names(dir: &Path, trusted: bool) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .flatten()
        .filter(|e| !trusted || e.file_type().is_ok_and(|t| t.is_dir() || t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A regular file's content, when it is one and not too large.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let meta = path.symlink_metadata().ok()?;
    (meta.is_file() && meta.len() <= MAX_ENTRY_BYTES).then(|| std::fs::read(path).ok()).flatten()
}

/// Whether an entry's `_eclasses_` names one of `eclasses`.
fn inherits_any(entry: &[u8], eclasses: &BTreeSet<&str>) -> bool {
    if eclasses.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(entry);
    text.lines().find_map(|l| l.strip_prefix("_eclasses_=")).is_some_and(|v| v.split('\t').step_by(2).any(|name| eclasses.contains(name)))
}

/// A merge entry the base does not have may be a new version the pull request made through a changed eclass (a
/// package can only appear through its own ebuild, which makes it touched): kept when it inherits one.
fn touched_by_eclass(target: &Path, eclasses: &BTreeSet<&str>) -> bool {
    read_entry(target).is_some_and(|e| inherits_any(&e, eclasses))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join("metadata/md5-cache").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn read(root: &Path, rel: &str) -> Option<String> {
        std::fs::read_to_string(root.join("metadata/md5-cache").join(rel)).ok()
    }

    #[test]
    fn entries_the_pull_request_cannot_have_changed_are_the_bases() {
        let (b, m) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (base, merge) = (b.path(), m.path());
        for tree in [base, merge] {
            write(tree, "app-misc/foo-1.0", "DESCRIPTION=foo\n_eclasses_=\n");
            write(tree, "app-misc/bar-1.0", "DESCRIPTION=bar\n_eclasses_=vcs\tabc\n");
        }
        write(base, "dev-libs/lib-1.0", "DESCRIPTION=lib\n");
        // Forged by code that ran in the merge regen:
        write(merge, "app-misc/foo-1.0", "DESCRIPTION=forged\n_eclasses_=\n"); // an untouched package
        write(merge, "dev-libs/extra-1.0", "DESCRIPTION=new\n"); // an entry the base has not
        write(merge, "junk", "x"); // not an entry at all
        std::os::unix::fs::symlink("/etc/passwd", merge.join("metadata/md5-cache/dev-libs/lib-1.0")).unwrap();
        // The pull request's own package and the inheritors of the eclass it changes stay as regen made them.
        write(merge, "app-misc/mine-1.0", "DESCRIPTION=mine\n");
        write(merge, "app-misc/bar-1.0", "DESCRIPTION=bar changed by its eclass\n_eclasses_=vcs\tdef\n");
        let changed = ["app-misc/mine/mine-1.0.ebuild".to_string(), "eclass/vcs.eclass".to_string()];
        let done = reconcile(base, merge, &changed, None, None).unwrap();
        assert_eq!(done, Reconciled { restored: 2, removed: 2 });
        assert_eq!(read(merge, "app-misc/foo-1.0").as_deref(), Some("DESCRIPTION=foo\n_eclasses_=\n"));
        assert_eq!(read(merge, "dev-libs/lib-1.0").as_deref(), Some("DESCRIPTION=lib\n"));
        assert!(!merge.join("metadata/md5-cache/dev-libs/lib-1.0").symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(read(merge, "dev-libs/extra-1.0"), None);
        assert_eq!(read(merge, "junk"), None);
        assert_eq!(read(merge, "app-misc/mine-1.0").as_deref(), Some("DESCRIPTION=mine\n"));
        assert_eq!(read(merge, "app-misc/bar-1.0").as_deref(), Some("DESCRIPTION=bar changed by its eclass\n_eclasses_=vcs\tdef\n"));
        // Nothing left to do the second time.
        assert_eq!(reconcile(base, merge, &changed, None, None).unwrap(), Reconciled::default());
    }

    #[test]
    fn only_entries_changed_since_the_last_reconcile_are_read_and_a_forged_mtime_does_not_hide_one() {
        let (b, m) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (base, merge) = (b.path(), m.path());
        for tree in [base, merge] {
            write(tree, "app-misc/foo-1.0", "DESCRIPTION=foo\n");
            write(tree, "app-misc/bar-1.0", "DESCRIPTION=bar\n");
            write(tree, "app-misc/baz-1.0", "DESCRIPTION=baz\n");
        }
        let old = "DESCRIPTION=left by a reconcile that was not there\n";
        write(merge, "app-misc/bar-1.0", old);
        std::thread::sleep(Duration::from_millis(50));
        let last_reconcile = SystemTime::now();
        std::thread::sleep(Duration::from_millis(50));
        // Forged after it, its mtime set back to long before.
        write(merge, "app-misc/foo-1.0", "DESCRIPTION=forged\n");
        let f = std::fs::File::options().write(true).open(merge.join("metadata/md5-cache/app-misc/foo-1.0")).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000)).unwrap();
        // Deleted after it: a missing file has no ctime, and is put back all the same.
        std::fs::remove_file(merge.join("metadata/md5-cache/app-misc/baz-1.0")).unwrap();
        let done = reconcile(base, merge, &[], Some(last_reconcile), None).unwrap();
        assert_eq!(done, Reconciled { restored: 2, removed: 0 });
        assert_eq!(read(merge, "app-misc/foo-1.0").as_deref(), Some("DESCRIPTION=foo\n"));
        assert_eq!(read(merge, "app-misc/baz-1.0").as_deref(), Some("DESCRIPTION=baz\n"));
        assert_eq!(read(merge, "app-misc/bar-1.0").as_deref(), Some(old), "an entry unchanged since then is not read");
        // Without a previous reconcile, every entry is.
        assert_eq!(reconcile(base, merge, &[], None, None).unwrap(), Reconciled { restored: 1, removed: 0 });
    }
}

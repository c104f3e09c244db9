//! The md5-cache index kept between jobs: per package, the `lstat` signature of each of its entries and what was
//! read from them, so that reading a Gentoo-size tree's index again costs a directory walk, not 18,000 reads.

use super::{list, read_package, CacheIndex, PackageMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bumped whenever what is recorded, or how it is read from an entry, changes: a file of another version is ignored.
const FORMAT: u32 = 1;

/// An entry changed this recently is not recorded: file times come from a coarse clock, so an entry rewritten again
/// within the same tick as its recorded version would keep its signature.
const SETTLE: Duration = Duration::from_secs(2);

/// What `lstat` says of one md5-cache entry. A rewrite changes the change time (`ctime`), which, unlike the
/// modification time, no process can set; device and inode tell a replaced file apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Signature {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Signature {
    pub(super) fn of(meta: &std::fs::Metadata) -> Signature {
        Signature {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the entry last changed before `settled` (since the epoch).
    fn settled_before(&self, settled: Duration) -> bool {
        let ctime = u64::try_from(self.ctime.0).ok().map(|s| Duration::new(s, self.ctime.1.clamp(0, 999_999_999) as u32));
        ctime.is_some_and(|c| c < settled)
    }
}

/// One package as recorded: its entries (`PF` and signature, sorted by `PF`) and what they said.
#[derive(Deserialize)]
struct Package {
    entries: Vec<(String, Signature)>,
    meta: PackageMeta,
}

#[derive(Serialize)]
struct PackageRef<'a> {
    entries: Vec<(&'a str, Signature)>,
    meta: &'a PackageMeta,
}

#[derive(Deserialize)]
struct File {
    format: u32,
    packages: BTreeMap<String, Package>,
}

#[derive(Serialize)]
struct FileRef<'a> {
    format: u32,
    packages: BTreeMap<&'a str, PackageRef<'a>>,
}

/// Read the index of `tree` through the record `kept` (see [`CacheIndex::read_kept`]).
pub(super) fn read(tree: &Path, kept: &Path) -> std::io::Result<CacheIndex> {
    read_counted(tree, kept, SETTLE).map(|(index, _)| index)
}

/// [`read`] with entries changed less than `settle` ago left unrecorded; also how many packages were reused.
fn read_counted(tree: &Path, kept: &Path, settle: Duration) -> std::io::Result<(CacheIndex, usize)> {
    let mut recorded = load(kept);
    let listed = list(tree, |_| true)?;
    let mut index = CacheIndex::default();
    let (mut reused, mut read) = (0usize, 0usize);
    let mut changed = recorded.len() != listed.len();
    for (cp, entries) in &listed {
        let same = recorded.remove(cp).filter(|p| {
            p.entries.len() == entries.len() && p.entries.iter().zip(entries).all(|((pf, sig), e)| *pf == e.pf && Some(*sig) == e.signature)
        });
        let meta = match same {
            Some(p) => {
                reused += 1;
                Some(p.meta)
            }
            None => {
                read += 1;
                changed = true;
                read_package(tree, entries)?
            }
        };
        if let Some(meta) = meta {
            index.packages.insert(cp.clone(), Arc::new(meta));
        }
    }
    tracing::debug!(tree = %tree.display(), reused, read, "md5-cache index");
    if changed {
        if let Err(e) = save(kept, &listed, &index, settle) {
            tracing::warn!(error = %e, file = %kept.display(), "could not keep the md5-cache index; the next job reads it whole");
        }
    }
    Ok((index, reused))
}

/// The packages recorded in `kept`; none when it is missing, unreadable or of another format.
fn load(kept: &Path) -> BTreeMap<String, Package> {
    let bytes = match std::fs::read(kept) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(error = %e, file = %kept.display(), "kept md5-cache index unreadable; reading the tree's whole");
            return BTreeMap::new();
        }
    };
    match serde_json::from_slice::<File>(&bytes) {
        Ok(f) if f.format == FORMAT => f.packages,
        Ok(_) => BTreeMap::new(),
        Err(e) => {
            tracing::warn!(error = %e, file = %kept.display(), "kept md5-cache index unreadable; reading the tree's whole");
            BTreeMap::new()
        }
    }
}

/// Record `index` in `kept` (written beside it, then renamed over it): every package all of whose entries are regular
/// files that last changed more than `settle` ago.
fn save(kept: &Path, listed: &BTreeMap<String, Vec<super::Listed>>, index: &CacheIndex, settle: Duration) -> std::io::Result<()> {
    let settled = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().saturating_sub(settle);
    let mut packages = BTreeMap::new();
    for (cp, meta) in &index.packages {
        let Some(entries) = listed.get(cp) else { continue };
        let signatures: Option<Vec<(&str, Signature)>> =
            entries.iter().map(|e| e.signature.filter(|s| s.settled_before(settled)).map(|s| (e.pf.as_str(), s))).collect();
        // A refused entry (no signature) or one too recent: the package is read again next time.
        if let Some(entries) = signatures {
            packages.insert(cp.as_str(), PackageRef { entries, meta: meta.as_ref() });
        }
    }
    let bytes = serde_json::to_vec(&FileRef { format: FORMAT, packages }).map_err(std::io::Error::other)?;
    let name = kept.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = kept.with_file_name(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, kept).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tree: &Path, pf: &str, text: &str) {
        let dir = tree.join("metadata/md5-cache/app-misc");
        std::fs::create_dir_all(&dir).expect("test fixture");
        std::fs::write(dir.join(pf), text).expect("test fixture");
    }

    fn summary(index: &CacheIndex) -> Vec<(String, PackageMeta)> {
        index.packages.iter().map(|(cp, m)| (cp.clone(), m.as_ref().clone())).collect()
    }

    #[test]
    fn a_kept_index_is_the_index_read_whole_and_is_reused_until_an_entry_changes() {
        let dir = tempfile::tempdir().expect("test fixture");
        let (tree, kept) = (dir.path().join("tree"), dir.path().join("tree.md5-index.json"));
        entry(&tree, "x-1", "LICENSE=MIT\nRDEPEND=>=dev-libs/a-1\nKEYWORDS=amd64\n");
        entry(&tree, "x-2", "LICENSE=MIT\nKEYWORDS=~amd64\n");
        entry(&tree, "y-1", "LICENSE=GPL-2\n");
        let settle = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(20));
        let (first, reused) = read_counted(&tree, &kept, settle).expect("first read");
        assert_eq!((summary(&first), reused), (summary(&CacheIndex::read(&tree).expect("read")), 0));
        let (again, reused) = read_counted(&tree, &kept, settle).expect("second read");
        assert_eq!((summary(&again), reused), (summary(&first), 2), "both packages come from the record");

        // Rewritten with the same size and its modification time put back: the change time tells.
        let path = tree.join("metadata/md5-cache/app-misc/x-2");
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
        std::fs::write(&path, "LICENSE=BSD\nKEYWORDS=~amd64\n").expect("rewrite");
        std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(mtime)).expect("set mtime");
        // An added version and a removed package.
        entry(&tree, "x-3", "KEYWORDS=~arm64\n");
        std::fs::remove_file(tree.join("metadata/md5-cache/app-misc/y-1")).expect("remove");
        std::thread::sleep(Duration::from_millis(20));
        let (changed, reused) = read_counted(&tree, &kept, settle).expect("third read");
        assert_eq!((summary(&changed), reused), (summary(&CacheIndex::read(&tree).expect("read")), 0));
        assert!(changed.packages["app-misc/x"].licenses.contains("BSD"));
        assert!(!changed.packages.contains_key("app-misc/y"));
    }

    #[test]
    fn entries_changed_just_now_and_a_damaged_record_are_read_from_the_tree() {
        let dir = tempfile::tempdir().expect("test fixture");
        let (tree, kept) = (dir.path().join("tree"), dir.path().join("tree.md5-index.json"));
        entry(&tree, "x-1", "LICENSE=MIT\n");
        // Within the settling time: recorded without it, so read again next time.
        read_counted(&tree, &kept, SETTLE).expect("first read");
        assert_eq!(read_counted(&tree, &kept, SETTLE).expect("second read").1, 0);
        std::fs::write(&kept, b"{not json").expect("damage");
        let (index, reused) = read_counted(&tree, &kept, Duration::ZERO).expect("damaged record");
        assert_eq!((summary(&index), reused), (summary(&CacheIndex::read(&tree).expect("read")), 0));
    }
}

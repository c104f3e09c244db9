//! Reads a tree's md5-cache: per package, the eclasses it inherits, the packages it depends on, and what repository-scope checks aggregate (licences, USE flags, mirrors).

pub use crate::layout::{is_version, split_pf};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

mod kept;

/// What the md5-cache says about one package (all its versions together).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageMeta {
    /// Eclasses inherited by any version, directly or not (`_eclasses_`).
    pub eclasses: BTreeSet<String>,
    /// `cat/pkg` named by any dependency class of any version.
    pub deps: BTreeSet<String>,
    /// The `cat/pkg` of `deps` named by at least one atom with a version operator (`>=`, `<`, `=`, `~`, …).
    pub versioned_deps: BTreeSet<String>,
    /// Per `cat/pkg` of `versioned_deps`, each such atom's `(operator, version)` (`(">=", "1.2-r1")`).
    pub versioned_atoms: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Every licence name `LICENSE` mentions, in any branch (operators and USE conditionals left out).
    pub licenses: BTreeSet<String>,
    /// `IUSE` flags without their `+`/`-` default markers.
    pub iuse: BTreeSet<String>,
    /// Mirror names of `mirror://NAME/…` URIs in `SRC_URI`, in any branch.
    pub mirrors: BTreeSet<String>,
    /// The versions (`PF`) that have an md5-cache entry.
    pub versions: BTreeSet<String>,
    /// Per version (`PF`), what dependency resolution sees of it.
    pub resolution: BTreeMap<String, Resolution>,
    /// A digest of every md5-cache entry of the package: equal digests, equal metadata.
    pub digest: String,
}

/// What dependency resolution sees of one version, from its md5-cache entry: whether a dependent's atom matches it
/// (`SLOT`, subslot included), whether it is visible (`KEYWORDS`; masks live in `profiles/`), whether its USE flags
/// can satisfy a USE dependency (`IUSE` with defaults, `REQUIRED_USE`), and under which rules (`EAPI`). `LICENSE`,
/// `DESCRIPTION`, `SRC_URI`, `RESTRICT`, phase functions and the version's own dependencies are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolution {
    /// `0` when the entry names none.
    pub eapi: String,
    pub keywords: BTreeSet<String>,
    /// `SLOT` as written, with its subslot.
    pub slot: String,
    /// `IUSE` tokens with their `+`/`-` default markers.
    pub iuse: BTreeSet<String>,
    /// `REQUIRED_USE`, whitespace-normalised.
    pub required_use: String,
}

/// `cat/pkg` → metadata, for every package with an md5-cache entry. The metadata is shared (`Arc`): an index derived
/// from another ([`CacheIndex::with_packages_from`]) copies only the keys.
#[derive(Debug, Clone, Default)]
pub struct CacheIndex {
    pub packages: BTreeMap<String, Arc<PackageMeta>>,
}

const DEP_KEYS: [&str; 5] = ["DEPEND", "RDEPEND", "BDEPEND", "PDEPEND", "IDEPEND"];

/// One md5-cache entry as its directory lists it: its category, its `PF`, and what `lstat` says of it (None: not a
/// regular file, which reading refuses).
struct Listed {
    cat: String,
    pf: String,
    signature: Option<kept::Signature>,
}

impl CacheIndex {
    /// Read `metadata/md5-cache` of a tree; a missing cache is an empty index.
    pub fn read(tree: &Path) -> std::io::Result<CacheIndex> {
        Self::read_matching(tree, |_| true)
    }

    /// [`CacheIndex::read`], reusing what `kept` (a file prci keeps beside the tree) recorded of each package whose
    /// md5-cache entries are the same files as when it was recorded (device, inode, size, modification and change
    /// times: a rewritten entry has a new change time, which no process can set), and recording the result there.
    /// A missing or unreadable `kept` is read as empty; one that cannot be written is logged, not an error.
    pub fn read_kept(tree: &Path, kept: &Path) -> std::io::Result<CacheIndex> {
        kept::read(tree, kept)
    }

    /// This index with the packages `cps` read again from `tree`'s md5-cache: the index of another tree
    /// whose md5-cache differs from this one's only there (a pull request that changed those packages
    /// and no eclass: every other entry depends on identical files).
    pub fn with_packages_from(&self, tree: &Path, cps: &BTreeSet<String>) -> std::io::Result<CacheIndex> {
        let fresh = Self::read_matching(tree, |cp| cps.contains(cp))?;
        let mut index = self.clone();
        index.packages.retain(|cp, _| !cps.contains(cp));
        index.packages.extend(fresh.packages);
        Ok(index)
    }

    /// Read the md5-cache entries of the packages `wanted` accepts (by `cat/pkg`).
    fn read_matching(tree: &Path, wanted: impl Fn(&str) -> bool) -> std::io::Result<CacheIndex> {
        let mut index = CacheIndex::default();
        for (cp, entries) in list(tree, wanted)? {
            if let Some(meta) = read_package(tree, &entries)? {
                index.packages.insert(cp, Arc::new(meta));
            }
        }
        Ok(index)
    }

    /// Packages inheriting `eclass`.
    pub fn inheritors<'a>(&'a self, eclass: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.packages.iter().filter(move |(_, m)| m.eclasses.contains(eclass)).map(|(k, _)| k)
    }

    /// Packages whose dependencies name `cp`.
    pub fn reverse_deps<'a>(&'a self, cp: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.packages.iter().filter(move |(_, m)| m.deps.contains(cp)).map(|(k, _)| k)
    }

    /// Whether some dependency atom of `dependent` on `cp` has a version operator.
    pub fn depends_on_versions(&self, dependent: &str, cp: &str) -> bool {
        self.packages.get(dependent).is_some_and(|m| m.versioned_deps.contains(cp))
    }

    /// Whether some version of `cp` is keyworded (`arch` or `~arch`; a wildcard such as `~*` counts) on one of
    /// `arches`: the arches whose profiles pkgcheck evaluates its dependencies on.
    pub fn keyworded_on(&self, cp: &str, arches: &BTreeSet<String>) -> bool {
        self.packages.get(cp).is_some_and(|m| {
            m.resolution.values().flat_map(|r| &r.keywords).any(|k| {
                let arch = k.trim_start_matches('~');
                !k.starts_with('-') && (arches.contains(arch) || arch == "*" || k == "**")
            })
        })
    }

    /// The `(operator, version)` of every atom of `dependent` with a version operator on `cp`.
    pub fn versioned_atoms(&self, dependent: &str, cp: &str) -> BTreeSet<(String, String)> {
        self.packages.get(dependent).and_then(|m| m.versioned_atoms.get(cp)).cloned().unwrap_or_default()
    }

    /// Per version (`PF`) of `cp`, what dependency resolution sees (empty when the package has no md5-cache entry).
    pub fn resolution_view(&self, cp: &str) -> BTreeMap<String, Resolution> {
        self.packages.get(cp).map(|m| m.resolution.clone()).unwrap_or_default()
    }
}

/// The md5-cache entries of `tree`, by `cat/pkg`, of the packages `wanted` accepts, each package's sorted by `PF`.
fn list(tree: &Path, wanted: impl Fn(&str) -> bool) -> std::io::Result<BTreeMap<String, Vec<Listed>>> {
    let mut listed: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    let Ok(cats) = crate::untrusted::read_dir(tree, "metadata/md5-cache") else { return Ok(listed) };
    for cat in cats.flatten() {
        let cat_name = cat.file_name().to_string_lossy().into_owned();
        if !cat.file_type().is_ok_and(|t| t.is_dir()) {
            continue; // a link or a file where a category directory belongs
        }
        let Ok(entries) = std::fs::read_dir(cat.path()) else { continue };
        for entry in entries.flatten() {
            let pf = entry.file_name().to_string_lossy().into_owned();
            let Some(pn) = split_pf(&pf) else { continue };
            let cp = format!("{cat_name}/{pn}");
            if !wanted(&cp) {
                continue;
            }
            // `DirEntry::metadata` does not follow a link.
            let signature = entry.metadata().ok().filter(|m| m.is_file()).map(|m| kept::Signature::of(&m));
            listed.entry(cp).or_default().push(Listed { cat: cat_name.clone(), pf, signature });
        }
    }
    for entries in listed.values_mut() {
        entries.sort_by(|a, b| a.pf.cmp(&b.pf));
    }
    Ok(listed)
}

/// What the md5-cache entries `entries` (one package's, sorted by `PF`) say; None when every one was refused.
fn read_package(tree: &Path, entries: &[Listed]) -> std::io::Result<Option<PackageMeta>> {
    let root = tree.join("metadata").join("md5-cache");
    let mut meta = PackageMeta::default();
    let mut h = Sha256::new();
    for Listed { cat, pf, .. } in entries {
        let text = match crate::untrusted::read_to_string(&root, Path::new(cat).join(pf)) {
            Ok(text) => text,
            // A link, a special file or a huge file (regen runs the pull request's code with this
            // directory writable): no entry, which the plan treats as a changed version.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(error = %e, "md5-cache entry refused");
                continue;
            }
            Err(e) => return Err(e),
        };
        meta.versions.insert(pf.clone());
        let mut resolution = Resolution { eapi: "0".to_owned(), ..Resolution::default() };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            match key {
                // name<TAB>checksum pairs
                "_eclasses_" => meta.eclasses.extend(value.split('\t').step_by(2).filter(|s| !s.is_empty()).map(str::to_owned)),
                "LICENSE" => meta.licenses.extend(value.split_whitespace().filter(|t| is_name_token(t)).map(str::to_owned)),
                "IUSE" => {
                    meta.iuse.extend(value.split_whitespace().map(|t| t.trim_start_matches(['+', '-']).to_owned()));
                    resolution.iuse.extend(value.split_whitespace().map(str::to_owned));
                }
                "SRC_URI" => meta.mirrors.extend(value.split_whitespace().filter_map(mirror_name)),
                "EAPI" if !value.trim().is_empty() => resolution.eapi = value.trim().to_owned(),
                "KEYWORDS" => resolution.keywords.extend(value.split_whitespace().map(str::to_owned)),
                "SLOT" => resolution.slot = value.trim().to_owned(),
                "REQUIRED_USE" => resolution.required_use = value.split_whitespace().collect::<Vec<_>>().join(" "),
                k if DEP_KEYS.contains(&k) => {
                    for token in value.split_whitespace() {
                        let Some((dep, versioned)) = atom_dep(token) else { continue };
                        if versioned {
                            meta.versioned_deps.insert(dep.clone());
                            if let Some(restriction) = atom_version(token) {
                                meta.versioned_atoms.entry(dep.clone()).or_default().insert(restriction);
                            }
                        }
                        meta.deps.insert(dep);
                    }
                }
                _ => {}
            }
        }
        meta.resolution.insert(pf.clone(), resolution);
        h.update(pf.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    if meta.versions.is_empty() {
        return Ok(None);
    }
    meta.digest = hex::encode(h.finalize());
    Ok(Some(meta))
}

/// A name in a licence expression: not `||`, `(`, `)` or a `flag?` conditional.
fn is_name_token(t: &str) -> bool {
    !matches!(t, "||" | "(" | ")") && !t.ends_with('?')
}

/// `NAME` of a `mirror://NAME/path` URI.
fn mirror_name(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mirror://")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Every `cat/pkg` a dependency string names (blockers included; USE conditionals and groups skipped).
pub fn dep_packages(deps: &str) -> impl Iterator<Item = String> + '_ {
    deps.split_whitespace().filter_map(atom_package)
}

/// `cat/pkg` of one atom such as `>=dev-libs/foo-1.2:0/1=[bar?]`, or `None` for `||`, `(`, `use?` and the like.
pub fn atom_package(token: &str) -> Option<String> {
    atom_dep(token).map(|(cp, _)| cp)
}

/// `cat/pkg` of one atom, and whether the atom has a version operator (`>=`, `>`, `=`, `~`, `<`, `<=`; blockers
/// included: `!<dev-libs/foo-2` is versioned, `!dev-libs/foo` and `dev-libs/foo:2[ssl]` are not).
pub fn atom_dep(token: &str) -> Option<(String, bool)> {
    let t = token.trim_start_matches('!');
    let versioned = t.starts_with(['<', '>', '=', '~']);
    let t = t.trim_start_matches(['<', '>', '=', '~']);
    let t = t.split(['[', ':']).next()?;
    let (cat, pkg) = t.split_once('/')?;
    if cat.is_empty() || pkg.is_empty() || t.ends_with('?') {
        return None;
    }
    let pkg = if versioned { split_pf(pkg)? } else { pkg };
    Some((format!("{cat}/{pkg}"), versioned))
}

/// The version restriction of one atom with a version operator: `(">=", "1.2-r1")` for `>=dev-libs/foo-1.2-r1:0[ssl]`
/// and `!<dev-libs/foo-1.2`, `("=", "1*")` for `=dev-libs/foo-1*`. `None` for an atom without one.
pub fn atom_version(token: &str) -> Option<(String, String)> {
    let t = token.trim_start_matches('!');
    let rest = t.trim_start_matches(['<', '>', '=', '~']);
    let op = &t[..t.len() - rest.len()];
    if op.is_empty() {
        return None;
    }
    let rest = rest.split(['[', ':']).next()?;
    let (_, pkgver) = rest.split_once('/')?;
    let pn = split_pf(pkgver)?;
    Some((op.to_owned(), pkgver[pn.len() + 1..].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atom_versions() {
        let pair = |op: &str, v: &str| Some((op.to_string(), v.to_string()));
        assert_eq!(atom_version(">=dev-libs/foo-1.2-r1:0/1=[ssl]"), pair(">=", "1.2-r1"));
        assert_eq!(atom_version("!<dev-libs/foo-bar-2_rc1"), pair("<", "2_rc1"));
        assert_eq!(atom_version("=dev-libs/foo-1*"), pair("=", "1*"));
        assert_eq!(atom_version("~x11-libs/gtk+-3.24.1"), pair("~", "3.24.1"));
        assert_eq!(atom_version("dev-libs/foo"), None);
        assert_eq!(atom_version("dev-libs/foo-1-compat"), None);
    }

    #[test]
    fn atoms() {
        assert_eq!(atom_package("dev-libs/foo").as_deref(), Some("dev-libs/foo"));
        assert_eq!(atom_package(">=dev-libs/foo-1.2.3-r1:0/1=[bar?,-baz]").as_deref(), Some("dev-libs/foo"));
        assert_eq!(atom_package("=dev-libs/foo-bar-2*").as_deref(), Some("dev-libs/foo-bar"));
        assert_eq!(atom_package("!!<dev-libs/foo-9_rc1").as_deref(), Some("dev-libs/foo"));
        assert_eq!(atom_package("~x11-libs/gtk+-3.24.1").as_deref(), Some("x11-libs/gtk+"));
        assert_eq!(atom_package("dev-libs/libfoo-1-compat").as_deref(), Some("dev-libs/libfoo-1-compat"));
        assert_eq!(atom_package("||"), None);
        assert_eq!(atom_package("ssl?"), None);
        assert_eq!(atom_package("("), None);
    }

    #[test]
    fn an_index_derived_for_changed_packages_is_the_index_read_whole() {
        let dir = std::env::temp_dir().join(format!("prci-index-{}", std::process::id()));
        let entry = |tree: &str, pf: &str, text: &str| {
            let p = dir.join(tree).join("metadata/md5-cache/app-misc");
            std::fs::create_dir_all(&p).expect("test fixture");
            std::fs::write(p.join(pf), text).expect("test fixture");
        };
        entry("base", "x-1", "LICENSE=MIT\nRDEPEND=dev-libs/a\n");
        entry("base", "y-1", "LICENSE=GPL-2\n");
        entry("base", "gone-1", "LICENSE=GPL-2\n");
        entry("merge", "x-2", "LICENSE=BSD\n");
        entry("merge", "y-1", "LICENSE=GPL-2\n");
        entry("merge", "new-1", "IUSE=+ssl\n");
        let base = CacheIndex::read(&dir.join("base")).expect("test fixture");
        let touched: BTreeSet<String> = ["app-misc/x", "app-misc/gone", "app-misc/new"].iter().map(|s| s.to_string()).collect();
        let derived = base.with_packages_from(&dir.join("merge"), &touched).expect("test fixture");
        let whole = CacheIndex::read(&dir.join("merge")).expect("test fixture");
        let summary = |i: &CacheIndex| {
            format!(
                "{:?}",
                i.packages
                    .iter()
                    .map(|(k, m)| (
                        k.clone(),
                        m.versions.clone(),
                        m.digest.clone(),
                        m.licenses.clone(),
                        m.iuse.clone(),
                        m.deps.clone(),
                        m.versioned_deps.clone(),
                        m.resolution.clone()
                    ))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(summary(&derived), summary(&whole));
        std::fs::remove_dir_all(&dir).expect("test fixture");
    }

    #[test]
    fn atoms_with_and_without_version_operators() {
        for (atom, versioned) in [
            ("dev-libs/foo", false),
            ("dev-libs/foo:2", false),
            ("dev-libs/foo:=", false),
            ("dev-libs/foo[ssl,-x?]", false),
            ("!dev-libs/foo", false),
            ("!!dev-libs/foo:0", false),
            (">=dev-libs/foo-1", true),
            (">dev-libs/foo-1", true),
            ("<dev-libs/foo-1", true),
            ("<=dev-libs/foo-1:0", true),
            ("=dev-libs/foo-1*", true),
            ("~dev-libs/foo-1", true),
            ("!<dev-libs/foo-1", true),
        ] {
            assert_eq!(atom_dep(atom), Some(("dev-libs/foo".to_string(), versioned)), "{atom}");
        }
    }

    #[test]
    fn resolution_profiles_and_versioned_dependencies_are_read_per_version() {
        let dir = std::env::temp_dir().join(format!("prci-index-resolution-{}", std::process::id()));
        let entry = |pf: &str, text: &str| {
            let p = dir.join("metadata/md5-cache/app-misc");
            std::fs::create_dir_all(&p).expect("test fixture");
            std::fs::write(p.join(pf), text).expect("test fixture");
        };
        entry("lib-1", "EAPI=8\nIUSE=+ssl  debug\nKEYWORDS=~amd64 amd64\nLICENSE=MIT\nREQUIRED_USE=|| (  ssl debug )\nSLOT=0/1\n");
        entry(
            "lib-2",
            "DESCRIPTION=other\nKEYWORDS=amd64 ~amd64\nIUSE=debug +ssl\nREQUIRED_USE=|| ( ssl debug )\nSLOT=0/1\nEAPI=8\nLICENSE=GPL-2\n",
        );
        entry("old-1", "SLOT=0\n");
        entry("user-1", "EAPI=8\nRDEPEND=app-misc/lib:0= ssl? ( >=app-misc/old-1 ) !app-misc/gone\nDEPEND=app-misc/lib\n");
        let index = CacheIndex::read(&dir).expect("test fixture");
        std::fs::remove_dir_all(&dir).expect("test fixture");
        let view = index.resolution_view("app-misc/lib");
        assert_eq!(view.keys().collect::<Vec<_>>(), ["lib-1", "lib-2"]);
        assert_eq!(view["lib-1"], view["lib-2"], "LICENSE, DESCRIPTION, order and spacing are not what resolution sees");
        let lib = &view["lib-1"];
        assert_eq!((lib.eapi.as_str(), lib.slot.as_str(), lib.required_use.as_str()), ("8", "0/1", "|| ( ssl debug )"));
        assert_eq!(lib.iuse.iter().collect::<Vec<_>>(), ["+ssl", "debug"]);
        assert_eq!(lib.keywords.iter().collect::<Vec<_>>(), ["amd64", "~amd64"]);
        assert_eq!(index.resolution_view("app-misc/old")["old-1"].eapi, "0", "no EAPI is EAPI 0");
        assert!(index.resolution_view("app-misc/none").is_empty());
        assert_eq!(index.reverse_deps("app-misc/lib").collect::<Vec<_>>(), ["app-misc/user"]);
        assert!(!index.depends_on_versions("app-misc/user", "app-misc/lib"));
        assert!(index.depends_on_versions("app-misc/user", "app-misc/old"));
        assert!(!index.depends_on_versions("app-misc/user", "app-misc/gone"));
        assert!(!index.depends_on_versions("app-misc/nobody", "app-misc/old"));
    }
}

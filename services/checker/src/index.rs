//! Reads a tree's md5-cache: per package, the eclasses it inherits, the packages it depends on, and what repository-scope checks aggregate (licences, USE flags, mirrors).

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the md5-cache says about one package (all its versions together).
#[derive(Debug, Clone, Default)]
pub struct PackageMeta {
    /// Eclasses inherited by any version, directly or not (`_eclasses_`).
    pub eclasses: BTreeSet<String>,
    /// `cat/pkg` named by any dependency class of any version.
    pub deps: BTreeSet<String>,
    /// Every licence name `LICENSE` mentions, in any branch (operators and USE conditionals left out).
    pub licenses: BTreeSet<String>,
    /// `IUSE` flags without their `+`/`-` default markers.
    pub iuse: BTreeSet<String>,
    /// Mirror names of `mirror://NAME/…` URIs in `SRC_URI`, in any branch.
    pub mirrors: BTreeSet<String>,
    /// The versions (`PF`) that have an md5-cache entry.
    pub versions: BTreeSet<String>,
    /// A digest of every md5-cache entry of the package: equal digests, equal metadata.
    pub digest: String,
}

/// `cat/pkg` → metadata, for every package with an md5-cache entry.
#[derive(Debug, Clone, Default)]
pub struct CacheIndex {
    pub packages: BTreeMap<String, PackageMeta>,
}

const DEP_KEYS: [&str; 5] = ["DEPEND", "RDEPEND", "BDEPEND", "PDEPEND", "IDEPEND"];

impl CacheIndex {
    /// Read `metadata/md5-cache` of a tree; a missing cache is an empty index.
    pub fn read(tree: &Path) -> std::io::Result<CacheIndex> {
        Self::read_matching(tree, |_| true)
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
        let mut digests: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let root = tree.join("metadata").join("md5-cache");
        let Ok(cats) = std::fs::read_dir(&root) else { return Ok(index) };
        for cat in cats.flatten() {
            let cat_name = cat.file_name().to_string_lossy().into_owned();
            let Ok(entries) = std::fs::read_dir(cat.path()) else { continue };
            for entry in entries.flatten() {
                let pf = entry.file_name().to_string_lossy().into_owned();
                let Some(pn) = split_pf(&pf) else { continue };
                let cp = format!("{cat_name}/{pn}");
                if !wanted(&cp) {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path())?;
                let meta = index.packages.entry(cp.clone()).or_default();
                meta.versions.insert(pf.clone());
                for line in text.lines() {
                    let Some((key, value)) = line.split_once('=') else { continue };
                    match key {
                        // name<TAB>checksum pairs
                        "_eclasses_" => meta.eclasses.extend(value.split('\t').step_by(2).filter(|s| !s.is_empty()).map(str::to_owned)),
                        "LICENSE" => meta.licenses.extend(value.split_whitespace().filter(|t| is_name_token(t)).map(str::to_owned)),
                        "IUSE" => meta.iuse.extend(value.split_whitespace().map(|t| t.trim_start_matches(['+', '-']).to_owned())),
                        "SRC_URI" => meta.mirrors.extend(value.split_whitespace().filter_map(mirror_name)),
                        k if DEP_KEYS.contains(&k) => meta.deps.extend(dep_packages(value)),
                        _ => {}
                    }
                }
                digests.entry(cp).or_default().push((pf, text));
            }
        }
        for (cp, mut entries) in digests {
            entries.sort();
            let mut h = Sha256::new();
            for (pf, text) in &entries {
                h.update(pf.as_bytes());
                h.update([0]);
                h.update(text.as_bytes());
                h.update([0]);
            }
            if let Some(meta) = index.packages.get_mut(&cp) {
                meta.digest = hex::encode(h.finalize());
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

/// Split `pkg-1.0-r1` into its package name.
pub fn split_pf(pf: &str) -> Option<&str> {
    let mut search = 0;
    while let Some(i) = pf[search..].find('-').map(|i| i + search) {
        if is_version(&pf[i + 1..]) {
            return Some(&pf[..i]);
        }
        search = i + 1;
    }
    None
}

/// A Gentoo version: `1.2.3b_rc4_p5-r6`, optionally ending in `*` (for `=cat/pkg-1*`).
pub fn is_version(v: &str) -> bool {
    let v = v.strip_suffix('*').unwrap_or(v);
    let (v, rev) = match v.rsplit_once("-r") {
        Some((a, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => (a, Some(r)),
        _ => (v, None),
    };
    let _ = rev;
    let mut parts = v.split('_');
    let Some(main) = parts.next() else { return false };
    let mut chars = main.chars().peekable();
    let mut numbers = 0;
    loop {
        let mut digits = 0;
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            digits += 1;
        }
        if digits == 0 {
            return false;
        }
        numbers += 1;
        match chars.peek() {
            Some('.') => {
                chars.next();
            }
            _ => break,
        }
    }
    if chars.peek().is_some_and(char::is_ascii_lowercase) {
        chars.next();
    }
    if numbers == 0 || chars.next().is_some() {
        return false;
    }
    parts.all(|s| {
        let name_len = s.bytes().take_while(u8::is_ascii_lowercase).count();
        ["alpha", "beta", "pre", "rc", "p"].contains(&&s[..name_len]) && s[name_len..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// Every `cat/pkg` a dependency string names (blockers included; USE conditionals and groups skipped).
pub fn dep_packages(deps: &str) -> impl Iterator<Item = String> + '_ {
    deps.split_whitespace().filter_map(atom_package)
}

/// `cat/pkg` of one atom such as `>=dev-libs/foo-1.2:0/1=[bar?]`, or `None` for `||`, `(`, `use?` and the like.
pub fn atom_package(token: &str) -> Option<String> {
    let t = token.trim_start_matches('!');
    let versioned = t.starts_with(['<', '>', '=', '~']);
    let t = t.trim_start_matches(['<', '>', '=', '~']);
    let t = t.split(['[', ':']).next()?;
    let (cat, pkg) = t.split_once('/')?;
    if cat.is_empty() || pkg.is_empty() || t.ends_with('?') {
        return None;
    }
    let pkg = if versioned { split_pf(pkg)? } else { pkg };
    Some(format!("{cat}/{pkg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join(pf), text).unwrap();
        };
        entry("base", "x-1", "LICENSE=MIT\nRDEPEND=dev-libs/a\n");
        entry("base", "y-1", "LICENSE=GPL-2\n");
        entry("base", "gone-1", "LICENSE=GPL-2\n");
        entry("merge", "x-2", "LICENSE=BSD\n");
        entry("merge", "y-1", "LICENSE=GPL-2\n");
        entry("merge", "new-1", "IUSE=+ssl\n");
        let base = CacheIndex::read(&dir.join("base")).unwrap();
        let touched: BTreeSet<String> = ["app-misc/x", "app-misc/gone", "app-misc/new"].iter().map(|s| s.to_string()).collect();
        let derived = base.with_packages_from(&dir.join("merge"), &touched).unwrap();
        let whole = CacheIndex::read(&dir.join("merge")).unwrap();
        let summary = |i: &CacheIndex| format!("{:?}", i.packages.iter().map(|(k, m)| (k.clone(), m.versions.clone(), m.digest.clone(), m.licenses.clone(), m.iuse.clone(), m.deps.clone())).collect::<Vec<_>>());
        assert_eq!(summary(&derived), summary(&whole));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn versions() {
        assert!(is_version("1.0"));
        assert!(is_version("1.0-r3"));
        assert!(is_version("2.3b_pre20240101_p2"));
        assert!(is_version("9999"));
        assert!(!is_version("compat"));
        assert!(!is_version("1.0-foo"));
        assert_eq!(split_pf("foo-bar-1.0-r1"), Some("foo-bar"));
        assert_eq!(split_pf("pkg-00012-1.1"), Some("pkg-00012"));
    }
}

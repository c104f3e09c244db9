//! What a built tree holds, for choosing pull requests: its original packages and their versions,
//! reverse dependencies and eclass users (from the md5-cache), and the PMS version and atom parsing
//! this needs.

use super::{ebuilds_of, sorted_dir};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the pull requests are chosen from: the original packages (not the copies), their versions,
/// reverse dependencies and metadata, and how many packages of the whole tree inherit each eclass.
#[derive(Debug)]
pub struct Analysis {
    /// `cat/pkg` of the original categories → versions (PVR), oldest first.
    pub packages: BTreeMap<String, Vec<String>>,
    /// `cat/pkg` → how many other original packages depend on it (any dependency class).
    pub reverse_deps: BTreeMap<String, usize>,
    /// Eclass → how many packages of the whole tree inherit it (directly or not).
    pub eclass_users: BTreeMap<String, usize>,
    /// Packages with an ebuild whose `KEYWORDS=` is empty (pkgcheck 0.10.37's MetadataVarCheck crashes on them).
    pub crashing: BTreeSet<String>,
    /// Licences of `licenses/`.
    pub licenses: BTreeSet<String>,
    /// The original categories.
    pub categories: Vec<String>,
    /// How many copies of each original package the tree holds.
    pub copies: usize,
}

/// Split an md5-cache entry into its fields.
pub fn cache_fields(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// The eclass names of an `_eclasses_` value (`name\tmd5\tname\tmd5…`).
pub(super) fn eclass_names(value: &str) -> Vec<&str> {
    value.split('\t').step_by(2).filter(|s| !s.is_empty()).collect()
}

/// `cat/pkg` of a dependency atom (`>=cat/pkg-1.0:0/1[use]` → `cat/pkg`), given the known packages.
pub(super) fn atom_package(token: &str, known: &BTreeMap<String, Vec<String>>) -> Option<String> {
    let t = token.trim_start_matches('!');
    let t = t.split('[').next().unwrap_or(t);
    let t = t.split(':').next().unwrap_or(t);
    let t = t.trim_start_matches(['<', '>', '=', '~']);
    let t = t.trim_end_matches('*');
    if !t.contains('/') {
        return None;
    }
    let mut candidate = t.to_owned();
    loop {
        if known.contains_key(&candidate) {
            return Some(candidate);
        }
        let (head, _) = candidate.rsplit_once('-')?;
        if !head.contains('/') {
            return None;
        }
        candidate = head.to_owned();
    }
}

impl Analysis {
    /// Read the tree at `root` (a built tree's work tree).
    pub fn read(root: &Path, categories: &[String], copies: usize) -> Result<Analysis> {
        let mut packages: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut crashing = BTreeSet::new();
        for cat in categories {
            for (pn, dir) in sorted_dir(&root.join(cat))? {
                if !dir.is_dir() {
                    continue;
                }
                let mut versions = Vec::new();
                for file in ebuilds_of(&dir)? {
                    let Some(v) = file.strip_suffix(".ebuild").and_then(|s| s.strip_prefix(&format!("{pn}-"))) else {
                        continue;
                    };
                    versions.push(v.to_owned());
                    let text = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
                    if text.lines().any(|l| l.trim() == "KEYWORDS=") {
                        crashing.insert(format!("{cat}/{pn}"));
                    }
                }
                if !versions.is_empty() {
                    versions.sort_by(|a, b| vercmp(a, b));
                    packages.insert(format!("{cat}/{pn}"), versions);
                }
            }
        }
        let originals: BTreeSet<&str> = categories.iter().map(String::as_str).collect();
        let mut rdeps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let cache = root.join("metadata/md5-cache");
        for (cat, cat_dir) in sorted_dir(&cache)? {
            for (pf, path) in sorted_dir(&cat_dir)? {
                let fields = cache_fields(&std::fs::read_to_string(&path).unwrap_or_default());
                let me = format!("{cat}/{}", package_name(&pf));
                for e in eclass_names(fields.get("_eclasses_").map_or("", String::as_str)) {
                    users.entry(e.to_owned()).or_default().insert(me.clone());
                }
                if !originals.contains(cat.as_str()) {
                    continue;
                }
                for class in ["DEPEND", "RDEPEND", "PDEPEND", "BDEPEND"] {
                    for token in fields.get(class).map_or("", String::as_str).split_whitespace() {
                        if let Some(dep) = atom_package(token, &packages) {
                            if dep != me {
                                rdeps.entry(dep).or_default().insert(me.clone());
                            }
                        }
                    }
                }
            }
        }
        let licenses = sorted_dir(&root.join("licenses"))?.into_iter().map(|(n, _)| n).collect();
        Ok(Analysis {
            packages,
            reverse_deps: rdeps.into_iter().map(|(k, v)| (k, v.len())).collect(),
            eclass_users: users.into_iter().map(|(k, v)| (k, v.len())).collect(),
            crashing,
            licenses,
            categories: categories.to_vec(),
            copies,
        })
    }

    /// Packages fit for a one-ebuild edit: not crashing, newest version not live. Sorted.
    pub(super) fn plain_packages(&self) -> Vec<(&String, &String)> {
        self.packages
            .iter()
            .filter(|(cp, _)| !self.crashing.contains(*cp))
            .filter_map(|(cp, vs)| vs.last().map(|v| (cp, v)))
            .filter(|(_, v)| !v.contains("9999"))
            .collect()
    }

    /// `count` picks spread evenly over `list`, starting `offset` (0..1) of a step in.
    pub(super) fn spread<T: Clone>(list: &[T], count: usize, offset: f64) -> Vec<T> {
        if list.is_empty() {
            return vec![];
        }
        let step = list.len() as f64 / count.max(1) as f64;
        (0..count).map(|k| list[((k as f64 + offset) * step) as usize % list.len()].clone()).collect()
    }
}

/// PN of a PF (`gzip-1.10-r1` → `gzip`): everything before the version.
pub(super) fn package_name(pf: &str) -> String {
    let parts: Vec<&str> = pf.split('-').collect();
    for i in 1..parts.len() {
        let rest = &parts[i + 1..];
        let revision = |r: &str| r.strip_prefix('r').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_version(parts[i]) && (rest.is_empty() || (rest.len() == 1 && revision(rest[0]))) {
            return parts[..i].join("-");
        }
    }
    pf.to_owned()
}

/// Whether `v` is a PV without revision: `1.2.3`, `1.0b`, `2.0_rc1_p2`, …
fn is_version(v: &str) -> bool {
    let mut parts = v.split('_');
    let main = parts.next().unwrap_or("");
    let main = main.strip_suffix(|c: char| c.is_ascii_lowercase()).unwrap_or(main);
    let numbers_ok = !main.is_empty() && main.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbers_ok
        && parts.all(|s| {
            ["alpha", "beta", "pre", "rc", "p"]
                .iter()
                .any(|name| s.strip_prefix(name).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        })
}

/// A version split for [`vercmp`]: the numbers, the letter, the suffixes (rank, number), the revision.
type ParsedVersion = (Vec<String>, Option<char>, Vec<(i32, String)>, u64);

/// Compare two Gentoo versions (PV or PVR), following PMS closely enough for sorting one package's versions.
pub fn vercmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> ParsedVersion {
        let (v, rev) = match v.rsplit_once("-r") {
            Some((head, r)) if r.chars().all(|c| c.is_ascii_digit()) && !r.is_empty() => (head, r.parse().unwrap_or(0)),
            _ => (v, 0),
        };
        let mut parts = v.split('_');
        let main = parts.next().unwrap_or("");
        let (nums, letter) = match main.chars().last() {
            Some(c) if c.is_ascii_alphabetic() => (&main[..main.len() - 1], Some(c)),
            _ => (main, None),
        };
        let suffixes = parts
            .map(|s| {
                let name: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                let num: String = s.chars().skip(name.len()).collect();
                let rank = match name.as_str() {
                    "alpha" => -4,
                    "beta" => -3,
                    "pre" => -2,
                    "rc" => -1,
                    "p" => 1,
                    _ => 0,
                };
                (rank, num)
            })
            .collect();
        (nums.split('.').map(str::to_owned).collect(), letter, suffixes, rev)
    }
    fn num_cmp(a: &str, b: &str) -> std::cmp::Ordering {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
    let (an, al, asuf, ar) = parse(a);
    let (bn, bl, bsuf, br) = parse(b);
    for i in 0..an.len().max(bn.len()) {
        match (an.get(i), bn.get(i)) {
            (Some(x), Some(y)) => {
                let o = if i > 0 && (x.starts_with('0') || y.starts_with('0')) {
                    x.trim_end_matches('0').cmp(y.trim_end_matches('0'))
                } else {
                    num_cmp(x, y)
                };
                if o.is_ne() {
                    return o;
                }
            }
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (None, None) => {}
        }
    }
    let o = al.cmp(&bl);
    if o.is_ne() {
        return o;
    }
    for i in 0..asuf.len().max(bsuf.len()) {
        let none = (0, String::new());
        let (x, y) = (asuf.get(i).unwrap_or(&none), bsuf.get(i).unwrap_or(&none));
        let o = x.0.cmp(&y.0).then_with(|| num_cmp(&x.1, &y.1));
        if o.is_ne() {
            return o;
        }
    }
    ar.cmp(&br)
}

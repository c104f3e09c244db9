//! The scan plan: from the paths a pull request changes to the pkgcheck targets that can show its effect.
//!
//! Rules (ARCHITECTURE.md repeats them; paths are classified by [`ebuild::layout::classify_in_trees`]):
//! - `cat/pkg/**` → `cat/pkg`;
//! - `metadata/md5-cache/cat/PF` (repositories that commit their md5-cache) → `cat/PN`: an entry is the metadata of
//!   its package, never a repository-wide input;
//! - `eclass/X.eclass` → the eclass itself, and every package whose md5-cache `_eclasses_` names X in either tree;
//! - a touched package → its reverse dependencies (packages whose DEPEND/RDEPEND/BDEPEND/PDEPEND/IDEPEND name it, in
//!   either tree) only when what dependency resolution sees of it differs between the two trees: its set of versions,
//!   or a version's EAPI, KEYWORDS, SLOT (with subslot), IUSE or REQUIRED_USE (a [`Resolution`]). A version
//!   without an md5-cache entry on either side (it failed to source) counts as a difference. LICENSE, DESCRIPTION,
//!   SRC_URI, phase functions or metadata.xml changes pull in no dependent. One exemption, the version bump: when the
//!   only difference is added versions and each has a twin (a version present in both trees with the same resolution
//!   profile there, and the same as the added one's), a dependent whose atoms on the package are all unversioned
//!   (`cat/pkg`, `cat/pkg:slot`, `cat/pkg[use]`, `!cat/pkg`) resolves as before and is not scanned; nor is one whose
//!   every versioned atom on it matches each added version exactly when it matches the twin (`>=cat/pkg-1` and a
//!   bump from 1.2 to 1.2-r1); one with an atom that tells them apart (`<cat/pkg-1.2-r1`, or a glob) is. A second
//!   narrowing, the keyword change: when the only difference is the KEYWORDS
//!   of versions present in both trees, only the arches whose keywords changed matter: pkgcheck evaluates a
//!   dependent's dependencies only on the profiles of the arches the dependent is keyworded for (`arch` or `~arch`),
//!   so a dependent keyworded on none of them (in either tree) resolves as before and is not scanned; virtuals are
//!   (`VirtualKeywordsUpdate` compares a virtual's keywords with its providers' whatever it is keyworded for).
//!   Reverse dependencies of eclass inheritors are not followed;
//! - a package in the plan only as a reverse dependency (its own files, eclasses and md5-cache entry are the same in
//!   both trees) can only see a difference through the checks that read other packages' metadata
//!   ([`CROSS_PACKAGE_CHECKS`]): it is scanned with those alone (`Plan::dependents`), on both sides, first scan and
//!   confirmation alike, and where every change that pulled dependents in was a keyword change, on the changed
//!   arches alone (`Plan::dependent_arches`, pkgcheck's `--arches`);
//! - `profiles/**`, `licenses/**`, other `metadata/**` → the whole repository;
//! - always a repo- and category-scope pass: cross-package results live there;
//! - anything else (README, `.github/`, …) only reaches the repo-scope pass.

use ebuild::index::{CacheIndex, Resolution};
use ebuild::layout::{self, PathKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The package-level checks that read other packages' metadata (dependency resolution, slots, keywords of
/// providers, package references in metadata.xml, Python/Ruby targets of dependencies): the only ones whose results
/// on an unchanged package can change when one of its dependencies changes. Read from pkgcheck 0.10.37's checks
/// (every package-scope check that queries the repository for other packages); `OutdatedBlockersCheck` also does,
/// but it needs the git cache prci runs without, so it never runs.
pub const CROSS_PACKAGE_CHECKS: [&str; 8] = [
    "DependencyCheck",
    "KeywordsCheck",
    "MissingSlotDepCheck",
    "PackageMetadataXmlCheck",
    "PythonCompatCheck",
    "RubyCompatCheck",
    "VirtualProvidersCheck",
    "VisibilityCheck",
];

/// What to scan, the same on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Scan the whole repository.
    pub full: bool,
    /// `cat/pkg` targets (dependents included).
    pub packages: BTreeSet<String>,
    /// The packages of `packages` that are there only as reverse dependencies: scanned with
    /// [`CROSS_PACKAGE_CHECKS`] alone.
    pub dependents: BTreeSet<String>,
    /// When every change that pulled dependents in changed only KEYWORDS: the arches it changed them on (the
    /// dependents are then scanned on those arches' profiles alone). Empty: every arch.
    pub dependent_arches: BTreeSet<String>,
    /// Eclass names (scanned as `eclass/<name>.eclass`).
    pub eclasses: BTreeSet<String>,
    /// Why each package is in the plan, for the log.
    pub reasons: Vec<String>,
}

impl Plan {
    /// Targets as the report lists them.
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self.eclasses.iter().map(|e| format!("eclass/{e}.eclass")).collect();
        t.extend(self.packages.iter().cloned());
        t
    }
    pub fn is_empty(&self) -> bool {
        !self.full && self.packages.is_empty() && self.eclasses.is_empty()
    }
}

/// Compute the plan from changed paths and both trees' md5-cache indexes.
pub fn plan(changed: &[String], base_tree: &Path, merge_tree: &Path, base: &CacheIndex, merge: &CacheIndex) -> Plan {
    let trees = Trees { base_tree, merge_tree, base, merge };
    let mut plan = Plan::default();
    let touched = classify_changes(&mut plan, changed, &trees);
    plan.packages.extend(touched.iter().cloned());
    for eclass in &plan.eclasses {
        for index in [base, merge] {
            for cp in index.inheritors(eclass) {
                if plan.packages.insert(cp.clone()) {
                    plan.reasons.push(format!("{cp}: inherits {eclass}"));
                }
            }
        }
    }
    let mut dependents = BTreeSet::new();
    // None: some change that pulled dependents in was not a keyword change (every arch matters).
    let mut dependent_arches: Option<BTreeSet<String>> = Some(BTreeSet::new());
    for cp in &touched {
        let Some(how) = dependents_scan(&mut plan, cp, &trees) else { continue };
        for rdep in base.reverse_deps(cp).chain(merge.reverse_deps(cp)).filter(|r| *r != cp).collect::<BTreeSet<&String>>() {
            if !how.reaches(&mut plan, cp, rdep, &trees) {
                continue;
            }
            match (&mut dependent_arches, &how.arches) {
                (Some(all), Some(these)) => all.extend(these.iter().cloned()),
                (all, _) => *all = None,
            }
            dependents.insert(rdep.clone());
            if plan.packages.insert(rdep.clone()) {
                plan.reasons.push(format!("{rdep}: depends on {cp}"));
            }
        }
    }
    narrow_dependents(&mut plan, dependents, dependent_arches, &touched, &trees);
    plan
}

/// Both trees and their md5-cache indexes.
struct Trees<'a> {
    base_tree: &'a Path,
    merge_tree: &'a Path,
    base: &'a CacheIndex,
    merge: &'a CacheIndex,
}

/// Sort the changed paths into the plan: a repository-wide input makes it full, eclasses are recorded; returns the
/// packages touched (their files or md5-cache entries).
fn classify_changes(plan: &mut Plan, changed: &[String], t: &Trees) -> BTreeSet<String> {
    let cats: BTreeSet<String> = ebuild::layout::categories(&[t.base_tree, t.merge_tree]);
    let mut touched = BTreeSet::new();
    for path in changed {
        match layout::classify_in_trees(path, &cats, &[t.base_tree, t.merge_tree]) {
            PathKind::RepoWide => {
                if !plan.full {
                    plan.reasons.push(format!("{path}: repository-wide file, full scan"));
                }
                plan.full = true;
            }
            PathKind::Eclass { name } => {
                plan.eclasses.insert(name);
            }
            PathKind::Package { cp } | PathKind::Md5Cache { cp } => {
                touched.insert(cp);
            }
            PathKind::CategoryFile { .. } | PathKind::Other => {}
        }
    }
    touched
}

/// Which reverse dependencies of one touched package a change reaches.
struct DependentsScan {
    /// Only dependents keyworded on these arches (a keyword change); None: every dependent.
    arches: Option<BTreeSet<String>>,
    /// Added versions and their twins (a version bump): only dependents whose versioned atoms tell them apart.
    twins: Option<Vec<(String, String)>>,
}

/// How the reverse dependencies of `cp` must be scanned, from what dependency resolution sees of it in both trees;
/// None when they need no scan. The decision is logged in the plan's reasons.
fn dependents_scan(plan: &mut Plan, cp: &str, t: &Trees) -> Option<DependentsScan> {
    let has_rdeps = t.base.reverse_deps(cp).chain(t.merge.reverse_deps(cp)).any(|r| r != cp);
    let mut reason = |text: String| {
        if has_rdeps {
            plan.reasons.push(text);
        }
    };
    match resolution_change(cp, t.base_tree, t.merge_tree, t.base, t.merge) {
        ResolutionChange::None => {
            reason(format!(
                "{cp}: no change dependency resolution sees (versions, EAPI, KEYWORDS, SLOT, IUSE, REQUIRED_USE); reverse dependencies not scanned"
            ));
            None
        }
        ResolutionChange::Changed(why) => {
            reason(format!("{cp}: {why}; reverse dependencies scanned"));
            Some(DependentsScan { arches: None, twins: None })
        }
        ResolutionChange::Keywords(changed) => {
            let list: Vec<&str> = changed.iter().map(String::as_str).collect();
            reason(format!(
                "{cp}: only KEYWORDS changed, on {}; reverse dependencies keyworded there (and virtuals) scanned",
                list.join(", ")
            ));
            Some(DependentsScan { arches: Some(changed), twins: None })
        }
        ResolutionChange::TwinsAdded(twins) => {
            let added: Vec<String> = twins.iter().map(|(pf, twin)| format!("{pf} (as {twin})")).collect();
            reason(format!(
                "{cp}: only versions resolving like an existing one added: {}; reverse dependencies with unversioned atoms on it not scanned",
                added.join(", ")
            ));
            Some(DependentsScan { arches: None, twins: Some(twins) })
        }
    }
}

impl DependentsScan {
    /// Whether the reverse dependency `rdep` of `cp` must be scanned.
    fn reaches(&self, plan: &mut Plan, cp: &str, rdep: &str, t: &Trees) -> bool {
        if let Some(twins) = &self.twins {
            if !t.base.depends_on_versions(rdep, cp) && !t.merge.depends_on_versions(rdep, cp) {
                return false;
            }
            if atoms_see_twins_alike(cp, &t.base.versioned_atoms(rdep, cp), &t.merge.versioned_atoms(rdep, cp), twins) {
                plan.reasons
                    .push(format!("{rdep}: its version operators on {cp} match each added version as they match its twin; not scanned"));
                return false;
            }
        }
        if let Some(arches) = &self.arches {
            let virtual_ = rdep.starts_with("virtual/");
            if !virtual_ && !t.base.keyworded_on(rdep, arches) && !t.merge.keyworded_on(rdep, arches) {
                return false;
            }
        }
        true
    }
}

/// Record the packages scanned only as reverse dependencies (not touched, not inheriting a changed eclass: those get
/// every check) and the arches their scan may be narrowed to.
fn narrow_dependents(
    plan: &mut Plan,
    dependents: BTreeSet<String>,
    arches: Option<BTreeSet<String>>,
    touched: &BTreeSet<String>,
    t: &Trees,
) {
    let inheritors: BTreeSet<String> =
        plan.eclasses.iter().flat_map(|e| t.base.inheritors(e).chain(t.merge.inheritors(e))).cloned().collect();
    plan.dependents = dependents.into_iter().filter(|d| !touched.contains(d) && !inheritors.contains(d)).collect();
    if plan.dependents.is_empty() {
        return;
    }
    // Only arches a default scan evaluates can be named (`--arches` would otherwise add prefix arches and
    // experimental profiles); when none is left, every arch.
    let default = default_scan_arches(t.base_tree);
    plan.dependent_arches = arches.unwrap_or_default();
    if plan.dependent_arches.iter().any(|a| !default.contains(a)) {
        plan.dependent_arches.clear();
    }
    let arches: Vec<&str> = plan.dependent_arches.iter().map(String::as_str).collect();
    plan.reasons.push(format!(
        "{} reverse dependencies scanned with the checks that read other packages only{}",
        plan.dependents.len(),
        if arches.is_empty() { String::new() } else { format!(", on {}", arches.join(", ")) }
    ));
}

/// How what dependency resolution sees of one package differs between the two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ResolutionChange {
    /// Same versions, each with the same [`Resolution`].
    None,
    /// The same versions, differing only in KEYWORDS: the arches (without `~`/`-`) whose keyword changed.
    Keywords(BTreeSet<String>),
    /// Only versions added, each `(added PF, its twin's PF)`: the twin is in both trees, resolves the same in both, and
    /// the same as the added version.
    TwinsAdded(Vec<(String, String)>),
    /// Anything else, and why.
    Changed(String),
}

/// Compare the resolution view of `cp` (per version, its [`Resolution`]) between base and merge.
fn resolution_change(cp: &str, base_tree: &Path, merge_tree: &Path, base: &CacheIndex, merge: &CacheIndex) -> ResolutionChange {
    let (b, m) = (base.resolution_view(cp), merge.resolution_view(cp));
    for (side, tree, view) in [("base", base_tree, &b), ("merge", merge_tree, &m)] {
        let ebuilds = layout::ebuild_versions(tree, cp);
        if let Some(pf) = ebuilds.iter().find(|pf| !view.contains_key(*pf)) {
            return ResolutionChange::Changed(format!("{pf} has no md5-cache entry in the {side} tree (it failed to source)"));
        }
        if let Some(pf) = view.keys().find(|pf| !ebuilds.contains(*pf)) {
            return ResolutionChange::Changed(format!("md5-cache entry {pf} has no ebuild in the {side} tree"));
        }
    }
    let mut keyword_arches = BTreeSet::new();
    let mut keywords_changed = Vec::new();
    for (pf, r) in &b {
        match m.get(pf) {
            None => return ResolutionChange::Changed(format!("{pf} removed")),
            Some(after) if after != r => {
                let only_keywords = Resolution { keywords: r.keywords.clone(), ..after.clone() } == *r;
                if !only_keywords {
                    return ResolutionChange::Changed(format!("{} of {pf} changed", differing_fields(r, after)));
                }
                keyword_arches.extend(r.keywords.symmetric_difference(&after.keywords).map(|k| keyword_arch(k).to_owned()));
                keywords_changed.push(pf);
            }
            Some(_) => {}
        }
    }
    let added: BTreeMap<&String, &Resolution> = m.iter().filter(|(pf, _)| !b.contains_key(*pf)).collect();
    if !keywords_changed.is_empty() {
        if !added.is_empty() {
            let pfs: Vec<&str> = keywords_changed.iter().map(|s| s.as_str()).collect();
            return ResolutionChange::Changed(format!("KEYWORDS of {} changed and versions added", pfs.join(", ")));
        }
        return ResolutionChange::Keywords(keyword_arches);
    }
    if added.is_empty() {
        return ResolutionChange::None;
    }
    let mut twins = Vec::new();
    for (pf, r) in added {
        // The twin is the existing version next below the added one (next above when it is the oldest): a check
        // reading the newest version an atom matches (`PythonCompatCheck`) then reads the same profile as before.
        // Every base version is in the merge tree with the same profile (checked above).
        let Some(twin) = nearest_existing(cp, pf, b.keys()) else {
            return ResolutionChange::Changed(format!("{pf} added, and its version does not parse"));
        };
        if b.get(&twin) != Some(r) {
            return ResolutionChange::Changed(format!("{pf} added, resolving unlike {twin}, the version next to it"));
        }
        twins.push((pf.clone(), twin));
    }
    // A profile atom with a version operator on the package (`package.mask`, `package.accept_keywords`,
    // `package.use.mask`, …) may tell an added version from its twin.
    let profile_atoms = profile_atoms_on(base_tree, cp);
    if !profile_atoms.is_empty() && !atoms_see_twins_alike(cp, &profile_atoms, &BTreeSet::new(), &twins) {
        return ResolutionChange::Changed("a profile atom with a version operator on it tells an added version from its twin".to_owned());
    }
    ResolutionChange::TwinsAdded(twins)
}

/// The existing version (`PF`) next below `added` in version order, or next above when none is below.
fn nearest_existing<'a>(cp: &str, added: &str, existing: impl Iterator<Item = &'a String>) -> Option<String> {
    use ebuild::version::Version;
    use std::cmp::Ordering;
    let version = |pf: &str| ebuild::version::of_pf(cp, pf).and_then(Version::parse);
    let added_v = version(added)?;
    let mut parsed: Vec<(Version, &String)> = existing.filter_map(|pf| version(pf).map(|v| (v, pf))).collect();
    parsed.sort_by(|a, b| a.0.cmp_full(&b.0));
    let below = parsed.iter().rev().find(|(v, _)| v.cmp_full(&added_v) == Ordering::Less);
    let above = parsed.iter().find(|(v, _)| v.cmp_full(&added_v) != Ordering::Less);
    below.or(above).map(|(_, pf)| (*pf).clone())
}

/// `(operator, version)` of every atom with a version operator on `cp` in any file under `profiles/`.
fn profile_atoms_on(tree: &Path, cp: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from("profiles")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = ebuild::untrusted::read_dir(tree, &dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(dir.join(entry.file_name()));
            } else if kind.is_file() {
                let Ok(text) = ebuild::untrusted::read_to_string(tree, dir.join(entry.file_name())) else { continue };
                if !text.contains(cp) {
                    continue;
                }
                for token in text.split_whitespace() {
                    let token = token.trim_start_matches('-');
                    if ebuild::index::atom_dep(token).is_some_and(|(dep, versioned)| versioned && dep == cp) {
                        out.extend(ebuild::index::atom_version(token));
                    }
                }
            }
        }
    }
    out
}

/// Whether every versioned atom a dependent has on `cp` (in either tree) matches each added version exactly when it
/// matches the added version's twin: then, the twin resolving as the added one does, what the dependent can
/// resolve to is unchanged. False when an atom cannot be decided (a glob such as `=cat/pkg-1*`).
fn atoms_see_twins_alike(
    cp: &str,
    base: &BTreeSet<(String, String)>,
    merge: &BTreeSet<(String, String)>,
    twins: &[(String, String)],
) -> bool {
    use ebuild::version::of_pf;
    let atoms: BTreeSet<&(String, String)> = base.union(merge).collect();
    !atoms.is_empty()
        && atoms.into_iter().all(|(op, wanted)| {
            twins.iter().all(|(added, twin)| match (of_pf(cp, added), of_pf(cp, twin)) {
                (Some(a), Some(t)) => {
                    let (a, t) = (ebuild::version::atom_matches(op, wanted, a), ebuild::version::atom_matches(op, wanted, t));
                    a.is_some() && a == t
                }
                _ => false,
            })
        })
}

/// The arches a default `pkgcheck scan` evaluates dependencies on: those of `profiles/arch.list` without a `-`
/// (prefix arches are left out unless `--arches` names them) with at least one profile of status other than `exp`
/// in `profiles/profiles.desc` (experimental profiles are left out unless an arch selected has nothing else).
/// Empty when the tree lacks either file (an overlay using its master's profiles): then no arch is narrowed.
pub fn default_scan_arches(tree: &Path) -> BTreeSet<String> {
    let read = |f: &str| ebuild::untrusted::read_to_string(tree, Path::new("profiles").join(f)).unwrap_or_default();
    let lines = |text: &str| -> Vec<String> {
        text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_owned()).filter(|l| !l.is_empty()).collect()
    };
    let known: BTreeSet<String> = lines(&read("arch.list")).into_iter().filter(|a| !a.contains('-')).collect();
    let with_profiles: BTreeSet<String> = lines(&read("profiles.desc"))
        .iter()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() >= 3 && fields[2] != "exp").then(|| fields[0].to_owned())
        })
        .collect();
    known.intersection(&with_profiles).cloned().collect()
}

/// The arch of a keyword token: `~amd64`, `-amd64` and `amd64` are all `amd64`.
fn keyword_arch(token: &str) -> &str {
    token.trim_start_matches(['~', '-'])
}

/// `KEYWORDS, SLOT`: the fields in which two profiles differ.
fn differing_fields(a: &Resolution, b: &Resolution) -> String {
    let fields = [
        ("EAPI", a.eapi != b.eapi),
        ("KEYWORDS", a.keywords != b.keywords),
        ("SLOT", a.slot != b.slot),
        ("IUSE", a.iuse != b.iuse),
        ("REQUIRED_USE", a.required_use != b.required_use),
    ];
    fields.iter().filter(|(_, differs)| *differs).map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A base and a merge tree (`profiles/categories`, ebuilds and their md5-cache entries) in a directory removed on drop.
    struct Trees {
        dir: PathBuf,
    }

    impl Trees {
        fn new(name: &str) -> Trees {
            let dir = std::env::temp_dir().join(format!("prci-plan-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for side in ["base", "merge"] {
                std::fs::create_dir_all(dir.join(side).join("profiles")).expect("test fixture");
                std::fs::write(dir.join(side).join("profiles/categories"), "app-misc\ndev-libs\nvirtual\n").expect("test fixture");
                std::fs::write(dir.join(side).join("profiles/arch.list"), "amd64\narm64\nm68k\nx86-fbsd\n").expect("test fixture");
                let desc = "amd64 default/linux/amd64 stable\narm64 default/linux/arm64 dev\nm68k default/linux/m68k exp\nx86-fbsd default/bsd/fbsd dev\n";
                std::fs::write(dir.join(side).join("profiles/profiles.desc"), desc).expect("test fixture");
            }
            Trees { dir }
        }

        fn side(&self, side: &str) -> PathBuf {
            self.dir.join(side)
        }

        /// `cat/pkg/PF.ebuild` and its md5-cache entry `lines` on `sides`.
        fn version(&self, sides: &[&str], cp: &str, pf: &str, lines: &str) -> &Trees {
            for side in sides {
                self.ebuild_only(side, cp, pf);
                let (cat, _) = cp.split_once('/').expect("test fixture");
                let cache = self.side(side).join("metadata/md5-cache").join(cat);
                std::fs::create_dir_all(&cache).expect("test fixture");
                std::fs::write(cache.join(pf), lines.replace("; ", "\n") + "\n").expect("test fixture");
            }
            self
        }

        /// An ebuild without an md5-cache entry (it failed to source).
        fn ebuild_only(&self, side: &str, cp: &str, pf: &str) -> &Trees {
            let dir = self.side(side).join(cp);
            std::fs::create_dir_all(&dir).expect("test fixture");
            std::fs::write(dir.join(format!("{pf}.ebuild")), "").expect("test fixture");
            self
        }

        fn plan(&self, changed: &[&str]) -> Plan {
            let (b, m) = (self.side("base"), self.side("merge"));
            let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
            plan(&changed, &b, &m, &CacheIndex::read(&b).expect("test fixture"), &CacheIndex::read(&m).expect("test fixture"))
        }
    }

    impl Drop for Trees {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const LIB: &str = "EAPI=8; KEYWORDS=~amd64; SLOT=0/1; IUSE=+ssl; REQUIRED_USE=ssl; LICENSE=MIT";
    const BOTH: &[&str] = &["base", "merge"];

    /// `dev-libs/lib-1` (LIB) on both sides, `app-misc/user` depending on it unversioned, `app-misc/vuser` with `>=`.
    fn with_dependents(name: &str) -> Trees {
        let t = Trees::new(name);
        t.version(BOTH, "app-misc/user", "user-1", "EAPI=8; RDEPEND=dev-libs/lib:0= ssl? ( dev-libs/lib[ssl] ) !dev-libs/lib-compat");
        t.version(BOTH, "app-misc/vuser", "vuser-1", "EAPI=8; DEPEND=dev-libs/lib; RDEPEND=>=dev-libs/lib-1:0");
        t
    }

    fn packages(p: &Plan) -> Vec<&str> {
        p.packages.iter().map(String::as_str).collect()
    }

    #[test]
    fn the_cross_package_checks_are_checks_pkgcheck_has() {
        let known = findings::all_checks();
        for check in CROSS_PACKAGE_CHECKS {
            assert!(known.contains(check), "{check} is not in the keyword table");
        }
    }

    #[test]
    fn package_files_map_to_their_package() {
        let dir = std::env::temp_dir();
        let p = plan(
            &["app-misc/foo/foo-1.ebuild".to_string(), "app-misc/foo/files/x.patch".to_string()],
            &dir,
            &dir,
            &CacheIndex::default(),
            &CacheIndex::default(),
        );
        // No profiles/categories in temp_dir and no such directory: it is not taken for a package.
        assert!(p.packages.is_empty());
    }

    #[test]
    fn eclass_change_pulls_inheritors_from_both_trees_and_reverse_deps() {
        let t = Trees::new("eclass");
        t.version(&["base"], "app-misc/a", "a-1", "_eclasses_=e\tabc");
        t.version(&["merge"], "app-misc/d", "d-1", "_eclasses_=e\tabc");
        t.version(&["base"], "app-misc/b", "b-1", "RDEPEND=dev-libs/lib");
        t.version(&["merge"], "app-misc/c", "c-1", "RDEPEND=dev-libs/lib");
        t.version(&["merge"], "dev-libs/lib", "lib-2", LIB);
        let p = t.plan(&["eclass/e.eclass", "dev-libs/lib/lib-2.ebuild", "README.md"]);
        assert!(!p.full);
        assert_eq!(p.eclasses.iter().collect::<Vec<_>>(), ["e"]);
        assert_eq!(
            packages(&p),
            ["app-misc/a", "app-misc/b", "app-misc/c", "app-misc/d", "dev-libs/lib"],
            "a new package: every dependent"
        );
        assert_eq!(p.dependents.iter().collect::<Vec<_>>(), ["app-misc/b", "app-misc/c"], "inheritors get every check");
        assert!(p.dependent_arches.is_empty(), "a new package is not a keyword change: every arch");
        assert!(t.plan(&["licenses/MIT"]).full);
    }

    #[test]
    fn an_md5_cache_entry_is_its_packages_metadata_and_other_metadata_is_repository_wide() {
        let t = with_dependents("md5");
        t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
        t.version(&["merge"], "dev-libs/lib", "lib-2", LIB);
        t.version(BOTH, "app-misc/old", "old-1", "EAPI=8; RDEPEND=<dev-libs/lib-2");
        let p = t.plan(&["dev-libs/lib/lib-2.ebuild", "metadata/md5-cache/dev-libs/lib-2"]);
        assert!(!p.full, "{:?}", p.reasons);
        assert_eq!(packages(&p), ["app-misc/old", "dev-libs/lib"]);
        // A committed cache entry changed alone still names its package.
        assert_eq!(packages(&t.plan(&["metadata/md5-cache/dev-libs/lib-2"])), ["app-misc/old", "dev-libs/lib"]);
        let p = t.plan(&["metadata/md5-cache/dev-libs/lib-2", "metadata/layout.conf"]);
        assert!(p.full);
        assert_eq!(p.reasons[0], "metadata/layout.conf: repository-wide file, full scan");
    }

    #[test]
    fn a_change_resolution_does_not_see_scans_no_dependent() {
        let t = with_dependents("license");
        t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
        t.version(
            &["merge"],
            "dev-libs/lib",
            "lib-1",
            &format!("{}; DESCRIPTION=new; SRC_URI=https://x/y.tar.gz; RESTRICT=test", LIB.replace("MIT", "GPL-2")),
        );
        let p = t.plan(&["dev-libs/lib/lib-1.ebuild", "dev-libs/lib/metadata.xml"]);
        assert_eq!(packages(&p), ["dev-libs/lib"]);
        assert!(
            p.reasons.iter().any(|r| r.starts_with("dev-libs/lib: ") && r.ends_with("reverse dependencies not scanned")),
            "{:?}",
            p.reasons
        );
    }

    #[test]
    fn a_change_resolution_sees_scans_every_dependent() {
        let cases = [
            ("slot", LIB.replace("SLOT=0/1", "SLOT=1"), "SLOT of lib-1 changed"),
            ("subslot", LIB.replace("SLOT=0/1", "SLOT=0/2"), "SLOT of lib-1 changed"),
            ("iuse", LIB.replace("+ssl", "ssl"), "IUSE of lib-1 changed"),
            ("eapi", LIB.replace("EAPI=8", "EAPI=7"), "EAPI of lib-1 changed"),
            ("required-use", LIB.replace("REQUIRED_USE=ssl", "REQUIRED_USE=!ssl"), "REQUIRED_USE of lib-1 changed"),
        ];
        for (name, merge, why) in cases {
            let t = with_dependents(name);
            t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
            t.version(&["merge"], "dev-libs/lib", "lib-1", &merge);
            let p = t.plan(&["dev-libs/lib/lib-1.ebuild"]);
            assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"], "{name}");
            assert!(p.reasons.contains(&format!("dev-libs/lib: {why}; reverse dependencies scanned")), "{name}: {:?}", p.reasons);
            assert!(p.reasons.contains(&"app-misc/user: depends on dev-libs/lib".to_string()), "{name}: {:?}", p.reasons);
        }
        // A removed version.
        let t = with_dependents("removed");
        t.version(BOTH, "dev-libs/lib", "lib-2", LIB);
        t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
        let p = t.plan(&["dev-libs/lib/lib-1.ebuild"]);
        assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"]);
        assert!(p.reasons.contains(&"dev-libs/lib: lib-1 removed; reverse dependencies scanned".to_string()), "{:?}", p.reasons);
    }

    #[test]
    fn a_keyword_change_scans_the_dependents_keyworded_on_its_arches_and_virtuals() {
        for (name, merge, arch) in [
            ("keyword-dropped", LIB.replace("~amd64", ""), "amd64"),
            ("keyword-stabilised", LIB.replace("~amd64", "amd64"), "amd64"),
            ("keyword-added", LIB.replace("~amd64", "~amd64 ~arm64"), "arm64"),
        ] {
            let t = Trees::new(name);
            t.version(BOTH, "app-misc/amd", "amd-1", "KEYWORDS=~amd64 -arm64; RDEPEND=dev-libs/lib");
            t.version(&["merge"], "app-misc/arm", "arm-1", "KEYWORDS=-amd64 arm64; RDEPEND=dev-libs/lib");
            t.version(BOTH, "app-misc/wild", "wild-1", "KEYWORDS=~*; RDEPEND=dev-libs/lib");
            t.version(BOTH, "app-misc/none", "none-1", "KEYWORDS=; RDEPEND=>=dev-libs/lib-1");
            t.version(BOTH, "virtual/lib", "lib-0", "KEYWORDS=; RDEPEND=dev-libs/lib");
            t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
            t.version(&["merge"], "dev-libs/lib", "lib-1", &merge);
            let p = t.plan(&["dev-libs/lib/lib-1.ebuild"]);
            let expected: &[&str] = if arch == "amd64" {
                &["app-misc/amd", "app-misc/wild", "dev-libs/lib", "virtual/lib"]
            } else {
                &["app-misc/arm", "app-misc/wild", "dev-libs/lib", "virtual/lib"]
            };
            assert_eq!(packages(&p), expected, "{name}: {:?}", p.reasons);
            assert_eq!(p.dependents.iter().map(String::as_str).collect::<Vec<_>>(), [expected[0], expected[1], expected[3]], "{name}");
            assert_eq!(p.dependent_arches.iter().collect::<Vec<_>>(), [arch], "{name}");
            let why =
                format!("dev-libs/lib: only KEYWORDS changed, on {arch}; reverse dependencies keyworded there (and virtuals) scanned");
            assert!(p.reasons.contains(&why), "{name}: {:?}", p.reasons);
        }
        // An arch a default scan does not evaluate (experimental profiles only, a prefix arch): every arch.
        for (name, merge) in
            [("exp-arch", LIB.replace("~amd64", "~amd64 ~m68k")), ("prefix-arch", LIB.replace("~amd64", "~amd64 ~x86-fbsd"))]
        {
            let t = with_dependents(name);
            t.version(BOTH, "app-misc/odd", "odd-1", "KEYWORDS=~m68k ~x86-fbsd; RDEPEND=dev-libs/lib");
            t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
            t.version(&["merge"], "dev-libs/lib", "lib-1", &merge);
            let p = t.plan(&["dev-libs/lib/lib-1.ebuild"]);
            assert_eq!(p.dependents.iter().collect::<Vec<_>>(), ["app-misc/odd"], "{name}: {:?}", p.reasons);
            assert!(p.dependent_arches.is_empty(), "{name}: {:?}", p.dependent_arches);
        }
        assert_eq!(default_scan_arches(&with_dependents("arches").side("base")).iter().collect::<Vec<_>>(), ["amd64", "arm64"]);
        // KEYWORDS and another field: every dependent.
        let t = with_dependents("keywords-and-slot");
        t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
        t.version(&["merge"], "dev-libs/lib", "lib-1", &LIB.replace("~amd64", "").replace("SLOT=0/1", "SLOT=1"));
        let p = t.plan(&["dev-libs/lib/lib-1.ebuild"]);
        assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"], "{:?}", p.reasons);
        assert!(
            p.reasons.contains(&"dev-libs/lib: KEYWORDS, SLOT of lib-1 changed; reverse dependencies scanned".to_string()),
            "{:?}",
            p.reasons
        );
        assert!(p.dependent_arches.is_empty(), "not a keyword change alone: every arch");
        // A dependent that is touched too is scanned with every check.
        let t = with_dependents("touched-dependent");
        t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
        t.version(&["merge"], "dev-libs/lib", "lib-1", &LIB.replace("SLOT=0/1", "SLOT=1"));
        let p = t.plan(&["dev-libs/lib/lib-1.ebuild", "app-misc/user/metadata.xml"]);
        assert_eq!(p.dependents.iter().collect::<Vec<_>>(), ["app-misc/vuser"]);
    }

    #[test]
    fn a_version_bump_resolving_like_an_existing_version_scans_only_versioned_dependents() {
        let t = with_dependents("bump");
        t.version(BOTH, "app-misc/old", "old-1", "EAPI=8; RDEPEND=<dev-libs/lib-1.1");
        t.version(BOTH, "app-misc/glob", "glob-1", "EAPI=8; RDEPEND==dev-libs/lib-1*");
        t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
        t.version(&["merge"], "dev-libs/lib", "lib-1.1", &LIB.replace("MIT", "GPL-2"));
        let p = t.plan(&["dev-libs/lib/lib-1.1.ebuild"]);
        // `>=dev-libs/lib-1` matches 1.1 as it matches 1: vuser is not scanned; `<…-1.1` and a glob tell them apart.
        assert_eq!(packages(&p), ["app-misc/glob", "app-misc/old", "dev-libs/lib"], "{:?}", p.reasons);
        assert!(
            p.reasons.contains(
                &"app-misc/vuser: its version operators on dev-libs/lib match each added version as they match its twin; not scanned"
                    .to_string()
            ),
            "{:?}",
            p.reasons
        );
        assert!(
            p.reasons.iter().any(|r| r.starts_with("dev-libs/lib: only versions resolving like an existing one added: lib-1.1 (as lib-1)")),
            "{:?}",
            p.reasons
        );
        assert!(p.reasons.contains(&"app-misc/old: depends on dev-libs/lib".to_string()), "{:?}", p.reasons);
    }

    #[test]
    fn a_version_bump_without_a_twin_scans_every_dependent() {
        type Setup<'a> = &'a dyn Fn(&Trees);
        let cases: [(&str, Setup); 3] = [
            // The new version resolves unlike every existing one.
            ("unlike", &|t| {
                t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
                t.version(&["merge"], "dev-libs/lib", "lib-2", &LIB.replace("~amd64", "~amd64 ~arm64"));
            }),
            // Its twin changed too.
            ("twin-changed", &|t| {
                t.version(&["base"], "dev-libs/lib", "lib-1", LIB);
                t.version(&["merge"], "dev-libs/lib", "lib-1", &LIB.replace("+ssl", "ssl"));
                t.version(&["merge"], "dev-libs/lib", "lib-2", &LIB.replace("+ssl", "ssl"));
            }),
            // It failed to source: no md5-cache entry.
            ("unsourced", &|t| {
                t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
                t.ebuild_only("merge", "dev-libs/lib", "lib-2");
            }),
        ];
        for (name, setup) in cases {
            let t = with_dependents(name);
            setup(&t);
            let p = t.plan(&["dev-libs/lib/lib-2.ebuild"]);
            assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"], "{name}: {:?}", p.reasons);
        }
        // Its twin is the version next below it: a newer version resolving otherwise sits in between.
        let t = with_dependents("not-next");
        t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
        t.version(BOTH, "dev-libs/lib", "lib-2", &LIB.replace("+ssl", "ssl"));
        t.version(&["merge"], "dev-libs/lib", "lib-3", LIB);
        let p = t.plan(&["dev-libs/lib/lib-3.ebuild"]);
        assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"], "{:?}", p.reasons);
        assert!(p.reasons.iter().any(|r| r.contains("lib-3 added, resolving unlike lib-2, the version next to it")), "{:?}", p.reasons);
        // A profile atom tells the added version from its twin.
        let t = with_dependents("masked-twin");
        std::fs::write(t.side("base").join("profiles/package.mask"), "# masked\n=dev-libs/lib-1\n").expect("test fixture");
        std::fs::write(t.side("merge").join("profiles/package.mask"), "# masked\n=dev-libs/lib-1\n").expect("test fixture");
        t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
        t.version(&["merge"], "dev-libs/lib", "lib-1-r1", LIB);
        let p = t.plan(&["dev-libs/lib/lib-1-r1.ebuild"]);
        assert_eq!(packages(&p), ["app-misc/user", "app-misc/vuser", "dev-libs/lib"], "{:?}", p.reasons);
        assert!(p.reasons.iter().any(|r| r.contains("a profile atom with a version operator on it tells")), "{:?}", p.reasons);
        let t = with_dependents("unsourced-base");
        t.version(BOTH, "dev-libs/lib", "lib-1", LIB);
        t.ebuild_only("base", "dev-libs/lib", "lib-0");
        t.ebuild_only("merge", "dev-libs/lib", "lib-0");
        let p = t.plan(&["dev-libs/lib/metadata.xml"]);
        assert!(
            p.reasons.contains(
                &"dev-libs/lib: lib-0 has no md5-cache entry in the base tree (it failed to source); reverse dependencies scanned"
                    .to_string()
            ),
            "{:?}",
            p.reasons
        );
    }
}

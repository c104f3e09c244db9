//! Which repository-, category- and profile-scope checks a pull request can change, decided from both trees' files and md5-cache, so the merge side reruns only those and keeps the base's results for the rest.
//!
//! The repo pass (`--scopes=repo,cat,profiles`) walks every package of the tree: on 10,000 packages it
//! costs 13 s, whatever the size of the pull request. But each of its checks is a function of a few
//! inputs (BENCHMARKS.md, ARCHITECTURE.md "Repo-scope reuse"):
//!
//! | check | reads |
//! |---|---|
//! | UnusedLicensesCheck | `licenses/`, every package's `LICENSE` names |
//! | UnusedEclassesCheck | `eclass/*.eclass` names, every package's inherited eclasses |
//! | UnusedMirrorsCheck | `profiles/thirdpartymirrors`, every package's `mirror://` names |
//! | GlobalUseCheck | `profiles/use.desc`, `profiles/desc/`, `profiles/use.local.desc`, every package's `IUSE` and metadata.xml `<use>` |
//! | ManifestCollisionCheck | every package's Manifest `DIST` entries, reported on its lowest version |
//! | UnusedInMastersCheck (overlays) | the masters, and each package's licences, mirrors, eclasses, flags, per version |
//! | AcctCheck | `metadata/qa-policy.conf`, `acct-user/*` and `acct-group/*` packages |
//! | EmptyDirsCheck (gentoo only) | which package and category directories hold ebuilds |
//! | PackageUpdatesCheck | `profiles/updates/`, and the packages those name |
//! | CategoryMetadataXmlCheck | `<category>/metadata.xml` |
//! | RepoProfilesCheck, RepositoryCategories | `profiles/`, the top-level directories |
//! | LicenseGroupsCheck, ProjectMetadataCheck, RepoManifestHashCheck | `profiles/`, `metadata/` |
//! | RepoDirCheck, ProfilesCheck | never run under `--cache=-git` (they need pkgcheck's git cache) |
//!
//! `profiles/`, `licenses/` and `metadata/` changes make the plan a full scan, so they never get here; an md5-cache
//! entry (`metadata/md5-cache/<cat>/<PF>`, in repositories that commit their cache) is its package's metadata, never
//! repository-wide (`ebuild::layout`), and is compared with that package's other inputs.
//! For the rest, a check is scanned (on both sides, like every target) when an input it reads
//! differs between the two trees; for the three "unused" checks, when the unused set itself
//! (computed here from the md5-cache) differs. A check whose inputs are the same on both sides
//! reports the same on both sides, so it is not scanned at all: it can make no difference (and can
//! never flap into one). Where the base's whole repo pass is at hand (cached), the computed unused
//! sets are checked against what pkgcheck reported there; where they disagree, the model is wrong
//! for this tree and the check is scanned after all.

use ebuild::index::{CacheIndex, PackageMeta};
use ebuild::layout::categories;
use ebuild::layout::{self, PathKind};
use findings::Finding;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks of the repo pass whose inputs are modelled here (pkgcheck 0.10.37). A repo-pass check of
/// the keyword table missing from this list and from [`INACTIVE`] means a newer pkgcheck: rerun everything.
pub const MODELLED: &[&str] = &[
    "AcctCheck",
    "CategoryMetadataXmlCheck",
    "EmptyDirsCheck",
    "GlobalUseCheck",
    "LicenseGroupsCheck",
    "ManifestCollisionCheck",
    "PackageUpdatesCheck",
    "ProjectMetadataCheck",
    "RepoManifestHashCheck",
    "RepoProfilesCheck",
    "RepositoryCategories",
    "UnusedEclassesCheck",
    "UnusedInMastersCheck",
    "UnusedLicensesCheck",
    "UnusedMirrorsCheck",
];

/// Repo-pass checks that need pkgcheck's git cache, which prci's `--cache=-git` disables.
pub const INACTIVE: &[&str] = &["ProfilesCheck", "RepoDirCheck"];

/// Whether `check` runs in the repo pass (and not on package targets).
pub fn is_repo_pass_check(check: &str) -> bool {
    MODELLED.contains(&check) || INACTIVE.contains(&check)
}

/// Scopes the repo pass scans.
pub const REPO_PASS_SCOPES: [&str; 3] = ["repo", "category", "profiles"];

/// The repo-pass checks of the keyword table that this module does not model.
pub fn unmodelled_checks() -> BTreeSet<&'static str> {
    findings::keywords()
        .values()
        .filter(|k| REPO_PASS_SCOPES.contains(&k.scope))
        .flat_map(|k| k.checks.iter().copied())
        .filter(|c| !MODELLED.contains(c) && !INACTIVE.contains(c))
        .collect()
}

/// What of the repo pass both sides must scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Rerun the whole pass.
    pub all: bool,
    /// Scan these checks (`pkgcheck scan -c`) on both sides; no other repo-pass check.
    pub rerun: BTreeSet<String>,
    /// What the base side's findings must say for the model to hold.
    pub expect: Vec<Expectation>,
    /// Why each check is rerun, for the log.
    pub reasons: Vec<String>,
}

/// One finding the base side's repo pass is expected to report (or not, when `values` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub check: &'static str,
    pub keyword: &'static str,
    /// The list attribute of the finding (`licenses`, `eclasses`, `mirrors`).
    pub attr: &'static str,
    pub values: BTreeSet<String>,
}

impl Decision {
    fn rerun(&mut self, check: &str, why: impl Into<String>) {
        if self.rerun.insert(check.to_owned()) {
            self.reasons.push(format!("{check}: {}", why.into()));
        }
    }

    fn everything(&mut self, why: impl Into<String>) {
        if !self.all {
            self.reasons.push(format!("whole repo pass: {}", why.into()));
        }
        self.all = true;
    }

    /// No repository-scope result can differ: neither side scans the repo pass.
    pub fn affects_nothing(&self) -> bool {
        !self.all && self.rerun.is_empty()
    }

    /// Checks whose expectation the base side's repo-pass findings contradict.
    pub fn broken_expectations(&self, base_repo: &[Finding]) -> BTreeSet<String> {
        let mut broken = BTreeSet::new();
        for e in &self.expect {
            let reported: Option<BTreeSet<String>> = base_repo.iter().find(|f| findings::class_of(f) == e.keyword).map(|f| {
                f.get(e.attr)
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            });
            if reported.unwrap_or_default() != e.values {
                broken.insert(e.check.to_owned());
            }
        }
        broken
    }
}

/// The findings some checks can report (by the keyword table).
pub fn of_checks(findings: &[Finding], checks: &BTreeSet<String>) -> Vec<Finding> {
    findings.iter().filter(|f| findings::checks_of(findings::class_of(f)).iter().any(|c| checks.contains(*c))).cloned().collect()
}

/// One tree: its checkout and its md5-cache index.
#[derive(Debug, Clone, Copy)]
pub struct Tree<'a> {
    pub path: &'a Path,
    pub index: &'a CacheIndex,
}

/// What the repository looks like, beyond the two trees.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The repository has master repositories (an overlay).
    pub has_masters: bool,
    /// pkgcheck options that change which checks run (`--cache`, `-c`, `--checks`, …) were added by configuration.
    pub custom_checks: bool,
}

/// Decide, for a pull request changing `changed` (paths on either side), which repo-pass checks can report differently.
pub fn decide(changed: &[String], base: Tree, merge: Tree, ctx: &Context) -> Decision {
    let mut d = Decision::default();
    if ctx.custom_checks {
        d.everything("configured pkgcheck arguments change which checks run");
        return d;
    }
    let unmodelled = unmodelled_checks();
    if !unmodelled.is_empty() {
        d.everything(format!("checks prci does not model: {}", unmodelled.into_iter().collect::<Vec<_>>().join(", ")));
        return d;
    }
    let cats: BTreeSet<String> = categories(&[base.path, merge.path]);
    let gentoo = ebuild::repo::repo_name(merge.path).as_deref() == Some("gentoo");
    let mut packages = BTreeSet::new();
    for path in changed {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() > 1 && base.path.join(parts[0]).exists() != merge.path.join(parts[0]).exists() {
            for check in ["RepoProfilesCheck", "RepositoryCategories"] {
                d.rerun(check, format!("top-level directory {} added or removed", parts[0]));
            }
            if gentoo {
                d.rerun("EmptyDirsCheck", format!("top-level directory {} added or removed", parts[0]));
            }
        }
        match layout::classify_in_trees(path, &cats, &[base.path, merge.path]) {
            PathKind::RepoWide => d.everything(format!("{path} is repository-wide")),
            PathKind::Eclass { .. } => {
                if base.path.join(path).is_file() != merge.path.join(path).is_file() {
                    d.rerun("UnusedEclassesCheck", format!("{path} added or removed"));
                }
            }
            // An md5-cache entry is its package's metadata: compared below with the package's other inputs.
            PathKind::Package { cp } | PathKind::Md5Cache { cp } => {
                packages.insert(cp);
            }
            PathKind::CategoryFile { .. } | PathKind::Other => {
                if let [cat, "metadata.xml"] = parts.as_slice() {
                    d.rerun("CategoryMetadataXmlCheck", format!("{cat}/metadata.xml changed"));
                }
            }
        }
    }
    // Packages whose metadata changed without their files changing (an eclass change reaches its inheritors).
    let all: BTreeSet<&String> = base.index.packages.keys().chain(merge.index.packages.keys()).collect();
    for cp in all {
        if base.index.packages.get(cp).map(|m| &m.digest) != merge.index.packages.get(cp).map(|m| &m.digest) {
            packages.insert(cp.clone());
        }
    }
    if d.all {
        return d;
    }
    compare_packages(&mut d, &packages, base, merge, ctx, gentoo);
    d
}

/// What one package gives the repo-scope checks, on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Contribution {
    dir: bool,
    /// `PF` of every `*.ebuild` file.
    ebuilds: BTreeSet<String>,
    meta: Meta,
    /// The `<use …>…</use>` blocks of metadata.xml, verbatim.
    use_xml: Vec<String>,
    /// Manifest `DIST` lines, whitespace-normalised.
    dist: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Meta {
    licenses: BTreeSet<String>,
    eclasses: BTreeSet<String>,
    iuse: BTreeSet<String>,
    mirrors: BTreeSet<String>,
    versions: BTreeSet<String>,
}

impl Contribution {
    fn read(tree: Tree, cp: &str) -> Contribution {
        let ebuilds = layout::ebuild_versions(tree.path, cp);
        let meta = tree.index.packages.get(cp).map(|m| Meta::of(m)).unwrap_or_default();
        let xml = ebuild::untrusted::read_to_string(tree.path, format!("{cp}/metadata.xml")).unwrap_or_default();
        let manifest = ebuild::untrusted::read_to_string(tree.path, format!("{cp}/Manifest")).unwrap_or_default();
        Contribution {
            dir: ebuild::untrusted::is_dir(tree.path, cp),
            ebuilds,
            meta,
            use_xml: use_blocks(&xml),
            dist: dist_lines(&manifest),
        }
    }

    /// Every ebuild has an md5-cache entry and every entry an ebuild: the metadata is what pkgcheck sees.
    fn sourced(&self) -> bool {
        self.ebuilds == self.meta.versions
    }

    fn empty_dir(&self) -> bool {
        self.dir && self.ebuilds.is_empty()
    }
}

impl Meta {
    fn of(m: &PackageMeta) -> Meta {
        Meta {
            licenses: m.licenses.clone(),
            eclasses: m.eclasses.clone(),
            iuse: m.iuse.clone(),
            mirrors: m.mirrors.clone(),
            versions: m.versions.clone(),
        }
    }
}

fn compare_packages(d: &mut Decision, packages: &BTreeSet<String>, base: Tree, merge: Tree, ctx: &Context, gentoo: bool) {
    let global_flags = global_flags(base.path).into_iter().chain(global_flags(merge.path)).collect::<BTreeSet<_>>();
    let updated = updated_packages(base.path).into_iter().chain(updated_packages(merge.path)).collect::<BTreeSet<_>>();
    let qa_policy = merge.path.join("metadata/qa-policy.conf").is_file();
    let (mut licenses, mut eclasses, mut mirrors) = (false, false, false);
    let mut manifests = BTreeSet::new();
    for cp in packages {
        let (b, m) = (Contribution::read(base, cp), Contribution::read(merge, cp));
        if b == m {
            continue;
        }
        let cat = cp.split('/').next().unwrap_or_default();
        if !b.sourced() || !m.sourced() {
            for check in ["UnusedLicensesCheck", "UnusedEclassesCheck", "UnusedMirrorsCheck", "GlobalUseCheck", "ManifestCollisionCheck"] {
                d.rerun(check, format!("{cp} has an ebuild without metadata"));
            }
            if ctx.has_masters {
                d.rerun("UnusedInMastersCheck", format!("{cp} has an ebuild without metadata"));
            }
        }
        licenses |= b.meta.licenses != m.meta.licenses;
        eclasses |= b.meta.eclasses != m.meta.eclasses;
        mirrors |= b.meta.mirrors != m.meta.mirrors;
        // GlobalUseCheck only counts users of global flags (use.desc, USE_EXPAND descriptions).
        let mut flags: BTreeSet<String> = b.meta.iuse.symmetric_difference(&m.meta.iuse).cloned().collect();
        if b.use_xml != m.use_xml {
            // Local flags moved: every flag either side uses or describes may have changed hands.
            flags.extend(b.meta.iuse.iter().chain(&m.meta.iuse).cloned());
            flags.extend(b.use_xml.iter().chain(&m.use_xml).flat_map(|block| flag_names(block)));
        }
        if let Some(flag) = flags.iter().find(|f| global_flags.contains(*f)) {
            d.rerun("GlobalUseCheck", format!("{cp}: use of global flag {flag} changed"));
        }
        // ManifestCollisionCheck reads a package's Manifest once, reporting on its lowest version: a bump that keeps
        // the distfiles and the lowest version changes none of its results.
        if b.dist != m.dist || lowest_version(cp, &b.ebuilds) != lowest_version(cp, &m.ebuilds) {
            manifests.insert(cp.clone());
        }
        if ctx.has_masters && (b.meta != m.meta || b.use_xml != m.use_xml) {
            d.rerun("UnusedInMastersCheck", format!("{cp}: metadata changed in an overlay"));
        }
        if gentoo && (b.empty_dir() != m.empty_dir() || category_has_packages(base.path, cat) != category_has_packages(merge.path, cat)) {
            d.rerun("EmptyDirsCheck", format!("{cp}: package or category directory emptied or filled"));
        }
        if (cat == "acct-user" || cat == "acct-group") && qa_policy {
            // Not alone: pkgcheck refuses `-c AcctCheck` when metadata/qa-policy.conf lacks a range.
            d.everything(format!("{cp} is an account package"));
        }
        if updated.contains(cp) {
            d.rerun("PackageUpdatesCheck", format!("{cp} is named by profiles/updates"));
        }
    }
    if licenses {
        unused_check(d, ctx, "UnusedLicensesCheck", "UnusedLicenses", "licenses", base, merge, |t| {
            unused(files(t.path, "licenses", None), t.index, |m| &m.licenses)
        });
    }
    if eclasses {
        unused_check(d, ctx, "UnusedEclassesCheck", "UnusedEclasses", "eclasses", base, merge, |t| {
            unused(files(t.path, "eclass", Some(".eclass")), t.index, |m| &m.eclasses)
        });
    }
    if mirrors {
        unused_check(d, ctx, "UnusedMirrorsCheck", "UnusedMirrors", "mirrors", base, merge, |t| {
            unused(mirror_names(t.path), t.index, |m| &m.mirrors)
        });
    }
    if !manifests.is_empty() && !d.rerun.contains("ManifestCollisionCheck") {
        if let Some(why) = manifest_collision_possible(&manifests, base, merge) {
            d.rerun("ManifestCollisionCheck", why);
        }
    }
}

/// An "unused X" check: unchanged when the unused set computed from both trees is the same, and the
/// base's finding is expected to list exactly that set. Overlays subtract their masters' sets, which
/// are not modelled: rerun.
#[allow(clippy::too_many_arguments)]
fn unused_check(
    d: &mut Decision,
    ctx: &Context,
    check: &'static str,
    keyword: &'static str,
    attr: &'static str,
    base: Tree,
    merge: Tree,
    compute: impl Fn(Tree) -> BTreeSet<String>,
) {
    if ctx.has_masters {
        d.rerun(check, "the usage it counts changed in an overlay");
        return;
    }
    let (b, m) = (compute(base), compute(merge));
    if b != m {
        d.rerun(check, format!("its {attr} change"));
    } else {
        d.expect.push(Expectation { check, keyword, attr, values: b });
    }
}

/// Names defined (`defined`) that no package of the index uses.
fn unused(defined: BTreeSet<String>, index: &CacheIndex, used: impl Fn(&PackageMeta) -> &BTreeSet<String>) -> BTreeSet<String> {
    let mut left = defined;
    for meta in index.packages.values() {
        if left.is_empty() {
            break;
        }
        for name in used(meta) {
            left.remove(name);
        }
    }
    left
}

/// Regular files of the directory `tree/rel` (optionally ending in `suffix`, which is cut off).
fn files(tree: &Path, rel: &str, suffix: Option<&str>) -> BTreeSet<String> {
    let Ok(entries) = ebuild::untrusted::read_dir(tree, rel) else { return BTreeSet::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            match suffix {
                Some(s) => name.strip_suffix(s).map(str::to_owned),
                None => Some(name),
            }
        })
        .collect()
}

/// Mirror names of `profiles/thirdpartymirrors`.
fn mirror_names(tree: &Path) -> BTreeSet<String> {
    ebuild::untrusted::read_to_string(tree, "profiles/thirdpartymirrors")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Global USE flags: `profiles/use.desc` and `profiles/desc/<group>.desc` (as `group_value`).
fn global_flags(tree: &Path) -> BTreeSet<String> {
    let first_words = |text: String| -> Vec<String> {
        text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(|l| l.split_whitespace().next().map(str::to_owned)).collect()
    };
    let mut flags: BTreeSet<String> =
        first_words(ebuild::untrusted::read_to_string(tree, "profiles/use.desc").unwrap_or_default()).into_iter().collect();
    for group in files(tree, "profiles/desc", None) {
        let prefix = group.split('.').next().unwrap_or_default().to_owned();
        let text = ebuild::untrusted::read_to_string(tree, Path::new("profiles/desc").join(&group)).unwrap_or_default();
        flags.extend(first_words(text).into_iter().map(|v| format!("{prefix}_{v}")));
    }
    flags
}

/// `cat/pkg` names that `profiles/updates/*` mention (moves and slot moves).
fn updated_packages(tree: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files(tree, "profiles/updates", None) {
        let text = ebuild::untrusted::read_to_string(tree, Path::new("profiles/updates").join(file)).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(ebuild::index::atom_package));
    }
    out
}

fn category_has_packages(tree: &Path, cat: &str) -> bool {
    ebuild::untrusted::read_dir(tree, cat).map(|mut e| e.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir())))).unwrap_or(false)
}

/// The `<use …>…</use>` blocks of a metadata.xml, verbatim.
fn use_blocks(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<use") {
        let after = &rest[start..];
        // `<use>` or `<use lang=…>`, not `<useflag…>`.
        if !after[4..].starts_with(['>', ' ', '\t', '\n', '\r', '/']) {
            rest = &after[4..];
            continue;
        }
        let end = after.find("</use>").map(|e| e + "</use>".len()).unwrap_or(after.len());
        out.push(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

/// `name` attributes of the `<flag>` elements of a `<use>` block.
fn flag_names(block: &str) -> Vec<String> {
    block
        .split("<flag")
        .skip(1)
        .filter_map(|f| {
            let attr = f.split('>').next()?;
            let at = attr.find("name=")?;
            let value = &attr[at + 5..];
            let quote = value.chars().next()?;
            let inner = value.get(1..)?;
            Some(inner.split(quote).next()?.to_owned())
        })
        .collect()
}

/// `DIST` lines of a Manifest, whitespace-normalised.
fn dist_lines(manifest: &str) -> BTreeSet<String> {
    manifest.lines().filter(|l| l.starts_with("DIST ")).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// `(file name, size)` of a normalised DIST line.
fn dist_name_size(line: &str) -> Option<(&str, &str)> {
    let mut f = line.split(' ').skip(1);
    Some((f.next()?, f.next()?))
}

/// ManifestCollisionCheck reports a distfile whose name, or whose size and checksums, another
/// distfile shares. When every distfile of the changed packages has a name and a size no other
/// distfile of the tree has, on both sides, those packages are in no collision on either side and
/// the others' collisions cannot change. Otherwise the check is rerun (returns why).
/// The lowest of a package's versions (`PF`s) in version order; every one of them, as a set, when one does not
/// parse (then only an identical set compares equal).
fn lowest_version(cp: &str, pfs: &BTreeSet<String>) -> Vec<String> {
    use ebuild::version::{of_pf, Version};
    let parsed: Option<Vec<(Version, &String)>> = pfs.iter().map(|pf| of_pf(cp, pf).and_then(Version::parse).map(|v| (v, pf))).collect();
    match parsed {
        Some(versions) => versions.into_iter().min_by(|a, b| a.0.cmp_full(&b.0)).map(|(_, pf)| pf.clone()).into_iter().collect(),
        None => pfs.iter().cloned().collect(),
    }
}

fn manifest_collision_possible(changed: &BTreeSet<String>, base: Tree, merge: Tree) -> Option<String> {
    for tree in [base, merge] {
        let mut mine: Vec<(String, String)> = Vec::new();
        for cp in changed {
            let manifest = ebuild::untrusted::read_to_string(tree.path, format!("{cp}/Manifest")).unwrap_or_default();
            for line in dist_lines(&manifest) {
                if let Some((name, size)) = dist_name_size(&line) {
                    mine.push((name.to_owned(), size.to_owned()));
                }
            }
        }
        if mine.is_empty() {
            continue;
        }
        let (mut names, mut sizes) = (BTreeMap::<String, usize>::new(), BTreeMap::<String, usize>::new());
        for (name, size) in &mine {
            *names.entry(name.clone()).or_default() += 1;
            *sizes.entry(size.clone()).or_default() += 1;
        }
        if let Some((n, _)) = names.iter().find(|(_, c)| **c > 1).or_else(|| sizes.iter().find(|(_, c)| **c > 1)) {
            return Some(format!("a changed Manifest shares the distfile name or size {n}"));
        }
        for cat in categories(&[tree.path]) {
            let Ok(pkgs) = ebuild::untrusted::read_dir(tree.path, &cat) else { continue };
            for pkg in pkgs.flatten() {
                let cp = format!("{cat}/{}", pkg.file_name().to_string_lossy());
                if changed.contains(&cp) {
                    continue;
                }
                let Ok(manifest) = ebuild::untrusted::read_to_string(tree.path, format!("{cp}/Manifest")) else { continue };
                for line in dist_lines(&manifest) {
                    if let Some((name, size)) = dist_name_size(&line) {
                        if names.contains_key(name) || sizes.contains_key(size) {
                            return Some(format!("{cp} has a distfile with the same name or size as a changed Manifest's"));
                        }
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_repo_pass_check_of_the_pinned_pkgcheck_is_modelled() {
        assert!(unmodelled_checks().is_empty(), "{:?}", unmodelled_checks());
    }

    #[test]
    fn an_md5_cache_entry_is_compared_as_its_package_and_other_metadata_is_repository_wide() {
        let dir = std::env::temp_dir().join(format!("prci-repo-scope-md5-{}", std::process::id()));
        let (b, m) = (dir.join("base"), dir.join("merge"));
        for t in [&b, &m] {
            std::fs::create_dir_all(t.join("profiles")).expect("test fixture");
            std::fs::write(t.join("profiles/categories"), "app-misc\n").expect("test fixture");
            std::fs::create_dir_all(t.join("app-misc/foo")).expect("test fixture");
            std::fs::write(t.join("app-misc/foo/foo-1.ebuild"), "").expect("test fixture");
            std::fs::create_dir_all(t.join("metadata/md5-cache/app-misc")).expect("test fixture");
            std::fs::write(t.join("metadata/md5-cache/app-misc/foo-1"), "LICENSE=MIT\n").expect("test fixture");
        }
        std::fs::write(m.join("app-misc/foo/foo-1.1.ebuild"), "").expect("test fixture");
        std::fs::write(m.join("metadata/md5-cache/app-misc/foo-1.1"), "LICENSE=MIT\n").expect("test fixture");
        let (bi, mi) = (CacheIndex::read(&b).expect("test fixture"), CacheIndex::read(&m).expect("test fixture"));
        let decide_for = |changed: &[&str]| {
            let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
            decide(&changed, Tree { path: &b, index: &bi }, Tree { path: &m, index: &mi }, &Context::default())
        };
        let bump = decide_for(&["app-misc/foo/foo-1.1.ebuild", "metadata/md5-cache/app-misc/foo-1.1"]);
        let layout = decide_for(&["metadata/layout.conf"]);
        std::fs::remove_dir_all(&dir).expect("test fixture");
        assert!(!bump.all, "{:?}", bump.reasons);
        assert!(bump.reasons.iter().all(|r| !r.contains("repository-wide")), "{:?}", bump.reasons);
        assert!(layout.all, "{:?}", layout.reasons);
    }

    #[test]
    fn use_blocks_and_flag_names() {
        let xml = r#"<pkgmetadata><maintainer><email>a@b</email></maintainer>
<use>
  <flag name="foo">Enable <pkg>dev-libs/foo</pkg></flag>
  <flag restrict="&gt;=x" name='bar'>Bar</flag>
</use><useless/></pkgmetadata>"#;
        let blocks = use_blocks(xml);
        assert_eq!(blocks.len(), 1);
        assert_eq!(flag_names(&blocks[0]), ["foo", "bar"]);
    }

    #[test]
    fn dist_lines_are_normalised() {
        let lines = dist_lines("DIST a.tar.gz 12  BLAKE2B aa SHA512 bb\nEBUILD x 1\n");
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["DIST a.tar.gz 12 BLAKE2B aa SHA512 bb"]);
        assert_eq!(dist_name_size(lines.first().expect("test fixture")), Some(("a.tar.gz", "12")));
    }

    #[test]
    fn findings_are_selected_by_the_checks_that_report_them() {
        let f = |class: &str| -> Finding { serde_json::from_str(&format!(r#"{{"__class__":"{class}"}}"#)).expect("test fixture") };
        let picked =
            of_checks(&[f("UnusedLicenses"), f("UnusedEclasses"), f("PrciToolCrash")], &["UnusedLicensesCheck".to_string()].into());
        assert_eq!(picked.len(), 1);
        assert_eq!(findings::class_of(&picked[0]), "UnusedLicenses");
    }

    #[test]
    fn expectations_compare_the_listed_values() {
        let d = Decision {
            expect: vec![Expectation {
                check: "UnusedLicensesCheck",
                keyword: "UnusedLicenses",
                attr: "licenses",
                values: ["X".to_string()].into(),
            }],
            ..Decision::default()
        };
        let ok: Finding = serde_json::from_str(r#"{"__class__":"UnusedLicenses","licenses":["X"]}"#).expect("test fixture");
        let other: Finding = serde_json::from_str(r#"{"__class__":"UnusedLicenses","licenses":["X","Y"]}"#).expect("test fixture");
        assert!(d.broken_expectations(&[ok]).is_empty());
        assert_eq!(d.broken_expectations(&[other]).into_iter().collect::<Vec<_>>(), ["UnusedLicensesCheck"]);
        assert_eq!(d.broken_expectations(&[]).len(), 1, "an expected finding that is missing breaks the model");
    }
}

//! A Gentoo-size ebuild repository built from a real one, for `prci-bench --real`: the snapshot's
//! categories repeated under new names (`app-arch` → `app-arch-c1`, …), each copied ebuild depending on
//! the package it was copied from, one `pmaint regen`, and two git repositories of the result (md5-cache
//! committed, and ignored as in Gentoo's git). Also the pull requests the benchmark checks on them.
//!
//! Layout of a built tree (`<bench dir>/<tarball stem>-c<copies>/`): `committed/` and `uncommitted/`
//! (git work trees, branch `master`, both with a complete md5-cache on disk), `tree.json` (how it was
//! built, how long each step took, and the cached full-scan time).

use anyhow::{bail, Context as _, Result};
use git2::{BranchType, FileMode, Repository, Signature, Time};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::tools::{pmaint_path, PkgcoreConfig};

/// The argument of the "a check disabled" runs, and of the full-scan baseline (Gentoo CI's method:
/// `MetadataVarCheck` crashes on two live ebuilds of the coreos snapshot).
pub const DISABLED_CHECK_ARG: &str = "--checks=-MetadataVarCheck";

/// Commit time of `master` (the snapshot's date, 2020-05-15); pull requests are one day later.
const SNAPSHOT_TIME: i64 = 1_589_500_800;
/// Name and e-mail of every commit made here.
const AUTHOR: (&str, &str) = ("prci-bench", "prci-bench@example.com");
/// How many packages an eclass of the `eclass` pull request should be inherited by (closest first).
const ECLASS_USERS_TARGET: usize = 500;
/// Top-level directories of a repository that are not categories.
const NOT_CATEGORIES: &[&str] = &["eclass", "licenses", "metadata", "profiles", "scripts"];

/// Which tree to build: the snapshot and how many copies of its categories.
#[derive(Debug, Clone)]
pub struct Spec {
    pub tarball: PathBuf,
    pub copies: usize,
}

impl Spec {
    /// The tarball's name without its extension (`portage-stable-b46831017581`).
    pub fn stem(&self) -> String {
        let name = self
            .tarball
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        [".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext).map(str::to_owned))
            .unwrap_or(name)
    }

    /// The directory name of the built tree under the benchmark directory.
    pub fn key(&self) -> String {
        format!("{}-c{}", self.stem(), self.copies)
    }
}

/// The two ways the tree is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// `metadata/md5-cache` is committed (as in many overlays and Gentoo's rsync tree).
    Committed,
    /// `metadata/md5-cache` is in `.gitignore` (as in Gentoo's git).
    Uncommitted,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Committed, Variant::Uncommitted];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Committed => "committed",
            Variant::Uncommitted => "uncommitted",
        }
    }
}

/// A built tree: its directory and what `tree.json` says about it.
#[derive(Debug)]
pub struct Tree {
    pub dir: PathBuf,
    pub meta: Value,
}

impl Tree {
    /// The git work tree of a variant.
    pub fn repo(&self, variant: Variant) -> PathBuf {
        self.dir.join(variant.name())
    }

    /// Record `value` under `key` in `tree.json`.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        if let Some(map) = self.meta.as_object_mut() {
            map.insert(key.to_owned(), value);
        }
        write_meta(&self.dir, &self.meta)
    }

    /// The categories of the snapshot (the originals, not the copies).
    pub fn original_categories(&self) -> Vec<String> {
        strings(&self.meta["original_categories"])
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn write_meta(dir: &Path, meta: &Value) -> Result<()> {
    let path = dir.join("tree.json");
    let tmp = dir.join("tree.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(meta)? + "\n")
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The built tree of `spec` under `bench_dir`, building it first when it is not there (a directory
/// without a complete `tree.json` is built again). `jobs` is pmaint's `-t`.
pub fn ensure(bench_dir: &Path, spec: &Spec, jobs: usize, progress: &dyn Fn(&str)) -> Result<Tree> {
    let dir = bench_dir.join(spec.key());
    if let Ok(text) = std::fs::read_to_string(dir.join("tree.json")) {
        if let Ok(meta) = serde_json::from_str::<Value>(&text) {
            if meta["complete"].as_bool() == Some(true) {
                progress(&format!("reusing the built tree {}", dir.display()));
                return Ok(Tree { dir, meta });
            }
        }
    }
    if !spec.tarball.is_file() {
        bail!("{} not found (pass --tarball)", spec.tarball.display());
    }
    let staging = bench_dir.join(format!("{}.partial", spec.key()));
    for stale in [&staging, &dir] {
        if stale.exists() {
            progress(&format!("removing the incomplete {}", stale.display()));
            std::fs::remove_dir_all(stale)
                .with_context(|| format!("remove {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&staging)?;
    let started = Instant::now();
    let mut meta = json!({
        "tarball": spec.tarball.display().to_string(),
        "copies": spec.copies,
    });

    progress(&format!("unpacking {}", spec.tarball.display()));
    let t = Instant::now();
    let unpack = staging.join("unpack");
    std::fs::create_dir_all(&unpack)?;
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&spec.tarball)
            .arg("-C")
            .arg(&unpack),
    )?;
    let top = single_dir(&unpack)?;
    let root = staging.join(Variant::Committed.name());
    std::fs::rename(&top, &root)?;
    std::fs::remove_dir_all(&unpack)?;
    meta["unpack_seconds"] = json!(secs(t));

    let categories = package_categories(&root)?;
    let original_ebuilds = count_ebuilds(&root, &categories)?;
    progress(&format!(
        "copying {} categories ({original_ebuilds} ebuilds) {} times; each copied ebuild gets RDEPEND on its original",
        categories.len(),
        spec.copies
    ));
    let t = Instant::now();
    let mut listed: BTreeSet<String> = read_lines(&root.join("profiles/categories"))?
        .into_iter()
        .collect();
    for c in 1..=spec.copies {
        for cat in &categories {
            let copy = format!("{cat}-c{c}");
            copy_category(&root.join(cat), &root.join(&copy), cat)?;
            listed.insert(copy);
        }
    }
    let list: String = listed.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(root.join("profiles/categories"), list)?;
    let ebuilds = original_ebuilds * (spec.copies + 1);
    meta["copy_seconds"] = json!(secs(t));
    meta["original_categories"] = json!(categories);
    meta["original_ebuilds"] = json!(original_ebuilds);
    meta["ebuilds"] = json!(ebuilds);

    progress(&format!(
        "pmaint regen -t {jobs} of {ebuilds} ebuilds (the snapshot's own entries are reused; several minutes on 2 cores)"
    ));
    let t = Instant::now();
    let regen = pmaint_regen(&root, jobs)?;
    meta["regen_seconds"] = json!(secs(t));
    meta["regen_exit"] = json!(regen.0);
    meta["regen_failures"] = json!(regen.1);
    let entries = count_cache_entries(&root)?;
    meta["md5_cache_entries"] = json!(entries);
    if !regen.1.is_empty() {
        progress(&format!(
            "pmaint regen could not source {} ebuilds: {}",
            regen.1.len(),
            regen
                .1
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if entries + regen.1.len() < ebuilds {
        bail!(
            "md5-cache holds {entries} entries for {ebuilds} ebuilds ({} failures reported): the tree does not source",
            regen.1.len()
        );
    }

    progress("committing the tree twice: md5-cache committed, and md5-cache in .gitignore");
    let t = Instant::now();
    let other = staging.join(Variant::Uncommitted.name());
    run_ok(Command::new("cp").arg("-a").arg(&root).arg(&other))?;
    std::fs::write(other.join(".gitignore"), "/metadata/md5-cache/\n")?;
    for (path, variant) in [(&root, Variant::Committed), (&other, Variant::Uncommitted)] {
        let t = Instant::now();
        git_commit_all(
            path,
            &format!(
                "{} with its categories repeated {} times (md5-cache {})",
                spec.stem(),
                spec.copies,
                variant.name()
            ),
        )?;
        meta[format!("commit_{}_seconds", variant.name())] = json!(secs(t));
    }
    meta["commit_seconds"] = json!(secs(t));
    meta["build_seconds"] = json!(secs(started));
    meta["complete"] = json!(true);
    std::fs::rename(&staging, &dir)
        .with_context(|| format!("rename {} to {}", staging.display(), dir.display()))?;
    write_meta(&dir, &meta)?;
    Ok(Tree { dir, meta })
}

fn single_dir(dir: &Path) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    match dirs.as_slice() {
        [one] if one.join("profiles/repo_name").is_file() => Ok(one.clone()),
        _ => bail!(
            "the tarball should hold one repository directory (with profiles/repo_name); found {dirs:?}"
        ),
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn sorted_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

/// Top-level directories holding at least one package with an ebuild.
fn package_categories(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, path) in sorted_dir(root)? {
        if name.starts_with('.') || NOT_CATEGORIES.contains(&name.as_str()) || !path.is_dir() {
            continue;
        }
        let mut has = false;
        for (_, pkg) in sorted_dir(&path)? {
            if pkg.is_dir() && !ebuilds_of(&pkg)?.is_empty() {
                has = true;
                break;
            }
        }
        if has {
            out.push(name);
        }
    }
    Ok(out)
}

/// File names of the ebuilds in a package directory, sorted.
fn ebuilds_of(pkg_dir: &Path) -> Result<Vec<String>> {
    Ok(sorted_dir(pkg_dir)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".ebuild"))
        .collect())
}

fn count_ebuilds(root: &Path, categories: &[String]) -> Result<usize> {
    let mut n = 0;
    for cat in categories {
        for (_, pkg) in sorted_dir(&root.join(cat))? {
            if pkg.is_dir() {
                n += ebuilds_of(&pkg)?.len();
            }
        }
    }
    Ok(n)
}

fn count_cache_entries(root: &Path) -> Result<usize> {
    let cache = root.join("metadata/md5-cache");
    let mut n = 0;
    for (_, cat) in sorted_dir(&cache)? {
        if cat.is_dir() {
            n += sorted_dir(&cat)?.len();
        }
    }
    Ok(n)
}

/// Copy the category `from` (named `orig`) to `to`, adding the dependency on the original to every ebuild.
fn copy_category(from: &Path, to: &Path, orig: &str) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for (name, path) in sorted_dir(from)? {
        let target = to.join(&name);
        if path.is_dir() {
            copy_tree(&path, &target, &|file_name, bytes| {
                if file_name.ends_with(".ebuild") {
                    let text = String::from_utf8_lossy(bytes);
                    Some(with_dependency(&text, &format!("{orig}/{name}")).into_bytes())
                } else {
                    None
                }
            })?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

/// Copy a directory; `rewrite` may replace the content of a file at the top level of `from`.
fn copy_tree(
    from: &Path,
    to: &Path,
    rewrite: &dyn Fn(&str, &[u8]) -> Option<Vec<u8>>,
) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for (name, path) in sorted_dir(from)? {
        let target = to.join(&name);
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&path)?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&path, &target, &|_, _| None)?;
        } else {
            let bytes = std::fs::read(&path)?;
            match rewrite(&name, &bytes) {
                Some(new) => std::fs::write(&target, new)?,
                None => {
                    std::fs::copy(&path, &target)?;
                }
            }
        }
    }
    Ok(())
}

/// The EAPI an ebuild declares (its first `EAPI=` line; "0" without one).
fn eapi_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("EAPI="))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .unwrap_or_else(|| "0".into())
}

/// `text` with a runtime dependency on `atom` added at the end of its global scope. In EAPI 0–3 an
/// unset RDEPEND means "the same as DEPEND": keep that meaning when the ebuild sets no RDEPEND.
pub fn with_dependency(text: &str, atom: &str) -> String {
    let sets_rdepend = text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("RDEPEND=") || l.starts_with("RDEPEND+=")
    });
    let mut out = text.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("\n# prci-bench: this copy depends on the package it was copied from\n");
    if !sets_rdepend && matches!(eapi_of(text).as_str(), "0" | "1" | "2" | "3") {
        out.push_str(&format!("RDEPEND=\"${{DEPEND}} {atom}\"\n"));
    } else {
        out.push_str(&format!("RDEPEND+=\" {atom}\"\n"));
    }
    out
}

/// The hermetic `pmaint regen` (pkgcheck.md). Returns its exit code and the ebuilds it could not source.
fn pmaint_regen(root: &Path, jobs: usize) -> Result<(i32, Vec<String>)> {
    let config = PkgcoreConfig::new(root, &[]);
    let scratch = tempfile::Builder::new()
        .prefix("prci-bench-regen-")
        .tempdir()?;
    let pmaint = pmaint_path();
    let bin = pmaint.parent().context("pmaint has no parent dir")?;
    let out = Command::new(&pmaint)
        .arg("--config")
        .arg(config.path())
        .args(["regen", "-t", &jobs.to_string()])
        .arg(root)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", scratch.path())
        .env("TMPDIR", scratch.path())
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("start {}", pmaint.display()))?;
    let code = out.status.code().unwrap_or(-1);
    if !matches!(code, 0 | 1) {
        bail!(
            "pmaint regen failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let failures: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('/') && !l.starts_with("WARNING"))
        .map(|l| l.trim().to_owned())
        .collect();
    Ok((code, if code == 0 { vec![] } else { failures }))
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn git(path: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(path)
        .args(["-c", &format!("user.name={}", AUTHOR.0)])
        .args(["-c", &format!("user.email={}", AUTHOR.1)])
        .args(["-c", "core.autocrlf=false", "-c", "gc.auto=0"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", format!("@{SNAPSHOT_TIME} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{SNAPSHOT_TIME} +0000"));
    c
}

/// `git init` (branch master), add everything (.gitignore honoured), commit, and pack the objects.
fn git_commit_all(path: &Path, message: &str) -> Result<()> {
    run_ok(git(path).args(["init", "-q", "-b", "master"]))?;
    run_ok(git(path).args(["add", "-A"]))?;
    run_ok(git(path).args(["commit", "-q", "--no-verify", "-m", message]))?;
    run_ok(git(path).args(["repack", "-a", "-d", "-q"]))?;
    run_ok(git(path).args(["prune"]))?;
    Ok(())
}

// ---------------------------------------------------------------------------- what the tree holds

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
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The eclass names of an `_eclasses_` value (`name\tmd5\tname\tmd5…`).
fn eclass_names(value: &str) -> Vec<&str> {
    value
        .split('\t')
        .step_by(2)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `cat/pkg` of a dependency atom (`>=cat/pkg-1.0:0/1[use]` → `cat/pkg`), given the known packages.
fn atom_package(token: &str, known: &BTreeMap<String, Vec<String>>) -> Option<String> {
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
                    let Some(v) = file
                        .strip_suffix(".ebuild")
                        .and_then(|s| s.strip_prefix(&format!("{pn}-")))
                    else {
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
                    for token in fields
                        .get(class)
                        .map_or("", String::as_str)
                        .split_whitespace()
                    {
                        if let Some(dep) = atom_package(token, &packages) {
                            if dep != me {
                                rdeps.entry(dep).or_default().insert(me.clone());
                            }
                        }
                    }
                }
            }
        }
        let licenses = sorted_dir(&root.join("licenses"))?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
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
    fn plain_packages(&self) -> Vec<(&String, &String)> {
        self.packages
            .iter()
            .filter(|(cp, _)| !self.crashing.contains(*cp))
            .filter_map(|(cp, vs)| vs.last().map(|v| (cp, v)))
            .filter(|(_, v)| !v.contains("9999"))
            .collect()
    }

    /// `count` picks spread evenly over `list`, starting `offset` (0..1) of a step in.
    fn spread<T: Clone>(list: &[T], count: usize, offset: f64) -> Vec<T> {
        if list.is_empty() {
            return vec![];
        }
        let step = list.len() as f64 / count.max(1) as f64;
        (0..count)
            .map(|k| list[((k as f64 + offset) * step) as usize % list.len()].clone())
            .collect()
    }
}

/// PN of a PF (`gzip-1.10-r1` → `gzip`): everything before the version.
fn package_name(pf: &str) -> String {
    let parts: Vec<&str> = pf.split('-').collect();
    for i in 1..parts.len() {
        let rest = &parts[i + 1..];
        let revision = |r: &str| {
            r.strip_prefix('r')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
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
    let main = main
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .unwrap_or(main);
    let numbers_ok = !main.is_empty()
        && main
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbers_ok
        && parts.all(|s| {
            ["alpha", "beta", "pre", "rc", "p"].iter().any(|name| {
                s.strip_prefix(name)
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
        })
}

/// Compare two Gentoo versions (PV or PVR), following PMS closely enough for sorting one package's versions.
pub fn vercmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> (Vec<String>, Option<char>, Vec<(i32, String)>, u64) {
        let (v, rev) = match v.rsplit_once("-r") {
            Some((head, r)) if r.chars().all(|c| c.is_ascii_digit()) && !r.is_empty() => {
                (head, r.parse().unwrap_or(0))
            }
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
        (
            nums.split('.').map(str::to_owned).collect(),
            letter,
            suffixes,
            rev,
        )
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

// ---------------------------------------------------------------------------- the pull requests

/// The kinds of pull request the benchmark checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrKind {
    /// One package's LICENSE becomes another existing licence.
    Metadata,
    /// A keyword dropped from the newest version of the package with the most reverse dependencies.
    KeywordDrop,
    /// `pkg-X.ebuild` copied to the next revision.
    Bump,
    /// A new package (one ebuild and metadata.xml) in an existing category.
    NewPackage,
    /// A comment added to an eclass inherited by hundreds of packages.
    Eclass,
}

impl PrKind {
    pub const ALL: [PrKind; 5] = [
        PrKind::Metadata,
        PrKind::KeywordDrop,
        PrKind::Bump,
        PrKind::NewPackage,
        PrKind::Eclass,
    ];

    /// The order the benchmark runs them in: the quick ones first.
    pub const CHEAPEST_FIRST: [PrKind; 5] = [
        PrKind::Metadata,
        PrKind::NewPackage,
        PrKind::Bump,
        PrKind::Eclass,
        PrKind::KeywordDrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PrKind::Metadata => "metadata",
            PrKind::KeywordDrop => "keyword-drop",
            PrKind::Bump => "bump",
            PrKind::NewPackage => "new-package",
            PrKind::Eclass => "eclass",
        }
    }

    pub fn parse(name: &str) -> Option<PrKind> {
        PrKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One change, the same in both variants (the committed variant also gets the matching md5-cache update).
#[derive(Debug, Clone)]
pub enum Change {
    License {
        atom: String,
        version: String,
        from: String,
        to: String,
    },
    DropKeyword {
        atom: String,
        version: String,
        keyword: String,
    },
    Bump {
        atom: String,
        from: String,
        to: String,
    },
    NewPackage {
        atom: String,
        dependency: String,
        number: usize,
    },
    EclassComment {
        eclass: String,
        users: usize,
        number: usize,
    },
}

impl Change {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Change::License {
                atom,
                version,
                from,
                to,
            } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}/{pn}-{version}: LICENSE \"{from}\" → \"{to}\"")
            }
            Change::DropKeyword {
                atom,
                version,
                keyword,
            } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}/{pn}-{version}: drop keyword {keyword}")
            }
            Change::Bump { atom, from, to } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}: {pn}-{from}.ebuild copied to {pn}-{to}.ebuild")
            }
            Change::NewPackage {
                atom, dependency, ..
            } => {
                format!("new package {atom} (one ebuild + metadata.xml, RDEPEND on {dependency})")
            }
            Change::EclassComment { eclass, users, .. } => {
                format!("a comment added to eclass/{eclass}.eclass ({users} packages inherit it)")
            }
        }
    }
}

/// A simple one-line `NAME="value"` assignment of an ebuild: its value, when there is exactly one.
fn simple_assignment(text: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=\"");
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{name}=")))
        .collect();
    match found.as_slice() {
        [one] => {
            let v = one.trim().strip_prefix(&prefix)?.strip_suffix('"')?;
            (!v.contains(['"', '$', '`', '\\'])).then(|| v.to_owned())
        }
        _ => None,
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Analysis {
    fn ebuild_text(&self, root: &Path, atom: &str, version: &str) -> Option<String> {
        let pn = atom.split('/').nth(1)?;
        std::fs::read_to_string(root.join(atom).join(format!("{pn}-{version}.ebuild"))).ok()
    }

    fn cache_entry(
        &self,
        root: &Path,
        atom: &str,
        version: &str,
    ) -> Option<BTreeMap<String, String>> {
        let (cat, pn) = atom.split_once('/')?;
        let text = std::fs::read_to_string(
            root.join("metadata/md5-cache")
                .join(cat)
                .join(format!("{pn}-{version}")),
        )
        .ok()?;
        Some(cache_fields(&text))
    }

    /// The changes of `count` pull requests of one kind (run `k` uses the `k`-th: a different package
    /// each run where the tree has enough).
    pub fn changes(&self, root: &Path, kind: PrKind, count: usize) -> Result<Vec<Change>> {
        let plain = self.plain_packages();
        let out: Vec<Change> = match kind {
            PrKind::Metadata => {
                let fit: Vec<Change> = plain
                    .iter()
                    .filter_map(|(cp, v)| {
                        let text = self.ebuild_text(root, cp, v)?;
                        let from = simple_assignment(&text, "LICENSE")?;
                        let cached = self.cache_entry(root, cp, v)?;
                        if norm(cached.get("LICENSE")?) != norm(&from) {
                            return None;
                        }
                        let tokens: BTreeSet<&str> = from.split_whitespace().collect();
                        let to = ["MIT", "BSD", "GPL-2", "Apache-2.0"]
                            .into_iter()
                            .find(|l| self.licenses.contains(*l) && !tokens.contains(l))?;
                        Some(Change::License {
                            atom: (*cp).clone(),
                            version: (*v).clone(),
                            from,
                            to: to.to_owned(),
                        })
                    })
                    .collect();
                Analysis::spread(&fit, count, 0.0)
            }
            PrKind::Bump => {
                let fit: Vec<Change> = plain
                    .iter()
                    .filter_map(|(cp, v)| {
                        let versions = self.packages.get(*cp)?;
                        let (base, rev) = match v.rsplit_once("-r") {
                            Some((b, r)) if r.parse::<u32>().is_ok() => (b, r.parse::<u32>().ok()?),
                            _ => (v.as_str(), 0),
                        };
                        let to = (rev + 1..rev + 100)
                            .map(|r| format!("{base}-r{r}"))
                            .find(|c| !versions.contains(c))?;
                        self.cache_entry(root, cp, v)?;
                        Some(Change::Bump {
                            atom: (*cp).clone(),
                            from: (*v).clone(),
                            to,
                        })
                    })
                    .collect();
                // Half a step in, so a bump never touches the package a metadata PR of the same run does.
                Analysis::spread(&fit, count, 0.5)
            }
            PrKind::KeywordDrop => {
                let mut ranked: Vec<(&String, &usize)> = self.reverse_deps.iter().collect();
                ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let fit: Vec<(String, String, Vec<String>)> = ranked
                    .into_iter()
                    .filter(|(cp, _)| !self.crashing.contains(*cp))
                    .filter_map(|(cp, _)| {
                        let v = self
                            .packages
                            .get(cp)?
                            .iter()
                            .rev()
                            .find(|v| !v.contains("9999"))?;
                        let text = self.ebuild_text(root, cp, v)?;
                        let kw = simple_assignment(&text, "KEYWORDS")?;
                        let cached = self.cache_entry(root, cp, v)?;
                        if norm(cached.get("KEYWORDS")?) != norm(&kw)
                            || kw.split_whitespace().count() < 2
                        {
                            return None;
                        }
                        Some((
                            cp.clone(),
                            v.clone(),
                            kw.split_whitespace().map(str::to_owned).collect(),
                        ))
                    })
                    .take(count)
                    .collect();
                fit.iter()
                    .enumerate()
                    .map(|(k, (cp, v, kws))| Change::DropKeyword {
                        atom: cp.clone(),
                        version: v.clone(),
                        keyword: kws[k % kws.len()].clone(),
                    })
                    .collect()
            }
            PrKind::NewPackage => {
                let dependency = self
                    .reverse_deps
                    .iter()
                    .filter(|(cp, _)| !self.crashing.contains(*cp))
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(cp, _)| cp.clone())
                    .context("no package has reverse dependencies")?;
                let cats = Analysis::spread(&self.categories, count, 0.3);
                cats.into_iter()
                    .enumerate()
                    .map(|(k, cat)| Change::NewPackage {
                        atom: format!("{cat}/prci-bench-new{}", k + 1),
                        dependency: dependency.clone(),
                        number: k + 1,
                    })
                    .collect()
            }
            PrKind::Eclass => {
                let mut ranked: Vec<(&String, &usize)> = self
                    .eclass_users
                    .iter()
                    .filter(|(e, _)| root.join("eclass").join(format!("{e}.eclass")).is_file())
                    .collect();
                ranked.sort_by_key(|(e, n)| (n.abs_diff(ECLASS_USERS_TARGET), (*e).clone()));
                ranked
                    .into_iter()
                    .take(count)
                    .enumerate()
                    .map(|(k, (e, n))| Change::EclassComment {
                        eclass: e.clone(),
                        users: *n,
                        number: k + 1,
                    })
                    .collect()
            }
        };
        if out.is_empty() && count > 0 {
            bail!(
                "the tree has no package fit for a {} pull request",
                kind.name()
            );
        }
        Ok(out)
    }
}

/// MD5 of `bytes`, hex (`md5sum`).
fn md5_hex(bytes: &[u8]) -> Result<String> {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start md5sum")?;
    child
        .stdin
        .take()
        .context("md5sum stdin")?
        .write_all(bytes)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = text.split_whitespace().next().unwrap_or("");
    if !out.status.success() || sum.len() != 32 {
        bail!("md5sum failed: {text}");
    }
    Ok(sum.to_owned())
}

/// An md5-cache entry with `key` set to `value` (or removed when `None`), keys in the usual sorted order.
fn cache_with(text: &str, updates: &[(&str, Option<String>)]) -> String {
    let mut fields = cache_fields(text);
    for (k, v) in updates {
        match v {
            Some(v) => fields.insert((*k).to_owned(), v.clone()),
            None => fields.remove(*k),
        };
    }
    fields.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

fn replace_assignment(text: &str, name: &str, value: &str) -> Result<String> {
    let mut done = false;
    let out: String = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(&format!("{name}=")) {
                done = true;
                format!("{name}=\"{value}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if !done {
        bail!("no {name}= line");
    }
    Ok(out)
}

fn blob_text(git: &Repository, tree: &git2::Tree, rel: &str) -> Result<String> {
    let entry = tree
        .get_path(Path::new(rel))
        .with_context(|| format!("{rel} not in master"))?;
    let blob = git.find_blob(entry.id())?;
    Ok(String::from_utf8_lossy(blob.content()).into_owned())
}

/// The ebuild of the new package of a `NewPackage` change, and its md5-cache entry (without `_md5_`).
fn new_package_files(atom: &str, dependency: &str, number: usize) -> (String, String, String) {
    let pn = atom.split('/').nth(1).unwrap_or("");
    let description = format!("A package added by prci-bench pull request {number}");
    let homepage = format!("https://example.org/{pn}");
    let ebuild = format!(
        "# Copyright 2020 Gentoo Authors\n# Distributed under the terms of the GNU General Public License v2\n\n\
         EAPI=7\n\nDESCRIPTION=\"{description}\"\nHOMEPAGE=\"{homepage}\"\nS=\"${{WORKDIR}}\"\n\n\
         LICENSE=\"MIT\"\nSLOT=\"0\"\nKEYWORDS=\"~amd64 ~x86\"\n\nRDEPEND=\"{dependency}\"\n"
    );
    let metadata = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE pkgmetadata SYSTEM \"http://www.gentoo.org/dtd/metadata.dtd\">\n\
         <pkgmetadata>\n\t<maintainer type=\"person\">\n\t\t<email>prci-bench@example.com</email>\n\
         \t\t<name>prci-bench</name>\n\t</maintainer>\n</pkgmetadata>\n"
        .to_owned();
    let cache = format!(
        "DEFINED_PHASES=-\nDESCRIPTION={description}\nEAPI=7\nHOMEPAGE={homepage}\nKEYWORDS=~amd64 ~x86\n\
         LICENSE=MIT\nRDEPEND={dependency}\nSLOT=0\n"
    );
    (ebuild, metadata, cache)
}

/// Create (or reset) `branch` in the repository of `variant` at `repo`: one commit on `master`
/// making `change`. With the committed md5-cache, the commit also updates the cache entries the
/// change affects, as a contributor who ran `pmaint regen` would. Deterministic (fixed author and
/// time). Returns the commit's sha.
pub fn make_pr(repo: &Path, variant: Variant, change: &Change, branch: &str) -> Result<String> {
    let git = Repository::open(repo)?;
    let master = git
        .find_branch("master", BranchType::Local)?
        .get()
        .peel_to_commit()?;
    let tree = master.tree()?;
    let committed = variant == Variant::Committed;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let put = |update: &mut git2::build::TreeUpdateBuilder, rel: &str, text: &str| -> Result<()> {
        update.upsert(rel, git.blob(text.as_bytes())?, FileMode::Blob);
        Ok(())
    };
    let cache_rel = |atom: &str, version: &str| -> String {
        let (cat, pn) = atom.split_once('/').unwrap_or((atom, ""));
        format!("metadata/md5-cache/{cat}/{pn}-{version}")
    };
    match change {
        Change::License {
            atom, version, to, ..
        }
        | Change::DropKeyword {
            atom,
            version,
            keyword: to,
        } => {
            let pn = atom.split('/').nth(1).unwrap_or("");
            let rel = format!("{atom}/{pn}-{version}.ebuild");
            let text = blob_text(&git, &tree, &rel)?;
            let (name, value) = match change {
                Change::License { .. } => ("LICENSE", to.clone()),
                _ => {
                    let kw =
                        simple_assignment(&text, "KEYWORDS").context("no simple KEYWORDS line")?;
                    let kept: Vec<&str> = kw.split_whitespace().filter(|k| k != to).collect();
                    ("KEYWORDS", kept.join(" "))
                }
            };
            let new = replace_assignment(&text, name, &value).with_context(|| rel.clone())?;
            put(&mut update, &rel, &new)?;
            if committed {
                let crel = cache_rel(atom, version);
                let entry = blob_text(&git, &tree, &crel)?;
                let md5 = md5_hex(new.as_bytes())?;
                put(
                    &mut update,
                    &crel,
                    &cache_with(&entry, &[(name, Some(value)), ("_md5_", Some(md5))]),
                )?;
            }
        }
        Change::Bump { atom, from, to } => {
            let pn = atom.split('/').nth(1).unwrap_or("");
            let rel = format!("{atom}/{pn}-{from}.ebuild");
            let entry = tree
                .get_path(Path::new(&rel))
                .with_context(|| format!("{rel} not in master"))?;
            update.upsert(
                format!("{atom}/{pn}-{to}.ebuild"),
                entry.id(),
                FileMode::Blob,
            );
            if committed {
                // An md5-cache entry holds no name: the new revision's is the old one's, byte for byte.
                let centry = tree
                    .get_path(Path::new(&cache_rel(atom, from)))
                    .context("no md5-cache entry to copy")?;
                update.upsert(cache_rel(atom, to), centry.id(), FileMode::Blob);
            }
        }
        Change::NewPackage {
            atom,
            dependency,
            number,
        } => {
            let pn = atom.split('/').nth(1).unwrap_or("");
            let (ebuild, metadata, cache) = new_package_files(atom, dependency, *number);
            put(&mut update, &format!("{atom}/{pn}-1.0.ebuild"), &ebuild)?;
            put(&mut update, &format!("{atom}/metadata.xml"), &metadata)?;
            if committed {
                let md5 = md5_hex(ebuild.as_bytes())?;
                put(
                    &mut update,
                    &cache_rel(atom, "1.0"),
                    &format!("{cache}_md5_={md5}\n"),
                )?;
            }
        }
        Change::EclassComment { eclass, number, .. } => {
            let rel = format!("eclass/{eclass}.eclass");
            let mut text = blob_text(&git, &tree, &rel)?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "\n# prci-bench: a harmless comment (pull request {number})\n"
            ));
            put(&mut update, &rel, &text)?;
            if committed {
                let md5 = md5_hex(text.as_bytes())?;
                let cache = tree
                    .get_path(Path::new("metadata/md5-cache"))?
                    .to_object(&git)?
                    .peel_to_tree()?;
                for cat in cache.iter() {
                    let cat_name = cat.name().unwrap_or("").to_owned();
                    let cat_tree = cat.to_object(&git)?.peel_to_tree()?;
                    for e in cat_tree.iter() {
                        let blob = git.find_blob(e.id())?;
                        let old = String::from_utf8_lossy(blob.content()).into_owned();
                        let fields = cache_fields(&old);
                        let Some(list) = fields.get("_eclasses_") else {
                            continue;
                        };
                        let items: Vec<&str> = list.split('\t').collect();
                        if !eclass_names(list).contains(&eclass.as_str()) {
                            continue;
                        }
                        let new_list: Vec<String> = items
                            .chunks(2)
                            .flat_map(|pair| match pair {
                                [name, _] if name == eclass => vec![name.to_string(), md5.clone()],
                                other => other.iter().map(|s| s.to_string()).collect(),
                            })
                            .collect();
                        let rel =
                            format!("metadata/md5-cache/{cat_name}/{}", e.name().unwrap_or(""));
                        put(
                            &mut update,
                            &rel,
                            &cache_with(&old, &[("_eclasses_", Some(new_list.join("\t")))]),
                        )?;
                    }
                }
            }
        }
    }
    let new_tree = git.find_tree(update.create_updated(&git, &tree)?)?;
    let sig = Signature::new(AUTHOR.0, AUTHOR.1, &Time::new(SNAPSHOT_TIME + 86_400, 0))?;
    let message = change.describe();
    let oid = git.commit(None, &sig, &sig, &message, &new_tree, &[&master])?;
    git.reference(
        &format!("refs/heads/{branch}"),
        oid,
        true,
        "prci-bench: pull request",
    )?;
    Ok(oid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_pms() {
        let mut v = vec![
            "1.10", "1.9", "1.9-r1", "1.10_rc1", "1.10_p1", "1.0a", "1.0", "9999",
        ];
        v.sort_by(|a, b| vercmp(a, b));
        assert_eq!(
            v,
            ["1.0", "1.0a", "1.9", "1.9-r1", "1.10_rc1", "1.10", "1.10_p1", "9999"]
        );
    }

    #[test]
    fn dependency_is_added_in_global_scope() {
        let e = "EAPI=6\nRDEPEND=\"a/b\"\nsrc_install() {\n\t:\n}";
        let out = with_dependency(e, "cat/pkg");
        assert!(out.ends_with("RDEPEND+=\" cat/pkg\"\n"), "{out}");
        let old = "EAPI=3\nDEPEND=\"a/b\"\n";
        assert!(with_dependency(old, "cat/pkg").ends_with("RDEPEND=\"${DEPEND} cat/pkg\"\n"));
        assert!(with_dependency("DEPEND=x\n", "c/p").contains("RDEPEND=\"${DEPEND} c/p\""));
    }

    #[test]
    fn atoms_map_to_packages() {
        let known: BTreeMap<String, Vec<String>> =
            [("dev-libs/foo-bar".to_string(), vec![])].into();
        for t in [
            ">=dev-libs/foo-bar-1.2-r3:0/1[x]",
            "!!dev-libs/foo-bar",
            "~dev-libs/foo-bar-2*",
        ] {
            assert_eq!(
                atom_package(t, &known).as_deref(),
                Some("dev-libs/foo-bar"),
                "{t}"
            );
        }
        assert_eq!(atom_package("dev-libs/foo", &known), None);
        assert_eq!(package_name("foo-bar-1.2-r3"), "foo-bar");
        assert_eq!(package_name("font-adobe-100dpi-1.0.3"), "font-adobe-100dpi");
        assert_eq!(package_name("python-exec-2.4.6_p1"), "python-exec");
    }

    #[test]
    fn cache_entries_keep_their_order() {
        let e = "DEFINED_PHASES=-\nLICENSE=GPL-2\nSLOT=0\n_md5_=x\n";
        assert_eq!(
            cache_with(
                e,
                &[("LICENSE", Some("MIT".into())), ("_md5_", Some("y".into()))]
            ),
            "DEFINED_PHASES=-\nLICENSE=MIT\nSLOT=0\n_md5_=y\n"
        );
    }
}

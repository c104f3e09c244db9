//! Building the tree: unpacking the snapshot, copying its categories (each copied ebuild depending on
//! its original), `pmaint regen`, committing both variants, and `tree.json`; and reusing a built tree.

use super::{ebuilds_of, sorted_dir, Spec, Variant, AUTHOR, SNAPSHOT_TIME};
use crate::tools::{pmaint_path, PkgcoreConfig};
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Top-level directories of a repository that are not categories.
const NOT_CATEGORIES: &[&str] = &["eclass", "licenses", "metadata", "profiles", "scripts"];

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
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

fn write_meta(dir: &Path, meta: &Value) -> Result<()> {
    let path = dir.join("tree.json");
    let tmp = dir.join("tree.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(meta)? + "\n").with_context(|| format!("write {}", tmp.display()))?;
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
    if let Some(tree) = built(&dir, progress) {
        return Ok(tree);
    }
    if !spec.tarball.is_file() {
        bail!("{} not found (pass --tarball)", spec.tarball.display());
    }
    let staging = bench_dir.join(format!("{}.partial", spec.key()));
    for stale in [&staging, &dir] {
        if stale.exists() {
            progress(&format!("removing the incomplete {}", stale.display()));
            std::fs::remove_dir_all(stale).with_context(|| format!("remove {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&staging)?;
    let started = Instant::now();
    let mut meta = json!({
        "tarball": spec.tarball.display().to_string(),
        "copies": spec.copies,
    });
    let root = unpack(spec, &staging, &mut meta, progress)?;
    let ebuilds = copy_categories(&root, spec.copies, &mut meta, progress)?;
    regen(&root, jobs, ebuilds, &mut meta, progress)?;
    commit_variants(&root, &staging, spec, &mut meta, progress)?;
    meta["build_seconds"] = json!(secs(started));
    meta["complete"] = json!(true);
    std::fs::rename(&staging, &dir).with_context(|| format!("rename {} to {}", staging.display(), dir.display()))?;
    write_meta(&dir, &meta)?;
    Ok(Tree { dir, meta })
}

/// The tree already built in `dir`, when its `tree.json` says it is complete.
fn built(dir: &Path, progress: &dyn Fn(&str)) -> Option<Tree> {
    let meta = serde_json::from_str::<Value>(&std::fs::read_to_string(dir.join("tree.json")).ok()?).ok()?;
    if meta["complete"].as_bool() != Some(true) {
        return None;
    }
    progress(&format!("reusing the built tree {}", dir.display()));
    Some(Tree { dir: dir.to_path_buf(), meta })
}

/// Unpack the snapshot into `staging`; its repository becomes the committed variant's directory,
/// which is returned.
fn unpack(spec: &Spec, staging: &Path, meta: &mut Value, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    progress(&format!("unpacking {}", spec.tarball.display()));
    let t = Instant::now();
    let unpack = staging.join("unpack");
    std::fs::create_dir_all(&unpack)?;
    run_ok(Command::new("tar").arg("-xf").arg(&spec.tarball).arg("-C").arg(&unpack))?;
    let top = single_dir(&unpack)?;
    let root = staging.join(Variant::Committed.name());
    std::fs::rename(&top, &root)?;
    std::fs::remove_dir_all(&unpack)?;
    meta["unpack_seconds"] = json!(secs(t));
    Ok(root)
}

/// Copy the snapshot's categories `copies` times under new names (listed in `profiles/categories`),
/// each copied ebuild depending on its original. Returns how many ebuilds the tree then holds.
fn copy_categories(root: &Path, copies: usize, meta: &mut Value, progress: &dyn Fn(&str)) -> Result<usize> {
    let categories = package_categories(root)?;
    let original_ebuilds = count_ebuilds(root, &categories)?;
    progress(&format!(
        "copying {} categories ({original_ebuilds} ebuilds) {} times; each copied ebuild gets RDEPEND on its original",
        categories.len(),
        copies
    ));
    let t = Instant::now();
    let mut listed: BTreeSet<String> = read_lines(&root.join("profiles/categories"))?.into_iter().collect();
    for c in 1..=copies {
        for cat in &categories {
            let copy = format!("{cat}-c{c}");
            copy_category(&root.join(cat), &root.join(&copy), cat)?;
            listed.insert(copy);
        }
    }
    let list: String = listed.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(root.join("profiles/categories"), list)?;
    let ebuilds = original_ebuilds * (copies + 1);
    meta["copy_seconds"] = json!(secs(t));
    meta["original_categories"] = json!(categories);
    meta["original_ebuilds"] = json!(original_ebuilds);
    meta["ebuilds"] = json!(ebuilds);
    Ok(ebuilds)
}

/// `pmaint regen` of the whole tree, checked to leave an md5-cache entry for every ebuild it could source.
fn regen(root: &Path, jobs: usize, ebuilds: usize, meta: &mut Value, progress: &dyn Fn(&str)) -> Result<()> {
    progress(&format!("pmaint regen -t {jobs} of {ebuilds} ebuilds (the snapshot's own entries are reused; several minutes on 2 cores)"));
    let t = Instant::now();
    let regen = pmaint_regen(root, jobs)?;
    meta["regen_seconds"] = json!(secs(t));
    meta["regen_exit"] = json!(regen.0);
    meta["regen_failures"] = json!(regen.1);
    let entries = count_cache_entries(root)?;
    meta["md5_cache_entries"] = json!(entries);
    if !regen.1.is_empty() {
        progress(&format!(
            "pmaint regen could not source {} ebuilds: {}",
            regen.1.len(),
            regen.1.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if entries + regen.1.len() < ebuilds {
        bail!("md5-cache holds {entries} entries for {ebuilds} ebuilds ({} failures reported): the tree does not source", regen.1.len());
    }
    Ok(())
}

/// Copy the tree to the uncommitted variant's directory (md5-cache in `.gitignore`), and commit both.
fn commit_variants(root: &Path, staging: &Path, spec: &Spec, meta: &mut Value, progress: &dyn Fn(&str)) -> Result<()> {
    progress("committing the tree twice: md5-cache committed, and md5-cache in .gitignore");
    let t = Instant::now();
    let other = staging.join(Variant::Uncommitted.name());
    run_ok(Command::new("cp").arg("-a").arg(root).arg(&other))?;
    std::fs::write(other.join(".gitignore"), "/metadata/md5-cache/\n")?;
    for (path, variant) in [(root, Variant::Committed), (other.as_path(), Variant::Uncommitted)] {
        let t = Instant::now();
        git_commit_all(
            path,
            &format!("{} with its categories repeated {} times (md5-cache {})", spec.stem(), spec.copies, variant.name()),
        )?;
        meta[format!("commit_{}_seconds", variant.name())] = json!(secs(t));
    }
    meta["commit_seconds"] = json!(secs(t));
    Ok(())
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
        _ => bail!("the tarball should hold one repository directory (with profiles/repo_name); found {dirs:?}"),
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

/// What [`copy_tree`] may do to a file: given its name and content, a new content (or `None`: copy it).
type Rewrite<'a> = dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + 'a;

/// Copy a directory; `rewrite` may replace the content of a file at the top level of `from`.
fn copy_tree(from: &Path, to: &Path, rewrite: &Rewrite<'_>) -> Result<()> {
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
        .map(|v| v.split('#').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
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
    let scratch = tempfile::Builder::new().prefix("prci-bench-regen-").tempdir()?;
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
        bail!("pmaint regen failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let failures: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('/') && !l.starts_with("WARNING"))
        .map(|l| l.trim().to_owned())
        .collect();
    Ok((code, if code == 0 { vec![] } else { failures }))
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
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

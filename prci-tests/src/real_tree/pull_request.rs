//! The pull requests the benchmark checks on a built tree: their kinds, the changes (chosen from an
//! [`Analysis`] of the tree), and making one as a commit on `master`, md5-cache included when the
//! variant commits it.

use super::analysis::{cache_fields, eclass_names, Analysis};
use super::{Variant, AUTHOR, SNAPSHOT_TIME};
use anyhow::{bail, Context as _, Result};
use git2::build::TreeUpdateBuilder;
use git2::{BranchType, FileMode, Repository, Signature, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// How many packages an eclass of the `eclass` pull request should be inherited by (closest first).
const ECLASS_USERS_TARGET: usize = 500;

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
    pub const ALL: [PrKind; 5] = [PrKind::Metadata, PrKind::KeywordDrop, PrKind::Bump, PrKind::NewPackage, PrKind::Eclass];

    /// The order the benchmark runs them in: the quick ones first.
    pub const CHEAPEST_FIRST: [PrKind; 5] = [PrKind::Metadata, PrKind::NewPackage, PrKind::Bump, PrKind::Eclass, PrKind::KeywordDrop];

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
    License { atom: String, version: String, from: String, to: String },
    DropKeyword { atom: String, version: String, keyword: String },
    Bump { atom: String, from: String, to: String },
    NewPackage { atom: String, dependency: String, number: usize },
    EclassComment { eclass: String, users: usize, number: usize },
}

impl Change {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Change::License { atom, version, from, to } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}/{pn}-{version}: LICENSE \"{from}\" → \"{to}\"")
            }
            Change::DropKeyword { atom, version, keyword } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}/{pn}-{version}: drop keyword {keyword}")
            }
            Change::Bump { atom, from, to } => {
                let pn = atom.split('/').nth(1).unwrap_or("");
                format!("{atom}: {pn}-{from}.ebuild copied to {pn}-{to}.ebuild")
            }
            Change::NewPackage { atom, dependency, .. } => {
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
    let found: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with(&format!("{name}="))).collect();
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

    fn cache_entry(&self, root: &Path, atom: &str, version: &str) -> Option<BTreeMap<String, String>> {
        let (cat, pn) = atom.split_once('/')?;
        let text = std::fs::read_to_string(root.join("metadata/md5-cache").join(cat).join(format!("{pn}-{version}"))).ok()?;
        Some(cache_fields(&text))
    }

    /// The changes of `count` pull requests of one kind (run `k` uses the `k`-th: a different package
    /// each run where the tree has enough).
    pub fn changes(&self, root: &Path, kind: PrKind, count: usize) -> Result<Vec<Change>> {
        let out: Vec<Change> = match kind {
            PrKind::Metadata => self.license_changes(root, count),
            PrKind::Bump => self.bump_changes(root, count),
            PrKind::KeywordDrop => self.keyword_drop_changes(root, count),
            PrKind::NewPackage => self.new_package_changes(count)?,
            PrKind::Eclass => self.eclass_changes(root, count),
        };
        if out.is_empty() && count > 0 {
            bail!("the tree has no package fit for a {} pull request", kind.name());
        }
        Ok(out)
    }

    /// `Metadata`: the LICENSE of a plain package (a simple one, matching its md5-cache entry) becomes
    /// an existing licence it does not name.
    fn license_changes(&self, root: &Path, count: usize) -> Vec<Change> {
        let fit: Vec<Change> = self
            .plain_packages()
            .iter()
            .filter_map(|(cp, v)| {
                let text = self.ebuild_text(root, cp, v)?;
                let from = simple_assignment(&text, "LICENSE")?;
                let cached = self.cache_entry(root, cp, v)?;
                if norm(cached.get("LICENSE")?) != norm(&from) {
                    return None;
                }
                let tokens: BTreeSet<&str> = from.split_whitespace().collect();
                let to = ["MIT", "BSD", "GPL-2", "Apache-2.0"].into_iter().find(|l| self.licenses.contains(*l) && !tokens.contains(l))?;
                Some(Change::License { atom: (*cp).clone(), version: (*v).clone(), from, to: to.to_owned() })
            })
            .collect();
        Analysis::spread(&fit, count, 0.0)
    }

    /// `Bump`: the newest version of a plain package copied to its next free revision.
    fn bump_changes(&self, root: &Path, count: usize) -> Vec<Change> {
        let fit: Vec<Change> = self
            .plain_packages()
            .iter()
            .filter_map(|(cp, v)| {
                let versions = self.packages.get(*cp)?;
                let (base, rev) = match v.rsplit_once("-r") {
                    Some((b, r)) if r.parse::<u32>().is_ok() => (b, r.parse::<u32>().ok()?),
                    _ => (v.as_str(), 0),
                };
                let to = (rev + 1..rev + 100).map(|r| format!("{base}-r{r}")).find(|c| !versions.contains(c))?;
                self.cache_entry(root, cp, v)?;
                Some(Change::Bump { atom: (*cp).clone(), from: (*v).clone(), to })
            })
            .collect();
        // Half a step in, so a bump never touches the package a metadata PR of the same run does.
        Analysis::spread(&fit, count, 0.5)
    }

    /// `KeywordDrop`: one keyword dropped from the newest stable version of the packages with the most
    /// reverse dependencies (a simple KEYWORDS of two or more, matching its md5-cache entry).
    fn keyword_drop_changes(&self, root: &Path, count: usize) -> Vec<Change> {
        let mut ranked: Vec<(&String, &usize)> = self.reverse_deps.iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let fit: Vec<(String, String, Vec<String>)> = ranked
            .into_iter()
            .filter(|(cp, _)| !self.crashing.contains(*cp))
            .filter_map(|(cp, _)| {
                let v = self.packages.get(cp)?.iter().rev().find(|v| !v.contains("9999"))?;
                let text = self.ebuild_text(root, cp, v)?;
                let kw = simple_assignment(&text, "KEYWORDS")?;
                let cached = self.cache_entry(root, cp, v)?;
                if norm(cached.get("KEYWORDS")?) != norm(&kw) || kw.split_whitespace().count() < 2 {
                    return None;
                }
                Some((cp.clone(), v.clone(), kw.split_whitespace().map(str::to_owned).collect()))
            })
            .take(count)
            .collect();
        fit.iter()
            .enumerate()
            .map(|(k, (cp, v, kws))| Change::DropKeyword { atom: cp.clone(), version: v.clone(), keyword: kws[k % kws.len()].clone() })
            .collect()
    }

    /// `NewPackage`: a new package in categories spread over the tree, depending on the package with
    /// the most reverse dependencies.
    fn new_package_changes(&self, count: usize) -> Result<Vec<Change>> {
        let dependency = self
            .reverse_deps
            .iter()
            .filter(|(cp, _)| !self.crashing.contains(*cp))
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(cp, _)| cp.clone())
            .context("no package has reverse dependencies")?;
        let cats = Analysis::spread(&self.categories, count, 0.3);
        Ok(cats
            .into_iter()
            .enumerate()
            .map(|(k, cat)| Change::NewPackage {
                atom: format!("{cat}/prci-bench-new{}", k + 1),
                dependency: dependency.clone(),
                number: k + 1,
            })
            .collect())
    }

    /// `Eclass`: a comment added to the eclasses whose number of users is closest to [`ECLASS_USERS_TARGET`].
    fn eclass_changes(&self, root: &Path, count: usize) -> Vec<Change> {
        let mut ranked: Vec<(&String, &usize)> =
            self.eclass_users.iter().filter(|(e, _)| root.join("eclass").join(format!("{e}.eclass")).is_file()).collect();
        ranked.sort_by_key(|(e, n)| (n.abs_diff(ECLASS_USERS_TARGET), (*e).clone()));
        ranked
            .into_iter()
            .take(count)
            .enumerate()
            .map(|(k, (e, n))| Change::EclassComment { eclass: e.clone(), users: *n, number: k + 1 })
            .collect()
    }
}

/// MD5 of `bytes`, hex (`md5sum`).
fn md5_hex(bytes: &[u8]) -> Result<String> {
    let mut child = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().context("start md5sum")?;
    child.stdin.take().context("md5sum stdin")?.write_all(bytes)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = text.split_whitespace().next().unwrap_or("");
    if !out.status.success() || sum.len() != 32 {
        bail!("md5sum failed: {text}");
    }
    Ok(sum.to_owned())
}

/// An md5-cache entry with `key` set to `value` (or removed when `None`), keys in the usual sorted order.
pub(super) fn cache_with(text: &str, updates: &[(&str, Option<String>)]) -> String {
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
    let entry = tree.get_path(Path::new(rel)).with_context(|| format!("{rel} not in master"))?;
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

/// The base of a pull request: `master`'s tree in its repository, and whether the md5-cache is committed.
struct Base<'a, 'r> {
    git: &'r Repository,
    tree: &'a git2::Tree<'r>,
    committed: bool,
}

impl Base<'_, '_> {
    /// Write `text` at `rel` in the pull request's tree.
    fn put(&self, update: &mut TreeUpdateBuilder, rel: &str, text: &str) -> Result<()> {
        update.upsert(rel, self.git.blob(text.as_bytes())?, FileMode::Blob);
        Ok(())
    }
}

/// The md5-cache entry of `atom`-`version`.
fn cache_rel(atom: &str, version: &str) -> String {
    let (cat, pn) = atom.split_once('/').unwrap_or((atom, ""));
    format!("metadata/md5-cache/{cat}/{pn}-{version}")
}

/// Create (or reset) `branch` in the repository of `variant` at `repo`: one commit on `master`
/// making `change`. With the committed md5-cache, the commit also updates the cache entries the
/// change affects, as a contributor who ran `pmaint regen` would. Deterministic (fixed author and
/// time). Returns the commit's sha.
pub fn make_pr(repo: &Path, variant: Variant, change: &Change, branch: &str) -> Result<String> {
    let git = Repository::open(repo)?;
    let master = git.find_branch("master", BranchType::Local)?.get().peel_to_commit()?;
    let tree = master.tree()?;
    let base = Base { git: &git, tree: &tree, committed: variant == Variant::Committed };
    let mut update = TreeUpdateBuilder::new();
    match change {
        Change::License { atom, version, to, .. } | Change::DropKeyword { atom, version, keyword: to } => {
            edit_assignment(&base, &mut update, change, atom, version, to)?;
        }
        Change::Bump { atom, from, to } => bump(&base, &mut update, atom, from, to)?,
        Change::NewPackage { atom, dependency, number } => new_package(&base, &mut update, atom, dependency, *number)?,
        Change::EclassComment { eclass, number, .. } => eclass_comment(&base, &mut update, eclass, *number)?,
    }
    let new_tree = git.find_tree(update.create_updated(&git, &tree)?)?;
    let sig = Signature::new(AUTHOR.0, AUTHOR.1, &Time::new(SNAPSHOT_TIME + 86_400, 0))?;
    let message = change.describe();
    let oid = git.commit(None, &sig, &sig, &message, &new_tree, &[&master])?;
    git.reference(&format!("refs/heads/{branch}"), oid, true, "prci-bench: pull request")?;
    Ok(oid.to_string())
}

/// `License` (LICENSE becomes `to`) or `DropKeyword` (keyword `to` dropped from KEYWORDS): the
/// ebuild's assignment edited, and its md5-cache entry with it.
fn edit_assignment(base: &Base, update: &mut TreeUpdateBuilder, change: &Change, atom: &str, version: &str, to: &str) -> Result<()> {
    let pn = atom.split('/').nth(1).unwrap_or("");
    let rel = format!("{atom}/{pn}-{version}.ebuild");
    let text = blob_text(base.git, base.tree, &rel)?;
    let (name, value) = match change {
        Change::License { .. } => ("LICENSE", to.to_owned()),
        _ => {
            let kw = simple_assignment(&text, "KEYWORDS").context("no simple KEYWORDS line")?;
            let kept: Vec<&str> = kw.split_whitespace().filter(|k| *k != to).collect();
            ("KEYWORDS", kept.join(" "))
        }
    };
    let new = replace_assignment(&text, name, &value).with_context(|| rel.clone())?;
    base.put(update, &rel, &new)?;
    if base.committed {
        let crel = cache_rel(atom, version);
        let entry = blob_text(base.git, base.tree, &crel)?;
        let md5 = md5_hex(new.as_bytes())?;
        base.put(update, &crel, &cache_with(&entry, &[(name, Some(value)), ("_md5_", Some(md5))]))?;
    }
    Ok(())
}

/// `Bump`: `pkg-from.ebuild` copied to `pkg-to.ebuild` (and its md5-cache entry with it).
fn bump(base: &Base, update: &mut TreeUpdateBuilder, atom: &str, from: &str, to: &str) -> Result<()> {
    let pn = atom.split('/').nth(1).unwrap_or("");
    let rel = format!("{atom}/{pn}-{from}.ebuild");
    let entry = base.tree.get_path(Path::new(&rel)).with_context(|| format!("{rel} not in master"))?;
    update.upsert(format!("{atom}/{pn}-{to}.ebuild"), entry.id(), FileMode::Blob);
    if base.committed {
        // An md5-cache entry holds no name: the new revision's is the old one's, byte for byte.
        let centry = base.tree.get_path(Path::new(&cache_rel(atom, from))).context("no md5-cache entry to copy")?;
        update.upsert(cache_rel(atom, to), centry.id(), FileMode::Blob);
    }
    Ok(())
}

/// `NewPackage`: its ebuild and metadata.xml (and its md5-cache entry).
fn new_package(base: &Base, update: &mut TreeUpdateBuilder, atom: &str, dependency: &str, number: usize) -> Result<()> {
    let pn = atom.split('/').nth(1).unwrap_or("");
    let (ebuild, metadata, cache) = new_package_files(atom, dependency, number);
    base.put(update, &format!("{atom}/{pn}-1.0.ebuild"), &ebuild)?;
    base.put(update, &format!("{atom}/metadata.xml"), &metadata)?;
    if base.committed {
        let md5 = md5_hex(ebuild.as_bytes())?;
        base.put(update, &cache_rel(atom, "1.0"), &format!("{cache}_md5_={md5}\n"))?;
    }
    Ok(())
}

/// `EclassComment`: a comment appended to the eclass (and its new md5 in the md5-cache entry of every
/// ebuild inheriting it).
fn eclass_comment(base: &Base, update: &mut TreeUpdateBuilder, eclass: &str, number: usize) -> Result<()> {
    let rel = format!("eclass/{eclass}.eclass");
    let mut text = blob_text(base.git, base.tree, &rel)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("\n# prci-bench: a harmless comment (pull request {number})\n"));
    base.put(update, &rel, &text)?;
    if base.committed {
        let md5 = md5_hex(text.as_bytes())?;
        update_eclass_md5(base, update, eclass, &md5)?;
    }
    Ok(())
}

/// Set the md5 of `eclass` to `md5` in every md5-cache entry whose `_eclasses_` names it.
fn update_eclass_md5(base: &Base, update: &mut TreeUpdateBuilder, eclass: &str, md5: &str) -> Result<()> {
    let git = base.git;
    let cache = base.tree.get_path(Path::new("metadata/md5-cache"))?.to_object(git)?.peel_to_tree()?;
    for cat in cache.iter() {
        let cat_name = cat.name().unwrap_or("").to_owned();
        let cat_tree = cat.to_object(git)?.peel_to_tree()?;
        for e in cat_tree.iter() {
            let blob = git.find_blob(e.id())?;
            let old = String::from_utf8_lossy(blob.content()).into_owned();
            let fields = cache_fields(&old);
            let Some(list) = fields.get("_eclasses_") else {
                continue;
            };
            let items: Vec<&str> = list.split('\t').collect();
            if !eclass_names(list).contains(&eclass) {
                continue;
            }
            let new_list: Vec<String> = items
                .chunks(2)
                .flat_map(|pair| match pair {
                    [name, _] if *name == eclass => vec![name.to_string(), md5.to_owned()],
                    other => other.iter().map(|s| s.to_string()).collect(),
                })
                .collect();
            let rel = format!("metadata/md5-cache/{cat_name}/{}", e.name().unwrap_or(""));
            base.put(update, &rel, &cache_with(&old, &[("_eclasses_", Some(new_list.join("\t")))]))?;
        }
    }
    Ok(())
}

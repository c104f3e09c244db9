//! `Repo`: a small Gentoo-style ebuild repository in a git work tree, with
//! helpers to edit files, add packages and eclasses, commit and move branches
//! (all git work through git2), plus the deterministic bulk generator used by
//! benchmarks.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use git2::{BranchType, IndexAddOption, Oid, Repository, RepositoryInitOptions, Signature, Time};
use tempfile::TempDir;

use crate::ebuild::{eclass_function, metadata_xml, render_eclass, Ebuild};

/// Commit time of the first fixture commit (2024-01-01T00:00:00Z); every
/// further commit of the same `Repo` is [`COMMIT_STEP`] seconds later.
pub const BASE_COMMIT_TIME: i64 = 1_704_067_200;
/// Seconds between two consecutive fixture commits.
pub const COMMIT_STEP: i64 = 60;
/// Author and committer name of fixture commits.
pub const AUTHOR_NAME: &str = "Test";
/// Author and committer e-mail of fixture commits.
pub const AUTHOR_EMAIL: &str = "test@example.com";

/// Relative path of the profile every standalone fixture declares in profiles.desc.
pub const PROFILE: &str = "default/linux/amd64";
/// The eclass every standalone fixture ships.
pub const TESTLIB: &str = "testlib";
/// The package `Repo::standalone` adds so that the licences and the eclass of
/// the skeleton are used (otherwise pkgcheck reports UnusedLicenses/UnusedEclasses).
pub const SEED_CATEGORY: &str = "sys-test";
pub const SEED_PACKAGE: &str = "seed";
pub const SEED_VERSION: &str = "1.0";

/// A phase function calling `testlib_hello`, for ebuilds inheriting testlib.
pub const TESTLIB_BODY: &str = "src_compile() {\n\ttestlib_hello\n}\n";

/// A Gentoo-style ebuild repository in a git work tree.
///
/// Owns its temporary directory (removed on drop) unless created with one of
/// the `*_at` constructors. `Repo` is `Send + Sync`: the git repository is
/// opened afresh for every operation.
#[derive(Debug)]
pub struct Repo {
    path: PathBuf,
    name: String,
    clock: AtomicI64,
    _dir: Option<TempDir>,
}

impl Repo {
    // ----------------------------------------------------------------- constructors

    /// A valid standalone repository (profiles, licences MIT and GPL-2,
    /// `eclass/testlib.eclass`, and the seed package `sys-test/seed-1.0` that
    /// uses them), with one initial commit on branch `master`.
    pub fn standalone(name: &str) -> Repo {
        let repo = Repo::init_temp(name);
        repo.write_standalone_skeleton();
        repo.write_seed_package();
        repo.commit("Initial commit");
        repo
    }

    /// Same as [`Repo::standalone`] at `path` (an empty or absent directory),
    /// which is kept after drop.
    pub fn standalone_at(path: &Path, name: &str) -> Repo {
        let repo = Repo::init_at(path, name);
        repo.write_standalone_skeleton();
        repo.write_seed_package();
        repo.commit("Initial commit");
        repo
    }

    /// An overlay of the repository named `master`: own profiles/repo_name,
    /// empty profiles/categories, layout.conf `masters = <master>`; no
    /// profiles.desc, arch.list, licences or eclasses (they come from the
    /// master). One initial commit on `master`.
    pub fn overlay(name: &str, master: &str) -> Repo {
        let repo = Repo::init_temp(name);
        repo.write_overlay_skeleton(master);
        repo.commit("Initial commit");
        repo
    }

    /// Same as [`Repo::overlay`] at `path`, kept after drop.
    pub fn overlay_at(path: &Path, name: &str, master: &str) -> Repo {
        let repo = Repo::init_at(path, name);
        repo.write_overlay_skeleton(master);
        repo.commit("Initial commit");
        repo
    }

    /// A standalone repository with `packages` deterministic packages (see
    /// [`Repo::generate_at`]); one commit. Without the seed package, unless
    /// `packages < 2` (then the seed is added so the repository stays clean).
    pub fn generate(name: &str, packages: usize) -> Repo {
        let repo = Repo::init_temp(name);
        repo.fill_generated(packages);
        repo
    }

    /// Generated repository at `path` (empty or absent), kept after drop.
    ///
    /// Layout: `max(1, packages / 100)` categories `cat-00`, `cat-01`, …;
    /// package `i` is `cat-{i % ncat}/pkg{i:05}`, with metadata.xml and
    /// `pkg{i:05}-1.0.ebuild` (plus `-1.1`, in SLOT 1, when `i % 10 == 0`); LICENSE is GPL-2
    /// for odd `i`, MIT otherwise; `i % 3 == 0` inherits testlib and calls
    /// `testlib_hello` in src_compile; `i % 5 == 0 && i >= 7` has
    /// `RDEPEND="<package i-7>"`; `i % 7 == 3` has `IUSE="debug"` (described
    /// in its metadata.xml). Keywords are `~amd64` everywhere.
    pub fn generate_at(path: &Path, name: &str, packages: usize) -> Repo {
        let repo = Repo::init_at(path, name);
        repo.fill_generated(packages);
        repo
    }

    fn init_temp(name: &str) -> Repo {
        let dir = tempfile::Builder::new().prefix(&format!("prci-fixture-{name}-")).tempdir().expect("create fixture tempdir");
        let mut repo = Repo::init_at(dir.path(), name);
        repo._dir = Some(dir);
        repo
    }

    fn init_at(path: &Path, name: &str) -> Repo {
        if path.exists() {
            let mut entries = std::fs::read_dir(path).unwrap_or_else(|e| panic!("read fixture dir {}: {e}", path.display()));
            assert!(entries.next().is_none(), "fixture directory {} is not empty", path.display());
        } else {
            std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create fixture dir {}: {e}", path.display()));
        }
        let path = std::fs::canonicalize(path).expect("canonicalize fixture path");
        let mut opts = RepositoryInitOptions::new();
        opts.initial_head("master");
        let git = Repository::init_opts(&path, &opts).expect("git init fixture repo");
        let mut config = git.config().expect("fixture repo config");
        config.set_bool("core.autocrlf", false).expect("set core.autocrlf");
        config.set_bool("core.filemode", true).expect("set core.filemode");
        Repo { path, name: name.to_string(), clock: AtomicI64::new(BASE_COMMIT_TIME), _dir: None }
    }

    /// Files every fixture repository has: repo_name, layout.conf, .gitignore.
    fn common_files(&self, masters: &str) -> Vec<(String, String)> {
        let mut layout = format!("repo-name = {}\n", self.name);
        if masters.is_empty() {
            layout.push_str("masters =\n");
        } else {
            layout.push_str(&format!("masters = {masters}\n"));
        }
        layout.push_str("thin-manifests = true\nsign-manifests = false\ncache-formats = md5-dict\n");
        vec![
            ("profiles/repo_name".into(), format!("{}\n", self.name)),
            ("metadata/layout.conf".into(), layout),
            (".gitignore".into(), "/metadata/md5-cache\n".into()),
        ]
    }

    /// The standalone skeleton (without packages and profiles/categories).
    fn standalone_files(&self) -> Vec<(String, String)> {
        let mut files = self.common_files("");
        let mut add = |rel: &str, content: &str| files.push((rel.into(), content.into()));
        add("profiles/arch.list", "amd64\n");
        add("profiles/profiles.desc", &format!("amd64 {PROFILE} stable\n"));
        add("profiles/eapi", "8\n");
        add("profiles/use.desc", "# Global USE flags (none)\n");
        add(&format!("profiles/{PROFILE}/eapi"), "8\n");
        add(&format!("profiles/{PROFILE}/make.defaults"), "ARCH=\"amd64\"\nACCEPT_KEYWORDS=\"amd64\"\n");
        add("licenses/MIT", "MIT License (test fixture copy)\n");
        add("licenses/GPL-2", "GNU General Public License version 2 (test fixture copy)\n");
        add(&format!("eclass/{TESTLIB}.eclass"), &render_eclass(TESTLIB, &eclass_function("testlib_hello", "echo \"hello\"\n")));
        files
    }

    fn write_files(&self, files: &[(String, String)]) {
        for (rel, content) in files {
            self.write(rel, content);
        }
    }

    fn write_standalone_skeleton(&self) {
        self.write_files(&self.standalone_files());
        self.write("profiles/categories", "");
    }

    fn seed_ebuild() -> Ebuild {
        Ebuild {
            license: "MIT GPL-2".into(),
            inherit: vec![TESTLIB.into()],
            body: TESTLIB_BODY.into(),
            ..Ebuild::for_package(SEED_CATEGORY, SEED_PACKAGE)
        }
    }

    fn write_seed_package(&self) {
        self.add_package(SEED_CATEGORY, SEED_PACKAGE, SEED_VERSION, &Repo::seed_ebuild());
    }

    fn write_overlay_skeleton(&self, master: &str) {
        self.write_files(&self.common_files(master));
        self.write("profiles/categories", "");
    }

    fn fill_generated(&self, packages: usize) {
        let mut files = self.standalone_files();
        let ncat = (packages / 100).max(1);
        let cats: Vec<String> = (0..ncat).map(generated_category).collect();
        let atom = |i: usize| format!("{}/{}", cats[i % ncat], generated_package(i));
        for i in 0..packages {
            let cat = &cats[i % ncat];
            let pkg = generated_package(i);
            let mut ebuild = Ebuild::for_package(cat, &pkg);
            if i % 2 == 1 {
                ebuild.license = "GPL-2".into();
            }
            if i % 3 == 0 {
                ebuild.inherit.push(TESTLIB.into());
                ebuild.body = TESTLIB_BODY.into();
            }
            if i % 5 == 0 && i >= 7 {
                ebuild.rdepend = atom(i - 7);
            }
            if i % 7 == 3 {
                ebuild.iuse = "debug".into();
            }
            files.push((format!("{cat}/{pkg}/metadata.xml"), metadata_xml(&ebuild.iuse)));
            files.push((format!("{cat}/{pkg}/{pkg}-1.0.ebuild"), ebuild.render()));
            if i % 10 == 0 {
                // In its own slot, else pkgcheck reports 1.0 as a RedundantVersion.
                // (No generated package depends on a two-version one: i % 5 == 0
                // depends on i - 7, which is never a multiple of 10.)
                ebuild.slot = "1".into();
                files.push((format!("{cat}/{pkg}/{pkg}-1.1.ebuild"), ebuild.render()));
            }
        }
        let mut categories: Vec<String> = if packages == 0 { Vec::new() } else { cats.clone() };
        if packages < 2 {
            // Too few packages to use both licences: add the seed package.
            let seed = Repo::seed_ebuild();
            let dir = format!("{SEED_CATEGORY}/{SEED_PACKAGE}");
            files.push((format!("{dir}/metadata.xml"), metadata_xml(&seed.iuse)));
            files.push((format!("{dir}/{SEED_PACKAGE}-{SEED_VERSION}.ebuild"), seed.render()));
            categories.push(SEED_CATEGORY.into());
        }
        categories.sort();
        let categories: String = categories.iter().map(|c| format!("{c}\n")).collect();
        files.push(("profiles/categories".into(), categories));
        self.commit_fresh(files, &format!("Generate {packages} packages"));
    }

    /// Write `files` into the (empty, never committed) work tree and commit
    /// them as the root commit, building the index entries directly from the
    /// known contents (plus the stat data of the written files) and writing
    /// the objects as one pack. This avoids the directory walk, ignore and
    /// attribute lookups and loose objects of `add_all`, which dominate on
    /// file systems with slow metadata operations.
    fn commit_fresh(&self, mut files: Vec<(String, String)>, message: &str) -> String {
        use std::os::unix::fs::MetadataExt as _;
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let git = self.git();
        let odb = git.odb().expect("open odb");
        let mempack = odb.add_new_mempack_backend(1000).expect("add mempack backend");
        let mut index = git.index().expect("open index");
        assert!(index.is_empty(), "commit_fresh needs an empty index");
        let mut dirs: Vec<&Path> =
            files.iter().filter_map(|(rel, _)| Path::new(rel).parent()).filter(|d| !d.as_os_str().is_empty()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            let dir = self.path.join(dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create dir {}: {e}", dir.display()));
        }
        // File creation is syscall-bound: spread it over a few threads.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let chunk = files.len().div_ceil(threads).max(1);
        let metas: Vec<std::fs::Metadata> = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(rel, content)| {
                                let path = self.path.join(rel);
                                let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
                                f.write_all(content.as_bytes()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
                                f.metadata().expect("stat written file")
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("file writer thread")).collect()
        });
        for ((rel, content), meta) in files.iter().zip(metas) {
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(meta.ctime() as i32, meta.ctime_nsec() as u32),
                mtime: git2::IndexTime::new(meta.mtime() as i32, meta.mtime_nsec() as u32),
                dev: meta.dev() as u32,
                ino: meta.ino() as u32,
                mode: 0o100644,
                uid: meta.uid(),
                gid: meta.gid(),
                file_size: content.len() as u32,
                id: Oid::zero(),
                flags: rel.len().min(0xfff) as u16,
                flags_extended: 0,
                path: rel.as_bytes().to_vec(),
            };
            index.add_frombuffer(&entry, content.as_bytes()).unwrap_or_else(|e| panic!("index {rel}: {e}"));
        }
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("write tree");
        let tree = git.find_tree(tree_id).expect("find tree");
        let sig = self.next_signature();
        let id = git.commit(Some("HEAD"), &sig, &sig, message, &tree, &[]).expect("commit");
        let mut buf = git2::Buf::new();
        mempack.dump(&git, &mut buf).expect("dump mempack");
        let mut writer = odb.packwriter().expect("pack writer");
        writer.write_all(&buf).expect("write pack");
        writer.commit().expect("commit pack");
        mempack.reset().expect("reset mempack");
        id.to_string()
    }

    // ----------------------------------------------------------------- files

    /// Absolute (canonical) path of the work tree.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Repository name (profiles/repo_name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Absolute path of `rel` inside the work tree.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Write `content` to `rel`, creating parent directories.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create dir {}: {e}", parent.display()));
        }
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// Remove the file or directory (recursively) `rel`; panics if absent.
    pub fn remove(&self, rel: &str) {
        let p = self.path.join(rel);
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
        if meta.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
            .unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }

    /// Content of `rel`.
    pub fn read(&self, rel: &str) -> String {
        let p = self.path.join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Whether `rel` exists in the work tree.
    pub fn exists(&self, rel: &str) -> bool {
        self.path.join(rel).exists()
    }

    /// Write `<cat>/<pkg>/<pkg>-<version>.ebuild` (DESCRIPTION / HOMEPAGE
    /// filled with the defaults when empty), `<cat>/<pkg>/metadata.xml` if
    /// absent (maintainer plus local descriptions of the ebuild's IUSE flags),
    /// and add `cat` to profiles/categories (kept sorted) if missing.
    pub fn add_package(&self, cat: &str, pkg: &str, version: &str, ebuild: &Ebuild) {
        let mut ebuild = ebuild.clone();
        ebuild.fill_defaults(cat, pkg);
        self.write(&format!("{cat}/{pkg}/{pkg}-{version}.ebuild"), &ebuild.render());
        let meta = format!("{cat}/{pkg}/metadata.xml");
        if !self.exists(&meta) {
            self.write(&meta, &metadata_xml(&ebuild.iuse));
        }
        self.add_category(cat);
    }

    /// Add `cat` to profiles/categories (sorted, no duplicates).
    pub fn add_category(&self, cat: &str) {
        let current = if self.exists("profiles/categories") { self.read("profiles/categories") } else { String::new() };
        let mut cats: Vec<&str> = current.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if cats.contains(&cat) {
            return;
        }
        cats.push(cat);
        cats.sort_unstable();
        cats.dedup();
        let mut text = cats.join("\n");
        text.push('\n');
        self.write("profiles/categories", &text);
    }

    /// Write `eclass/<name>.eclass`: copyright, doc header (@ECLASS,
    /// @MAINTAINER, @SUPPORTED_EAPIS: 7 8, @BLURB, @DESCRIPTION), an EAPI
    /// guard, then `body`. Document the functions in `body` with
    /// [`crate::eclass_function`] to avoid EclassDoc* findings.
    pub fn add_eclass(&self, name: &str, body: &str) {
        self.write(&format!("eclass/{name}.eclass"), &render_eclass(name, body));
    }

    // ----------------------------------------------------------------- git

    /// The git repository of the work tree (opened afresh).
    pub fn git(&self) -> Repository {
        Repository::open(&self.path).unwrap_or_else(|e| panic!("open git repo {}: {e}", self.path.display()))
    }

    fn next_signature(&self) -> Signature<'static> {
        let t = self.clock.fetch_add(COMMIT_STEP, Ordering::SeqCst);
        Signature::new(AUTHOR_NAME, AUTHOR_EMAIL, &Time::new(t, 0)).expect("fixture signature")
    }

    /// Stage everything (additions, modifications, deletions; .gitignore
    /// respected) and commit on the current branch with the fixed author and
    /// the next fixed timestamp. Returns the full hex sha.
    pub fn commit(&self, message: &str) -> String {
        self.commit_impl(message, false)
    }

    /// Same as [`Repo::commit`], but the new objects are written as one pack
    /// file instead of loose objects: much faster for huge commits on slow
    /// file systems (used by the generator).
    pub fn commit_packed(&self, message: &str) -> String {
        self.commit_impl(message, true)
    }

    fn commit_impl(&self, message: &str, packed: bool) -> String {
        let git = self.git();
        let odb = git.odb().expect("open odb");
        // Highest priority: new objects go to memory, then into one pack.
        let mempack = if packed { Some(odb.add_new_mempack_backend(1000).expect("add mempack backend")) } else { None };
        let mut index = git.index().expect("open index");
        index.add_all(["*"], IndexAddOption::DEFAULT, None).expect("git add --all");
        index.update_all(["*"], None).expect("git add -u");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("write tree");
        let tree = git.find_tree(tree_id).expect("find tree");
        let parent = match git.head() {
            Ok(head) => Some(head.peel_to_commit().expect("HEAD is a commit")),
            Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
            Err(e) => panic!("resolve HEAD: {e}"),
        };
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let sig = self.next_signature();
        let id = git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).expect("commit");
        if let Some(mempack) = mempack {
            let mut buf = git2::Buf::new();
            mempack.dump(&git, &mut buf).expect("dump mempack");
            let mut writer = odb.packwriter().expect("pack writer");
            writer.write_all(&buf).expect("write pack");
            writer.commit().expect("commit pack");
            mempack.reset().expect("reset mempack");
        }
        id.to_string()
    }

    /// Create branch `name` at HEAD (HEAD stays where it is).
    pub fn branch(&self, name: &str) {
        let git = self.git();
        let head = git.head().expect("HEAD").peel_to_commit().expect("HEAD commit");
        git.branch(name, &head, false).unwrap_or_else(|e| panic!("create branch {name}: {e}"));
    }

    /// Switch HEAD to branch `name`, forcing the work tree and index to its
    /// tree (files tracked only on the old branch are removed; untracked and
    /// ignored files are left alone).
    pub fn switch(&self, name: &str) {
        let git = self.git();
        let branch = git.find_branch(name, BranchType::Local).unwrap_or_else(|e| panic!("find branch {name}: {e}"));
        let refname = branch.get().name().expect("utf-8 branch ref").to_string();
        let commit = branch.get().peel_to_commit().expect("branch commit");
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        git.checkout_tree(commit.as_object(), Some(&mut co)).unwrap_or_else(|e| panic!("checkout {name}: {e}"));
        git.set_head(&refname).expect("set HEAD");
    }

    /// Full sha of HEAD.
    pub fn head(&self) -> String {
        self.git().head().expect("HEAD").peel_to_commit().expect("HEAD commit").id().to_string()
    }

    /// Name of the current branch (`master`, …).
    pub fn current_branch(&self) -> String {
        let git = self.git();
        let head = git.find_reference("HEAD").expect("HEAD ref");
        let target = head.symbolic_target().expect("HEAD is symbolic").to_string();
        target.trim_start_matches("refs/heads/").to_string()
    }

    /// Sha a reference (`master`, `refs/pull/3/head`, a sha, …) resolves to.
    pub fn rev_parse(&self, spec: &str) -> String {
        self.git()
            .revparse_single(spec)
            .unwrap_or_else(|e| panic!("rev-parse {spec}: {e}"))
            .peel_to_commit()
            .expect("commit")
            .id()
            .to_string()
    }

    /// Create or overwrite the reference `refname` (e.g. `refs/pull/3/head`)
    /// to point at `sha`.
    pub fn set_ref(&self, refname: &str, sha: &str) {
        let oid = Oid::from_str(sha).unwrap_or_else(|e| panic!("bad sha {sha}: {e}"));
        self.git().reference(refname, oid, true, "fixture set_ref").unwrap_or_else(|e| panic!("set {refname} -> {sha}: {e}"));
    }

    /// Paths (relative, `/`-separated) of the files tracked at HEAD.
    pub fn tracked_files(&self) -> Vec<String> {
        let git = self.git();
        let tree = git.head().expect("HEAD").peel_to_tree().expect("HEAD tree");
        let mut out = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                out.push(format!("{dir}{}", entry.name().unwrap_or_default()));
            }
            git2::TreeWalkResult::Ok
        })
        .expect("walk tree");
        out.sort();
        out
    }
}

/// Name of generated category `i`: `cat-00`, `cat-01`, …
pub fn generated_category(i: usize) -> String {
    format!("cat-{i:02}")
}

/// Name of generated package `i`: `pkg00000`, `pkg00001` (`pkg-00000` would be an invalid name: its suffix parses as a version), …
pub fn generated_package(i: usize) -> String {
    format!("pkg{i:05}")
}

/// `cat/pkg` of package `i` in a repository generated with `packages` packages.
pub fn generated_atom(packages: usize, i: usize) -> String {
    let ncat = (packages / 100).max(1);
    format!("{}/{}", generated_category(i % ncat), generated_package(i))
}

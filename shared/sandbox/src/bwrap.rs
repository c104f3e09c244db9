//! The bubblewrap command line of one sandboxed run: which namespaces, who the tool is inside, and the only parts of the host filesystem it sees.

use crate::limits::Limits;
use crate::ToolCommand;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The uid and gid a tool has inside its user namespace: an ordinary user with no capabilities.
pub const SANDBOX_UID: u32 = 1000;

/// Top-level entries of the system view besides `/usr`: symlinks into it on a merged-/usr system, directories otherwise.
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Files of `/etc` a tool needs (the dynamic linker's cache, the `awk`/`editor` alternatives); nothing else of `/etc` is there.
const ETC_FILES: &[&str] = &["/etc/ld.so.cache", "/etc/alternatives"];

/// Namespaces, identity and privileges: the part of every command line that does not depend on the run.
fn isolation_args() -> Vec<OsString> {
    let uid = SANDBOX_UID.to_string();
    [
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--uid",
        &uid,
        "--gid",
        &uid,
        "--hostname",
        "prci-sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// The system view: `/usr` (and its top-level links), a few files of `/etc`, a private `/proc`, a minimal `/dev`,
/// private size-limited `/tmp` and `/var/tmp`.
fn system_args(limits: &Limits) -> Vec<OsString> {
    let mut a = Args::default();
    a.ro_bind(Path::new("/usr"), Path::new("/usr"));
    for name in SYSTEM_DIRS {
        let path = Path::new("/").join(name);
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&path) {
                    a.push(["--symlink".into(), target.into_os_string(), path.into_os_string()]);
                }
            }
            Ok(m) if m.is_dir() => a.ro_bind(&path, &path),
            _ => {}
        }
    }
    for f in ETC_FILES {
        a.push(["--ro-bind-try", f, f].map(OsString::from));
    }
    a.push(["--proc", "/proc", "--dev", "/dev"].map(OsString::from));
    for tmp in ["/tmp", "/var/tmp"] {
        a.push(["--size".into(), limits.tmp_bytes.to_string().into(), "--tmpfs".into(), tmp.into()]);
    }
    a.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<const N: usize>(&mut self, items: [OsString; N]) {
        self.0.extend(items);
    }
    fn ro_bind(&mut self, src: &Path, dst: &Path) {
        self.push(["--ro-bind".into(), src.into(), dst.into()]);
    }
    fn bind(&mut self, src: &Path, dst: &Path) {
        self.push(["--bind".into(), src.into(), dst.into()]);
    }
}

/// Where the tools' Python environment lives outside `/usr`: the environment itself (the parent of the tools'
/// directory) and the interpreter installation it was made from (`home` in its `pyvenv.cfg`, and where
/// `python3` resolves to).
pub fn tool_roots(bin_dir: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(env) = bin_dir.parent() {
        roots.push(env.to_path_buf());
        if let Ok(cfg) = std::fs::read_to_string(env.join("pyvenv.cfg")) {
            let home = cfg.lines().find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == "home").map(|(_, v)| v.trim().to_owned()));
            if let Some(prefix) = home.as_deref().map(Path::new).and_then(Path::parent) {
                roots.push(prefix.to_path_buf());
            }
        }
    }
    if let Some(prefix) = std::fs::canonicalize(bin_dir.join("python3")).ok().as_deref().and_then(Path::parent).and_then(Path::parent) {
        roots.push(prefix.to_path_buf());
    }
    roots.retain(|r| !r.starts_with("/usr") && r != Path::new("/"));
    roots.sort();
    roots.dedup();
    // A root inside another is seen through it.
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
    roots
}

/// The arguments of `bwrap` for `cmd` up to (not including) the program: its namespaces, the system view, the tools
/// read-only, the masters read-only, the tree read-only at its mount point (its md5-cache writable when the run
/// regenerates it), and the run's own writable directories.
pub fn args(cmd: &ToolCommand, limits: &Limits) -> Vec<OsString> {
    let mut a = Args(isolation_args());
    a.0.extend(system_args(limits));
    let roots = tool_roots(&cmd.bin_dir);
    for root in &roots {
        a.ro_bind(root, root);
    }
    // A configured wrapper outside the tools' environment (`tools.pkgcheck = "/opt/ci/pkgcheck-wrapper"`): its directory.
    if let Some(dir) = cmd.program.parent().filter(|d| d.is_absolute() && !d.starts_with("/usr") && !roots.iter().any(|r| d.starts_with(r)))
    {
        a.ro_bind(dir, dir);
    }
    for m in &cmd.read_only {
        a.ro_bind(m, m);
    }
    if let Some((src, dst)) = &cmd.bind {
        a.ro_bind(src, dst);
        if cmd.write_md5_cache {
            let (src, dst) = (crate::md5_cache_of(src), crate::md5_cache_of(dst));
            match &cmd.md5_cache_categories {
                None => a.bind(&src, &dst),
                Some(cats) => {
                    for cat in cats {
                        a.bind(&src.join(cat), &dst.join(cat));
                    }
                }
            }
        }
    }
    for w in cmd.writable.iter().chain(std::iter::once(&cmd.scratch)) {
        a.bind(w, w);
    }
    a.push(["--chdir".into(), cmd.scratch.clone().into_os_string()]);
    a.0
}

/// The arguments that prove bubblewrap works here: the same namespaces and system view, running `true`.
pub fn probe_args(limits: &Limits) -> Vec<OsString> {
    let mut a = isolation_args();
    a.extend(system_args(limits));
    a.extend(["--", "true"].map(OsString::from));
    a
}

//! One cgroup per sandboxed run (or warm server): its memory and process limits for the run as a whole, the events that tell a run reached them, and a kill of everything in it.
//!
//! cgroup v2 where this process's own cgroup can have children with the `memory` and `pids` controllers (the
//! host root, or a delegated subtree); cgroup v1's `memory` and `pids` hierarchies otherwise (root on a v1 or
//! hybrid host). Where neither can be had, runs are bounded by rlimits alone (README: what that leaves open).

use crate::limits::{LimitHit, Limits};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where run cgroups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: the parent of run cgroups, with `memory` and `pids` enabled for its children.
    V2(PathBuf),
    /// cgroup v1: the parents in the `memory` and `pids` hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
}

/// Find (once) where this process may make run cgroups; None when it may not.
pub fn hierarchy() -> Option<&'static Hierarchy> {
    static FOUND: OnceLock<Option<Hierarchy>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = probe();
            match &found {
                Some(h) => tracing::debug!(hierarchy = ?h, "tool runs get a cgroup each"),
                None => tracing::info!("no cgroup can be made for tool runs here: memory and processes are bounded by rlimits only"),
            }
            found
        })
        .as_ref()
}

fn probe() -> Option<Hierarchy> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = Path::new("/sys/fs/cgroup");
    let parent = "prci-sandbox";
    if root.join("cgroup.controllers").is_file() {
        let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/');
        let dir = root.join(path).join(parent);
        return v2_parent(&dir).then_some(Hierarchy::V2(dir));
    }
    let v1 = |controller: &str| -> Option<PathBuf> {
        let path = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names.split(',').any(|n| n == controller).then(|| path.trim_start_matches('/').to_owned())
        })?;
        let dir = root.join(controller).join(path).join(parent);
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir)
    };
    let (memory, pids) = (v1("memory")?, v1("pids")?);
    let h = Hierarchy::V1 { memory, pids };
    RunCgroup::create(&h, &Limits::default()).ok()?; // removed again when dropped
    Some(h)
}

/// Make `dir` a v2 parent whose children have `memory` and `pids`.
fn v2_parent(dir: &Path) -> bool {
    let Some(up) = dir.parent() else { return false };
    let enable = |d: &Path| std::fs::write(d.join("cgroup.subtree_control"), "+memory +pids").is_ok();
    // Our own cgroup must pass the controllers down (refused when it holds processes and is not the root).
    if !enable(up) || std::fs::create_dir_all(dir).is_err() || !enable(dir) {
        let _ = std::fs::remove_dir(dir);
        return false;
    }
    true
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// The cgroup of one run.
#[derive(Debug)]
pub struct RunCgroup {
    /// One directory (v2) or two (v1: memory, pids).
    dirs: Vec<PathBuf>,
    v2: bool,
    limits: Limits,
    /// The `cgroup.procs` files as C strings, for the child to join before it runs anything.
    procs: Vec<CString>,
}

impl RunCgroup {
    /// Make a cgroup with the memory and process limits of `limits`.
    pub fn create(h: &Hierarchy, limits: &Limits) -> std::io::Result<RunCgroup> {
        let name = format!("run-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed));
        let (dirs, v2) = match h {
            Hierarchy::V2(p) => (vec![p.join(&name)], true),
            Hierarchy::V1 { memory, pids } => (vec![memory.join(&name), pids.join(&name)], false),
        };
        for d in &dirs {
            std::fs::create_dir(d)?;
        }
        let cg = RunCgroup {
            procs: dirs.iter().filter_map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok()).collect(),
            dirs,
            v2,
            limits: *limits,
        };
        let set = |file: &str, value: String| -> std::io::Result<()> {
            let dir = cg.dirs.iter().find(|d| d.join(file).exists()).ok_or_else(|| std::io::Error::other(format!("no {file}")))?;
            std::fs::write(dir.join(file), value)
        };
        let written = if v2 {
            set("memory.max", limits.memory_bytes.to_string())
                .and_then(|()| set("memory.swap.max", "0".into()).or(Ok(())))
                .and_then(|()| set("pids.max", limits.processes.to_string()))
        } else {
            set("memory.limit_in_bytes", limits.memory_bytes.to_string())
                .and_then(|()| set("memory.memsw.limit_in_bytes", limits.memory_bytes.to_string()).or(Ok(())))
                .and_then(|()| set("pids.max", limits.processes.to_string()))
        };
        if let Err(e) = written {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// The `cgroup.procs` files a child writes to join this cgroup ([`join_from_child`]).
    pub fn procs_files(&self) -> Vec<CString> {
        self.procs.clone()
    }

    /// The limit the run reached so far, if any: the kernel killed a process for memory, or refused a fork.
    pub fn hit(&self) -> Option<LimitHit> {
        let count = |file: &str, key: &str| -> u64 {
            self.dirs
                .iter()
                .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
                .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0)
        };
        let oom = if self.v2 { count("memory.events", "oom_kill ") } else { count("memory.oom_control", "oom_kill ") };
        if oom > 0 {
            return Some(LimitHit::Memory(self.limits.memory_bytes));
        }
        if count("pids.events", "max ") > 0 {
            return Some(LimitHit::Processes(self.limits.processes));
        }
        None
    }

    /// SIGKILL everything in the cgroup, until it is empty (a fork racing the kill is caught the next round).
    pub fn kill_all(&self) {
        if self.v2 && std::fs::write(self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            self.wait_empty();
            return;
        }
        for _ in 0..200 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) sends a signal; no memory is touched.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn pids(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| t.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
            .collect()
    }

    fn wait_empty(&self) {
        for _ in 0..2000 {
            if self.pids().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Kill what is left and remove the cgroup.
    pub fn remove(&self) {
        self.kill_all();
        for d in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// In the child before exec: move the calling process into the cgroup of each `cgroup.procs` file (writing "0" names
/// the writer). Only async-signal-safe calls.
pub(crate) fn join_from_child(procs: &[CString]) -> std::io::Result<()> {
    for path in procs {
        // SAFETY: open/write/close on a path prepared before fork; no allocation.
        #[allow(unsafe_code)]
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

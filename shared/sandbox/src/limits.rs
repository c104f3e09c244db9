//! What one tool run may use (memory, processes, CPU time, file sizes, output, md5-cache bytes) and how a run that reached a limit is told.

use std::time::Duration;

/// The limits of every tool run. Defaults are sized for a full regen and a full-tree scan of Gentoo (about 31,000
/// ebuilds) with room to spare; `[sandbox]` configures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory of the whole run (every process in it), through its cgroup; per process (`RLIMIT_AS`) where there is none.
    pub memory_bytes: u64,
    /// Processes (and threads) of the whole run, through its cgroup; `RLIMIT_NPROC` (per uid) otherwise, except for root.
    pub processes: u64,
    /// CPU time of any one process (`RLIMIT_CPU`): past it the process gets SIGXCPU.
    pub cpu: Duration,
    /// The largest file any process of the run may write (`RLIMIT_FSIZE`): past it the writer gets SIGXFSZ.
    pub file_bytes: u64,
    /// Every file under the tree's md5-cache together, checked after each run that may write it.
    pub md5_cache_bytes: u64,
    /// What is read of the run's stdout; past it the run is killed.
    pub stdout_bytes: u64,
    /// What is read of the run's stderr; past it the run is killed.
    pub stderr_bytes: u64,
    /// Size of the private `/tmp` and `/var/tmp` (tmpfs, in memory).
    pub tmp_bytes: u64,
}

const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 8192 * MIB,
            processes: 2048,
            cpu: Duration::from_secs(4 * 3600),
            file_bytes: 1024 * MIB,
            md5_cache_bytes: 1024 * MIB,
            stdout_bytes: 512 * MIB,
            stderr_bytes: 16 * MIB,
            tmp_bytes: 512 * MIB,
        }
    }
}

/// The limit a run reached; the run was stopped (or its culprit process killed) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory(u64),
    Processes(u64),
    Cpu(Duration),
    FileSize(u64),
    Md5CacheSize(u64),
    Stdout(u64),
    Stderr(u64),
}

impl LimitHit {
    /// The limit's name, for a metric label.
    pub fn name(&self) -> &'static str {
        match self {
            LimitHit::Memory(_) => "memory",
            LimitHit::Processes(_) => "processes",
            LimitHit::Cpu(_) => "cpu",
            LimitHit::FileSize(_) => "file_size",
            LimitHit::Md5CacheSize(_) => "md5_cache",
            LimitHit::Stdout(_) => "stdout",
            LimitHit::Stderr(_) => "stderr",
        }
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: &u64| b / MIB;
        match self {
            LimitHit::Memory(b) => write!(f, "memory limit reached ({} MiB)", mib(b)),
            LimitHit::Processes(n) => write!(f, "process limit reached ({n} processes)"),
            LimitHit::Cpu(d) => write!(f, "CPU time limit reached ({} s)", d.as_secs()),
            LimitHit::FileSize(b) => write!(f, "file size limit reached ({} MiB)", mib(b)),
            LimitHit::Md5CacheSize(b) => write!(f, "md5-cache size limit reached ({} MiB)", mib(b)),
            LimitHit::Stdout(b) => write!(f, "output limit reached ({} MiB of stdout)", mib(b)),
            LimitHit::Stderr(b) => write!(f, "output limit reached ({} MiB of stderr)", mib(b)),
        }
    }
}

impl Limits {
    /// The limit a process that died of `signal` reached, if any.
    pub fn hit_by_signal(&self, signal: i32) -> Option<LimitHit> {
        match signal {
            libc::SIGXCPU => Some(LimitHit::Cpu(self.cpu)),
            libc::SIGXFSZ => Some(LimitHit::FileSize(self.file_bytes)),
            _ => None,
        }
    }

    /// The rlimits every process of a run gets (inherited by what it starts). `per_process_memory`: `RLIMIT_AS` too,
    /// when no cgroup bounds the run's memory as a whole.
    pub(crate) fn rlimits(&self, per_process_memory: bool) -> Vec<(RlimitResource, u64)> {
        let mut v = vec![
            (libc::RLIMIT_FSIZE, self.file_bytes),
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_CPU, self.cpu.as_secs().max(1)),
            (libc::RLIMIT_NPROC, self.processes),
        ];
        if per_process_memory {
            v.push((libc::RLIMIT_AS, self.memory_bytes));
        }
        v
    }
}

#[cfg(target_env = "gnu")]
pub(crate) type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type RlimitResource = libc::c_int;

/// Total size of the regular files under `dir` (not following symlinks); stops counting past `cap`.
pub fn tree_bytes(dir: &std::path::Path, cap: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
                if total > cap {
                    return total;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_named_with_their_size() {
        let l = Limits::default();
        assert_eq!(LimitHit::Memory(l.memory_bytes).to_string(), "memory limit reached (8192 MiB)");
        assert_eq!(l.hit_by_signal(libc::SIGXFSZ), Some(LimitHit::FileSize(l.file_bytes)));
        assert_eq!(l.hit_by_signal(libc::SIGKILL), None);
    }

    #[test]
    fn tree_bytes_counts_regular_files_and_stops_past_the_cap() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x"), vec![0u8; 100]).unwrap();
        std::fs::write(d.path().join("y"), vec![0u8; 50]).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("z")).unwrap();
        assert_eq!(tree_bytes(d.path(), 1000), 150);
        assert!(tree_bytes(d.path(), 60) > 60);
    }
}

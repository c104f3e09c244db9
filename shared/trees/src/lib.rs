//! Git for prci, through libgit2: the per-host workspace (mirror, checkouts, lock), the deterministic merge, checkouts that write only what changed, the trees remote that carries prepared trees between hosts, `refs/prci/*` storage, and listing a remote's refs. Knows nothing of ebuilds or tools.
//!
//! Layout under `work.dir`:
//! ```text
//! repos/<name>-<hash of url>/mirror.git     bare mirror; local sources are borrowed through alternates
//! repos/<name>-<hash of url>/trees/base     checkout of the base tip (its md5-cache survives between jobs)
//! repos/<name>-<hash of url>/trees/merge    checkout of the merge (idem)
//! repos/<name>-<hash of url>/checker/<side> checkouts of prepared trees fetched from the trees remote
//! repos/<name>-<hash of url>/masters/<name> checkouts of master repositories
//! repos/<name>-<hash of url>/lock           held for the whole job: one job per repository per host at a time
//! <checkout>/.git/prci-checkout-incomplete  present while a checkout is under way
//! ```

pub mod checkout;
pub mod merge;
pub mod mirror;
pub mod remote;
pub mod store;
pub mod transport;

pub use checkout::{checkout, ensure_checkout, CheckoutMode};
pub use merge::{changed_paths, escaping_paths, merge, MergeOutcome};
pub use mirror::{current_pull_head, fetch, list_refs, open_mirror, resolve};

use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a git operation failed, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum TreesError {
    /// What was asked for does not exist (not a repository, an unknown revision, a commit the source does not
    /// have): asking again cannot help.
    #[error("{0}")]
    NotFound(String),
    /// The tree holds something prci refuses to read or carry (a link, a special or oversized file where a pull
    /// request's code could have put one): the revision's fault, never retried.
    #[error("{0}")]
    Refused(String),
    /// libgit2 failed (a remote unreachable, a corrupt object): may pass on a retry.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The local disk failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The two sides of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Base,
    Merge,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Base => "base",
            Side::Merge => "merge",
        }
    }
}

/// Where one repository's mirror and trees live on this host.
#[derive(Debug, Clone)]
pub struct RepoWorkspace {
    pub root: PathBuf,
    pub work_dir: PathBuf,
}

impl RepoWorkspace {
    pub fn new(work_dir: &Path, name: &str, url: &str) -> RepoWorkspace {
        let hash = hex_sha256(url);
        RepoWorkspace { root: work_dir.join("repos").join(format!("{name}-{}", &hash[..12])), work_dir: work_dir.to_path_buf() }
    }
    pub fn mirror(&self) -> PathBuf {
        self.root.join("mirror.git")
    }
    /// The checkout regen prepares for one side.
    pub fn tree(&self, side: Side) -> PathBuf {
        self.root.join("trees").join(side.name())
    }
    /// The checkout a checker makes of one side's prepared tree (fetched from the trees remote).
    pub fn prepared_tree(&self, side: Side) -> PathBuf {
        self.root.join("checker").join(side.name())
    }
    pub fn master(&self, name: &str) -> PathBuf {
        self.root.join("masters").join(name)
    }
    /// Take this host's lock on the repository for the duration of a job.
    pub fn lock(&self) -> Result<File, TreesError> {
        std::fs::create_dir_all(&self.root)?;
        let file = File::options().create(true).truncate(false).write(true).open(self.root.join("lock"))?;
        file.lock()?;
        Ok(file)
    }
}

/// Hex SHA-256 of a string.
pub fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The author and committer of every commit prci makes: fixed, so the same inputs give the same SHA on every host.
pub fn signature(when: &git2::Time) -> Result<git2::Signature<'static>, git2::Error> {
    git2::Signature::new("prci", "prci@localhost", when)
}

/// Force-update `refspecs` (`+src:dst`) from `url` into `repo`, without tags (the transport's credentials, timeouts
/// and retries: [`transport`]).
pub fn fetch_refspecs(repo: &git2::Repository, url: &str, refspecs: &[String]) -> Result<(), git2::Error> {
    transport::with_remote(url, |callbacks| {
        let mut remote = repo.remote_anonymous(url)?;
        let mut opts = git2::FetchOptions::new();
        opts.download_tags(git2::AutotagOption::None).remote_callbacks(callbacks);
        remote.fetch(refspecs, Some(&mut opts), None)
    })
}

/// Force-push the local ref `refname` to the same name in `url`. A ref the remote refuses is an error.
pub fn push_ref(repo: &git2::Repository, url: &str, refname: &str) -> Result<(), git2::Error> {
    transport::with_remote(url, |mut callbacks| {
        let mut remote = repo.remote_anonymous(url)?;
        let refused = std::rc::Rc::new(std::cell::RefCell::new(None));
        let seen = refused.clone();
        callbacks.push_update_reference(move |name, status| {
            if let Some(why) = status {
                *seen.borrow_mut() = Some(format!("{name}: {why}"));
            }
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(callbacks);
        remote.push(&[format!("+{refname}:{refname}")], Some(&mut opts))?;
        let refused = refused.borrow_mut().take();
        match refused {
            Some(why) => Err(git2::Error::from_str(&format!("the remote refused {why}"))),
            None => Ok(()),
        }
    })
}

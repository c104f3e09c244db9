//! The poller's persisted state: per pull request, the head last emitted and the base tip it was emitted against.
//!
//! Stored as JSON (`{"schema": 1, "pulls": {"<N>": {"head": …, "base": …}}}`), written atomically (temporary file in the same
//! directory, fsync, rename, fsync of the directory). A missing file is the empty state; an unreadable or corrupt file is an
//! error naming the path, never a silent reset (a reset would re-emit every open pull request).

use crate::{PollError, RemoteState, Revision, StateCause};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

const SCHEMA: u32 = 1;

/// What was last emitted for one pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emitted {
    /// Full SHA of the head.
    pub head: String,
    /// Full SHA of the base tip it was emitted against.
    pub base: String,
}

/// Everything the poller remembers between polls (and restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerState {
    schema: u32,
    /// Pull request number → what was last emitted for it.
    pub pulls: BTreeMap<u64, Emitted>,
}

impl Default for PollerState {
    fn default() -> Self {
        Self::new()
    }
}

impl PollerState {
    pub fn new() -> Self {
        Self { schema: SCHEMA, pulls: BTreeMap::new() }
    }

    /// Read the state; a missing file is the empty state.
    pub fn load(path: &Path) -> Result<Self, PollError> {
        let err = |what: &str, cause: StateCause| state_error(path, what, cause);
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(e) => return Err(err("cannot read", e.into())),
        };
        let state: Self = serde_json::from_slice(&bytes)
            .map_err(|e| err("corrupt; fix or remove it by hand (removing it re-emits every open pull request)", e.into()))?;
        if state.schema != SCHEMA {
            return Err(err("written by another prci version", StateCause::Schema { found: state.schema, supported: SCHEMA }));
        }
        Ok(state)
    }

    /// Write the state atomically: a crash leaves either the old or the new file, never a torn one.
    pub fn save(&self, path: &Path) -> Result<(), PollError> {
        let err = |what: &str, e: std::io::Error| state_error(path, &format!("cannot {what}"), e.into());
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(|e| err("create its directory", e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(|e| state_error(path, "cannot encode", e.into()))?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(err("write a temporary file", e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(err("rename the temporary file over it", e));
        }
        // Make the rename durable; a failure here is not worth failing the poll over (the data is written).
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Record a revision as emitted (call only once its emit was confirmed).
    pub fn record(&mut self, revision: &Revision) {
        self.pulls.insert(revision.pr, Emitted { head: revision.head.clone(), base: revision.base.clone() });
    }

    /// Drop pull requests the remote no longer has (closed or merged); returns their numbers.
    pub fn retain_open(&mut self, remote: &RemoteState) -> Vec<u64> {
        let closed: Vec<u64> = self.pulls.keys().filter(|pr| !remote.pulls.contains_key(pr)).copied().collect();
        for pr in &closed {
            self.pulls.remove(pr);
        }
        closed
    }
}

/// The error of the state file at `path`: what prci was doing, and why it failed.
fn state_error(path: &Path, what: &str, cause: StateCause) -> PollError {
    PollError::State { path: path.to_path_buf(), what: what.into(), source: cause }
}

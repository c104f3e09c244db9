//! The `prci check` JSON document (schema 1): what `prci check --json` prints and the publisher stores.

use crate::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No new finding at a failing level.
    Pass,
    /// New findings at a failing level, or the pull request does not merge.
    Fail,
    /// The pipeline itself failed: not the pull request's fault.
    Error,
}

impl Verdict {
    /// `prci check` exit code: 0 pass, 1 fail, 2 error.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }
}

/// Which targets were scanned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanScope {
    /// The whole repository was scanned on both sides.
    pub full: bool,
    /// Package targets (`cat/pkg`) and eclass targets (`eclass/X.eclass`) scanned on both sides.
    pub targets: Vec<String>,
}

/// The report document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub schema: u32,
    pub repository: String,
    pub base: String,
    pub head: String,
    /// The merge commit that was scanned (the head itself on a fast-forward).
    pub tested: String,
    pub tools: BTreeMap<String, String>,
    pub scan: ScanScope,
    pub verdict: Verdict,
    pub reason: String,
    pub new: Vec<Finding>,
    pub fixed: Vec<Finding>,
    pub unchanged: Vec<Finding>,
    /// Paths that conflict when merging the head onto the base tip (empty when it merges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    pub timings: BTreeMap<String, f64>,
}

impl CheckReport {
    /// A report for a check that could not be carried out.
    pub fn error(repository: &str, base: &str, head: &str, reason: impl Into<String>) -> CheckReport {
        CheckReport {
            schema: 1,
            repository: repository.into(),
            base: base.into(),
            head: head.into(),
            tested: String::new(),
            tools: BTreeMap::new(),
            scan: ScanScope::default(),
            verdict: Verdict::Error,
            reason: reason.into(),
            new: vec![],
            fixed: vec![],
            unchanged: vec![],
            conflicts: vec![],
            timings: BTreeMap::new(),
        }
    }
}

//! The differ stage: both sides' findings in, the verdict and its report out.

use shared::messages::{self, Queue, Scanned, VerdictMessage};
use shared::stage::{Handled, Outgoing, Stage, StageError};
use shared::CheckReport;
use std::collections::{BTreeMap, BTreeSet};

/// The differ; it needs only `checker.fail_levels` and the repository name.
#[derive(Debug)]
pub struct DifferStage {
    pub repository: String,
    pub fail_levels: Vec<String>,
}

/// The report for one scanned revision.
pub fn report_of(repository: &str, s: &Scanned, fail_levels: &[String]) -> CheckReport {
    let p = &s.prepared;
    let mut timings: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in p.timings.iter().chain(&s.timings) {
        timings.insert(format!("{k}_seconds"), *v);
    }
    if let Some(reason) = p.error.as_ref().or(s.error.as_ref()) {
        let mut r = CheckReport::error(repository, &p.base, &p.revision.head, reason.clone());
        r.timings = timings;
        return r;
    }
    let inputs = crate::ReportInputs {
        repository,
        base: &p.base,
        head: &p.revision.head,
        tested: &p.tested,
        tools: s.tools.iter().cloned().collect(),
        full: s.full,
        targets: s.targets.clone(),
        conflicts: p.conflicts.clone(),
        timings,
    };
    let unstable: BTreeSet<String> = s.unstable.iter().cloned().collect();
    crate::build_report(inputs, &s.base, &s.merge, &unstable, fail_levels)
}

impl Stage for DifferStage {
    fn name(&self) -> &'static str {
        "differ"
    }
    fn input(&self) -> Queue {
        Queue::Scanned
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let scanned: Scanned = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        let report = report_of(&self.repository, &scanned, &self.fail_levels);
        tracing::info!(revision = %scanned.prepared.revision.key(), verdict = ?report.verdict, "verdict");
        let msg = VerdictMessage { revision: scanned.prepared.revision.clone(), report };
        Ok(Handled { publish: vec![Outgoing { queue: Queue::Verdicts, body: messages::encode(&msg), priority: msg.revision.broker_priority() }] })
    }
}

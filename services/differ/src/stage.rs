//! The differ stage: both sides' findings in, the verdict and its report out.

use pipeline::messages::{self, Queue, Scanned, VerdictMessage};
use pipeline::stage::{Handled, Outgoing, Stage, StageError};

/// The differ; it needs only `checker.fail_levels` and the repository name.
#[derive(Debug)]
pub struct DifferStage {
    pub repository: String,
    pub fail_levels: Vec<String>,
}

impl DifferStage {
    pub fn from_settings(settings: &pipeline::Settings) -> DifferStage {
        DifferStage { repository: settings.repository.name.clone(), fail_levels: settings.checker.fail_levels.clone() }
    }
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
        let report = crate::report_of(&self.repository, &scanned, &self.fail_levels);
        tracing::info!(revision = %scanned.prepared.revision.key(), verdict = ?report.verdict, "verdict");
        let msg = VerdictMessage { revision: scanned.prepared.revision.clone(), report };
        Ok(Handled {
            publish: vec![Outgoing { queue: Queue::Verdicts, body: messages::encode(&msg), priority: msg.revision.broker_priority() }],
            dropped_stale: false,
        })
    }
}

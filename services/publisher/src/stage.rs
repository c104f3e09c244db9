//! The publisher stage: a verdict in, the report pages written (once per revision; never for a superseded one).

use crate::reports::{ReportStore, WriteOutcome};
use pipeline::messages::{self, Queue, VerdictMessage};
use pipeline::stage::{Handled, Stage, StageError};

/// Writes reports under `reports.dir`.
#[derive(Debug)]
pub struct PublisherStage {
    pub store: ReportStore,
}

impl PublisherStage {
    pub fn from_settings(settings: &pipeline::Settings) -> PublisherStage {
        PublisherStage { store: ReportStore::new(settings.reports.dir.clone()) }
    }
}

impl Stage for PublisherStage {
    fn name(&self) -> &'static str {
        "publisher"
    }
    fn input(&self) -> Queue {
        Queue::Verdicts
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let msg: VerdictMessage = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        if self.store.superseded(&msg.revision) {
            tracing::info!(revision = %msg.revision.key(), "a newer revision is already published; dropped");
            return Ok(Handled::default());
        }
        match self.store.write(&msg.revision, &msg.report) {
            Ok(WriteOutcome::Created) => tracing::info!(revision = %msg.revision.key(), verdict = ?msg.report.verdict, "report written"),
            Ok(WriteOutcome::Replaced) => tracing::info!(revision = %msg.revision.key(), "report rewritten (redelivery)"),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(StageError::Permanent(e.to_string())),
            Err(e) => return Err(StageError::Transient(e.to_string())),
        }
        Ok(Handled::default())
    }
}

//! The publisher stage: a verdict in, the report pages written (once per revision; never for a superseded one), and on
//! a forge that takes them, a commit status on the head and prci's one comment on the pull request, edited in place.

use crate::reports::{ReportStore, WriteOutcome};
use findings::Verdict;
use forge::{Forge, ForgeError, State, Status};
use pipeline::messages::{self, Queue, Revision, VerdictMessage};
use pipeline::stage::{Handled, Stage, StageError};
use std::sync::Arc;

/// Writes reports under `reports.dir`; publishes statuses and comments on the forge.
#[derive(Debug)]
pub struct PublisherStage {
    pub store: ReportStore,
    /// The forge verdicts go to; `None`: reports only (`source.kind = "git"`).
    pub forge: Option<Arc<dyn Forge>>,
    /// `reports.base_url`.
    pub base_url: String,
}

impl PublisherStage {
    /// Reports only.
    pub fn new(store: ReportStore, base_url: &str) -> PublisherStage {
        PublisherStage { store, forge: None, base_url: base_url.to_string() }
    }

    /// From the configuration; the forge's credentials are read here (an unusable one is a start-up error).
    pub fn from_settings(settings: &pipeline::Settings) -> Result<PublisherStage, ForgeError> {
        let mut stage = PublisherStage::new(ReportStore::new(settings.reports.dir.clone()), &settings.reports.base_url);
        let forge = forge::from_settings(settings)?;
        if forge.kind() != "git" {
            crate::status::refresh_pending_on(crate::status::PendingRefresh {
                forge: forge.clone(),
                every: std::time::Duration::from_secs(settings.github.pending_refresh_secs.max(1)),
                status_url: format!("{}/status.html", stage.base_url.trim_end_matches('/')),
            });
            stage.forge = Some(forge);
        }
        Ok(stage)
    }

    /// The public URL of a revision's HTML report.
    pub fn report_url(&self, rev: &Revision) -> String {
        format!("{}/{}/{}.html", self.base_url.trim_end_matches('/'), rev.pr, rev.head)
    }

    /// Whether the forge says the pull request is still at this head, open and to be checked.
    fn current(&self, forge: &dyn Forge, rev: &Revision) -> Result<bool, StageError> {
        let pull = forge.pull(rev.pr).map_err(classify)?;
        let why = match pull {
            None => "the pull request is gone",
            Some(p) if !p.open => "the pull request is closed",
            Some(p) if p.head != rev.head => "the pull request has a newer head",
            Some(p) if p.has_label("noci") => "the pull request is labelled noci",
            Some(_) => return Ok(true),
        };
        tracing::info!(revision = %rev.key(), why, "not published on the forge");
        Ok(false)
    }

    fn publish(&self, forge: &dyn Forge, msg: &VerdictMessage) -> Result<(), StageError> {
        let report = &msg.report;
        let (state, description) = match report.verdict {
            Verdict::Pass => (State::Success, report.reason.clone()),
            Verdict::Fail => (State::Failure, report.reason.clone()),
            Verdict::Error => (State::Error, "the CI failed, not your pull request".to_string()),
        };
        let status = Status { state, description, target_url: Some(self.report_url(&msg.revision)) };
        // Each write reads what the forge shows first and is skipped when it is already so: a redelivered verdict, or
        // one another publisher instance published, changes nothing.
        let status_sent = {
            let _guard = crate::status::forge_lock();
            forge.set_status(&msg.revision.head, &status).map_err(classify)?
        };
        let comment = crate::comment::render(report, &self.report_url(&msg.revision));
        let comment_sent = forge.upsert_comment(msg.revision.pr, &comment).map_err(classify)?;
        if status_sent || comment_sent {
            tracing::info!(revision = %msg.revision.key(), state = state.as_str(), status_sent, comment_sent, "status and comment published");
        } else {
            tracing::info!(revision = %msg.revision.key(), state = state.as_str(), "status and comment already published; nothing sent");
        }
        Ok(())
    }
}

/// A forge failure as the retry policy sees it.
fn classify(e: ForgeError) -> StageError {
    if e.is_transient() {
        StageError::Transient(e.to_string())
    } else {
        StageError::Permanent(e.to_string())
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
            return Ok(Handled::stale());
        }
        if let Some(forge) = &self.forge {
            if !self.current(forge.as_ref(), &msg.revision)? {
                return Ok(Handled::stale());
            }
        }
        let first = match self.store.write(&msg.revision, &msg.report) {
            Ok(WriteOutcome::Created) => {
                tracing::info!(revision = %msg.revision.key(), verdict = ?msg.report.verdict, "report written");
                true
            }
            Ok(WriteOutcome::Replaced) => {
                tracing::info!(revision = %msg.revision.key(), "report rewritten (redelivery or re-run)");
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(StageError::Permanent(e.to_string())),
            Err(e) => return Err(StageError::Transient(e.to_string())),
        };
        if let Some(forge) = &self.forge {
            self.publish(forge.as_ref(), &msg)?;
        }
        self.record(&msg, first);
        Ok(Handled::default())
    }
}

impl PublisherStage {
    /// The verdict into the metrics (once per revision: a redelivery is not a second verdict) and the events.
    fn record(&self, msg: &VerdictMessage, first: bool) {
        let m = pipeline::metrics::get();
        let verdict = match msg.report.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        };
        if first {
            m.end_to_end.observe((pipeline::events::now() - msg.revision.emitted_at).max(0.0));
            m.verdicts.with_label_values(&[verdict]).inc();
        }
        let mut event = pipeline::events::Event::about(pipeline::events::Kind::Finished, "publisher", &msg.revision);
        event.outcome = Some("published".into());
        event.verdict = Some(verdict.into());
        pipeline::events::emit(event);
    }
}

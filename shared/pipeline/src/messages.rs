//! Wire messages: one versioned type per queue. They carry no host-local path: any instance of a stage on any host handles any message with only the message and its configuration.

use findings::{CheckReport, Finding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of every message type; a message of another version is refused (dead-lettered), never guessed at.
pub const SCHEMA: u32 = 1;

/// The queues, in pipeline order. Names come from here only, prefixed by `broker.prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// poller → regen: a pull-request revision to check.
    Revisions,
    /// regen → checker: trees prepared and published.
    Prepared,
    /// checker → differ: both sides' findings.
    Scanned,
    /// differ → publisher: the verdict and its report.
    Verdicts,
}

impl Queue {
    pub const ALL: [Queue; 4] = [Queue::Revisions, Queue::Prepared, Queue::Scanned, Queue::Verdicts];

    pub fn short(self) -> &'static str {
        match self {
            Queue::Revisions => "revisions",
            Queue::Prepared => "prepared",
            Queue::Scanned => "scanned",
            Queue::Verdicts => "verdicts",
        }
    }
    /// The work queue's name.
    pub fn name(self, prefix: &str) -> String {
        format!("{prefix}.{}", self.short())
    }
    /// Its priority twin: `priority-ci` work waits there, and every consumer takes from it first.
    pub fn priority_name(self, prefix: &str) -> String {
        format!("{prefix}.{}.priority", self.short())
    }
    /// Its dead-letter queue.
    pub fn dead_letter_name(self, prefix: &str) -> String {
        format!("{prefix}.{}.dead", self.short())
    }
    /// Its dead-letter exchange.
    pub fn dead_letter_exchange(self, prefix: &str) -> String {
        format!("{prefix}.{}.dlx", self.short())
    }
}

/// One revision of one pull request (the unit of work).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// `repository.name`.
    pub repository: String,
    /// Pull-request number.
    pub pr: u64,
    /// Full SHA of the pull request's head.
    pub head: String,
    /// The branch it merges into.
    pub base_branch: String,
    /// Full SHA of the base tip when the poller saw it.
    pub base: String,
    /// Checked first (`priority-ci`).
    #[serde(default)]
    pub priority: bool,
    /// Unix seconds when the poller emitted it (queue age).
    pub emitted_at: f64,
}

impl Revision {
    /// A stable key of the revision, for logs and idempotence (`<repo>#<pr>@<head>`).
    pub fn key(&self) -> String {
        format!("{}#{}@{}", self.repository, self.pr, self.head)
    }

    /// Broker priority of every message about this revision: `priority-ci` pull requests go first.
    pub fn broker_priority(&self) -> u8 {
        if self.priority {
            5
        } else {
            0
        }
    }
}

/// regen's output: where the prepared trees are, as commits in the trees remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedTrees {
    pub revision: Revision,
    /// The base tip the head was merged onto (it may have moved since the poller saw it).
    pub base: String,
    /// Commit (in the trees remote) holding the base tip with its regenerated md5-cache.
    pub base_tree: String,
    /// Commit holding the merge with its regenerated md5-cache.
    pub merge_tree: String,
    /// The merge commit of the repository that was prepared (the head on a fast-forward).
    pub tested: String,
    /// Repository-relative paths that differ between base tip and merge.
    pub changed: Vec<String>,
    /// Conflicting paths; when not empty there are no trees.
    pub conflicts: Vec<String>,
    /// Master repositories' commits, by name.
    pub masters: Vec<(String, String)>,
    pub timings: Vec<(String, f64)>,
    /// Set when the trees could not be prepared for a reason retrying cannot fix; reported as `error`.
    #[serde(default)]
    pub error: Option<String>,
}

/// checker's output: both sides' findings and what flapped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanned {
    pub prepared: PreparedTrees,
    pub full: bool,
    pub targets: Vec<String>,
    pub base: Vec<Finding>,
    pub merge: Vec<Finding>,
    /// Identities whose count moved between scans of one tree.
    pub unstable: Vec<String>,
    /// `pkgcheck`, `pkgcore` versions of the worker that scanned.
    pub tools: Vec<(String, String)>,
    pub timings: Vec<(String, f64)>,
    /// Set when scanning failed for a reason retrying cannot fix; reported as `error`.
    #[serde(default)]
    pub error: Option<String>,
}

/// differ's output: the report to publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictMessage {
    pub revision: Revision,
    pub report: CheckReport,
}

/// The envelope every message travels in: `{"schema": 1, "body": …}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    schema: u32,
    body: T,
}

/// A message that cannot be decoded: dead-lettered at once.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("schema {found} is not the supported schema {SCHEMA}")]
    Schema { found: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encode a message in its envelope.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    // Serialising these plain data types cannot fail (no maps with non-string keys, no custom serialisers).
    serde_json::to_vec(&Envelope { schema: SCHEMA, body }).unwrap_or_default()
}

/// Decode a message, checking its schema first so that an old or new version is named as such.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Probe {
        schema: u32,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if probe.schema != SCHEMA {
        return Err(DecodeError::Schema { found: probe.schema });
    }
    let env: Envelope<T> = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(env.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision() -> Revision {
        Revision {
            repository: "gentoo".into(),
            pr: 42,
            head: "a".repeat(40),
            base_branch: "master".into(),
            base: "b".repeat(40),
            priority: false,
            emitted_at: 1.5,
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&revision());
        assert_eq!(decode::<Revision>(&bytes).unwrap(), revision());
    }

    #[test]
    fn another_schema_is_named() {
        let text = String::from_utf8(encode(&revision())).unwrap().replace("\"schema\":1", "\"schema\":2");
        assert!(matches!(decode::<Revision>(text.as_bytes()), Err(DecodeError::Schema { found: 2 })));
    }

    #[test]
    fn garbage_and_wrong_types_are_malformed() {
        assert!(matches!(decode::<Revision>(b"not json"), Err(DecodeError::Malformed(_))));
        let prepared = encode(&revision());
        assert!(matches!(decode::<PreparedTrees>(&prepared), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn queue_names_share_the_prefix() {
        assert_eq!(Queue::Scanned.name("prci"), "prci.scanned");
        assert_eq!(Queue::Scanned.dead_letter_name("ci"), "ci.scanned.dead");
    }

    #[test]
    fn no_message_carries_a_local_path() {
        // Every string field of a realistic message is a name, a SHA, or a repository-relative path.
        let p = PreparedTrees {
            revision: revision(),
            base: "b".repeat(40),
            base_tree: "c".repeat(40),
            merge_tree: "d".repeat(40),
            tested: "e".repeat(40),
            changed: vec!["app-misc/foo/foo-1.ebuild".into()],
            conflicts: vec![],
            masters: vec![],
            timings: vec![],
            error: None,
        };
        let text = String::from_utf8(encode(&p)).unwrap();
        assert!(!text.contains("\"/"), "{text}");
    }
}

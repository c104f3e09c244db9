//! What every prci stage shares: configuration, the tool sandbox, findings and the report document. Nothing stage-specific.

pub mod config;
pub mod finding;
pub mod pkgcore;
pub mod report;
pub mod sandbox;
pub mod telemetry;
pub mod tools;

pub use config::{ConfigError, Settings};
pub use finding::Finding;
pub use report::{CheckReport, Verdict};

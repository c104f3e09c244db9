//! What every prci stage shares: configuration, the tool sandbox, findings and the report document. Nothing stage-specific.

pub mod broker;
pub mod bus;
pub mod config;
pub mod finding;
pub mod layout;
pub mod messages;
pub mod pkgcore;
pub mod report;
pub mod runtime;
pub mod sandbox;
pub mod stage;
pub mod telemetry;
pub mod tools;
pub mod version;
pub mod warm;

pub use config::{ConfigError, Settings};
pub use finding::Finding;
pub use report::{CheckReport, Verdict};

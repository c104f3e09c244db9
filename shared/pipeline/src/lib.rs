//! The pipeline's plumbing, the same for every stage: the messages between stages, the `Stage` contract and its retry policy, the two transports (RabbitMQ, in-process queues), the service runtime, configuration and logging. Nothing about git, tools or QA.

pub mod cancel;
pub mod config;
pub mod events;
pub mod http;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod notify;
pub mod rabbitmq;
pub mod runtime;
pub mod stage;
pub mod telemetry;

pub use config::{ConfigError, Settings};

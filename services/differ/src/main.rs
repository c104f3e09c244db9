//! The `differ` service: one differ consumer (`differ [--config FILE]`); `prci run --stage differ` is the same.

fn main() -> std::process::ExitCode {
    pipeline::runtime::service_main("differ", |settings| Ok(std::sync::Arc::new(differ::stage::DifferStage::from_settings(settings))))
}

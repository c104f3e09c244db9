//! The `differ` service: one differ consumer (`differ [--config FILE]`); `prci run --stage differ` is the same.

fn main() -> std::process::ExitCode {
    shared::runtime::service_main("differ", |settings| {
        Ok(std::sync::Arc::new(differ::stage::DifferStage {
            repository: settings.repository.name.clone(),
            fail_levels: settings.checker.fail_levels.clone(),
        }))
    })
}

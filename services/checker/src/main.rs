//! The `checker` service: one checker consumer (`checker [--config FILE]`); `prci run --stage checker` is the same.

fn main() -> std::process::ExitCode {
    pipeline::runtime::service_main("checker", |settings| {
        Ok(std::sync::Arc::new(checker::stage::CheckerStage::from_settings(settings).map_err(|e| (e.to_string(), e.exit_code()))?))
    })
}

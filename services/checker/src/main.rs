//! The `checker` service: one checker consumer (`checker [--config FILE]`); `prci run --stage checker` is the same.

fn main() -> std::process::ExitCode {
    shared::runtime::service_main("checker", |settings| {
        let stage = checker::stage::CheckerStage::new(settings.clone()).map_err(|e| e.to_string())?;
        Ok(std::sync::Arc::new(stage))
    })
}

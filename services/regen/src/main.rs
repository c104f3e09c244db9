//! The `regen` service: one regen consumer (`regen [--config FILE]`); `prci run --stage regen` is the same.

fn main() -> std::process::ExitCode {
    shared::runtime::service_main("regen", |settings| {
        let stage = regen::stage::RegenStage::new(settings.clone()).map_err(|e| e.to_string())?;
        Ok(std::sync::Arc::new(stage))
    })
}

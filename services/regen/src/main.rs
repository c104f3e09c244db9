//! The `regen` service: one regen consumer (`regen [--config FILE]`); `prci run --stage regen` is the same.

fn main() -> std::process::ExitCode {
    pipeline::runtime::service_main("regen", |settings| {
        Ok(std::sync::Arc::new(regen::stage::RegenStage::from_settings(settings).map_err(|e| (e.to_string(), e.exit_code()))?))
    })
}

//! The `publisher` service: one publisher consumer (`publisher [--config FILE]`); `prci run --stage publisher` is the same.

fn main() -> std::process::ExitCode {
    pipeline::runtime::service_main("publisher", |settings| {
        let stage = publisher::stage::PublisherStage::from_settings(settings).map_err(|e| (e.to_string(), 64))?;
        Ok(std::sync::Arc::new(stage))
    })
}

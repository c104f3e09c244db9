//! The `publisher` service: one publisher consumer (`publisher [--config FILE]`); `prci run --stage publisher` is the same.

fn main() -> std::process::ExitCode {
    pipeline::runtime::service_main("publisher", |settings| {
        Ok(std::sync::Arc::new(publisher::stage::PublisherStage::from_settings(settings)))
    })
}

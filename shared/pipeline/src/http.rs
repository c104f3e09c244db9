//! This process's HTTP listener (`[http] listen`): the routes a service adds (the poller's `POST /webhook`) plus
//! `GET /metrics` (every family of this process, `crate::metrics`), `GET /health/live` (the process answers) and
//! `GET /health/ready` (503 until every stage it runs consumes and its poller has polled); port 0 picks a free port,
//! and the address actually bound is logged and returned.

use std::net::SocketAddr;

/// Bind `listen` and serve `routes` for as long as the process runs (through a SIGTERM drain too: the metrics and
/// health of a process finishing its last message stay visible); returns the bound address once listening.
pub async fn serve(listen: &str, routes: axum::Router) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("http.listen {listen}: cannot bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("http.listen {listen}: {e}"))?;
    let app = routes
        .route("/health/live", axum::routing::get(|| async { "ok\n" }))
        .route("/health/ready", axum::routing::get(ready))
        .route("/metrics", axum::routing::get(metrics));
    tracing::info!(%addr, "http listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http listener failed");
        }
    });
    Ok(addr)
}

async fn ready() -> (axum::http::StatusCode, &'static str) {
    if crate::metrics::get().ready() {
        (axum::http::StatusCode::OK, "ready\n")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics() -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::get().render())
}

/// Serve the metrics and health routes alone on `[http] listen`, when it is set (stage services, `prci run` without a
/// poller). A listen address that cannot be bound is a configuration error.
pub async fn serve_configured(settings: &crate::Settings) -> Result<(), crate::ConfigError> {
    if let Some(listen) = &settings.http.listen {
        serve(listen, axum::Router::new()).await.map_err(|reason| crate::ConfigError { key: "http.listen".into(), reason })?;
    }
    Ok(())
}

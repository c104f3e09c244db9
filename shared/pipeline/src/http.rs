//! This process's HTTP listener (`[http] listen`): the routes a service adds (the poller's `POST /webhook`) plus
//! `GET /health/live`; port 0 picks a free port, and the address actually bound is logged and returned.

use std::net::SocketAddr;
use tokio::sync::watch;

/// Bind `listen` and serve `routes` until `shutdown`; returns the bound address once listening.
pub async fn serve(listen: &str, routes: axum::Router, mut shutdown: watch::Receiver<bool>) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("http.listen {listen}: cannot bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("http.listen {listen}: {e}"))?;
    let app = routes.route("/health/live", axum::routing::get(|| async { "ok\n" }));
    tracing::info!(%addr, "http listening");
    tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "http listener failed");
        }
    });
    Ok(addr)
}

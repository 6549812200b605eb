//! The admin HTTP server: `/healthz` and `/livez` (alive), `/readyz` (every registered
//! component ready, see [`crate::readiness`]), `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

use crate::http::{Reply, text};
use crate::metrics_auth::MetricsAuth;
use crate::readiness::Readiness;

fn answer(path: &str, registry: &Registry, readiness: &Readiness) -> Reply {
    match path {
        "/healthz" | "/livez" | "/live" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" if readiness.is_ready() => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => {
            let waiting = readiness.waiting_for();
            let body = if waiting.is_empty() {
                "not ready: starting\n".to_string()
            } else {
                format!("not ready: waiting for {}\n", waiting.join(", "))
            };
            text(StatusCode::SERVICE_UNAVAILABLE, body, "text/plain")
        }
        "/metrics" => {
            let mut buf = Vec::new();
            match TextEncoder::new().encode(&registry.gather(), &mut buf) {
                Ok(()) => text(StatusCode::OK, buf, "text/plain; version=0.0.4"),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.to_string(),
                    "text/plain",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}

/// Serves the admin endpoints on `listen` until `stop`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    serve_maybe_tls(listen, registry, readiness, stop, None).await
}

/// [`serve`], over TLS with `tls` when given (`--metrics-secure`, see [`crate::metrics_tls`]).
pub async fn serve_maybe_tls(
    listen: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    stop: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<SocketAddr> {
    serve_guarded(listen, (registry, readiness), stop, tls, None).await
}

/// [`serve_maybe_tls`], with every request first passed through `auth` when given
/// (`--metrics-auth`, see [`crate::metrics_auth`]).
pub async fn serve_guarded(
    listen: SocketAddr,
    (registry, readiness): (Registry, Readiness),
    stop: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<Arc<MetricsAuth>>,
) -> anyhow::Result<SocketAddr> {
    let state = Arc::new((registry, readiness, auth));
    crate::http::serve_maybe_tls(
        listen,
        move |req| {
            let state = state.clone();
            async move {
                let path = req.uri().path();
                if let Some(auth) = &state.2 {
                    let header = req
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    if let Some(refused) = auth.check(header, path).await {
                        return refused;
                    }
                }
                answer(path, &state.0, &state.1)
            }
        },
        stop,
        tls,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_components_and_metrics_render() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("demo_total", "a demo counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let readiness = Readiness::default();
        let keys = readiness.component("keys");
        assert_eq!(
            answer("/healthz", &registry, &readiness).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer("/readyz", &registry, &readiness).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        keys.ready();
        assert_eq!(
            answer("/readyz", &registry, &readiness).status(),
            StatusCode::OK
        );
        let metrics = answer("/metrics", &registry, &readiness);
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(
            answer("/nope", &registry, &readiness).status(),
            StatusCode::NOT_FOUND
        );
    }
}

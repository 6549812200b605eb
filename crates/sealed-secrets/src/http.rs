//! The controller's HTTP API on `--listen-addr`: `/healthz`, `/v1/cert.pem`, `/v1/verify`,
//! `/v1/rotate`. Reached by kubeseal through the API server's service proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{Method, Request, StatusCode};
use serde_json::{Map, Value};
use strongroom_controller_kit::http::{Reply, text as reply};
use strongroom_controller_kit::shutdown::CancellationToken;
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{SealingCertificate, os_rng, seal_to_base64};

use crate::desired::{desired_secret, unseal_items};
use crate::keystore::KeyStore;
use crate::metrics::Metrics;

/// A token bucket for `/v1/verify` (`--rate-limit` per second, `--rate-limit-burst`).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token if one is available.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The handlers with request metrics, as upstream.
const INSTRUMENTED_PATHS: [&str; 3] = ["/v1/cert.pem", "/v1/verify", "/v1/rotate"];

/// The request methods that get their own `method` label value; any other is `other`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// Shared state of the HTTP API.
pub struct HttpApi {
    /// The keys.
    pub keys: Arc<KeyStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// `/v1/verify` limiter.
    pub limiter: RateLimiter,
    /// `--accept-deprecated-v1-data`.
    pub accept_v1_data: bool,
}

fn parse_sealed(bytes: &[u8]) -> Result<SealedSecret, String> {
    let value: Value = serde_json::from_slice(bytes)
        .or_else(|_| serde_yaml_ng::from_slice(bytes))
        .map_err(|e| format!("cannot read the SealedSecret: {e}"))?;
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "SealedSecret")
    {
        return Err("the body is not a SealedSecret".into());
    }
    serde_json::from_value(value).map_err(|e| format!("invalid SealedSecret: {e}"))
}

impl HttpApi {
    async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Reply {
        let start = Instant::now();
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let resp = self.route(req).await;
        // only upstream's three handlers are instrumented: a series per path anyone sends
        // through the service proxy would let one user grow the controller's memory
        if INSTRUMENTED_PATHS.contains(&path.as_str()) {
            // promhttp writes the method in lower case; a method outside HTTP's standard
            // set is one label value, so no client can create series at will
            let method = if KNOWN_METHODS.contains(&method.as_str()) {
                method.as_str().to_ascii_lowercase()
            } else {
                "other".to_string()
            };
            let code = resp.status().as_u16().to_string();
            self.metrics
                .http_requests
                .with_label_values(&[path.as_str(), code.as_str(), method.as_str()])
                .inc();
            self.metrics
                .http_duration
                .with_label_values(&[path.as_str(), method.as_str()])
                .observe(start.elapsed().as_secs_f64());
        }
        resp
    }

    async fn route(&self, req: Request<hyper::body::Incoming>) -> Reply {
        match (req.method(), req.uri().path()) {
            (_, "/healthz") => reply(StatusCode::OK, "ok\n", "text/plain"),
            (_, "/v1/cert.pem") => match self.keys.newest() {
                Some(n) => reply(StatusCode::OK, n.cert_pem, "application/x-pem-file"),
                None => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot get certificate\n",
                    "text/plain",
                ),
            },
            (&Method::POST, "/v1/verify") => {
                if !self.limiter.allow() {
                    return reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate limit exceeded\n",
                        "text/plain",
                    );
                }
                match read(req).await.and_then(|b| parse_sealed(&b)) {
                    Err(e) => reply(StatusCode::BAD_REQUEST, e, "text/plain"),
                    Ok(ss) => {
                        let keys = self.keys.clone();
                        let accept = self.accept_v1_data;
                        let ok = tokio::task::spawn_blocking(move || {
                            keys.with_ring(|ring| {
                                desired_secret(&ss, ring, None, accept).map(|_| ())
                            })
                        })
                        .await;
                        match ok {
                            Ok(Ok(())) => reply(StatusCode::OK, "", "text/plain"),
                            Ok(Err(e)) => {
                                reply(StatusCode::CONFLICT, format!("{e}\n"), "text/plain")
                            }
                            Err(e) => reply(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                e.to_string(),
                                "text/plain",
                            ),
                        }
                    }
                }
            }
            (&Method::POST, "/v1/rotate") => match read(req).await.and_then(|b| parse_sealed(&b)) {
                Err(e) => reply(StatusCode::BAD_REQUEST, e, "text/plain"),
                Ok(ss) => match self.rotate(ss).await {
                    Ok(v) => reply(
                        StatusCode::OK,
                        serde_json::to_vec(&v).unwrap_or_default(),
                        "application/json",
                    ),
                    Err((code, e)) => reply(code, format!("{e}\n"), "text/plain"),
                },
            },
            (_, "/v1/verify" | "/v1/rotate") => {
                reply(StatusCode::METHOD_NOT_ALLOWED, "POST only\n", "text/plain")
            }
            _ => reply(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
        }
    }

    /// Re-seals every item with the newest key; the plaintext never leaves this process.
    async fn rotate(&self, mut ss: SealedSecret) -> Result<Value, (StatusCode, String)> {
        let newest = self.keys.newest().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "no sealing key".to_string(),
        ))?;
        let cert = SealingCertificate::from_pem(&newest.cert_pem)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let keys = self.keys.clone();
        let accept = self.accept_v1_data;
        let probe = ss.clone();
        // only the sealed items are re-encrypted: template.data stays a template (upstream
        // flattens rendered values into items, losing the template)
        let (items, _) = tokio::task::spawn_blocking(move || {
            keys.with_ring(|ring| unseal_items(&probe, ring, None, accept))
        })
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
        let label = ss.scope().label(
            ss.metadata.namespace.as_deref().unwrap_or(""),
            ss.metadata.name.as_deref().unwrap_or(""),
        );
        let mut encrypted = Map::new();
        for (item, value) in items {
            let sealed = seal_to_base64(&mut os_rng(), &cert.key, &label, &value.0)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            encrypted.insert(item, Value::String(sealed));
        }
        ss.spec.encrypted_data = encrypted.into_iter().collect();
        ss.spec.data = None;
        ss.status = None;
        serde_json::to_value(&ss).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

async fn read(req: Request<hyper::body::Incoming>) -> Result<Bytes, String> {
    Limited::new(req.into_body(), 2 * 1024 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("cannot read the body: {e}"))
}

/// Serves the API on `listen` until `stop`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    api: Arc<HttpApi>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    strongroom_controller_kit::http::serve(listen, move |req| api.clone().handle(req), stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_refuses() {
        let l = RateLimiter::new(0.001, 2.0);
        assert!(l.allow());
        assert!(l.allow());
        assert!(!l.allow());
    }
}

//! Secret Manager REST calls: bearer token (refreshed once on a 401), call counting, and
//! Google's error body mapped to [`ProviderError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError};

use crate::METRIC_NAME;
use crate::auth::without_url;
use crate::token::Tokens;

/// A failed call, before it is named after the key it was for.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Google answered with an error status.
    Status {
        code: u16,
        status: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Anything else, already a provider error.
    Other(ProviderError),
}

impl Failure {
    /// Whether Google said NOT_FOUND.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { code: 404, .. })
    }

    /// Whether the version asked for is disabled or destroyed (upstream's test).
    pub(crate) fn is_disabled_or_destroyed(&self) -> bool {
        matches!(self, Self::Status { status, message, .. }
            if status == "FAILED_PRECONDITION"
                && (message.contains("DESTROYED state") || message.contains("DISABLED state")))
    }

    /// The provider error, naming `key`.
    pub(crate) fn for_key(self, key: &str) -> ProviderError {
        match self {
            Self::Other(e) => e,
            Self::Status {
                code,
                status,
                message,
                retry_after,
            } => {
                let msg = format!("{status} ({code}) for {key:?}: {message}");
                match code {
                    404 => ProviderError::not_found_in(key, message),
                    403 => ProviderError::PermissionDenied(msg),
                    401 => ProviderError::Authentication(msg),
                    429 => ProviderError::Throttled {
                        retry_after,
                        message: msg,
                    },
                    500..=599 => ProviderError::Unavailable(msg),
                    400 if status == "FAILED_PRECONDITION" => ProviderError::Unavailable(msg),
                    400 => ProviderError::InvalidConfig(msg),
                    _ => ProviderError::Unavailable(msg),
                }
            }
        }
    }
}

/// A Secret Manager endpoint with a token cache.
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub tokens: Arc<Tokens>,
    pub env: ProviderEnv,
}

impl Api {
    /// Calls `method {base}/v1/{path}` (counted as `call`); JSON in, JSON out.
    pub(crate) async fn call(
        &self,
        call: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}/v1/{path}", self.base);
        let mut retried = false;
        loop {
            let token = self.tokens.get().await.map_err(Failure::Other)?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", token.bearer());
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = match req.send().await {
                Ok(resp) => read(resp).await,
                Err(e) => Err(Failure::Other(ProviderError::Unavailable(format!(
                    "Secret Manager could not be reached: {}",
                    without_url(&e)
                )))),
            };
            self.env.calls.observe(METRIC_NAME, call, result.is_ok());
            match result {
                Err(Failure::Status { code: 401, .. }) if !retried => {
                    // Expired or revoked before we thought: one new token, one more try.
                    self.tokens.reject(&token).await;
                    retried = true;
                }
                other => return other,
            }
        }
    }
}

async fn read(resp: reqwest::Response) -> Result<Value, Failure> {
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.map_err(|e| {
        Failure::Other(ProviderError::Unavailable(format!(
            "reading the Secret Manager answer failed: {e}"
        )))
    })?;
    if (200..300).contains(&code) {
        return serde_json::from_slice(&body).map_err(|_| {
            Failure::Other(ProviderError::Malformed(
                "Secret Manager answered something that is not JSON".into(),
            ))
        });
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let err = &parsed["error"];
    Err(Failure::Status {
        code,
        status: err["status"].as_str().unwrap_or("UNKNOWN").to_string(),
        message: err["message"]
            .as_str()
            .unwrap_or("no error message")
            .chars()
            .take(300)
            .collect(),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn status(code: u16, status: &str, message: &str) -> Failure {
        Failure::Status {
            code,
            status: status.into(),
            message: message.into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    }

    #[test]
    fn google_errors_map_to_categories() {
        assert!(status(404, "NOT_FOUND", "x").for_key("k").is_not_found());
        assert_eq!(
            status(403, "PERMISSION_DENIED", "x")
                .for_key("k")
                .category(),
            "permission_denied"
        );
        let t = status(429, "RESOURCE_EXHAUSTED", "quota").for_key("k");
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            status(503, "UNAVAILABLE", "x").for_key("k").category(),
            "unavailable"
        );
        assert_eq!(
            status(500, "INTERNAL", "x").for_key("k").category(),
            "unavailable"
        );
        let disabled = status(
            400,
            "FAILED_PRECONDITION",
            "Secret Version [v] is in DISABLED state.",
        );
        assert!(disabled.is_disabled_or_destroyed());
        assert_eq!(
            status(400, "INVALID_ARGUMENT", "x").for_key("k").category(),
            "invalid_config"
        );
    }
}

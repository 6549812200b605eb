//! Key Vault's REST API (`api-version` 7.4): every request goes through [`Vault::send`], which
//! adds the bearer token, follows one 401 challenge, counts the call under upstream's name and
//! sorts failures into [`ProviderError`]s that carry Key Vault's error code and message (they
//! name objects, never values) and never a response body.

use std::sync::RwLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError};
use url::Url;

use crate::METRIC_NAME;
use crate::challenge;
use crate::config::invalid;
use crate::token::TokenSource;

/// The Key Vault API version spoken.
pub(crate) const API_VERSION: &str = "7.4";
/// Page size of secret listings (Key Vault's maximum).
pub(crate) const PAGE_SIZE: &str = "25";

/// Upstream's call names (`CallAzureKV*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    GetSecret,
    GetSecrets,
    GetCertificate,
    GetKey,
    SetSecret,
    RecoverSecret,
    ImportCertificate,
    ImportKey,
    DeleteSecret,
    DeleteCertificate,
    DeleteKey,
}

impl Call {
    /// The `call` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetSecret => "GetSecret",
            Self::GetSecrets => "GetSecrets",
            Self::GetCertificate => "GetCertificate",
            Self::GetKey => "GetKey",
            Self::SetSecret => "SetSecret",
            Self::RecoverSecret => "RecoverSecret",
            Self::ImportCertificate => "ImportCertificate",
            Self::ImportKey => "ImportKey",
            Self::DeleteSecret => "DeleteSecret",
            Self::DeleteCertificate => "DeleteCertificate",
            Self::DeleteKey => "DeleteKey",
        }
    }
}

/// One vault, its token source and the resource its tokens are for.
pub(crate) struct Vault {
    http: reqwest::Client,
    base: Url,
    host: String,
    resource: RwLock<String>,
    tokens: TokenSource,
    env: ProviderEnv,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("base", &self.base.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// The causes of a transport failure (refused, timeout, TLS), without any body.
pub(crate) fn transport_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

/// Key Vault's `{"error":{"code","message","innererror":{"code"}}}`, shortened.
fn service_error(body: &Value) -> (String, String) {
    let error = body.get("error");
    let code = error
        .and_then(|e| e.get("innererror"))
        .and_then(|i| i.get("code"))
        .or_else(|| error.and_then(|e| e.get("code")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    (code, message)
}

/// Sorts a Key Vault failure; `what` describes the request, `name` the object.
fn failure(
    status: u16,
    body: &Value,
    wait: Option<Duration>,
    what: &str,
    name: &str,
) -> ProviderError {
    let (code, message) = service_error(body);
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("{what}: HTTP {status}"),
        (false, true) => format!("{what}: {code} (HTTP {status})"),
        _ => format!("{what}: {code}: {message} (HTTP {status})"),
    };
    match status {
        404 => ProviderError::not_found(name),
        401 => ProviderError::Authentication(detail),
        403 => ProviderError::PermissionDenied(detail),
        429 => ProviderError::Throttled {
            retry_after: wait,
            message: detail,
        },
        400 | 409 => ProviderError::InvalidConfig(detail),
        s if s >= 500 => ProviderError::Unavailable(detail),
        _ => ProviderError::Malformed(detail),
    }
}

impl Vault {
    /// A vault at `base` (HTTPS, checked by the config) whose tokens are first asked for
    /// `resource`.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        host: String,
        resource: String,
        tokens: TokenSource,
        env: ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let base = Url::parse(&format!("{base}/"))
            .map_err(|_| invalid(format!("vaultUrl {base:?} is not a URL")))?;
        Ok(Self {
            http,
            base,
            host,
            resource: RwLock::new(resource),
            tokens,
            env,
        })
    }

    /// `{vault}/{segments...}?api-version=7.4` plus `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", API_VERSION);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// A `nextLink` of a listing, accepted only on the vault's own HTTPS host.
    pub fn next_link(&self, link: &str) -> Result<Url, ProviderError> {
        let url = Url::parse(link)
            .map_err(|_| ProviderError::Malformed("a listing's nextLink is not a URL".into()))?;
        let same = url.scheme() == "https"
            && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.host.as_str())
            && url.port_or_known_default() == self.base.port_or_known_default();
        if !same {
            return Err(ProviderError::Malformed(
                "a listing's nextLink points outside the vault".into(),
            ));
        }
        Ok(url)
    }

    fn resource(&self) -> String {
        match self.resource.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A valid token (checks the credentials: store validation).
    pub async fn check_login(&self) -> Result<(), ProviderError> {
        self.tokens.get(&self.resource()).await.map(|_| ())
    }

    /// Sends one request; `what` describes it in messages, `name` is the object (NotFound).
    pub async fn send(
        &self,
        call: Call,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
        name: &str,
    ) -> Result<Value, ProviderError> {
        let result = self.send_once_or_twice(method, url, body, what, name).await;
        self.env
            .calls
            .observe(METRIC_NAME, call.name(), result.is_ok());
        result
    }

    async fn send_once_or_twice(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
        name: &str,
    ) -> Result<Value, ProviderError> {
        let mut followed = false;
        loop {
            let resource = self.resource();
            let token = self.tokens.get(&resource).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = request.send().await.map_err(|e| {
                ProviderError::Unavailable(format!(
                    "{what}: the vault cannot be reached: {}",
                    transport_text(&e)
                ))
            })?;
            let status = response.status().as_u16();
            if status == 401 && !followed {
                followed = true;
                self.tokens.invalidate(&resource, &token).await;
                if let Some(ch) = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(challenge::parse)
                    && let Some(wanted) = ch.resource
                    && wanted != resource
                {
                    if !challenge::resource_fits(&wanted, &self.host) {
                        return Err(ProviderError::Authentication(format!(
                            "{what}: the vault's challenge names resource {wanted:?}, which is not the vault's domain {:?}",
                            self.host
                        )));
                    }
                    tracing::info!(resource = %wanted, "following the vault's authentication challenge");
                    if let Ok(mut r) = self.resource.write() {
                        *r = wanted;
                    }
                }
                continue;
            }
            let wait = retry_after(response.headers());
            let text = response.bytes().await.map_err(|e| {
                ProviderError::Unavailable(format!(
                    "{what}: reading the answer failed: {}",
                    transport_text(&e)
                ))
            })?;
            let parsed: Option<Value> = serde_json::from_slice(&text).ok();
            if (200..300).contains(&status) {
                return match parsed {
                    Some(v) => Ok(v),
                    None if text.is_empty() => Ok(Value::Null),
                    None => Err(ProviderError::Malformed(format!(
                        "{what}: the answer is not JSON"
                    ))),
                };
            }
            return Err(failure(
                status,
                &parsed.unwrap_or(Value::Null),
                wait,
                what,
                name,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_to_categories() {
        let body = json!({"error": {"code": "SecretNotFound", "message": "A secret with (name/id) db was not found in this key vault."}});
        assert!(failure(404, &body, None, "get secret \"db\"", "db").is_not_found());
        let forbidden = json!({"error": {"code": "Forbidden", "message": "The user does not have secrets get permission", "innererror": {"code": "AccessDenied"}}});
        let e = failure(403, &forbidden, None, "get", "db");
        assert!(matches!(&e, ProviderError::PermissionDenied(m) if m.contains("AccessDenied")));
        let e = failure(429, &Value::Null, Some(Duration::from_secs(7)), "get", "db");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(failure(503, &Value::Null, None, "get", "db").is_retryable());
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
    }
}

//! Microsoft Entra ID tokens: the four ways upstream gets one, and a cache that keeps each
//! token (per resource) until shortly before it expires. One exchange runs at a time per
//! client, so concurrent reads waiting for a token share it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use sha1::Digest;
use strongroom_provider_api::{CredentialResolver, ProviderError, SecretBytes};

use crate::config::invalid;

/// The audience of ServiceAccount tokens exchanged with Entra ID (upstream's).
pub(crate) const WORKLOAD_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The client assertion type of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// IMDS's API version (the one upstream's SDK sends).
const IMDS_API_VERSION: &str = "2018-02-01";
/// How long a client assertion is valid.
const ASSERTION_SECONDS: u64 = 600;
/// The longest a token is refreshed before it expires.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Where a federated (workload identity) assertion comes from.
pub(crate) enum AssertionSource {
    /// A TokenRequest token for this ServiceAccount, minted per exchange.
    ServiceAccount {
        namespace: String,
        name: String,
        audiences: Vec<String>,
    },
    /// `AZURE_FEDERATED_TOKEN_FILE`, read per exchange (the kubelet rotates it).
    File(PathBuf),
}

/// The credential a client logs in with.
pub(crate) enum Credential {
    /// Service principal with a client secret.
    ClientSecret {
        client_id: String,
        secret: SecretBytes,
    },
    /// Service principal with a certificate: an RS256 client assertion carrying its `x5t`.
    ClientCertificate {
        client_id: String,
        key: Box<EncodingKey>,
        x5t: String,
    },
    /// Workload identity: a federated ServiceAccount token as the client assertion.
    Federated {
        client_id: String,
        source: AssertionSource,
    },
    /// Managed identity through IMDS (`identity` = a user-assigned identity's client id).
    Managed {
        url: String,
        identity: Option<String>,
    },
}

impl Credential {
    /// A certificate credential from the `clientCertificate` Secret value: PEM holding the
    /// certificate and its RSA private key. Messages never quote the input.
    pub fn certificate(client_id: String, pem: &SecretBytes) -> Result<Self, ProviderError> {
        let bad = |what: &str| {
            ProviderError::Authentication(format!(
                "authSecretRef.clientCertificate {what} (want PEM with a CERTIFICATE and an RSA PRIVATE KEY)"
            ))
        };
        let cert = CertificateDer::pem_slice_iter(pem.expose())
            .find_map(Result::ok)
            .ok_or_else(|| bad("holds no certificate"))?;
        let key =
            PrivateKeyDer::from_pem_slice(pem.expose()).map_err(|_| bad("holds no private key"))?;
        let key = match key {
            PrivateKeyDer::Pkcs1(k) => EncodingKey::from_rsa_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(k.secret_pkcs8_der());
                let pem =
                    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
                EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| bad("has a key that is not RSA"))?
            }
            _ => return Err(bad("has a key that is not RSA")),
        };
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(cert.as_ref()));
        Ok(Self::ClientCertificate {
            client_id,
            key: Box::new(key),
            x5t,
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::ClientSecret { .. } => "client secret",
            Self::ClientCertificate { .. } => "client certificate",
            Self::Federated { .. } => "workload identity",
            Self::Managed { .. } => "managed identity",
        }
    }
}

/// A bearer token; its Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(Arc<str>);

impl AccessToken {
    /// The token text, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Gets and caches tokens for one client.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    /// `{authority}/{tenant}/oauth2/v2.0/token` (unused by managed identity).
    token_url: String,
    credential: Credential,
    resolver: Arc<dyn CredentialResolver>,
    cache: tokio::sync::Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("credential", &self.credential.describe())
            .finish_non_exhaustive()
    }
}

/// The token endpoint of `tenant` at `authority`.
pub(crate) fn token_url(authority: &str, tenant: &str) -> Result<String, ProviderError> {
    let tenant = tenant.trim();
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(invalid("the tenant id is empty or not a tenant id"));
    }
    Ok(format!("{authority}/{tenant}/oauth2/v2.0/token"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When to refresh a token living `lifetime`: a fifth of its life before it ends, at most
/// five minutes before.
fn refresh_at(lifetime: Duration) -> Instant {
    let margin = (lifetime / 5).min(MAX_REFRESH_MARGIN);
    Instant::now() + lifetime.saturating_sub(margin)
}

/// `expires_in` as Entra ID (a number) or IMDS (a string) sends it.
fn seconds(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl TokenSource {
    /// A source for `credential`; `token_url` from [`token_url`] (empty for managed identity).
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        credential: Credential,
        resolver: Arc<dyn CredentialResolver>,
    ) -> Self {
        Self {
            http,
            token_url,
            credential,
            resolver,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A valid token for `resource`, from the cache or a new exchange.
    pub async fn get(&self, resource: &str) -> Result<AccessToken, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(resource)
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.exchange(resource).await?;
        tracing::debug!(
            resource,
            credential = self.credential.describe(),
            lifetime_seconds = lifetime.as_secs(),
            "got an Entra ID token"
        );
        cache.insert(
            resource.to_string(),
            Cached {
                token: token.clone(),
                refresh_at: refresh_at(lifetime),
            },
        );
        Ok(token)
    }

    /// Forgets `token` for `resource` (the vault refused it), unless a newer one is cached.
    pub async fn invalidate(&self, resource: &str, token: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache.get(resource).is_some_and(|c| &c.token == token) {
            cache.remove(resource);
        }
    }

    async fn exchange(&self, resource: &str) -> Result<(AccessToken, Duration), ProviderError> {
        let scope = format!("{resource}/.default");
        let request = match &self.credential {
            Credential::Managed { url, identity } => {
                let mut query = vec![
                    ("api-version", IMDS_API_VERSION.to_string()),
                    ("resource", resource.to_string()),
                ];
                if let Some(id) = identity {
                    // An Azure resource id names the identity by path, a client id by GUID.
                    let param = if id.contains('/') {
                        "mi_res_id"
                    } else {
                        "client_id"
                    };
                    query.push((param, id.clone()));
                }
                self.http.get(url).header("Metadata", "true").query(&query)
            }
            Credential::ClientSecret { client_id, secret } => {
                let secret = secret
                    .expose_str()
                    .ok_or_else(|| {
                        ProviderError::Authentication("the client secret is not UTF-8".into())
                    })?
                    .trim()
                    .to_string();
                self.http.post(&self.token_url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("scope", &scope),
                    ("client_secret", &secret),
                ])
            }
            Credential::ClientCertificate {
                client_id,
                key,
                x5t,
            } => {
                let assertion = self.client_assertion(client_id, key, x5t)?;
                self.assertion_form(client_id, &scope, &assertion)
            }
            Credential::Federated { client_id, source } => {
                let assertion = self.federated_assertion(source).await?;
                self.assertion_form(client_id, &scope, &assertion)
            }
        };
        let whom = match &self.credential {
            Credential::Managed { url, .. } => format!("the managed identity endpoint {url}"),
            _ => format!("the login authority {}", self.token_url),
        };
        let response = request.send().await.map_err(|e| {
            ProviderError::Unavailable(format!(
                "cannot reach {whom}: {}",
                crate::vault::transport_text(&e)
            ))
        })?;
        let status = response.status();
        let retry_after = crate::vault::retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(token_failure(
                status.as_u16(),
                &body,
                retry_after,
                &whom,
                self.credential.describe(),
            ));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ProviderError::Malformed(format!("{whom} answered without an access_token"))
            })?;
        let lifetime = seconds(body.get("expires_in"))
            .or_else(|| seconds(body.get("expires_on")).map(|on| on.saturating_sub(now_secs())))
            .ok_or_else(|| {
                ProviderError::Malformed(format!("{whom} answered without expires_in"))
            })?;
        Ok((AccessToken(Arc::from(token)), Duration::from_secs(lifetime)))
    }

    fn assertion_form(
        &self,
        client_id: &str,
        scope: &str,
        assertion: &str,
    ) -> reqwest::RequestBuilder {
        self.http.post(&self.token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
    }

    /// The signed JWT a certificate credential presents (aud = the token endpoint).
    fn client_assertion(
        &self,
        client_id: &str,
        key: &EncodingKey,
        x5t: &str,
    ) -> Result<String, ProviderError> {
        let now = now_secs();
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(x5t.to_string());
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
        });
        jsonwebtoken::encode(&header, &claims, key).map_err(|_| {
            ProviderError::Authentication("signing the client assertion failed".into())
        })
    }

    async fn federated_assertion(&self, source: &AssertionSource) -> Result<String, ProviderError> {
        let token = match source {
            AssertionSource::ServiceAccount {
                namespace,
                name,
                audiences,
            } => {
                self.resolver
                    .service_account_token(namespace, name, audiences, None)
                    .await?
            }
            AssertionSource::File(path) => {
                SecretBytes::new(tokio::fs::read(path).await.map_err(|e| {
                    ProviderError::Authentication(format!(
                        "unable to read token file {}: {e}",
                        path.display()
                    ))
                })?)
            }
        };
        token
            .expose_str()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| {
                ProviderError::Authentication("the ServiceAccount token is not UTF-8".into())
            })
    }
}

/// A refused token request: Entra ID's `error` and the first line of `error_description`
/// (codes and explanations, never credentials).
fn token_failure(
    status: u16,
    body: &Value,
    retry_after: Option<Duration>,
    whom: &str,
    credential: &str,
) -> ProviderError {
    let code = body.get("error").and_then(Value::as_str).unwrap_or("");
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .unwrap_or("");
    let detail: String = format!(
        "{whom} refused the {credential} (HTTP {status}{}{})",
        if code.is_empty() {
            String::new()
        } else {
            format!(", {code}")
        },
        if description.is_empty() {
            String::new()
        } else {
            format!(": {description}")
        },
    )
    .chars()
    .take(400)
    .collect();
    match status {
        429 => ProviderError::Throttled {
            retry_after,
            message: detail,
        },
        s if s >= 500 => ProviderError::Unavailable(detail),
        _ => ProviderError::Authentication(detail),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn refresh_margin_is_a_fifth_at_most_five_minutes() {
        let soon = refresh_at(Duration::from_secs(10));
        let left = soon.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(8) && left > Duration::from_secs(7));
        let hour = refresh_at(Duration::from_secs(3600));
        let left = hour.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(3300) && left > Duration::from_secs(3290));
    }

    #[test]
    fn failures_keep_codes_not_secrets() {
        let body = serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"});
        let e = token_failure(401, &body, None, "the login authority", "client secret");
        let text = e.to_string();
        assert!(matches!(e, ProviderError::Authentication(_)));
        assert!(
            text.contains("invalid_client")
                && text.contains("AADSTS7000215")
                && !text.contains("Trace"),
            "{text}"
        );
        assert!(token_failure(503, &Value::Null, None, "x", "y").is_retryable());
        assert_eq!(seconds(Some(&Value::from("3599"))), Some(3599));
        assert!(token_url("https://a", "bad/tenant").is_err());
    }
}

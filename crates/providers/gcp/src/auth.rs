//! Where access tokens come from, in upstream's order: a service-account key from a Secret
//! (`auth.secretRef`), GKE Workload Identity (`auth.workloadIdentity`), Workload Identity
//! Federation (`auth.workloadIdentityFederation`), else Application Default Credentials (the
//! `GOOGLE_APPLICATION_CREDENTIALS` file, else the metadata server).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError};

use crate::METRIC_NAME;
use crate::endpoints::{Endpoints, checked_base};
use crate::token::AccessToken;

/// The OAuth scope every token is asked for.
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The ServiceAccount annotation naming the Google service account to impersonate (GKE's).
pub(crate) const GSA_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
/// Lifetime asked for ServiceAccount tokens.
const KSA_TOKEN_SECONDS: i64 = 3600;

/// A service-account JSON key (the fields used).
#[derive(Clone, Deserialize)]
pub(crate) struct ServiceAccountKey {
    /// The key's project.
    #[serde(default)]
    pub project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    token_uri: Option<String>,
}

/// An `authorized_user` ADC file (`gcloud auth application-default login`).
#[derive(Clone, Deserialize)]
pub(crate) struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    #[serde(default)]
    token_uri: Option<String>,
}

/// Where an external account's subject token comes from.
#[derive(Clone)]
pub(crate) enum Subject {
    /// A TokenRequest for a Kubernetes ServiceAccount `(namespace, name, audiences)`.
    ServiceAccount(String, String, Vec<String>),
    /// A file (`credential_source.file`), text or a JSON field.
    File(String, Option<String>),
    /// A URL (`credential_source.url`) with headers, text or a JSON field.
    Url(String, Vec<(String, String)>, Option<String>),
}

/// An STS token exchange (GKE Workload Identity and Workload Identity Federation), then
/// optionally an impersonated service account's token.
#[derive(Clone)]
pub(crate) struct Exchange {
    pub subject: Subject,
    pub subject_token_type: String,
    pub audience: String,
    pub token_url: String,
    /// `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
    pub impersonation_url: Option<String>,
}

/// How a client obtains access tokens.
#[derive(Clone)]
pub(crate) enum Kind {
    /// A JWT signed with the key, exchanged at the key's `token_uri`.
    Key(Box<ServiceAccountKey>),
    /// A refresh token.
    User(Box<AuthorizedUser>),
    /// STS exchange (+ impersonation).
    Exchange(Box<Exchange>),
    /// The metadata server's default service account.
    Metadata,
}

/// A token source with what it needs to talk.
pub(crate) struct Source {
    pub kind: Kind,
    pub http: reqwest::Client,
    pub env: ProviderEnv,
    pub endpoints: Endpoints,
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IamToken {
    access_token: String,
    expire_time: String,
}

fn auth_err(msg: impl Into<String>) -> ProviderError {
    ProviderError::Authentication(msg.into())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Source {
    /// A new token.
    pub(crate) async fn fetch(&self) -> Result<AccessToken, ProviderError> {
        match &self.kind {
            Kind::Key(key) => self.key_token(key).await,
            Kind::User(user) => self.user_token(user).await,
            Kind::Exchange(ex) => self.exchange(ex).await,
            Kind::Metadata => self.metadata_token().await,
        }
    }

    fn observe(&self, call: &str, ok: bool) {
        self.env.calls.observe(METRIC_NAME, call, ok);
    }

    /// POSTs a form to an OAuth endpoint and reads an OAuth token answer.
    async fn oauth_form(
        &self,
        call: &str,
        url: &str,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<AccessToken, ProviderError> {
        let url = checked_base(url, what)?;
        let result = self.http.post(&url).form(form).send().await;
        let answer = read_oauth(result, what).await;
        self.observe(call, answer.is_ok());
        let token: OAuthToken = answer?;
        Ok(AccessToken::new(
            token.access_token,
            Duration::from_secs(token.expires_in.unwrap_or(3600)),
        ))
    }

    async fn key_token(&self, key: &ServiceAccountKey) -> Result<AccessToken, ProviderError> {
        let token_uri = key
            .token_uri
            .clone()
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": key.client_email,
            "scope": CLOUD_PLATFORM,
            "aud": token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = key.private_key_id.clone();
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|_| auth_err("the service-account key's private_key is not an RSA PEM key"))?;
        let assertion = jsonwebtoken::encode(&header, &claims, &signing)
            .map_err(|_| auth_err("signing the service-account JWT failed"))?;
        self.oauth_form(
            "OAuth2Token",
            &token_uri,
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
            "the service-account key's token_uri",
        )
        .await
    }

    async fn user_token(&self, user: &AuthorizedUser) -> Result<AccessToken, ProviderError> {
        let token_uri = user
            .token_uri
            .clone()
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        self.oauth_form(
            "OAuth2Token",
            &token_uri,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &user.client_id),
                ("client_secret", &user.client_secret),
                ("refresh_token", &user.refresh_token),
            ],
            "the authorized_user token_uri",
        )
        .await
    }

    async fn metadata_token(&self) -> Result<AccessToken, ProviderError> {
        let url = format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            self.endpoints.metadata_base()
        );
        let result = self
            .http
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await;
        let answer = read_oauth(result, "the metadata server").await;
        self.observe("OAuth2Token", answer.is_ok());
        let token: OAuthToken = answer?;
        Ok(AccessToken::new(
            token.access_token,
            Duration::from_secs(token.expires_in.unwrap_or(3600)),
        ))
    }

    async fn subject_token(&self, subject: &Subject) -> Result<String, ProviderError> {
        match subject {
            Subject::ServiceAccount(ns, name, audiences) => {
                let token = self
                    .env
                    .credentials
                    .service_account_token(ns, name, audiences, Some(KSA_TOKEN_SECONDS))
                    .await;
                self.observe("GenerateServiceAccountToken", token.is_ok());
                let token = token?;
                std::str::from_utf8(token.expose())
                    .map(|t| t.trim().to_string())
                    .map_err(|_| auth_err("the ServiceAccount token is not UTF-8"))
            }
            Subject::File(path, field) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    auth_err(format!(
                        "reading the subject token file {path:?} failed: {e}"
                    ))
                })?;
                subject_field(&text, field.as_deref(), path)
            }
            Subject::Url(url, headers, field) => {
                let mut req = self.http.get(url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let resp = req.send().await.map_err(|e| {
                    ProviderError::Unavailable(format!("fetching the subject token failed: {e}"))
                })?;
                if !resp.status().is_success() {
                    return Err(auth_err(format!(
                        "the subject token URL answered {}",
                        resp.status()
                    )));
                }
                let text = resp.text().await.map_err(|e| {
                    ProviderError::Unavailable(format!("reading the subject token failed: {e}"))
                })?;
                subject_field(&text, field.as_deref(), url)
            }
        }
    }

    async fn exchange(&self, ex: &Exchange) -> Result<AccessToken, ProviderError> {
        let subject = self.subject_token(&ex.subject).await?;
        let federated = self
            .oauth_form(
                "GenerateIDBindToken",
                &ex.token_url,
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("audience", &ex.audience),
                    ("scope", CLOUD_PLATFORM),
                    ("requested_token_type", ACCESS_TOKEN_TYPE),
                    ("subject_token_type", &ex.subject_token_type),
                    ("subject_token", &subject),
                ],
                "the STS token URL",
            )
            .await?;
        let Some(url) = &ex.impersonation_url else {
            return Ok(federated);
        };
        let url = checked_base(url, "the service-account impersonation URL")?;
        let result = self
            .http
            .post(&url)
            .header("Authorization", federated.bearer())
            .json(&serde_json::json!({"scope": [CLOUD_PLATFORM]}))
            .send()
            .await;
        let answer: Result<IamToken, _> = read_oauth(result, "generateAccessToken").await;
        self.observe("GenerateAccessToken", answer.is_ok());
        let token = answer?;
        let lifetime = expiry_lifetime(&token.expire_time).unwrap_or(Duration::from_secs(3600));
        Ok(AccessToken::new(token.access_token, lifetime))
    }
}

/// A plain value of the metadata server (`project/project-id`,
/// `instance/attributes/cluster-name`, ...), as upstream looks up what the store leaves out.
pub(crate) async fn metadata_value(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    path: &str,
) -> Result<String, ProviderError> {
    let url = format!("{}/computeMetadata/v1/{path}", endpoints.metadata_base());
    let resp = http
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| {
            ProviderError::InvalidConfig(format!(
                "{path} is not set and the metadata server could not be asked ({})",
                without_url(&e)
            ))
        })?;
    if !resp.status().is_success() {
        return Err(ProviderError::InvalidConfig(format!(
            "{path} is not set and the metadata server answered {}",
            resp.status()
        )));
    }
    let text = resp.text().await.map_err(|e| {
        ProviderError::Unavailable(format!("reading {path} from the metadata server: {e}"))
    })?;
    Ok(text.trim().to_string())
}

/// The subject token in `text`: all of it, or a JSON field of it.
fn subject_field(text: &str, field: Option<&str>, from: &str) -> Result<String, ProviderError> {
    match field {
        None => Ok(text.trim().to_string()),
        Some(f) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get(f).and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                auth_err(format!(
                    "the subject token from {from:?} has no field {f:?}"
                ))
            }),
    }
}

/// Seconds from now until an RFC 3339 UTC time (`2024-01-01T00:00:00Z`, fractions allowed).
fn expiry_lifetime(rfc3339: &str) -> Option<Duration> {
    let (date, time) = rfc3339.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let days = days_from_civil(y, m, day);
    let at = days * 86_400 + h * 3600 + min * 60 + s;
    let now = i64::try_from(unix_now()).ok()?;
    u64::try_from(at - now).ok().map(Duration::from_secs)
}

/// Howard Hinnant's days-from-civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads an OAuth/Google answer: JSON on success, the error's description otherwise.
async fn read_oauth<T: serde::de::DeserializeOwned>(
    result: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<T, ProviderError> {
    let resp = result.map_err(|e| {
        ProviderError::Unavailable(format!("{what} could not be reached: {}", without_url(&e)))
    })?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| {
        ProviderError::Unavailable(format!("{what}: reading the answer failed: {e}"))
    })?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Malformed(format!("{what} answered a non-token body")));
    }
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .map(|v| {
            let desc = v["error_description"]
                .as_str()
                .or_else(|| v["error"]["message"].as_str())
                .unwrap_or_default();
            let code = v["error"].as_str().unwrap_or_default();
            format!("{code} {desc}")
                .trim()
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let msg = format!("{what} answered {status}: {detail}");
    Err(match status.as_u16() {
        429 => ProviderError::Throttled {
            retry_after: None,
            message: msg,
        },
        500..=599 => ProviderError::Unavailable(msg),
        _ => ProviderError::Authentication(msg),
    })
}

/// A reqwest error without the URL's query (none carries secrets here, but keep it short).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn expiry_times() {
        let secs = unix_now() + 600;
        let days = (secs / 86_400) as i64;
        // Round trip through days_from_civil with a known date.
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(days > 0);
        assert!(expiry_lifetime("1999-01-01T00:00:00Z").is_none());
        let l = expiry_lifetime("2999-01-01T00:00:00.123Z").unwrap();
        assert!(l > Duration::from_secs(86_400 * 365));
    }

    #[test]
    fn subject_fields() {
        assert_eq!(subject_field(" t \n", None, "f").unwrap(), "t");
        assert_eq!(
            subject_field(r#"{"id_token":"x"}"#, Some("id_token"), "f").unwrap(),
            "x"
        );
        assert!(subject_field("nope", Some("id_token"), "f").is_err());
    }
}

//! The GithubAccessToken generator: a GitHub App installation token, as upstream gets it.
//!
//! Spec fields: `appID`, `installID`, `url` (the API root, `https://api.github.com` when
//! empty), `repositories` and `permissions` (passed on to GitHub to narrow the token), and
//! `auth.privateKey.secretRef{name, key}` (the app's PEM private key, RSA in PKCS#1 or PKCS#8,
//! in a Secret of the ExternalSecret's namespace).
//!
//! The controller signs an RS256 JWT (`iss` the app id, `iat` ten seconds ago, `exp` in five
//! minutes) and POSTs `{url}/app/installations/{installID}/access_tokens` with it as bearer
//! token, `Accept: application/vnd.github.v3+json` and a JSON body holding `permissions` and
//! `repositories` when set (none otherwise). The answer's `token` is the one output key,
//! `token`. A call is given up after five seconds, as upstream's. An answer of 300 or more
//! gives its `message` member (GitHub's error text) and status in the error; messages never
//! carry the key or a token.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde::{Deserialize, Serialize};
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap};

/// The API root when the spec names none.
pub const DEFAULT_API: &str = "https://api.github.com";
/// How long the call may take, as upstream's client.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Metric labels of the call.
const METRIC: (&str, &str) = ("GitHub", "CreateInstallationToken");

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(rename = "appID", default)]
    app_id: String,
    #[serde(rename = "installID", default)]
    install_id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    repositories: Vec<String>,
    permissions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    auth: Auth,
}

/// `auth`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Auth {
    #[serde(default)]
    private_key: PrivateKeyRef,
}

/// `auth.privateKey`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PrivateKeyRef {
    #[serde(default)]
    secret_ref: KeyRef,
}

/// `auth.privateKey.secretRef`.
#[derive(Deserialize, Default)]
struct KeyRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// The app JWT's claims.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
}

/// The request body: what narrows the token.
#[derive(Serialize)]
struct Narrowing<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    repositories: &'a [String],
}

/// The app JWT for `app_id`, signed with the PEM private key `pem`, issued at `now`.
pub fn app_jwt(pem: &[u8], app_id: &str, now: i64) -> Result<String, String> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem)
        .map_err(|_| "error parsing RSA private key: not a PEM RSA private key".to_string())?;
    let claims = Claims {
        iss: app_id,
        iat: now - 10,
        exp: now + 300,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| format!("can't get InstallationToken: error signing token: {e}"))
}

/// Runs the GithubAccessToken generator `spec` (as written in the generator object) for an
/// ExternalSecret in `namespace`.
pub async fn generate(
    client: &kube::Client,
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let spec: Spec = super::parse_spec(spec)?;
    let selector = &spec.auth.private_key.secret_ref;
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&selector.name)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => format!(
                "error getting GH pem from secret: secrets {:?} not found",
                selector.name
            ),
            other => format!("error getting GH pem from secret: {other}"),
        })?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&selector.key))
        .map(|v| v.0.clone())
        .unwrap_or_default();
    let jwt = app_jwt(&pem, &spec.app_id, chrono::Utc::now().timestamp())?;
    let root = if spec.url.is_empty() {
        DEFAULT_API
    } else {
        spec.url.as_str()
    };
    let url = format!("{root}/app/installations/{}/access_tokens", spec.install_id);
    let http = super::system_http_client(TIMEOUT)?;
    let mut request = http
        .post(&url)
        .bearer_auth(jwt)
        .header(reqwest::header::ACCEPT, "application/vnd.github.v3+json");
    let narrowing = Narrowing {
        permissions: spec.permissions.as_ref(),
        repositories: &spec.repositories,
    };
    if narrowing.permissions.is_some() || !narrowing.repositories.is_empty() {
        let body =
            serde_json::to_vec(&narrowing).map_err(|e| format!("error marshaling payload: {e}"))?;
        request = request.body(body);
    } else {
        request = request.body(Vec::new());
    }
    let sent = request.send().await;
    env.calls.observe(METRIC.0, METRIC.1, sent.is_ok());
    let response =
        sent.map_err(|e| format!("error performing request: {}", super::http_error(e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("error performing request: {}", super::http_error(e)))?;
    let answer = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body);
    if status.as_u16() >= 300 {
        return Err(match answer.ok().as_ref().and_then(|a| a.get("message")) {
            Some(serde_json::Value::String(m)) => format!(
                "error generating token: response code: {}, response: {m}",
                status.as_u16()
            ),
            Some(other) => format!(
                "error generating token: response code: {}, response: {other}",
                status.as_u16()
            ),
            None => format!(
                "error generating token, failed to extract error message from github request: response code: {}",
                status.as_u16()
            ),
        });
    }
    let answer = answer.map_err(|e| format!("error decoding response: {e}"))?;
    match answer.get("token") {
        Some(serde_json::Value::String(token)) => Ok(BTreeMap::from([(
            "token".to_string(),
            SecretBytes::from(token.as_str()),
        )])),
        _ => Err("token isn't a string or token key doesn't exist".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_quoting_it() {
        let e = app_jwt(b"canary-not-a-key", "42", 0)
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("error parsing RSA private key") && !e.contains("canary"));
    }
}

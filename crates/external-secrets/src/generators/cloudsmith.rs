//! The CloudsmithAccessToken generator: a Cloudsmith API token by OIDC exchange, as upstream
//! gets it.
//!
//! Spec fields: `apiUrl` (`https://api.cloudsmith.io` when empty), `orgSlug`, `serviceSlug`
//! and `serviceAccountRef` (`name`, `audiences`: a ServiceAccount of the ExternalSecret's
//! namespace whose token, from the TokenRequest API, is the OIDC token exchanged). The
//! controller POSTs `{"oidc_token", "service_slug"}` as JSON to `{apiUrl}/openid/{orgSlug}/`
//! (system roots, 30 seconds at most, as upstream); the answer must be 201 with a JWT under
//! `token`.
//!
//! Outputs (as upstream): `auth` (base64 of `token:<token>`, for a docker config) and `expiry`
//! (the token's `exp`, Unix seconds). Errors carry no token.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap};

/// The API root when the spec names none.
pub const DEFAULT_API: &str = "https://api.cloudsmith.io";
/// How long the call may take, as upstream's client.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    org_slug: String,
    #[serde(default)]
    service_slug: String,
    #[serde(default)]
    service_account_ref: serde_json::Value,
}

/// Runs the CloudsmithAccessToken generator `spec` for an ExternalSecret in `namespace`.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let spec: Spec = super::parse_spec(spec)?;
    let identity = super::service_account_token(env, namespace, &spec.service_account_ref).await?;
    let api = if spec.api_url.is_empty() {
        DEFAULT_API
    } else {
        spec.api_url.as_str()
    };
    let url = format!("{}/openid/{}/", api.trim_end_matches('/'), spec.org_slug);
    let http = super::system_http_client(TIMEOUT)?;
    let sent = http
        .post(url)
        .json(&serde_json::json!({
            "oidc_token": String::from_utf8_lossy(identity.expose()),
            "service_slug": spec.service_slug,
        }))
        .send()
        .await;
    env.calls
        .observe("Cloudsmith", "OIDCExchange", sent.is_ok());
    let exchange = |e: String| format!("unable to exchange OIDC token: {e}");
    let response = sent.map_err(|e| {
        exchange(format!(
            "failed to execute HTTP request: {}",
            super::http_error(e)
        ))
    })?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        return Err(exchange(format!(
            "request failed due to unexpected status: {status}"
        )));
    }
    let body = response.bytes().await.map_err(|e| {
        exchange(format!(
            "failed to read response body: {}",
            super::http_error(e)
        ))
    })?;
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| exchange(format!("failed to unmarshal response: {e}")))?;
    let token = answer
        .get("token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| exchange("token not found in response".into()))?;
    let expiry = super::jwt_expiry(token)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("token:{token}"));
    Ok(BTreeMap::from([
        ("auth".to_string(), SecretBytes::from(auth.as_str())),
        ("expiry".to_string(), SecretBytes::from(expiry.as_str())),
    ]))
}

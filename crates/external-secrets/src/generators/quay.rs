//! The QuayAccessToken generator: a Quay robot-account token by OIDC federation, as upstream
//! gets it.
//!
//! Spec fields: `url` (the Quay host, `quay.io` when empty; a leading `https://` is dropped),
//! `robotAccount` (`org+robot`) and `serviceAccountRef` (`name`, `audiences`: a ServiceAccount
//! of the ExternalSecret's namespace whose token, from the TokenRequest API, is the federated
//! identity). The controller calls `GET https://{url}/oauth2/federation/robot/token` with
//! basic auth `robotAccount` : the ServiceAccount token (HTTPS with the system roots, five
//! seconds at most, as upstream); the answer must be 200 with a JWT under `token`.
//!
//! Outputs (as upstream): `registry` (the host), `auth` (base64 of `robotAccount:token`, for a
//! docker config) and `expiry` (the token's `exp`, Unix seconds). Errors carry no token.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap};

/// The host when the spec names none.
pub const DEFAULT_HOST: &str = "quay.io";
/// How long the call may take, as upstream's client.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    url: String,
    #[serde(default)]
    robot_account: String,
    #[serde(default)]
    service_account_ref: serde_json::Value,
}

/// Runs the QuayAccessToken generator `spec` for an ExternalSecret in `namespace`.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let spec: Spec = super::parse_spec(spec)?;
    let identity = super::service_account_token(env, namespace, &spec.service_account_ref).await?;
    let host = if spec.url.is_empty() {
        DEFAULT_HOST
    } else {
        spec.url.strip_prefix("https://").unwrap_or(&spec.url)
    };
    let http = super::system_http_client(TIMEOUT)?;
    let sent = http
        .get(format!("https://{host}/oauth2/federation/robot/token"))
        .basic_auth(
            &spec.robot_account,
            Some(String::from_utf8_lossy(identity.expose())),
        )
        .send()
        .await;
    env.calls
        .observe("Quay", "FederationRobotToken", sent.is_ok());
    let response = sent.map_err(super::http_error)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("request failed do to unexpected status: {status}"));
    }
    let body = response.bytes().await.map_err(super::http_error)?;
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))?;
    let token = match answer.get("token") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => return Err("error when typecasting token to string".into()),
        None => return Err("token not found in response".into()),
    };
    let expiry = super::jwt_expiry(&token)?;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", spec.robot_account));
    Ok(BTreeMap::from([
        ("registry".to_string(), SecretBytes::from(host)),
        ("auth".to_string(), SecretBytes::from(auth.as_str())),
        ("expiry".to_string(), SecretBytes::from(expiry.as_str())),
    ]))
}

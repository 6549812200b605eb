//! The BeyondtrustWorkloadCredentialsDynamicSecret generator: fresh dynamic credentials from
//! BeyondTrust Workload Credentials at every run, as upstream asks for them.
//!
//! Spec fields: `provider` (upstream's BeyondTrust Workload Credentials store block):
//! `auth.apikey.token` (a Secret key in the ExternalSecret's namespace holding the API token,
//! sent as bearer), `server.apiUrl` (HTTPS) and `server.siteId` (a UUID), `folderPath` (the
//! dynamic secret definition, `folder/…/name`; required), `caBundle` (base64 PEM) or
//! `caProvider` (a Secret or ConfigMap key in the ExternalSecret's namespace) to trust instead
//! of the system roots. `controller` and `retrySettings` are accepted and not used (upstream's
//! generator does not use them either).
//!
//! One call: `POST {apiUrl}/{siteId}/secrets/dynamic/{name}/generate?folder={folder}` with the
//! `bt-secrets-api-version` header; the answer's `secret` gives the outputs (upstream's keys):
//! `accessKeyId`, `secretAccessKey`, `leaseId`, `expiration`, and `sessionToken` when there is
//! one. Nothing is left to clean up (upstream's cleanup does nothing). Errors give the status,
//! BeyondTrust's `error`/`message` and the folder, never the API token or a credential.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap, decode_ca_bundle};

/// How long the call may take (upstream's limit).
const TIMEOUT: Duration = Duration::from_secs(30);
/// The API version upstream's client asks for.
const API_VERSION: (&str, &str) = ("bt-secrets-api-version", "2026-04-28");
/// Metric label of the calls.
const METRIC: (&str, &str) = ("BeyondtrustWorkloadCredentials", "GenerateDynamicSecret");

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    provider: Option<Provider>,
}

/// `provider`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Provider {
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    server: Option<Server>,
    #[serde(default)]
    folder_path: String,
    #[serde(default)]
    ca_bundle: Option<String>,
    #[serde(default)]
    ca_provider: Option<CaProvider>,
}

/// `provider.auth`.
#[derive(Deserialize, Default)]
struct Auth {
    #[serde(default)]
    apikey: ApiKey,
}

/// `provider.auth.apikey`.
#[derive(Deserialize, Default)]
struct ApiKey {
    #[serde(default)]
    token: KeyRef,
}

/// A key of a Secret (or ConfigMap) in the ExternalSecret's namespace.
#[derive(Deserialize, Default)]
struct KeyRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// `provider.server`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Server {
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    site_id: String,
}

/// `provider.caProvider`.
#[derive(Deserialize, Default)]
struct CaProvider {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// The generated credentials (the answer's `secret`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Generated {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    session_token: String,
    #[serde(default)]
    lease_id: String,
    #[serde(default)]
    expiration: String,
}

/// The answer.
#[derive(Deserialize)]
struct Answer {
    secret: Generated,
}

/// Whether `text` is a version 4 UUID, as upstream checks `siteId`.
fn is_uuid_v4(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
}

/// `text` escaped for a URL path segment or query value.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The checked provider block: the generate URL, the folder, and the token's reference.
fn endpoint(provider: &Provider) -> Result<(String, String), String> {
    if provider.folder_path.is_empty() {
        return Err("path is required in spec (provider.folderPath)".into());
    }
    let (folder, name) = match provider.folder_path.rsplit_once('/') {
        Some((folder, name)) => (folder, name),
        None => ("", provider.folder_path.as_str()),
    };
    if name.is_empty() {
        return Err(format!(
            "invalid path: missing secret name in {:?}",
            provider.folder_path
        ));
    }
    let server = provider
        .server
        .as_ref()
        .ok_or("provider.server is required")?;
    let url = reqwest::Url::parse(&server.api_url)
        .map_err(|e| format!("invalid apiUrl {:?}: {e}", server.api_url))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "invalid apiUrl {:?}: it must be an https URL with a host",
            server.api_url
        ));
    }
    if !is_uuid_v4(&server.site_id) {
        return Err(format!(
            "invalid siteId: it must be a UUID (version 4), got {:?}",
            server.site_id
        ));
    }
    let mut target = format!(
        "{}/{}/secrets/dynamic/{}/generate",
        server.api_url.trim_end_matches('/'),
        server.site_id,
        escape(name)
    );
    if !folder.is_empty() {
        target.push_str(&format!("?folder={}", escape(folder)));
    }
    let shown = if folder.is_empty() { "/" } else { folder };
    Ok((target, shown.to_string()))
}

/// The CA PEM the provider block names: `caBundle`, else `caProvider` read in `namespace`.
async fn ca_pem(
    env: &ProviderEnv,
    namespace: &str,
    provider: &Provider,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(bundle) = provider.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        return decode_ca_bundle(bundle, "caBundle")
            .map(Some)
            .map_err(|e| e.to_string());
    }
    let Some(ca) = &provider.ca_provider else {
        return Ok(None);
    };
    let read = match ca.kind.as_str() {
        "Secret" => env
            .credentials
            .secret_key(namespace, &ca.name, &ca.key)
            .await
            .map(|b| b.expose().to_vec()),
        "ConfigMap" => env
            .credentials
            .config_map_key(namespace, &ca.name, &ca.key)
            .await
            .map(String::into_bytes),
        other => {
            return Err(format!(
                "caProvider.type {other:?} is not Secret or ConfigMap"
            ));
        }
    };
    read.map(Some)
        .map_err(|e| format!("failed to fetch CA certificate: {e}"))
}

/// BeyondTrust's complaint in an error answer (`error`, `message`), as upstream words it.
fn api_error(status: u16, body: &[u8], folder: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| {
        parsed
            .get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let what = match (text("error"), text("message")) {
        (Some(e), Some(m)) => format!("{e}: {m}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => "unexpected response".to_string(),
    };
    format!(
        "unable to generate dynamic secret: API error (HTTP {status}): {what} at path {folder:?}"
    )
}

/// Runs the generator `spec` for an ExternalSecret in `namespace`.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let spec: Spec = super::parse_spec(spec)?;
    let provider = spec
        .provider
        .ok_or("no beyondtrustworkloadcredentials provider config in spec")?;
    let (url, folder) = endpoint(&provider)?;
    let token_ref = provider
        .auth
        .as_ref()
        .map(|a| &a.apikey.token)
        .filter(|t| !t.name.is_empty() && !t.key.is_empty())
        .ok_or("provider.auth.apikey.token needs a Secret name and key")?;
    let token = env
        .credentials
        .secret_key(namespace, &token_ref.name, &token_ref.key)
        .await
        .map_err(|e| format!("failed to load credentials: {e}"))?;
    let token = String::from_utf8(token.expose().to_vec())
        .map_err(|_| "failed to load credentials: the API token is not UTF-8 text".to_string())?;
    let ca = ca_pem(env, namespace, &provider).await?;
    let http = strongroom_provider_webhook::http::http_client(ca.as_deref(), TIMEOUT)
        .map_err(|e| e.to_string())?;
    let sent = http
        .post(url)
        .bearer_auth(token.trim())
        .header(API_VERSION.0, API_VERSION.1)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await;
    env.calls.observe(METRIC.0, METRIC.1, sent.is_ok());
    let response = sent.map_err(|e| {
        format!(
            "unable to generate dynamic secret: {}",
            super::http_error(e)
        )
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| {
        format!(
            "unable to generate dynamic secret: {}",
            super::http_error(e)
        )
    })?;
    if status != 200 && status != 201 {
        return Err(api_error(status, &body, &folder));
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
        format!("unable to generate dynamic secret: failed to unmarshal the answer: {e}")
    })?;
    let g = answer.secret;
    let mut out = SecretMap::from([
        (
            "accessKeyId".to_string(),
            SecretBytes::from(g.access_key_id.as_str()),
        ),
        (
            "secretAccessKey".to_string(),
            SecretBytes::from(g.secret_access_key.as_str()),
        ),
        (
            "leaseId".to_string(),
            SecretBytes::from(g.lease_id.as_str()),
        ),
        (
            "expiration".to_string(),
            SecretBytes::from(g.expiration.as_str()),
        ),
    ]);
    if !g.session_token.is_empty() {
        out.insert(
            "sessionToken".to_string(),
            SecretBytes::from(g.session_token.as_str()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SITE: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";

    fn provider(v: serde_json::Value) -> Provider {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_endpoint_is_upstreams_and_bad_blocks_say_why() {
        let p = |path: &str, url: &str, site: &str| {
            endpoint(&provider(serde_json::json!({"folderPath": path,
                "server": {"apiUrl": url, "siteId": site}})))
        };
        assert_eq!(
            p("prod/aws team/temp", "https://bt.example.com/", SITE).unwrap(),
            (
                format!(
                    "https://bt.example.com/{SITE}/secrets/dynamic/temp/generate?folder=prod%2Faws%20team"
                ),
                "prod/aws team".to_string()
            )
        );
        assert_eq!(
            p("temp", "https://bt.example.com", SITE).unwrap().0,
            format!("https://bt.example.com/{SITE}/secrets/dynamic/temp/generate")
        );
        for (path, url, site, says) in [
            ("", "https://x", SITE, "path is required"),
            ("prod/", "https://x", SITE, "missing secret name"),
            ("a/b", "http://x", SITE, "must be an https URL"),
            ("a/b", "https://x", "not-a-uuid", "invalid siteId"),
            (
                "a/b",
                "https://x",
                "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "invalid siteId",
            ),
        ] {
            assert!(p(path, url, site).unwrap_err().contains(says), "{says}");
        }
    }

    #[test]
    fn errors_read_as_upstreams() {
        assert_eq!(
            api_error(
                403,
                br#"{"error": "forbidden", "message": "no access"}"#,
                "prod"
            ),
            "unable to generate dynamic secret: API error (HTTP 403): forbidden: no access at path \"prod\""
        );
        assert!(api_error(502, b"<html>", "/").contains("unexpected response at path \"/\""));
    }
}

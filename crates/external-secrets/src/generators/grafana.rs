//! The Grafana generator: a token of a Grafana service account, as upstream makes it.
//!
//! Spec fields: `url` (the Grafana root; the HTTP API is under `{url}/api`), `auth.token`
//! (a Secret key holding a service-account token, sent as bearer) or else `auth.basic`
//! (`username` and a Secret key holding the password), and `serviceAccount{name, role}`.
//! Secrets are read in the ExternalSecret's namespace.
//!
//! Each run looks the service account up by name (`GET /api/serviceaccounts/search?query=`,
//! exact name match), creates it with `role` when there is none (`POST /api/serviceaccounts`),
//! and adds a token named by a random UUID (`POST /api/serviceaccounts/{id}/tokens`).
//! Outputs: `login` (the account's login) and `token` (the token's key). The state recorded
//! for the generation is upstream's (`{"serviceAccount": {"id", "login", "tokenID"}}`);
//! cleaning it up deletes that token (`DELETE /api/serviceaccounts/{id}/tokens/{tokenID}`),
//! and a token Grafana no longer has counts as deleted. Errors give the call, the status and
//! Grafana's `message`, never a credential or token.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap};

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Metric label of the calls.
const METRIC: &str = "Grafana";

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    url: String,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    service_account: ServiceAccount,
}

/// `auth`.
#[derive(Deserialize, Default)]
struct Auth {
    token: Option<KeyRef>,
    basic: Option<Basic>,
}

/// `auth.basic`.
#[derive(Deserialize, Default)]
struct Basic {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: KeyRef,
}

/// A key of a Secret in the ExternalSecret's namespace.
#[derive(Deserialize, Default)]
struct KeyRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// `serviceAccount`.
#[derive(Deserialize, Serialize, Default)]
struct ServiceAccount {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    role: String,
}

/// What a generation leaves behind (upstream's state format).
#[derive(Deserialize, Serialize, Default)]
struct State {
    #[serde(rename = "serviceAccount", default)]
    service_account: StateAccount,
}

/// `serviceAccount` of the state.
#[derive(Deserialize, Serialize, Default)]
struct StateAccount {
    id: Option<i64>,
    login: Option<String>,
    #[serde(rename = "tokenID")]
    token_id: Option<i64>,
}

/// A service account as the API lists or creates it.
#[derive(Deserialize)]
struct Account {
    id: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    login: String,
}

/// The search answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Search {
    #[serde(default)]
    service_accounts: Vec<Account>,
}

/// A created token.
#[derive(Deserialize)]
struct Token {
    id: i64,
    key: String,
}

/// An authenticated client of one Grafana.
struct Api<'a> {
    http: reqwest::Client,
    base: String,
    auth: Credentials,
    env: &'a ProviderEnv,
}

enum Credentials {
    Bearer(SecretBytes),
    Basic(String, SecretBytes),
}

impl Api<'_> {
    /// One call: `what` is `METHOD /path` as messages name it.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, String> {
        let what = format!("[{method} {path}]");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match &self.auth {
            Credentials::Bearer(token) => {
                request.bearer_auth(String::from_utf8_lossy(token.expose()))
            }
            Credentials::Basic(user, password) => {
                request.basic_auth(user, Some(String::from_utf8_lossy(password.expose())))
            }
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let sent = request.send().await;
        let call = path.split('?').next().unwrap_or(path);
        self.env.calls.observe(METRIC, call, sent.is_ok());
        let response = sent.map_err(|e| format!("{what} {}", super::http_error(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{what} {}", super::http_error(e)))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            return Err(format!("{what}[{}] {message}", status.as_u16()));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{what} unexpected answer: {e}"))
    }
}

/// A client for the spec's Grafana with its credentials read in `namespace`.
async fn connect<'a>(
    env: &'a ProviderEnv,
    namespace: &str,
    spec: &Spec,
) -> Result<Api<'a>, String> {
    let url = reqwest::Url::parse(&spec.url).map_err(|e| format!("url: {e}"))?;
    let base = format!("{}/api", url.as_str().trim_end_matches('/'));
    let read = |r: &KeyRef| {
        let (name, key) = (r.name.clone(), r.key.clone());
        async move {
            env.credentials
                .secret_key(namespace, &name, &key)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let auth = if let Some(token) = &spec.auth.token {
        Credentials::Bearer(read(token).await?)
    } else if let Some(basic) = &spec.auth.basic {
        Credentials::Basic(basic.username.clone(), read(&basic.password).await?)
    } else {
        return Err("no auth configuration found".into());
    };
    let http = super::system_http_client(TIMEOUT)?;
    Ok(Api {
        http,
        base,
        auth,
        env,
    })
}

/// `text` escaped for a URL query value.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs the Grafana generator `spec` for an ExternalSecret in `namespace`: the generated
/// keys and the state to record.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<(SecretMap, serde_json::Value), String> {
    let spec: Spec = super::parse_spec(spec)?;
    let api = connect(env, namespace, &spec).await?;
    let wanted = &spec.service_account;
    let found: Search = api
        .call(
            reqwest::Method::GET,
            &format!(
                "/serviceaccounts/search?query={}",
                query_escape(&wanted.name)
            ),
            None,
        )
        .await?;
    let account = match found
        .service_accounts
        .into_iter()
        .find(|a| a.name == wanted.name)
    {
        Some(a) => a,
        None => {
            let body = serde_json::to_value(wanted).unwrap_or_default();
            api.call(reqwest::Method::POST, "/serviceaccounts", Some(body))
                .await?
        }
    };
    let token: Token = api
        .call(
            reqwest::Method::POST,
            &format!("/serviceaccounts/{}/tokens", account.id),
            Some(serde_json::json!({"name": super::uuid_v4()?})),
        )
        .await?;
    let state = State {
        service_account: StateAccount {
            id: Some(account.id),
            login: Some(account.login.clone()),
            token_id: Some(token.id),
        },
    };
    let data = BTreeMap::from([
        (
            "login".to_string(),
            SecretBytes::from(account.login.as_str()),
        ),
        ("token".to_string(), SecretBytes::from(token.key.as_str())),
    ]);
    Ok((data, serde_json::to_value(state).unwrap_or_default()))
}

/// Deletes the token a generation recorded in `state`.
pub async fn cleanup(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
    state: &serde_json::Value,
) -> Result<(), String> {
    let state: State =
        serde_json::from_value(state.clone()).map_err(|e| format!("unable to parse state: {e}"))?;
    let (Some(id), Some(token)) = (state.service_account.id, state.service_account.token_id) else {
        return Err("the recorded state names no service account token".into());
    };
    let spec: Spec = super::parse_spec(spec)?;
    let api = connect(env, namespace, &spec).await?;
    match api
        .call::<serde_json::Value>(
            reqwest::Method::DELETE,
            &format!("/serviceaccounts/{id}/tokens/{token}"),
            None,
        )
        .await
    {
        Err(e) if e.contains("service account token not found") => Ok(()),
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_state_is_upstreams() {
        let state = State {
            service_account: StateAccount {
                id: Some(3),
                login: Some("sa-ci".into()),
                token_id: Some(9),
            },
        };
        assert_eq!(
            serde_json::to_value(state).unwrap(),
            serde_json::json!({"serviceAccount": {"id": 3, "login": "sa-ci", "tokenID": 9}})
        );
        assert_eq!(query_escape("eso ci/x"), "eso%20ci%2Fx");
    }
}

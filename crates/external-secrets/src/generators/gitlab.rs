//! The GitlabDeployToken generator: a new GitLab deploy token of a project or group at every
//! run, as upstream makes it.
//!
//! Spec fields: `url` (the GitLab root, `https://gitlab.com` when empty), exactly one of
//! `projectID` and `groupID` (a numeric id or an unescaped path such as `group/project`,
//! escaped here), `name`, `scopes` (at least one of GitLab's deploy-token scopes), `username`
//! and `expiresAt` (an RFC 3339 time, sent in UTC) or `expiresAfter` (a duration of at least
//! 24h from now, upstream's later field), and `auth.token.secretRef` (a Secret key in the
//! ExternalSecret's namespace holding an access token with the `api` scope).
//!
//! One call creates the token (`POST {url}/api/v4/projects/{id}/deploy_tokens`, or
//! `/groups/{id}/deploy_tokens`, with the access token in `PRIVATE-TOKEN`). Outputs (upstream's
//! keys): `username` and `token`. The state recorded for the generation is upstream's
//! (`{"url", "projectID" or "groupID", "tokenID"}`); cleaning it up revokes that token
//! (`DELETE …/deploy_tokens/{tokenID}`) where it was made, and a token GitLab no longer has
//! counts as revoked. Errors give the call, the status and GitLab's `message` or `error`, never
//! the access token or a deploy token.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap};

/// How long one API call may take (upstream's limit).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Metric label of the calls.
const METRIC: &str = "GitLab";
/// The GitLab used when `url` is empty.
const DEFAULT_URL: &str = "https://gitlab.com";
/// The deploy-token scopes GitLab knows (upstream's enum).
const SCOPES: [&str; 7] = [
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
    "read_virtual_registry",
    "write_virtual_registry",
];
/// The shortest `expiresAfter` upstream accepts.
const MIN_EXPIRES_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    url: String,
    #[serde(default, rename = "projectID")]
    project_id: String,
    #[serde(default, rename = "groupID")]
    group_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_after: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    auth: Auth,
}

/// `auth`.
#[derive(Deserialize, Default)]
struct Auth {
    #[serde(default)]
    token: TokenRef,
}

/// `auth.token`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TokenRef {
    #[serde(default)]
    secret_ref: KeyRef,
}

/// A key of a Secret in the ExternalSecret's namespace.
#[derive(Deserialize, Default)]
struct KeyRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// What a generation leaves behind (upstream's state format): where the token was made.
#[derive(Deserialize, Serialize, Default, Debug, PartialEq)]
struct State {
    #[serde(default)]
    url: String,
    #[serde(
        rename = "projectID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    project_id: String,
    #[serde(rename = "groupID", default, skip_serializing_if = "String::is_empty")]
    group_id: String,
    #[serde(rename = "tokenID", default)]
    token_id: i64,
}

/// A created deploy token.
#[derive(Deserialize)]
struct Created {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    username: String,
    #[serde(default)]
    token: String,
}

/// `text` escaped as one URL path segment (`group/project` → `group%2Fproject`).
fn path_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The deploy-token collection of the project or group: the URL and how messages name it.
fn collection(url: &str, project_id: &str, group_id: &str) -> Result<(String, String), String> {
    let base = if url.is_empty() { DEFAULT_URL } else { url };
    let parsed = reqwest::Url::parse(base).map_err(|e| format!("url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url: scheme {:?} is not http(s)", parsed.scheme()));
    }
    let base = base.trim_end_matches('/');
    let path = match (project_id.is_empty(), group_id.is_empty()) {
        (false, true) => format!("/api/v4/projects/{}/deploy_tokens", path_escape(project_id)),
        (true, false) => format!("/api/v4/groups/{}/deploy_tokens", path_escape(group_id)),
        _ => return Err("exactly one of projectID or groupID must be set".into()),
    };
    Ok((format!("{base}{path}"), path))
}

/// The `expires_at` to send: `expiresAt` in UTC, or now + `expiresAfter`.
fn expires_at(spec: &Spec) -> Result<Option<String>, String> {
    use chrono::SecondsFormat;
    match (&spec.expires_at, &spec.expires_after) {
        (Some(_), Some(_)) => Err("expiresAt and expiresAfter are mutually exclusive".into()),
        (Some(at), None) => chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| {
                Some(
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                )
            })
            .map_err(|e| format!("expiresAt {at:?} is not an RFC 3339 time: {e}")),
        (None, Some(after)) => {
            let d = strongroom_core::duration::parse_go_duration(after)
                .map_err(|e| format!("expiresAfter: {e}"))?;
            if d < MIN_EXPIRES_AFTER {
                return Err("expiresAfter must be at least 24h".into());
            }
            let d = chrono::Duration::from_std(d).map_err(|e| format!("expiresAfter: {e}"))?;
            let at = chrono::Utc::now()
                .checked_add_signed(d)
                .ok_or("expiresAfter is too long")?;
            Ok(Some(at.to_rfc3339_opts(SecondsFormat::Secs, true)))
        }
        (None, None) => Ok(None),
    }
}

/// The spec's own fields checked before any call.
fn check(spec: &Spec) -> Result<(), String> {
    if spec.name.is_empty() {
        return Err("name is required".into());
    }
    if spec.scopes.is_empty() {
        return Err("scopes must name at least one scope".into());
    }
    if let Some(bad) = spec.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(format!(
            "scope {bad:?} is not a deploy-token scope (one of {})",
            SCOPES.join(", ")
        ));
    }
    if spec.auth.token.secret_ref.name.is_empty() || spec.auth.token.secret_ref.key.is_empty() {
        return Err("auth.token.secretRef needs a name and a key".into());
    }
    Ok(())
}

/// The access token the spec names, read in `namespace`.
async fn access_token(env: &ProviderEnv, namespace: &str, spec: &Spec) -> Result<String, String> {
    let r = &spec.auth.token.secret_ref;
    let bytes = env
        .credentials
        .secret_key(namespace, &r.name, &r.key)
        .await
        .map_err(|e| format!("error getting GitLab token from secret: {e}"))?;
    String::from_utf8(bytes.expose().to_vec())
        .map(|t| t.trim().to_string())
        .map_err(|_| {
            format!(
                "error getting GitLab token from secret: key {:?} of Secret {:?} is not UTF-8 text",
                r.key, r.name
            )
        })
}

/// GitLab's complaint in an error answer: its `message` or `error` field, else the start of
/// the body.
fn gitlab_error(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = parsed.as_ref().and_then(|v| {
        ["message", "error"]
            .iter()
            .find_map(|k| v.get(*k))
            .map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    });
    field.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// One call: its status and body, or an error naming `what` (`METHOD /path`).
async fn call(
    env: &ProviderEnv,
    request: reqwest::RequestBuilder,
    what: &str,
    operation: &str,
) -> Result<(u16, Vec<u8>), String> {
    let sent = request.send().await;
    env.calls.observe(METRIC, operation, sent.is_ok());
    let response = sent.map_err(|e| format!("[{what}] {}", super::http_error(e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("[{what}] {}", super::http_error(e)))?;
    Ok((status, body.to_vec()))
}

/// Runs the GitlabDeployToken generator `spec` for an ExternalSecret in `namespace`: the
/// generated keys and the state to record.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<(SecretMap, serde_json::Value), String> {
    let spec: Spec = super::parse_spec(spec)?;
    check(&spec)?;
    let (url, path) = collection(&spec.url, &spec.project_id, &spec.group_id)?;
    let mut payload = serde_json::json!({"name": spec.name, "scopes": spec.scopes});
    if !spec.username.is_empty() {
        payload["username"] = spec.username.clone().into();
    }
    if let Some(at) = expires_at(&spec)? {
        payload["expires_at"] = at.into();
    }
    let token = access_token(env, namespace, &spec).await?;
    let http = super::system_http_client(TIMEOUT)?;
    let what = format!("POST {path}");
    let request = http
        .post(&url)
        .header("PRIVATE-TOKEN", token)
        .json(&payload);
    let (status, body) = call(env, request, &what, "CreateDeployToken").await?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "error generating deploy token: [{what}] response code: {status}, response: {}",
            gitlab_error(&body)
        ));
    }
    let created: Created = serde_json::from_slice(&body)
        .map_err(|e| format!("error decoding response of [{what}]: {e}"))?;
    if created.token.is_empty() {
        return Err(format!(
            "deploy token missing from GitLab's answer to [{what}]"
        ));
    }
    let state = State {
        url: spec.url.clone(),
        project_id: spec.project_id.clone(),
        group_id: spec.group_id.clone(),
        token_id: created.id,
    };
    let data = BTreeMap::from([
        (
            "username".to_string(),
            SecretBytes::from(created.username.as_str()),
        ),
        (
            "token".to_string(),
            SecretBytes::from(created.token.as_str()),
        ),
    ]);
    Ok((data, serde_json::to_value(state).unwrap_or_default()))
}

/// Revokes the deploy token a generation recorded in `state`, where it was made.
pub async fn cleanup(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
    state: &serde_json::Value,
) -> Result<(), String> {
    let state: State =
        serde_json::from_value(state.clone()).map_err(|e| format!("unable to parse state: {e}"))?;
    if state.token_id == 0 {
        return Ok(());
    }
    let spec: Spec = super::parse_spec(spec)?;
    let (url, path) = collection(&state.url, &state.project_id, &state.group_id)?;
    let token = access_token(env, namespace, &spec).await?;
    let http = super::system_http_client(TIMEOUT)?;
    let what = format!("DELETE {path}/{}", state.token_id);
    let request = http
        .delete(format!("{url}/{}", state.token_id))
        .header("PRIVATE-TOKEN", token);
    let (status, body) = call(env, request, &what, "RevokeDeployToken").await?;
    if status == 404 || (200..300).contains(&status) {
        return Ok(());
    }
    Err(format!(
        "error revoking deploy token: [{what}] response code: {status}, response: {}",
        gitlab_error(&body)
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn collections_are_escaped_and_exclusive() {
        let c = |u: &str, p: &str, g: &str| collection(u, p, g).map(|(url, _)| url);
        assert_eq!(
            c("", "10", "").unwrap(),
            "https://gitlab.com/api/v4/projects/10/deploy_tokens"
        );
        assert_eq!(
            c("https://gl.example.com///", "", "parent/group").unwrap(),
            "https://gl.example.com/api/v4/groups/parent%2Fgroup/deploy_tokens"
        );
        for (p, g) in [("1", "2"), ("", "")] {
            assert!(
                c("", p, g)
                    .unwrap_err()
                    .contains("exactly one of projectID or groupID")
            );
        }
        assert!(c("ftp://x", "1", "").unwrap_err().contains("not http(s)"));
    }

    #[test]
    fn expiry_is_sent_in_utc() {
        let at = |v: serde_json::Value| expires_at(&spec(v));
        assert_eq!(
            at(serde_json::json!({"expiresAt": "2025-06-30T12:00:00+02:00"})).unwrap(),
            Some("2025-06-30T10:00:00Z".to_string())
        );
        assert_eq!(at(serde_json::json!({})).unwrap(), None);
        let later = at(serde_json::json!({"expiresAfter": "720h"}))
            .unwrap()
            .unwrap();
        let later = chrono::DateTime::parse_from_rfc3339(&later).unwrap();
        let days = (later.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
        assert!((719..=720).contains(&days), "{days}");
        for (bad, says) in [
            (
                serde_json::json!({"expiresAt": "2030-01-01T00:00:00Z", "expiresAfter": "720h"}),
                "mutually exclusive",
            ),
            (serde_json::json!({"expiresAfter": "1h"}), "at least 24h"),
            (serde_json::json!({"expiresAt": "tomorrow"}), "RFC 3339"),
        ] {
            assert!(at(bad).unwrap_err().contains(says));
        }
    }

    #[test]
    fn bad_specs_name_the_field() {
        let auth = serde_json::json!({"token": {"secretRef": {"name": "gl", "key": "token"}}});
        for (bad, says) in [
            (
                serde_json::json!({"scopes": ["read_repository"], "auth": auth}),
                "name is required",
            ),
            (
                serde_json::json!({"name": "n", "scopes": [], "auth": auth}),
                "at least one scope",
            ),
            (
                serde_json::json!({"name": "n", "scopes": ["api"], "auth": auth}),
                "scope \"api\" is not a deploy-token scope",
            ),
            (
                serde_json::json!({"name": "n", "scopes": ["read_registry"]}),
                "auth.token.secretRef",
            ),
        ] {
            assert!(check(&spec(bad)).unwrap_err().contains(says));
        }
    }

    #[test]
    fn the_state_is_upstreams() {
        let state = State {
            url: "https://gl.example.com".into(),
            project_id: "group/project".into(),
            group_id: String::new(),
            token_id: 42,
        };
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"url": "https://gl.example.com", "projectID": "group/project", "tokenID": 42})
        );
        assert_eq!(
            gitlab_error(br#"{"message": {"name": ["has already been taken"]}}"#),
            r#"{"name":["has already been taken"]}"#
        );
        assert_eq!(
            gitlab_error(br#"{"error": "insufficient_scope"}"#),
            "insufficient_scope"
        );
    }
}

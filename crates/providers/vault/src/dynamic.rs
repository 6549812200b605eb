//! The `VaultDynamicSecret` generator (`generators.external-secrets.io/v1alpha1`): one Vault
//! request (`GET` by default, `POST`/`PUT` with `parameters`, `LIST`, `DELETE`) whose answer
//! becomes the generated keys, as upstream builds them:
//!
//! - `resultType: Data` (default): the answer's `data` map;
//! - `Auth`: the answer's `auth` block (e.g. `auth/token/create`);
//! - `Raw`: the whole answer (`lease_id`, `data`, `auth`, …).
//!
//! String values are taken as they are, others as their JSON text. An answer without body (or
//! a 404, which upstream's client also reads as "no secret") is an error unless
//! `allowEmptyResponse`, then nothing is generated.
//!
//! The login uses the `provider` block's auth like a store (`crate::token::Keeper`), one
//! token per distinct block and namespace, renewed in place; it is never revoked (not even
//! when a login replaces it at its max TTL), because Vault revokes a token's leases and child
//! tokens with it.
//!
//! Leases: the result of one `dataFrom` entry of one ExternalSecret (its `owner`) is kept in
//! memory with its lease id (or, for `Auth`, the created token's accessor). While a lease is
//! the owner's current one it is renewed at two thirds of its TTL when renewable
//! (`sys/leases/renew`, `auth/token/renew-accessor`); after a restart, [`adopt`] takes over
//! the renewal of the leases GeneratorStates recorded. [`generate_stateful`] (the controller's
//! path) returns the lease as state for a GeneratorState and leaves revocation to
//! [`cleanup`], called once the state is replaced or its ExternalSecret deleted, also after a
//! restart; [`generate`] revokes the owner's previous lease itself when it generates again
//! (`sys/leases/revoke`, or `auth/token/revoke-accessor`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use strongroom_core::crd::external_secrets::{
    SecretStoreProvider, SecretStoreRetrySettings, StoreKind, VaultProvider,
};
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, SecretMap, StoreContext};
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;

use crate::config::{self, invalid};
use crate::token::Keeper;
use crate::vault::{self, Call, Retries};

/// `spec` of a VaultDynamicSecret (upstream's `VaultDynamicSecretSpec`).
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct DynamicSpec {
    /// Only for a controller class filter upstream; ignored here.
    #[allow(dead_code)]
    controller: Option<String>,
    method: Option<String>,
    parameters: Option<Value>,
    result_type: Option<String>,
    retry_settings: Option<SecretStoreRetrySettings>,
    provider: Option<VaultProvider>,
    path: Option<String>,
    allow_empty_response: Option<bool>,
}

/// Which part of the answer becomes the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultType {
    Data,
    Auth,
    Raw,
}

/// What a generated result holds on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lease {
    /// A lease id (`sys/leases/*`).
    Id(String),
    /// A created token, by accessor (`auth/token/*-accessor`).
    Token(String),
}

/// An owner's current lease, the token it was created with, and its renewal task.
struct Held {
    lease: Lease,
    keeper: Arc<Keeper>,
    renewal: Option<tokio::task::AbortHandle>,
}

/// Current leases by owner.
static HELD: LazyLock<Mutex<HashMap<String, Held>>> = LazyLock::new(Default::default);
/// A slot holding one token's keeper; its own lock is held while logging in, so a login
/// (with its retries) blocks only the generators sharing that provider block.
type KeeperSlot = Arc<tokio::sync::Mutex<Option<Arc<Keeper>>>>;
/// One token per (namespace, provider block). The map's lock is held only to find a slot.
static KEEPERS: LazyLock<Mutex<HashMap<String, KeeperSlot>>> = LazyLock::new(Default::default);

/// One request to an arbitrary Vault path, through vaultrs's client and middleware.
struct Request {
    path: String,
    method: RequestMethod,
    body: Option<Vec<u8>>,
}

impl Endpoint for Request {
    type Response = Value;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(self.body.clone())
    }
}

/// Sends `request`; the answer's JSON, `None` when it has no body.
async fn send(client: &VaultClient, request: Request) -> Result<Option<Value>, ClientError> {
    use vaultrs::client::Client as _;
    let answer = request
        .with_middleware(client.middle())
        .exec(client.http())
        .await
        .map_err(crate::exec::api_error)?;
    let body = answer.response.body();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ClientError::JsonParseError { source: e })
}

fn parse(spec: &Value) -> Result<(DynamicSpec, ResultType, RequestMethod), ProviderError> {
    let spec: DynamicSpec = serde_json::from_value(spec.clone())
        .map_err(|e| invalid(format!("the spec does not parse: {e}")))?;
    let result = match spec.result_type.as_deref().unwrap_or("Data") {
        "Data" | "" => ResultType::Data,
        "Auth" => ResultType::Auth,
        "Raw" => ResultType::Raw,
        other => {
            return Err(invalid(format!(
                "resultType {other:?} is not one of Data, Auth, Raw"
            )));
        }
    };
    let method = match spec
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" | "" => RequestMethod::GET,
        "LIST" => RequestMethod::LIST,
        "DELETE" => RequestMethod::DELETE,
        "POST" => RequestMethod::POST,
        "PUT" => RequestMethod::PUT,
        "PATCH" => RequestMethod::PATCH,
        other => return Err(invalid(format!("method {other:?} is not supported"))),
    };
    if spec.provider.is_none() {
        return Err(invalid(
            "spec.provider (a vault provider block) is required",
        ));
    }
    if spec.path.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Err(invalid("spec.path is required"));
    }
    Ok((spec, result, method))
}

/// The keeper of the token for `provider` in `namespace` (a login the first time).
async fn keeper(
    name: &str,
    namespace: &str,
    provider: &VaultProvider,
    retry: Option<&SecretStoreRetrySettings>,
    env: ProviderEnv,
) -> Result<Arc<Keeper>, ProviderError> {
    let store = StoreContext {
        kind: StoreKind::SecretStore,
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            vault: Some(provider.clone()),
            ..SecretStoreProvider::default()
        },
        // its logins are retried as its requests (`spec.retrySettings`)
        retry: retry.cloned(),
    };
    config::validate(&store)?;
    let key = format!(
        "{namespace}\n{}\n{}",
        serde_json::to_string(provider).unwrap_or_default(),
        serde_json::to_string(&retry).unwrap_or_default()
    );
    let slot = KEEPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone();
    let mut slot = slot.lock().await;
    if let Some(k) = slot.as_ref() {
        if k.alive() {
            return Ok(k.clone());
        }
        // Its token died (logins kept failing): stop its upkeep, without revoking.
        k.stop();
    }
    let server = config::server_url(&provider.server)?;
    let cert = crate::auth::login_certificate(&store, provider, &env).await?;
    let http = config::http_client(&store, provider, &env, cert.as_ref()).await?;
    let keeper = Keeper::start(&store, env, server, http, false).await?;
    if keeper.maintained() {
        tokio::spawn(keeper.clone().maintain());
    }
    *slot = Some(keeper.clone());
    Ok(keeper)
}

/// The output map of an answer (upstream's `prepareResponse`).
fn output(answer: &Value, result: ResultType) -> Result<SecretMap, ProviderError> {
    let part = match result {
        ResultType::Data => answer.get("data"),
        ResultType::Auth => answer.get("auth"),
        ResultType::Raw => Some(answer),
    };
    let mut out = SecretMap::new();
    let Some(Value::Object(map)) = part else {
        return Ok(out);
    };
    for (k, v) in map {
        let bytes = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => strongroom_provider_api::go_json(other).map_err(|_| {
                ProviderError::Malformed(format!("the value of key {k:?} is not serializable"))
            })?,
        };
        out.insert(k.clone(), SecretBytes::new(bytes));
    }
    Ok(out)
}

/// The lease an answer carries: its lease id, else (a created token) its accessor; with its
/// TTL and whether it is renewable.
fn lease_of(answer: &Value) -> Option<(Lease, Duration, bool)> {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let (lease, holder) = match text(answer, "lease_id") {
        Some(id) => (Lease::Id(id), answer),
        None => {
            let auth = answer.get("auth").filter(|a| a.is_object())?;
            (Lease::Token(text(auth, "accessor")?), auth)
        }
    };
    let ttl = holder
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let renewable = holder
        .get("renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some((lease, Duration::from_secs(ttl), renewable))
}

/// Revokes `lease` with the token that created it (best effort: it expires anyway).
async fn revoke(env: &ProviderEnv, keeper: &Keeper, lease: &Lease) {
    match revoke_lease(env, keeper, lease).await {
        Ok(()) => tracing::debug!("vault dynamic secret: previous lease revoked"),
        Err(e) => {
            tracing::warn!(error = %e, "vault dynamic secret: the previous lease could not be revoked")
        }
    }
}

/// Revokes `lease` with `keeper`'s token.
async fn revoke_lease(
    env: &ProviderEnv,
    keeper: &Keeper,
    lease: &Lease,
) -> Result<(), ProviderError> {
    let client = keeper.client();
    match lease {
        Lease::Id(id) => {
            let body = serde_json::to_vec(&json!({ "lease_id": id })).unwrap_or_default();
            vault::run(env, Call::RevokeLease, "revoke the previous lease", async {
                send(
                    &client,
                    Request {
                        path: "sys/leases/revoke".into(),
                        method: RequestMethod::PUT,
                        body: Some(body),
                    },
                )
                .await
                .map(|_| ())
            })
            .await
        }
        Lease::Token(accessor) => {
            vault::run(env, Call::RevokeLease, "revoke the previous token", async {
                vaultrs::token::revoke_accessor(&*client, accessor).await
            })
            .await
        }
    }
}

/// Renews `lease` once with `keeper`'s token, asking for `increment` seconds (`None`: the
/// lease's default); the TTL granted.
async fn renew_once(
    env: &ProviderEnv,
    keeper: &Keeper,
    lease: &Lease,
    increment: Option<u64>,
) -> Result<u64, ProviderError> {
    let client = keeper.client();
    match lease {
        Lease::Id(id) => {
            let mut body = json!({ "lease_id": id });
            if let Some(i) = increment {
                body["increment"] = json!(i);
            }
            let body = serde_json::to_vec(&body).unwrap_or_default();
            vault::run(env, Call::RenewLease, "renew the lease", async {
                send(
                    &client,
                    Request {
                        path: "sys/leases/renew".into(),
                        method: RequestMethod::PUT,
                        body: Some(body),
                    },
                )
                .await
            })
            .await
            .map(|a| {
                a.and_then(|a| a.get("lease_duration").and_then(Value::as_u64))
                    .unwrap_or(0)
            })
        }
        Lease::Token(accessor) => {
            let increment = increment.map(|i| format!("{i}s"));
            vault::run(env, Call::RenewLease, "renew the token", async {
                vaultrs::token::renew_accessor(&*client, accessor, increment.as_deref()).await
            })
            .await
            .map(|a| a.lease_duration)
        }
    }
}

/// Renews `lease` at two thirds of its TTL until aborted or no longer extended.
async fn renew_while_held(env: ProviderEnv, keeper: Arc<Keeper>, lease: Lease, mut ttl: Duration) {
    while !ttl.is_zero() {
        tokio::time::sleep(ttl.mul_f64(crate::token::RENEW_AT)).await;
        let increment = ttl.as_secs().max(1);
        match renew_once(&env, &keeper, &lease, Some(increment)).await {
            Ok(granted) => {
                tracing::debug!(ttl_seconds = granted, "vault dynamic secret: lease renewed");
                // A shorter grant is the max TTL approaching: renew what is left, then stop.
                ttl = if granted + 1 < ttl.as_secs() {
                    Duration::ZERO
                } else {
                    Duration::from_secs(granted)
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "vault dynamic secret: lease renewal failed");
                return;
            }
        }
    }
}

/// Whether an error answers a renewal or revocation of a lease Vault does not know (expired,
/// revoked) or will not renew: Vault says so with a 400.
fn unknown_lease(e: &ProviderError) -> bool {
    matches!(e, ProviderError::InvalidConfig(m) if m.contains("(400)") || m.contains("HTTP 400"))
}

/// The lease a generator state (from [`Generated::state`]) names.
fn lease_in(state: &Value) -> Option<Lease> {
    match (
        state.get(STATE_LEASE).and_then(Value::as_str),
        state.get(STATE_ACCESSOR).and_then(Value::as_str),
    ) {
        (Some(id), _) if !id.is_empty() => Some(Lease::Id(id.to_string())),
        (_, Some(a)) if !a.is_empty() => Some(Lease::Token(a.to_string())),
        _ => None,
    }
}

/// Takes over the renewal of the lease `state` names, recorded by an earlier process (a
/// GeneratorState that is still current after a restart): it is renewed at once, which tells
/// its TTL, and then at two thirds of every TTL granted, as a lease generated here, until
/// [`cleanup`] revokes it. A lease this process already renews is left alone; one Vault will
/// not renew (not renewable, expired, revoked) is left to its TTL. Returns whether the
/// renewal was taken over.
///
/// Vault revokes a lease with the token that created it: the earlier process's token, which
/// nobody renews any more, so an adopted lease lives at most until that token expires.
pub async fn adopt(
    spec: &Value,
    name: &str,
    namespace: &str,
    state: &Value,
    env: ProviderEnv,
) -> Result<bool, ProviderError> {
    let Some(lease) = lease_in(state) else {
        return Ok(false);
    };
    let renewed_here = |lease: &Lease| {
        HELD.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .any(|h| &h.lease == lease)
    };
    if renewed_here(&lease) {
        return Ok(false);
    }
    let (spec, _, _) = parse(spec)?;
    let Some(provider) = &spec.provider else {
        return Err(invalid("spec.provider is required"));
    };
    let keeper = keeper(
        name,
        namespace,
        provider,
        spec.retry_settings.as_ref(),
        env.clone(),
    )
    .await?;
    let granted = match renew_once(&env, &keeper, &lease, None).await {
        Ok(granted) => granted,
        Err(e) if unknown_lease(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    if granted == 0 {
        return Ok(false);
    }
    let mut held = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if held.values().any(|h| h.lease == lease) {
        return Ok(false);
    }
    let renewal = tokio::spawn(renew_while_held(
        env,
        keeper.clone(),
        lease.clone(),
        Duration::from_secs(granted),
    ))
    .abort_handle();
    let key = format!("adopted\n{lease:?}");
    held.insert(
        key,
        Held {
            lease,
            keeper,
            renewal: Some(renewal),
        },
    );
    Ok(true)
}

/// Runs a VaultDynamicSecret `spec` for `owner` (an ExternalSecret's `dataFrom` entry) in
/// `namespace`. `name` names the generator in logs. Errors never carry a value.
pub async fn generate(
    spec: &Value,
    name: &str,
    namespace: &str,
    owner: &str,
    env: ProviderEnv,
) -> Result<SecretMap, ProviderError> {
    generate_inner(spec, name, namespace, owner, env, true)
        .await
        .map(|g| g.data)
}

/// What one generation produced: the output, and what must be cleaned up once it is replaced
/// (upstream's generator state; `None` when the answer holds no lease).
#[derive(Debug)]
pub struct Generated {
    /// The generated keys.
    pub data: SecretMap,
    /// The lease to revoke later, for [`cleanup`]: `{"leaseID": …}` or `{"tokenAccessor": …}`.
    /// Identifiers only, never a secret value or token.
    pub state: Option<Value>,
}

/// [`generate`] for a caller that records the state (GeneratorState) and calls [`cleanup`]
/// itself once the output is replaced: the previous lease of `owner` is not revoked here
/// (its renewal stops).
pub async fn generate_stateful(
    spec: &Value,
    name: &str,
    namespace: &str,
    owner: &str,
    env: ProviderEnv,
) -> Result<Generated, ProviderError> {
    generate_inner(spec, name, namespace, owner, env, false).await
}

/// Revokes the lease `state` names (from [`Generated::state`]) with a login of the `spec`'s
/// provider block in `namespace`, and stops its renewal. A lease or token already gone counts
/// as revoked.
pub async fn cleanup(
    spec: &Value,
    name: &str,
    namespace: &str,
    state: &Value,
    env: ProviderEnv,
) -> Result<(), ProviderError> {
    let Some(lease) = lease_in(state) else {
        return Ok(());
    };
    let (spec, _, _) = parse(spec)?;
    let Some(provider) = &spec.provider else {
        return Err(invalid("spec.provider is required"));
    };
    {
        let mut held = HELD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|_, h| {
            let same = h.lease == lease;
            if same && let Some(task) = &h.renewal {
                task.abort();
            }
            !same
        });
    }
    let keeper = keeper(
        name,
        namespace,
        provider,
        spec.retry_settings.as_ref(),
        env.clone(),
    )
    .await?;
    match revoke_lease(&env, &keeper, &lease).await {
        Ok(()) => Ok(()),
        // An unknown lease or accessor: expired, or revoked already.
        Err(e) if unknown_lease(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The state keys (upstream-style camelCase).
const STATE_LEASE: &str = "leaseID";
const STATE_ACCESSOR: &str = "tokenAccessor";

async fn generate_inner(
    spec: &Value,
    name: &str,
    namespace: &str,
    owner: &str,
    env: ProviderEnv,
    revoke_previous: bool,
) -> Result<Generated, ProviderError> {
    let (spec, result, method) = parse(spec)?;
    let (Some(provider), Some(path)) = (&spec.provider, &spec.path) else {
        return Err(invalid("spec.provider and spec.path are required"));
    };
    let path = path.trim().trim_start_matches('/').to_string();
    let keeper = keeper(
        name,
        namespace,
        provider,
        spec.retry_settings.as_ref(),
        env.clone(),
    )
    .await?;
    let body = match method {
        RequestMethod::POST | RequestMethod::PUT | RequestMethod::PATCH => Some(
            serde_json::to_vec(
                spec.parameters
                    .as_ref()
                    .unwrap_or(&Value::Object(Map::new())),
            )
            .map_err(|_| invalid("spec.parameters is not serializable"))?,
        ),
        _ => None,
    };
    let what = format!("{method:?} {path:?}");
    let client = keeper.client();
    let retries = Retries::from_spec(spec.retry_settings.as_ref())?;
    let answer = match vault::run_retried(&env, retries, Call::DynamicSecret, &what, || async {
        send(
            &client,
            Request {
                path: path.clone(),
                method: method.clone(),
                body: body.clone(),
            },
        )
        .await
    })
    .await
    {
        Ok(answer) => answer,
        // Upstream's client reads a 404 as no secret.
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let Some(answer) = answer else {
        if spec.allow_empty_response.unwrap_or(false) {
            return Ok(Generated {
                data: SecretMap::new(),
                state: None,
            });
        }
        return Err(ProviderError::NotFound {
            key: path,
            detail: format!(
                "{what}: empty response from Vault (set allowEmptyResponse to accept it)"
            ),
        });
    };
    let out = output(&answer, result)?;
    if out.is_empty() && !spec.allow_empty_response.unwrap_or(false) {
        return Err(ProviderError::NotFound {
            key: path,
            detail: format!(
                "{what}: the answer has no {} (set allowEmptyResponse to accept it)",
                match result {
                    ResultType::Data => "data",
                    ResultType::Auth => "auth block",
                    ResultType::Raw => "content",
                }
            ),
        });
    }
    let lease = lease_of(&answer);
    let state = lease.as_ref().map(|(l, _, _)| match l {
        Lease::Id(id) => json!({ STATE_LEASE: id }),
        Lease::Token(accessor) => json!({ STATE_ACCESSOR: accessor }),
    });
    let previous = {
        let mut held = HELD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match lease {
            Some((lease, ttl, renewable)) => {
                let renewal = (renewable && !ttl.is_zero()).then(|| {
                    tokio::spawn(renew_while_held(
                        env.clone(),
                        keeper.clone(),
                        lease.clone(),
                        ttl,
                    ))
                    .abort_handle()
                });
                held.insert(
                    owner.to_string(),
                    Held {
                        lease,
                        keeper: keeper.clone(),
                        renewal,
                    },
                )
            }
            None => held.remove(owner),
        }
    };
    if let Some(old) = previous {
        if let Some(task) = &old.renewal {
            task.abort();
        }
        if revoke_previous {
            revoke(&env, &old.keeper, &old.lease).await;
        }
    }
    Ok(Generated { data: out, state })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn text(m: &SecretMap, k: &str) -> String {
        String::from_utf8(m[k].expose().to_vec()).unwrap()
    }

    #[test]
    fn outputs_as_upstream() {
        let answer = json!({
            "lease_id": "pki/issue/r/abc", "lease_duration": 60, "renewable": true,
            "data": {"certificate": "PEM", "serial_number": "1a", "expiration": 1700000000,
                     "ca_chain": ["A", "B"]},
            "auth": null
        });
        let data = output(&answer, ResultType::Data).unwrap();
        assert_eq!(text(&data, "certificate"), "PEM");
        assert_eq!(text(&data, "expiration"), "1700000000");
        assert_eq!(text(&data, "ca_chain"), r#"["A","B"]"#);
        let raw = output(&answer, ResultType::Raw).unwrap();
        assert_eq!(text(&raw, "lease_id"), "pki/issue/r/abc");
        assert_eq!(text(&raw, "renewable"), "true");
        assert_eq!(text(&raw, "auth"), "null");
        assert!(output(&answer, ResultType::Auth).unwrap().is_empty());
        assert_eq!(
            lease_of(&answer),
            Some((
                Lease::Id("pki/issue/r/abc".into()),
                Duration::from_secs(60),
                true
            ))
        );
        let token = json!({"lease_id": "", "auth": {"client_token": "t", "accessor": "acc",
                           "lease_duration": 30, "renewable": true, "policies": ["default"]}});
        let auth = output(&token, ResultType::Auth).unwrap();
        assert_eq!(text(&auth, "client_token"), "t");
        assert_eq!(text(&auth, "policies"), r#"["default"]"#);
        assert_eq!(lease_of(&token).unwrap().0, Lease::Token("acc".into()));
    }

    #[test]
    fn specs_are_checked() {
        let ok =
            json!({"provider": {"server": "http://x"}, "path": "pki/issue/r", "method": "post"});
        let (_, result, method) = parse(&ok).unwrap();
        assert_eq!(result, ResultType::Data);
        assert!(matches!(method, RequestMethod::POST));
        assert!(parse(&json!({"provider": {"server": "http://x"}})).is_err());
        assert!(parse(&json!({"path": "x"})).is_err());
        let bad = json!({"provider": {"server": "http://x"}, "path": "x", "resultType": "All"});
        assert!(parse(&bad).is_err());
    }
}

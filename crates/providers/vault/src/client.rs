//! The session client: one token per store (see [`crate::token`]), used by every read and
//! revoked at [`SecretsClient::close`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use strongroom_provider_api::{
    FindQuery, ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes, SecretMap,
    SecretsClient, StoreContext, Validation, json_property,
};
use vaultrs::api::{kv1, kv2};
use vaultrs::client::VaultClient;

use crate::auth;
use crate::config::{self, Kv, Location, invalid};
use crate::consistency::IndexStates;
use crate::exec::Session;
use crate::token::Keeper;
use crate::vault::{self, Call, Retries};

/// The custom-metadata mark of values a PushSecret wrote (upstream's).
const MANAGED_BY_KEY: &str = "managed-by";
const MANAGED_BY_VALUE: &str = "external-secrets";
/// Where KV v1 values carry the mark (inside the data, as upstream).
const KV1_METADATA_KEY: &str = "custom_metadata";
/// Metadata keys `metadataPolicy: Fetch` returns besides `custom_metadata` (upstream's).
const SYSTEM_METADATA: [&str; 3] = ["created_time", "current_version", "delete_version_after"];

type Data = Map<String, Value>;

/// A Vault session for one store.
pub struct VaultSecretsClient {
    env: ProviderEnv,
    /// The store's token; `None` for a referent ClusterSecretStore validated without a reader.
    keeper: Option<Arc<Keeper>>,
    /// The task renewing or replacing the token (aborted at close and drop).
    upkeep: Option<tokio::task::AbortHandle>,
    server: String,
    kv: Kv,
    cas_required: bool,
    /// How failed calls are retried (`spec.retrySettings`).
    retries: Retries,
    /// The `X-Vault-Index` states of `readYourWrites` (`None` without it).
    index_states: Option<IndexStates>,
}

impl Drop for VaultSecretsClient {
    fn drop(&mut self) {
        if let Some(task) = &self.upkeep {
            task.abort();
        }
    }
}

impl std::fmt::Debug for VaultSecretsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSecretsClient")
            .field("server", &self.server)
            .field("kv", &self.kv)
            .field(
                "logged_in",
                &self.keeper.as_ref().is_some_and(|k| k.logged_in()),
            )
            .finish_non_exhaustive()
    }
}

impl VaultSecretsClient {
    /// Builds the HTTP client, logs in once (or takes the static token) and starts the
    /// token's upkeep.
    pub async fn connect(store: &StoreContext, env: ProviderEnv) -> Result<Self, ProviderError> {
        let spec = config::spec(store)?;
        let server = config::server_url(&spec.server)?;
        let kv = Kv::from_spec(spec);
        let cas_required = spec
            .check_and_set
            .as_ref()
            .and_then(|c| c.required)
            .unwrap_or(false);
        let mut client = Self {
            env: env.clone(),
            keeper: None,
            upkeep: None,
            server: server.clone(),
            kv,
            cas_required,
            retries: Retries::from_store(store)?,
            index_states: (spec.read_your_writes == Some(true)).then(IndexStates::default),
        };
        if auth::is_referent(store, spec) && store.referent_namespace.is_none() {
            return Ok(client);
        }
        let cert = auth::login_certificate(store, spec, &env).await?;
        let http = config::http_client(store, spec, &env, cert.as_ref()).await?;
        let keeper = Keeper::start(store, env, server, http, true).await?;
        if keeper.maintained() {
            client.upkeep = Some(tokio::spawn(keeper.clone().maintain()).abort_handle());
        }
        client.keeper = Some(keeper);
        Ok(client)
    }

    fn vault(&self) -> Result<Arc<VaultClient>, ProviderError> {
        self.keeper.as_ref().map(|k| k.client()).ok_or_else(|| {
            invalid(
                "this ClusterSecretStore reads its credentials in the ExternalSecret's namespace \
                 (referent authentication), and none is known",
            )
        })
    }

    /// `vault` with this store's `readYourWrites` states.
    fn session<'a>(&'a self, vault: &'a VaultClient) -> Session<'a> {
        Session {
            vault,
            states: self.index_states.as_ref(),
        }
    }

    /// One call of this session, retried as the store's `retrySettings` say.
    async fn run<T, F>(
        &self,
        call: Call,
        what: &str,
        make: impl Fn() -> F,
    ) -> Result<T, ProviderError>
    where
        F: Future<Output = Result<T, vaultrs::error::ClientError>>,
    {
        match vault::run_retried(&self.env, self.retries, call, what, make).await {
            Err(ProviderError::PermissionDenied(m)) if call != Call::LookupSelf => {
                Err(self.denied_or_expired(m).await)
            }
            other => other,
        }
    }

    /// Vault answers 403 both to a policy that forbids a path and to a token that expired or
    /// was revoked. Only in the second case does a new login help, so on a 403 (never on a
    /// success) one lookup-self tells them apart: a dead token is an `Authentication`
    /// failure, after which the controller reconnects.
    async fn denied_or_expired(&self, message: String) -> ProviderError {
        let Ok(vault) = self.vault() else {
            return ProviderError::PermissionDenied(message);
        };
        let lookup = vault::run(&self.env, Call::LookupSelf, "look up the token", async {
            vaultrs::token::lookup_self(&*vault).await
        })
        .await;
        match lookup {
            Err(ProviderError::PermissionDenied(_)) => ProviderError::Authentication(format!(
                "{message}; the Vault token is no longer valid (expired or revoked)"
            )),
            _ => ProviderError::PermissionDenied(message),
        }
    }

    /// The data map stored under `key` (a version of it on KV v2).
    async fn read_data(&self, key: &str, version: Option<&str>) -> Result<Data, ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let session = self.session(vault);
        let at = self.kv.locate(key)?;
        let what = describe(&at);
        let data: Option<Data> = if self.kv.v2 {
            match version.filter(|v| !v.is_empty()) {
                Some(v) => {
                    let n: u64 = v.parse().map_err(|_| {
                        invalid(format!("version {v:?} of key {key:?} is not a number"))
                    })?;
                    self.read_v2(vault, &at, &what, Some(n)).await
                }
                None => self.read_v2(vault, &at, &what, None).await,
            }
        } else {
            self.run(Call::ReadSecretData, &what, || async {
                let answer = session
                    .plain(kv1::requests::GetSecretRequest {
                        mount: at.mount.clone(),
                        path: at.path.clone(),
                    })
                    .await?;
                serde_json::from_value(answer.data)
                    .map_err(|e| vaultrs::error::ClientError::JsonParseError { source: e })
            })
            .await
        }
        .map_err(|e| named(e, key))?;
        // A deleted or destroyed version reads as `data: null`.
        data.ok_or_else(|| ProviderError::not_found_in(key, deleted_detail(version)))
    }

    /// The data of a KV v2 key (`null` for a deleted or destroyed version).
    async fn read_v2(
        &self,
        vault: &VaultClient,
        at: &Location,
        what: &str,
        version: Option<u64>,
    ) -> Result<Option<Data>, ProviderError> {
        let session = self.session(vault);
        self.run(Call::ReadSecretData, what, || async {
            let answer = session
                .data(kv2::requests::ReadSecretRequest {
                    mount: at.mount.clone(),
                    path: at.path.clone(),
                    version,
                })
                .await?;
            serde_json::from_value(answer.data)
                .map_err(|e| vaultrs::error::ClientError::JsonParseError { source: e })
        })
        .await
    }

    /// The KV v2 metadata of `key`.
    async fn read_metadata(
        &self,
        key: &str,
    ) -> Result<vaultrs::api::kv2::responses::ReadSecretMetadataResponse, ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let at = self.kv.locate(key)?;
        self.run(
            Call::ReadSecretData,
            &format!("read metadata of {}", describe(&at)),
            || async {
                self.session(vault)
                    .data(kv2::requests::ReadSecretMetadataRequest {
                        mount: at.mount.clone(),
                        path: at.path.clone(),
                    })
                    .await
            },
        )
        .await
        .map_err(|e| named(e, key))
    }

    /// `metadataPolicy: Fetch`: upstream's system keys and `custom_metadata` (KV v2 only).
    async fn metadata_map(&self, key: &str) -> Result<Data, ProviderError> {
        if !self.kv.v2 {
            return Err(invalid(
                "cannot perform metadata fetch operations with kv version v1",
            ));
        }
        let meta = self.read_metadata(key).await?;
        let mut out = Data::new();
        let system = [
            meta.created_time.clone(),
            meta.current_version.to_string(),
            meta.delete_version_after.clone(),
        ];
        for (name, value) in SYSTEM_METADATA.iter().zip(system) {
            out.insert((*name).to_string(), Value::String(value));
        }
        for (k, v) in meta.custom_metadata.unwrap_or_default() {
            out.insert(k, Value::String(v));
        }
        Ok(out)
    }

    /// The custom metadata marking who manages `key` (KV v2 metadata, KV v1 inside the data).
    async fn managed(&self, key: &str, data: &Data) -> Result<bool, ProviderError> {
        if self.kv.v2 {
            let meta = self.read_metadata(key).await?;
            Ok(meta.custom_metadata.is_some_and(|m| {
                m.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            }))
        } else {
            Ok(data
                .get(KV1_METADATA_KEY)
                .and_then(|m| m.get(MANAGED_BY_KEY))
                .and_then(Value::as_str)
                == Some(MANAGED_BY_VALUE))
        }
    }

    /// Writes `data` to `key`: KV v2 with check-and-set when the store requires it.
    async fn write_data(
        &self,
        key: &str,
        data: &Data,
        cas: Option<u64>,
    ) -> Result<(), ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let at = self.kv.locate(key)?;
        let what = format!("write {}", describe(&at));
        let session = self.session(vault);
        if !self.kv.v2 {
            let body = serde_json::to_vec(data)
                .map_err(|_| ProviderError::Malformed(format!("{what}: not serialisable")))?;
            return self
                .run(Call::WriteSecretData, &what, || async {
                    session
                        .empty(kv1::requests::SetSecretRequest {
                            mount: at.mount.clone(),
                            path: at.path.clone(),
                            data: body.clone(),
                        })
                        .await
                })
                .await;
        }
        let options = match cas {
            Some(version) => Some(kv2::requests::SetSecretRequestOptions {
                cas: u32::try_from(version)
                    .map_err(|_| ProviderError::Malformed(format!("{what}: version too large")))?,
            }),
            None => None,
        };
        self.run(Call::WriteSecretData, &what, || async {
            session
                .data(kv2::requests::SetSecretRequest {
                    mount: at.mount.clone(),
                    path: at.path.clone(),
                    data: Value::Object(data.clone()),
                    options: options.clone(),
                })
                .await
        })
        .await
        .map(|_| ())
    }

    /// Sets `custom_metadata` of a KV v2 key.
    async fn write_metadata(
        &self,
        key: &str,
        custom: HashMap<String, String>,
    ) -> Result<(), ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let at = self.kv.locate(key)?;
        self.run(
            Call::WriteSecretData,
            &format!("write metadata of {}", describe(&at)),
            || async {
                self.session(vault)
                    .empty(kv2::requests::SetSecretMetadataRequest {
                        mount: at.mount.clone(),
                        path: at.path.clone(),
                        custom_metadata: Some(custom.clone()),
                        ..Default::default()
                    })
                    .await
            },
        )
        .await
    }

    /// Removes `key` entirely (every KV v2 version and its metadata).
    async fn delete_key(&self, key: &str) -> Result<(), ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let at = self.kv.locate(key)?;
        let what = format!("delete {}", describe(&at));
        let session = self.session(vault);
        let result = if self.kv.v2 {
            self.run(Call::DeleteSecret, &what, || async {
                session
                    .empty(kv2::requests::DeleteSecretMetadataRequest {
                        mount: at.mount.clone(),
                        path: at.path.clone(),
                    })
                    .await
            })
            .await
        } else {
            self.run(Call::DeleteSecret, &what, || async {
                session
                    .empty(kv1::requests::DeleteSecretRequest {
                        mount: at.mount.clone(),
                        path: at.path.clone(),
                    })
                    .await
            })
            .await
        };
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Every key below `root`, named relative to the mount (or with the mount, when the
    /// store names none), as upstream's recursive `LIST`.
    async fn list(&self, root: &Location) -> Result<Vec<String>, ProviderError> {
        let held = self.vault()?;
        let vault = &*held;
        let mut found = Vec::new();
        let mut folders = vec![root.path.clone()];
        while let Some(folder) = folders.pop() {
            let at = Location {
                mount: root.mount.clone(),
                path: folder.clone(),
            };
            let what = format!("list {}", describe(&at));
            let session = self.session(vault);
            let keys = if self.kv.v2 {
                self.run(Call::ListSecrets, &what, || async {
                    session
                        .data(kv2::requests::ListSecretsRequest {
                            mount: at.mount.clone(),
                            path: at.path.clone(),
                        })
                        .await
                })
                .await
                .map(|r| r.keys)
            } else {
                self.run(Call::ListSecrets, &what, || async {
                    session
                        .plain(kv1::requests::ListSecretRequest {
                            mount: at.mount.clone(),
                            path: at.path.clone(),
                        })
                        .await
                })
                .await
                .map(|r| r.data.keys)
            }?;
            for entry in keys {
                let full = if folder.is_empty() {
                    entry
                } else {
                    format!("{}/{entry}", folder.trim_end_matches('/'))
                };
                if full.ends_with('/') {
                    folders.push(full.trim_end_matches('/').to_string());
                } else {
                    found.push(full);
                }
            }
        }
        found.sort();
        Ok(match &self.kv.mount {
            Some(_) => found,
            None => found
                .into_iter()
                .map(|k| format!("{}/{k}", root.mount))
                .collect(),
        })
    }
}

fn describe(at: &Location) -> String {
    format!("\"{}/{}\"", at.mount, at.path)
}

/// A NotFound names the key as the user wrote it.
fn named(e: ProviderError, key: &str) -> ProviderError {
    match e {
        ProviderError::NotFound { detail, .. } => ProviderError::NotFound {
            key: key.to_string(),
            detail,
        },
        other => other,
    }
}

fn deleted_detail(version: Option<&str>) -> String {
    match version {
        Some(v) => format!("version {v} is deleted or destroyed"),
        None => "the current version is deleted or destroyed".into(),
    }
}

/// The whole map as JSON, or its `property` (an exact top-level key first, then a gjson path).
fn value_of(key: &str, data: &Data, property: Option<&str>) -> Result<SecretBytes, ProviderError> {
    let json = strongroom_provider_api::go_json(data)
        .map_err(|_| ProviderError::Malformed(format!("value of {key:?} is not serializable")))?;
    match property.filter(|p| !p.is_empty()) {
        None => Ok(SecretBytes::new(json)),
        Some(p) => json_property(key, &json, p),
    }
}

/// `custom_metadata` wanted on a pushed KV v2 key: the mark, plus
/// `PushSecretMetadata.spec.customMetadata` (merged into the remote's unless
/// `mergePolicy: Replace`).
fn wanted_metadata(
    remote: Option<&HashMap<String, String>>,
    push: Option<&Value>,
) -> Result<HashMap<String, String>, ProviderError> {
    let spec = push.and_then(|m| m.get("spec"));
    let replace = match spec
        .and_then(|s| s.get("mergePolicy"))
        .and_then(Value::as_str)
    {
        None | Some("Merge") => false,
        Some("Replace") => true,
        Some(other) => {
            return Err(invalid(format!(
                "unsupported merge policy {other:?}, must be one of: Merge, Replace"
            )));
        }
    };
    let mut out = HashMap::new();
    if !replace && let Some(r) = remote {
        out.extend(r.clone());
    }
    if let Some(Value::Object(custom)) = spec.and_then(|s| s.get("customMetadata")) {
        for (k, v) in custom {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            out.insert(k.clone(), v);
        }
    }
    out.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
    Ok(out)
}

fn not_managed(key: &str) -> ProviderError {
    ProviderError::PermissionDenied(format!(
        "remote key {key:?} exists and is not managed by external-secrets (no custom_metadata \
         managed-by=external-secrets): refusing to overwrite it"
    ))
}

#[async_trait]
impl SecretsClient for VaultSecretsClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let data = if remote.fetch_metadata {
            self.metadata_map(&remote.key).await?
        } else {
            self.read_data(&remote.key, remote.version.as_deref())
                .await?
        };
        value_of(&remote.key, &data, remote.property.as_deref())
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        if !self.kv.v2 && !query.tags.is_empty() {
            return Err(invalid(
                "cannot perform find by tag operations with kv version v1",
            ));
        }
        let filter = query.name_filter()?;
        let root = self.kv.search_root(query.path.as_deref())?;
        let mut out = SecretMap::new();
        for name in self.list(&root).await? {
            if filter.as_ref().is_some_and(|re| !re.is_match(&name)) {
                continue;
            }
            if !query.tags.is_empty() {
                let custom: BTreeMap<String, String> = match self.read_metadata(&name).await {
                    Ok(m) => m.custom_metadata.unwrap_or_default().into_iter().collect(),
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                if !query.tags_match(&custom) {
                    continue;
                }
            }
            match self.read_data(&name, None).await {
                Ok(data) => {
                    out.insert(name.clone(), value_of(&name, &data, None)?);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let key = &target.remote_key;
        let existing = match self.read_data(key, None).await {
            Ok(d) => Some(d),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let mut remote = existing.clone().unwrap_or_default();
        let remote_meta = match (&existing, self.kv.v2) {
            (Some(_), true) => Some(self.read_metadata(key).await?),
            _ => None,
        };
        if let Some(data) = &existing {
            let managed = match &remote_meta {
                Some(m) => m
                    .custom_metadata
                    .as_ref()
                    .and_then(|c| c.get(MANAGED_BY_KEY))
                    .is_some_and(|v| v == MANAGED_BY_VALUE),
                None => self.managed(key, data).await?,
            };
            if !managed {
                return Err(not_managed(key));
            }
        }
        if !self.kv.v2 {
            // KV v1 carries the mark inside the data; compare and merge without it.
            remote.remove(KV1_METADATA_KEY);
        }
        let wanted = match target.property.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                let text = String::from_utf8(value.expose().to_vec()).map_err(|_| {
                    invalid(format!(
                        "the value pushed to property {p:?} of {key:?} is not UTF-8"
                    ))
                })?;
                let mut merged = remote.clone();
                merged.insert(p.to_string(), Value::String(text));
                merged
            }
            None => match serde_json::from_slice::<Value>(value.expose()) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(invalid(format!(
                        "the value pushed to {key:?} without a property must be a JSON object"
                    )));
                }
            },
        };
        let data_changed = existing.is_none() || wanted != remote;
        if self.kv.v2 {
            let current = remote_meta
                .as_ref()
                .and_then(|m| m.custom_metadata.as_ref());
            let meta = wanted_metadata(current, target.metadata.as_ref())?;
            if current != Some(&meta) {
                self.write_metadata(key, meta).await?;
            }
            if data_changed {
                let cas = self
                    .cas_required
                    .then(|| remote_meta.as_ref().map_or(0, |m| m.current_version));
                self.write_data(key, &wanted, cas).await?;
            }
        } else if data_changed {
            let mut with_mark = wanted;
            with_mark.insert(
                KV1_METADATA_KEY.into(),
                serde_json::json!({ MANAGED_BY_KEY: MANAGED_BY_VALUE }),
            );
            self.write_data(key, &with_mark, None).await?;
        }
        Ok(())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let key = &target.remote_key;
        let mut data = match self.read_data(key, None).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        // As upstream: values without the mark are left alone, silently.
        if !self.managed(key, &data).await? {
            return Ok(());
        }
        if let Some(p) = target.property.as_deref().filter(|p| !p.is_empty()) {
            data.remove(p);
            let only_mark = !self.kv.v2 && data.len() == 1 && data.contains_key(KV1_METADATA_KEY);
            if !data.is_empty() && !only_mark {
                let cas = if self.cas_required && self.kv.v2 {
                    Some(self.read_metadata(key).await?.current_version)
                } else {
                    None
                };
                return self.write_data(key, &data, cas).await;
            }
        }
        self.delete_key(key).await
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let data = match self.read_data(&target.remote_key, None).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        match target.property.as_deref().filter(|p| !p.is_empty()) {
            None => Ok(true),
            Some(p) => match value_of(&target.remote_key, &data, Some(p)) {
                Ok(_) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        let Ok(vault) = self.vault() else {
            return Ok(Validation::Unknown);
        };
        self.run(Call::LookupSelf, "look up the token", || async {
            vaultrs::token::lookup_self(&*vault).await
        })
        .await?;
        Ok(Validation::Ready)
    }

    fn renews_itself(&self) -> bool {
        // A logged-in token is renewed or replaced by the keeper before it expires. A static
        // token (tokenSecretRef) is not: the client then ages out as others do, so a token
        // rotated in its Secret is picked up.
        self.keeper.as_ref().is_some_and(|k| k.logged_in())
    }

    async fn close(&self) {
        if let Some(task) = &self.upkeep {
            task.abort();
        }
        if let Some(keeper) = &self.keeper {
            keeper.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn text(b: SecretBytes) -> String {
        String::from_utf8(b.expose().to_vec()).unwrap()
    }

    #[test]
    fn values_as_upstream() {
        let data: Data = serde_json::from_value(json!({
            "tls.crt": "A", "a": {"b": [1, {"c": "d"}]}, "n": 5
        }))
        .unwrap();
        assert_eq!(text(value_of("k", &data, Some("tls.crt")).unwrap()), "A");
        assert_eq!(text(value_of("k", &data, Some("a.b.1.c")).unwrap()), "d");
        assert_eq!(text(value_of("k", &data, Some("n")).unwrap()), "5");
        assert_eq!(
            text(value_of("k", &data, Some("a")).unwrap()),
            r#"{"b":[1,{"c":"d"}]}"#
        );
        assert_eq!(
            text(value_of("k", &data, None).unwrap()),
            r#"{"a":{"b":[1,{"c":"d"}]},"n":5,"tls.crt":"A"}"#
        );
        assert!(
            value_of("k", &data, Some("nope"))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn pushed_metadata() {
        let remote = HashMap::from([("team".to_string(), "a".to_string())]);
        let push = json!({"spec": {"customMetadata": {"env": "prod", "managed-by": "me"}}});
        let m = wanted_metadata(Some(&remote), Some(&push)).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[MANAGED_BY_KEY], MANAGED_BY_VALUE);
        let replace = json!({"spec": {"mergePolicy": "Replace"}});
        assert_eq!(
            wanted_metadata(Some(&remote), Some(&replace))
                .unwrap()
                .len(),
            1
        );
        let bad = json!({"spec": {"mergePolicy": "Sometimes"}});
        assert!(wanted_metadata(None, Some(&bad)).is_err());
    }
}

//! The controller's side for the vault provider tests: credentials from a map (and, where a
//! test needs it, ServiceAccount tokens from devcluster's TokenRequest), calls recorded, and
//! OpenBao set up through its real CLI.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use strongroom_core::crd::external_secrets::{
    SecretKeySelector, SecretStoreProvider, StoreKind, VaultAppRole, VaultAuth,
    VaultProvider as Spec,
};
use strongroom_provider_api::{
    CredentialResolver, Provider, ProviderEnv, ProviderError, SecretBytes, SecretsClient,
    StoreContext,
};
use strongroom_provider_vault::VaultProvider;
use strongroom_testkit::backends::OpenBao;

/// Secrets by `(namespace, name, key)`; ServiceAccount tokens minted by `kube` when set.
#[derive(Default)]
pub struct Creds {
    pub secrets: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
    pub kube: Option<kube::Client>,
    /// Every TokenRequest asked for: `(namespace, name, audiences)`.
    pub token_requests: Mutex<Vec<(String, String, Vec<String>)>>,
}

impl Creds {
    pub fn put(&self, ns: &str, name: &str, key: &str, value: &str) {
        self.secrets.lock().unwrap().insert(
            (ns.into(), name.into(), key.into()),
            value.as_bytes().to_vec(),
        );
    }
}

#[async_trait::async_trait]
impl CredentialResolver for Creds {
    async fn secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError> {
        self.secrets
            .lock()
            .unwrap()
            .get(&(ns.into(), name.into(), key.into()))
            .map(|v| SecretBytes::new(v.clone()))
            .ok_or_else(|| ProviderError::Authentication(format!("no Secret {ns}/{name}[{key}]")))
    }

    async fn config_map_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        self.secret_key(ns, name, key)
            .await
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
    }

    async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        self.token_requests
            .lock()
            .unwrap()
            .push((ns.into(), name.into(), audiences.to_vec()));
        let kube = self
            .kube
            .clone()
            .ok_or_else(|| ProviderError::Authentication("no cluster in this test".into()))?;
        let token =
            strongroom_testkit::request_token(&kube, ns, name, audiences, expiration_seconds)
                .await
                .map_err(|e| ProviderError::Authentication(e.to_string()))?;
        Ok(SecretBytes::from(token.as_str()))
    }

    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(BTreeMap::new())
    }
}

/// Calls as the controller's metric sees them.
pub use strongroom_provider_api::conformance::RecordedCalls as Calls;

pub struct Env {
    pub creds: Arc<Creds>,
    pub calls: Arc<Calls>,
}

impl Env {
    pub fn new(creds: Creds) -> Self {
        Self {
            creds: Arc::new(creds),
            calls: Arc::new(Calls::default()),
        }
    }

    pub fn provider_env(&self) -> ProviderEnv {
        ProviderEnv {
            credentials: self.creds.clone(),
            calls: self.calls.clone(),
        }
    }
}

pub fn selector(name: &str, key: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: Some(name.into()),
        key: Some(key.into()),
        namespace: None,
    }
}

pub fn store(spec: Spec) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "vault".into(),
        namespace: Some("team".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            vault: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

/// A store on `bao` with `mount` (KV v2 unless `v1`) and `auth`.
pub fn spec(bao: &OpenBao, mount: Option<&str>, auth: VaultAuth) -> Spec {
    Spec {
        server: bao.addr.clone(),
        path: mount.map(str::to_string),
        auth: Some(auth),
        ..Spec::default()
    }
}

/// Root token auth from Secret `team/bao-token`.
pub fn root_auth(env: &Env) -> VaultAuth {
    env.creds.put("team", "bao-token", "token", OpenBao::ROOT);
    VaultAuth {
        token_secret_ref: Some(selector("bao-token", "token")),
        ..VaultAuth::default()
    }
}

pub async fn connect(store: &StoreContext, env: &Env) -> Box<dyn SecretsClient> {
    VaultProvider.validate_store(store).unwrap();
    VaultProvider
        .connect(store, env.provider_env())
        .await
        .unwrap()
}

/// A policy `name` granting everything on `secret/*` and `kv1/*`.
pub fn reader_policy(bao: &OpenBao, name: &str) {
    bao.policy(
        name,
        r#"path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv1/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"#,
    );
}

/// AppRole at `approle/` with role `reader` (policy `reader`, token TTL `ttl`); puts the
/// role id and a secret id into Secret `team/approle` (`role-id`, `secret-id`) and returns
/// the store's `auth` block.
pub fn approle(bao: &OpenBao, env: &Env, ttl: &str) -> VaultAuth {
    reader_policy(bao, "reader");
    let (role_id, secret_id) = bao.approle("reader", "reader", ttl);
    env.creds.put("team", "approle", "role-id", &role_id);
    env.creds.put("team", "approle", "secret-id", &secret_id);
    VaultAuth {
        app_role: Some(VaultAppRole {
            path: None,
            role_id: None,
            role_ref: Some(selector("approle", "role-id")),
            secret_ref: selector("approle", "secret-id"),
        }),
        ..VaultAuth::default()
    }
}

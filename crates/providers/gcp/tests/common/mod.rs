//! The controller's side for the gcp provider tests: credentials from maps (and, where a test
//! needs it, ServiceAccount tokens from devcluster's TokenRequest), calls recorded, and the
//! Secret Manager stand-in as the backend.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use strongroom_core::crd::external_secrets::{
    GcpSmAuth, GcpSmAuthSecretRef, GcpSmProvider as Spec, SecretKeySelector, SecretStoreProvider,
    StoreKind,
};
use strongroom_provider_api::{
    CredentialResolver, Provider, ProviderEnv, ProviderError, SecretBytes, SecretsClient,
    StoreContext,
};
use strongroom_provider_gcp::{Endpoints, GcpProvider};
use strongroom_testkit::standins::gcp::{GcpStandIn, PROJECT};

/// Secrets and ConfigMaps by `(namespace, name, key)`; ServiceAccount tokens minted by
/// `kube` when set; ServiceAccount annotations by `(namespace, name)`.
#[derive(Default)]
pub struct Creds {
    pub secrets: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
    pub annotations: Mutex<BTreeMap<(String, String), BTreeMap<String, String>>>,
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
        ns: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(self
            .annotations
            .lock()
            .unwrap()
            .get(&(ns.into(), name.into()))
            .cloned()
            .unwrap_or_default())
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
        name: "gcp".into(),
        namespace: Some("team".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            gcpsm: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

/// A store reading with the stand-in's service-account key from Secret `team/gcp-key`.
pub fn key_spec(standin: &GcpStandIn, env: &Env) -> Spec {
    env.creds.put(
        "team",
        "gcp-key",
        "key.json",
        &standin.service_account_key(),
    );
    Spec {
        project_id: Some(PROJECT.into()),
        auth: Some(GcpSmAuth {
            secret_ref: Some(GcpSmAuthSecretRef {
                secret_access_key_secret_ref: Some(selector("gcp-key", "key.json")),
            }),
            ..GcpSmAuth::default()
        }),
        ..Spec::default()
    }
}

/// Every endpoint at the stand-in.
pub fn endpoints(standin: &GcpStandIn) -> Endpoints {
    Endpoints {
        secret_manager: Some(standin.url.clone()),
        sts: Some(standin.url.clone()),
        iam_credentials: Some(standin.url.clone()),
        metadata_host: Some(standin.url.trim_start_matches("http://").to_string()),
        adc_file: None,
    }
}

/// The provider talking to the stand-in only.
pub fn provider(standin: &GcpStandIn) -> GcpProvider {
    GcpProvider::with_endpoints(endpoints(standin))
}

pub async fn connect(
    standin: &GcpStandIn,
    store: &StoreContext,
    env: &Env,
) -> Box<dyn SecretsClient> {
    let p = provider(standin);
    p.validate_store(store).unwrap();
    p.connect(store, env.provider_env()).await.unwrap()
}

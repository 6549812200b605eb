//! Test plumbing: the Azure stand-in per test (there is no Key Vault emulator; see
//! `strongroom_testkit::standins::azure`), a credential resolver stub (the controller's side)
//! that mints ServiceAccount tokens signed by a test issuer, and store builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{
    AzureKvAuth, AzureKvProvider as Spec, SecretKeySelector, SecretStoreProvider,
    ServiceAccountSelector, StoreKind,
};
use strongroom_provider_api::{
    CredentialResolver, Provider, ProviderEnv, ProviderError, SecretBytes, SecretsClient,
    StoreContext,
};
use strongroom_provider_azure::{AzureProvider, Endpoints};
#[allow(unused_imports)]
pub use strongroom_testkit::standins::azure::{AzureStandIn, Fault, Options};

pub use strongroom_provider_api::conformance::RecordedCalls as Calls;

pub const CLIENT_ID: &str = "app-1";
pub const CLIENT_SECRET: &str = "client-secret-value";
pub const CLIENT_PEM: &str = include_str!("../fixtures/client.pem");
pub const OTHER_KEY_PEM: &str = include_str!("../fixtures/other-key.pem");
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A ServiceAccount token issuer (P-256), standing in for the cluster's.
pub struct Issuer {
    key: jsonwebtoken::EncodingKey,
    pub jwks: Value,
}

impl Issuer {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
        Self {
            key: jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
            jwks,
        }
    }

    pub fn token(&self, sub: &str, audiences: &[String]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let claims = json!({"iss": ISSUER, "sub": sub, "aud": audiences, "iat": now, "nbf": now, "exp": now + 600});
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

/// The controller's side, stubbed: Secrets in namespace `creds`, ServiceAccount annotations,
/// TokenRequest tokens from [`Issuer`] (recorded).
pub struct Resolver {
    pub secrets: BTreeMap<(String, String, String), String>,
    pub annotations: BTreeMap<String, String>,
    pub issuer: Issuer,
    pub tokens: Mutex<Vec<(String, Vec<String>)>>,
}

impl Resolver {
    pub fn new() -> Self {
        Self {
            secrets: BTreeMap::new(),
            annotations: BTreeMap::new(),
            issuer: Issuer::new(),
            tokens: Mutex::new(Vec::new()),
        }
    }

    pub fn put(&mut self, name: &str, key: &str, value: &str) {
        self.secrets
            .insert(("creds".into(), name.into(), key.into()), value.into());
    }

    pub fn with_service_principal(secret: &str) -> Self {
        let mut r = Self::new();
        r.put("sp", "client-id", CLIENT_ID);
        r.put("sp", "client-secret", secret);
        r.put("sp", "client-cert", CLIENT_PEM);
        r
    }
}

#[async_trait::async_trait]
impl CredentialResolver for Resolver {
    async fn secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError> {
        self.secrets
            .get(&(ns.into(), name.into(), key.into()))
            .map(|v| SecretBytes::from(v.as_str()))
            .ok_or_else(|| {
                ProviderError::Authentication(format!("Secret {ns}/{name} has no key {key:?}"))
            })
    }

    async fn config_map_key(&self, ns: &str, name: &str, _: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Authentication(format!(
            "ConfigMap {ns}/{name} not found"
        )))
    }

    async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[String],
        _: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        self.tokens
            .lock()
            .unwrap()
            .push((format!("{ns}/{name}"), audiences.to_vec()));
        let sub = format!("system:serviceaccount:{ns}:{name}");
        Ok(SecretBytes::from(
            self.issuer.token(&sub, audiences).as_str(),
        ))
    }

    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(self.annotations.clone())
    }
}

pub fn provider_env(resolver: Resolver) -> (Arc<Calls>, ProviderEnv) {
    let calls = Arc::new(Calls::default());
    let env = ProviderEnv {
        credentials: Arc::new(resolver),
        calls: calls.clone(),
    };
    (calls, env)
}

pub fn sel(name: &str, key: &str) -> Option<SecretKeySelector> {
    Some(SecretKeySelector {
        name: Some(name.into()),
        key: Some(key.into()),
        namespace: None,
    })
}

/// Endpoints pointing at the stand-in, trusting its CA.
pub fn endpoints(standin: &AzureStandIn) -> Endpoints {
    Endpoints {
        authority_host: Some(standin.authority.clone()),
        imds_host: Some(standin.imds_host.clone()),
        extra_ca_pem: Some(standin.ca_pem.clone().into_bytes()),
        ..Endpoints::default()
    }
}

/// A service principal store with a client secret.
pub fn secret_spec(standin: &AzureStandIn) -> Spec {
    Spec {
        vault_url: standin.vault_url.clone(),
        tenant_id: Some(standin.tenant().into()),
        auth_secret_ref: Some(AzureKvAuth {
            client_id: sel("sp", "client-id"),
            client_secret: sel("sp", "client-secret"),
            ..AzureKvAuth::default()
        }),
        ..Spec::default()
    }
}

/// A service principal store with a client certificate.
pub fn cert_spec(standin: &AzureStandIn) -> Spec {
    Spec {
        vault_url: standin.vault_url.clone(),
        tenant_id: Some(standin.tenant().into()),
        auth_secret_ref: Some(AzureKvAuth {
            client_id: sel("sp", "client-id"),
            client_certificate: sel("sp", "client-cert"),
            ..AzureKvAuth::default()
        }),
        ..Spec::default()
    }
}

/// A workload identity store through ServiceAccount `reader`.
pub fn workload_spec(standin: &AzureStandIn) -> Spec {
    Spec {
        vault_url: standin.vault_url.clone(),
        auth_type: Some("WorkloadIdentity".into()),
        service_account_ref: Some(ServiceAccountSelector {
            name: "reader".into(),
            namespace: None,
            audiences: None,
        }),
        ..Spec::default()
    }
}

/// A managed identity store (user-assigned when `identity` is set).
pub fn managed_spec(standin: &AzureStandIn, identity: Option<&str>) -> Spec {
    Spec {
        vault_url: standin.vault_url.clone(),
        auth_type: Some("ManagedIdentity".into()),
        identity_id: identity.map(str::to_string),
        ..Spec::default()
    }
}

pub fn store(spec: Spec) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "azure".into(),
        namespace: Some("creds".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            azurekv: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

pub async fn connect(
    standin: &AzureStandIn,
    spec: Spec,
    env: ProviderEnv,
) -> Box<dyn SecretsClient> {
    AzureProvider::with_endpoints(endpoints(standin))
        .connect(&store(spec), env)
        .await
        .unwrap()
}

pub async fn try_connect(
    provider: &AzureProvider,
    spec: Spec,
    env: ProviderEnv,
) -> Result<Box<dyn SecretsClient>, ProviderError> {
    provider.connect(&store(spec), env).await
}

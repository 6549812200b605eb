//! What the `ECRAuthorizationToken` and `STSSessionToken` generators share: their `region`,
//! `auth` and `role` fields, turned into an authenticated session exactly as a SecretStore's
//! would be (upstream's `NewGeneratorSession`).
//!
//! Credential Secrets and the ServiceAccount are read in the generating ExternalSecret's
//! namespace; a reference naming another namespace is refused (upstream ignores the field).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use strongroom_core::crd::external_secrets::{
    AwsAuth, AwsProvider as StoreSpec, SecretStoreProvider, StoreKind,
};
use strongroom_provider_api::{ProviderEnv, ProviderError, StoreContext};

use crate::auth::{self, Session};
use crate::config::{Endpoints, Settings};

/// The fields both generators read (upstream's `ECRAuthorizationTokenSpec` and
/// `STSSessionTokenSpec` share them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommonSpec {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub auth: Option<AwsAuth>,
    #[serde(default)]
    pub role: Option<String>,
}

/// Reads one generator spec (kept as written in the CRD) as `T`; the message names the kind
/// and serde's complaint, which quotes field names and types, not values of Secrets (the spec
/// holds none).
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    kind: &str,
    spec: &BTreeMap<String, Value>,
) -> Result<T, ProviderError> {
    let object = Value::Object(spec.clone().into_iter().collect());
    serde_json::from_value(object)
        .map_err(|e| ProviderError::InvalidConfig(format!("{kind} spec is invalid: {e}")))
}

/// The authenticated session of a generator of `kind` run for an ExternalSecret in
/// `namespace`: the store code path with a SecretStore of that namespace.
pub(crate) async fn session(
    kind: &str,
    common: &CommonSpec,
    namespace: &str,
    env: &ProviderEnv,
    endpoints: &Endpoints,
) -> Result<Session, ProviderError> {
    let store = StoreContext {
        kind: StoreKind::SecretStore,
        name: kind.to_string(),
        namespace: Some(namespace.to_string()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            aws: Some(StoreSpec {
                // The service only picks the store's client; generators build their own.
                service: "SecretsManager".into(),
                region: common.region.clone(),
                auth: common.auth.clone(),
                role: common.role.clone(),
                ..StoreSpec::default()
            }),
            ..SecretStoreProvider::default()
        },
        retry: None,
    };
    let settings = Settings::from_store(&store)?;
    auth::connect(&store, &settings, endpoints, env).await
}

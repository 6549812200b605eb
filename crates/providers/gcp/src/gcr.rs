//! Upstream's `GCRAccessToken` generator: one access token for the generator's `auth` and
//! `projectID` (the same auth block as the store's), as Docker registry credentials.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strongroom_core::crd::external_secrets::{
    GcpSmAuth, GcpSmProvider, SecretStoreProvider, StoreKind,
};
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, SecretMap, StoreContext};

use crate::config::{self, invalid};
use crate::endpoints::Endpoints;

/// The registry user name Google's registries expect with an access token.
const LOGIN_USERNAME: &str = "oauth2accesstoken";

/// `{username, password, expiry}` for a GCRAccessToken spec (`auth`, `projectID`) read in
/// `namespace`: a fresh token on every call, as upstream's generator.
pub(crate) async fn generate(
    spec: &BTreeMap<String, Value>,
    namespace: &str,
    env: ProviderEnv,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let auth: GcpSmAuth = match spec.get("auth") {
        Some(a) => serde_json::from_value(a.clone())
            .map_err(|e| invalid(format!("GCRAccessToken spec.auth is invalid: {e}")))?,
        None => GcpSmAuth::default(),
    };
    let project_id = spec
        .get("projectID")
        .and_then(Value::as_str)
        .map(str::to_string);
    let store = StoreContext {
        kind: StoreKind::SecretStore,
        name: "GCRAccessToken".into(),
        namespace: Some(namespace.to_string()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            gcpsm: Some(GcpSmProvider {
                auth: Some(auth),
                project_id,
                ..GcpSmProvider::default()
            }),
            ..SecretStoreProvider::default()
        },
        retry: None,
    };
    config::validate(&store)?;
    let gcpsm = config::spec(&store)?;
    let (source, _) =
        config::source(&store, gcpsm, &env, endpoints, config::http_client()?).await?;
    let token = source.fetch().await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expiry = now + token.lifetime().as_secs();
    Ok(SecretMap::from([
        ("username".to_string(), SecretBytes::from(LOGIN_USERNAME)),
        ("password".to_string(), SecretBytes::from(token.secret())),
        (
            "expiry".to_string(),
            SecretBytes::from(expiry.to_string().as_str()),
        ),
    ]))
}

//! The Webhook generator: one HTTP call whose JSON answer becomes the generated keys. The call,
//! its templates and the answer's handling are the webhook provider's
//! (`strongroom_provider_webhook::generator`); this module parses the spec and words the
//! errors as upstream's generator does.
//!
//! Spec fields: `url`, `method` (GET when empty), `headers`, `body`, `timeout` (a Go
//! duration), `result.jsonPath`, `secrets[]` (`name`, `secretRef{name}`; each Secret read in
//! the ExternalSecret's namespace must carry the label `external-secrets.io/type: webhook`),
//! `caBundle`, `caProvider`, `auth.ntlm` (NTLM, as the webhook provider). Without `timeout`
//! a call is given up after a minute (upstream waits forever).

use std::collections::BTreeMap;

use strongroom_core::crd::external_secrets::WebhookProvider as Spec;
use strongroom_provider_api::{ProviderEnv, SecretMap};

/// Runs the Webhook generator `spec` (as written in the generator object) for an
/// ExternalSecret in `namespace`.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let value = serde_json::Value::Object(spec.clone().into_iter().collect());
    let spec: Spec =
        serde_json::from_value(value).map_err(|e| format!("failed to parse provider spec: {e}"))?;
    strongroom_provider_webhook::generator::generate(env, namespace, &spec)
        .await
        .map_err(|e| e.to_string())
}

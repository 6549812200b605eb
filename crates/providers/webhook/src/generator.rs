//! The Webhook generator's run: one call whose JSON answer (or the part `result.jsonPath`
//! picks) becomes the generated keys.
//!
//! The templates see one map per `secrets[]` entry (no `.remoteRef`); each Secret and a
//! `caProvider` are read in the ExternalSecret's namespace (`secretRef.namespace`,
//! `secretRef.key` and `caProvider.namespace` are not read, as upstream's generator). The
//! `auth.ntlm` Secrets are read there too (their `namespace` is not read either).

use strongroom_core::crd::external_secrets::{CaProviderType, WebhookProvider as Spec};
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretMap, decode_ca_bundle};

use crate::http::{Endpoint, Request};
use crate::ntlm::NtlmCredentials;
use crate::template::TemplateData;
use crate::{answer, check_spec, timeout};

/// Runs the generator `spec` for an ExternalSecret in `namespace`.
pub async fn generate(
    env: &ProviderEnv,
    namespace: &str,
    spec: &Spec,
) -> Result<SecretMap, ProviderError> {
    check_spec(spec)?;
    let ca = ca_pem(env, namespace, spec).await?;
    let endpoint = Endpoint::new(ca.as_deref(), timeout(spec)?)?;
    let mut data = TemplateData::default();
    data.add_secrets(
        env.credentials.as_ref(),
        spec.secrets.as_deref().unwrap_or_default(),
        |_| Ok(namespace.to_string()),
    )
    .await?;
    let request = Request::render(spec, &data, "GET", spec.body.as_deref().unwrap_or(""), &[])?;
    let ntlm = match spec.auth.as_ref().and_then(|a| a.ntlm.as_ref()) {
        Some(ntlm) => Some(
            NtlmCredentials::read(
                env.credentials.as_ref(),
                ntlm,
                |_| Ok(namespace.to_string()),
                "the Webhook generator",
            )
            .await?,
        ),
        None => None,
    };
    let body = endpoint
        .fetch_as(
            request,
            ntlm.as_ref(),
            "the webhook's answer",
            env.calls.as_ref(),
        )
        .await?;
    let json_path = data.render(
        "result.jsonPath",
        spec.result
            .as_ref()
            .and_then(|r| r.json_path.as_deref())
            .unwrap_or(""),
        &[],
    )?;
    answer::secret_map(&body, &json_path, "the webhook's answer")
}

/// The CA PEM the spec names: `caBundle`, else `caProvider` read in `namespace`.
async fn ca_pem(
    env: &ProviderEnv,
    namespace: &str,
    spec: &Spec,
) -> Result<Option<Vec<u8>>, ProviderError> {
    if let Some(bundle) = spec.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        return decode_ca_bundle(bundle, "caBundle").map(Some);
    }
    let Some(ca) = &spec.ca_provider else {
        return Ok(None);
    };
    let key = ca.key.as_deref().unwrap_or_default();
    Ok(Some(match ca.type_ {
        CaProviderType::Secret => env
            .credentials
            .secret_key(namespace, &ca.name, key)
            .await?
            .expose()
            .to_vec(),
        CaProviderType::ConfigMap => env
            .credentials
            .config_map_key(namespace, &ca.name, key)
            .await?
            .into_bytes(),
    }))
}

//! Upstream's `STSSessionToken` generator: STS `GetSessionToken` with the generator's
//! credentials (`requestParameters`: `sessionDuration`, `serialNumber`, `tokenCode`).
//!
//! Output (upstream's keys): `access_key_id`, `secret_access_key`, `session_token` and
//! `expiration` (Unix seconds). As upstream, `auth.jwt` is refused: AWS hands session tokens
//! to long-term keys only.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, SecretMap};

use crate::config::Endpoints;
use crate::error::from_sdk;
use crate::generator::{self, CommonSpec};

/// The generator kind.
pub(crate) const KIND: &str = "STSSessionToken";

/// `requestParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParameters {
    #[serde(default)]
    session_duration: Option<i32>,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    token_code: Option<String>,
}

/// The spec: the shared fields and `requestParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(flatten)]
    common: CommonSpec,
    #[serde(default)]
    request_parameters: Option<RequestParameters>,
}

/// `{access_key_id, secret_access_key, session_token, expiration}` for the spec, run for an
/// ExternalSecret in `namespace`: fresh credentials on every call, as upstream's generator.
pub(crate) async fn generate(
    spec: &BTreeMap<String, Value>,
    namespace: &str,
    env: &ProviderEnv,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let spec: Spec = generator::parse(KIND, spec)?;
    if spec.common.auth.as_ref().is_some_and(|a| a.jwt.is_some()) {
        return Err(ProviderError::InvalidConfig(
            "auth.jwt cannot be used for STS session token generation (AWS gives session tokens to long-term keys only)"
                .into(),
        ));
    }
    let session = generator::session(KIND, &spec.common, namespace, env, endpoints).await?;
    let mut conf = aws_sdk_sts::config::Builder::from(&session.config);
    conf.set_endpoint_url(endpoints.sts.clone());
    let client = aws_sdk_sts::Client::from_conf(conf.build());
    let params = spec.request_parameters.unwrap_or_default();
    let out = client
        .get_session_token()
        .set_duration_seconds(params.session_duration)
        .set_serial_number(params.serial_number)
        .set_token_code(params.token_code)
        .send()
        .await
        .map_err(|e| from_sdk(e, "GetSessionToken", &spec.common.region))?;
    let c = out.credentials().ok_or_else(|| {
        ProviderError::Malformed("GetSessionToken answered without credentials".into())
    })?;
    Ok(credentials_map(c))
}

/// The keys both STS generators write (upstream's): the temporary credentials and their
/// expiry in Unix seconds.
pub(crate) fn credentials_map(c: &aws_sdk_sts::types::Credentials) -> SecretMap {
    SecretMap::from([
        (
            "access_key_id".to_string(),
            SecretBytes::from(c.access_key_id()),
        ),
        (
            "secret_access_key".to_string(),
            SecretBytes::from(c.secret_access_key()),
        ),
        (
            "session_token".to_string(),
            SecretBytes::from(c.session_token()),
        ),
        (
            "expiration".to_string(),
            SecretBytes::from(c.expiration().secs().to_string().as_str()),
        ),
    ])
}

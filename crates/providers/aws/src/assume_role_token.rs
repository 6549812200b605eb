//! Upstream's `STSAssumeRoleToken` generator: STS `AssumeRole` of `role` with the generator's
//! credentials (static keys, web identity or the default chain), never `GetSessionToken`, so
//! temporary base credentials (IRSA) work too.
//!
//! `requestParameters`: `sessionDuration` (seconds; 900 when unset, the default of upstream's
//! SDK) and `externalID`. The session is named as upstream's SDK names it
//! (`aws-go-sdk-<Unix nanoseconds>`).
//!
//! Output (upstream's keys): `access_key_id`, `secret_access_key`, `session_token` and
//! `expiration` (Unix seconds).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretMap};

use crate::config::Endpoints;
use crate::error::from_sdk;
use crate::generator::{self, CommonSpec};

/// The generator kind.
pub(crate) const KIND: &str = "STSAssumeRoleToken";
/// The session length asked for without `sessionDuration` (aws-sdk-go-v2 `stscreds`' default).
const DEFAULT_SECONDS: i32 = 900;

/// `requestParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParameters {
    #[serde(default)]
    session_duration: Option<i32>,
    #[serde(default, rename = "externalID")]
    external_id: Option<String>,
}

/// The spec: the shared fields (`role` is the role to assume) and `requestParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(flatten)]
    common: CommonSpec,
    #[serde(default)]
    request_parameters: Option<RequestParameters>,
}

/// The session name upstream's SDK gives an `AssumeRole` without one.
fn session_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("aws-go-sdk-{nanos}")
}

/// `{access_key_id, secret_access_key, session_token, expiration}` of a fresh session of the
/// spec's role, run for an ExternalSecret in `namespace`.
pub(crate) async fn generate(
    spec: &BTreeMap<String, Value>,
    namespace: &str,
    env: &ProviderEnv,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let mut spec: Spec = generator::parse(KIND, spec)?;
    let role = spec
        .common
        .role
        .take()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ProviderError::InvalidConfig("role must be specified".into()))?;
    let params = spec.request_parameters.unwrap_or_default();
    if let Some(d) = params.session_duration
        && d < DEFAULT_SECONDS
    {
        return Err(ProviderError::InvalidConfig(format!(
            "requestParameters.sessionDuration {d} is below STS's minimum of 900 seconds"
        )));
    }
    // The base credentials only: the role is assumed here, with this generator's parameters.
    let session = generator::session(KIND, &spec.common, namespace, env, endpoints).await?;
    let mut conf = aws_sdk_sts::config::Builder::from(&session.config);
    conf.set_endpoint_url(endpoints.sts.clone());
    let client = aws_sdk_sts::Client::from_conf(conf.build());
    let out = client
        .assume_role()
        .role_arn(&role)
        .role_session_name(session_name())
        .duration_seconds(params.session_duration.unwrap_or(DEFAULT_SECONDS))
        .set_external_id(params.external_id.filter(|e| !e.is_empty()))
        .send()
        .await
        .map_err(|e| from_sdk(e, "AssumeRole", &role))?;
    let c = out.credentials().ok_or_else(|| {
        ProviderError::Malformed("AssumeRole answered without credentials".into())
    })?;
    Ok(crate::session_token::credentials_map(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parameters_read_upstreams_names() {
        let spec: Spec = generator::parse(
            KIND,
            &serde_json::from_value(serde_json::json!({
                "region": "eu-west-1", "role": "arn:aws:iam::1:role/r",
                "requestParameters": {"sessionDuration": 3600, "externalID": "ext"}}))
            .unwrap_or_default(),
        )
        .unwrap_or_default();
        let p = spec.request_parameters.unwrap_or_default();
        assert_eq!(p.session_duration, Some(3600));
        assert_eq!(p.external_id.as_deref(), Some("ext"));
        assert_eq!(spec.common.role.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert!(session_name().starts_with("aws-go-sdk-"));
    }
}

//! Upstream's `CodeArtifactAuthorizationToken` generator: CodeArtifact
//! `GetAuthorizationToken` for `domain` owned by `domainOwner`, with the generator's
//! credentials (`auth`, then `role` assumed first, as the other AWS generators).
//!
//! `durationSeconds` (0, or 900 to 43200) is sent when set; AWS's default (12 hours) applies
//! otherwise. Output (upstream's keys): `authorizationToken` and `expiration` (Unix seconds).
//! The endpoint is `AWS_CODEARTIFACT_ENDPOINT` when set.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, SecretMap};

use crate::config::Endpoints;
use crate::error::from_sdk;
use crate::generator::{self, CommonSpec};

/// The generator kind.
pub(crate) const KIND: &str = "CodeArtifactAuthorizationToken";

/// The spec: the shared fields, the domain and the token's lifetime.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(flatten)]
    common: CommonSpec,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    domain_owner: String,
    #[serde(default)]
    duration_seconds: Option<i64>,
}

/// The spec's own fields checked before any call.
fn check(spec: &Spec) -> Result<(), ProviderError> {
    let invalid = |m: String| Err(ProviderError::InvalidConfig(m));
    if spec.domain.is_empty() {
        return invalid("domain is required".into());
    }
    if spec.domain_owner.is_empty() {
        return invalid("domainOwner is required".into());
    }
    match spec.duration_seconds {
        None | Some(0) | Some(900..=43_200) => Ok(()),
        Some(d) => invalid(format!(
            "durationSeconds must be 0 or between 900 and 43200, not {d}"
        )),
    }
}

/// `{authorizationToken, expiration}` for the spec, run for an ExternalSecret in `namespace`:
/// a fresh token on every call, as upstream's generator.
pub(crate) async fn generate(
    spec: &BTreeMap<String, Value>,
    namespace: &str,
    env: &ProviderEnv,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let spec: Spec = generator::parse(KIND, spec)?;
    check(&spec)?;
    let session = generator::session(KIND, &spec.common, namespace, env, endpoints).await?;
    let mut conf = aws_sdk_codeartifact::config::Builder::from(&session.config);
    conf.set_endpoint_url(endpoints.codeartifact.clone());
    let client = aws_sdk_codeartifact::Client::from_conf(conf.build());
    let out = client
        .get_authorization_token()
        .domain(&spec.domain)
        .domain_owner(&spec.domain_owner)
        .set_duration_seconds(spec.duration_seconds)
        .send()
        .await
        .map_err(|e| from_sdk(e, "GetAuthorizationToken", &spec.domain))?;
    let token = out.authorization_token().ok_or_else(|| {
        ProviderError::Malformed("GetAuthorizationToken answered no authorization token".into())
    })?;
    let expiration = out.expiration().ok_or_else(|| {
        ProviderError::Malformed("GetAuthorizationToken answered no expiration".into())
    })?;
    Ok(SecretMap::from([
        ("authorizationToken".to_string(), SecretBytes::from(token)),
        (
            "expiration".to_string(),
            SecretBytes::from(expiration.secs().to_string().as_str()),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Spec {
        generator::parse(KIND, &serde_json::from_value(v).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn bad_specs_are_refused_with_the_field() {
        let ok = spec(serde_json::json!({"region": "us-east-1", "domain": "d",
            "domainOwner": "123456789012", "durationSeconds": 900}));
        assert!(check(&ok).is_ok());
        for (bad, says) in [
            (
                serde_json::json!({"region": "r", "domainOwner": "1"}),
                "domain is required",
            ),
            (
                serde_json::json!({"region": "r", "domain": "d"}),
                "domainOwner is required",
            ),
            (
                serde_json::json!({"region": "r", "domain": "d", "domainOwner": "1", "durationSeconds": 60}),
                "durationSeconds must be 0 or between 900 and 43200, not 60",
            ),
        ] {
            let e = check(&spec(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{e}");
        }
    }
}

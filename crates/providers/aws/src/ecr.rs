//! Upstream's `ECRAuthorizationToken` generator: ECR `GetAuthorizationToken` with the
//! generator's credentials, as registry credentials.
//!
//! Output (upstream's keys): `username` and `password` (the token decoded from base64
//! `user:password`), `proxy_endpoint` (the registry URL) and `expires_at` (Unix seconds).
//! `scope: public` asks ECR Public (`AWS_ECR_PUBLIC_ENDPOINT`) instead, whose answer names no
//! registry: `username`, `password` and `expires_at` only, as upstream.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, SecretMap};

use crate::config::Endpoints;
use crate::error::from_sdk;
use crate::generator::{self, CommonSpec};

/// The generator kind.
pub(crate) const KIND: &str = "ECRAuthorizationToken";

/// The spec: the shared fields and `scope`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(flatten)]
    common: CommonSpec,
    #[serde(default)]
    scope: Option<String>,
}

/// `{username, password, proxy_endpoint, expires_at}` for the spec (`proxy_endpoint` left out
/// for `scope: public`), run for an ExternalSecret in `namespace`: a fresh token on every call,
/// as upstream's generator.
pub(crate) async fn generate(
    spec: &BTreeMap<String, Value>,
    namespace: &str,
    env: &ProviderEnv,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let spec: Spec = generator::parse(KIND, spec)?;
    let session = generator::session(KIND, &spec.common, namespace, env, endpoints).await?;
    if spec.scope.as_deref() == Some("public") {
        return public(&session.config, &spec.common.region, endpoints).await;
    }
    let mut conf = aws_sdk_ecr::config::Builder::from(&session.config);
    conf.set_endpoint_url(endpoints.ecr.clone());
    let client = aws_sdk_ecr::Client::from_conf(conf.build());
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| from_sdk(e, "GetAuthorizationToken", &spec.common.region))?;
    let data = out.authorization_data();
    let [one] = data else {
        return Err(ProviderError::Malformed(format!(
            "GetAuthorizationToken answered {} authorization tokens, expected 1",
            data.len()
        )));
    };
    let mut map = credentials(one.authorization_token(), one.expires_at())?;
    let proxy_endpoint = one.proxy_endpoint().unwrap_or_default();
    map.insert(
        "proxy_endpoint".to_string(),
        SecretBytes::from(proxy_endpoint),
    );
    Ok(map)
}

/// ECR Public's `GetAuthorizationToken` (one token for every public registry).
async fn public(
    config: &aws_config::SdkConfig,
    region: &str,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let mut conf = aws_sdk_ecrpublic::config::Builder::from(config);
    conf.set_endpoint_url(endpoints.ecr_public.clone());
    let client = aws_sdk_ecrpublic::Client::from_conf(conf.build());
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| from_sdk(e, "GetAuthorizationToken (ECR Public)", region))?;
    let data = out.authorization_data().ok_or_else(|| {
        ProviderError::Malformed("GetAuthorizationToken answered no authorization data".into())
    })?;
    credentials(data.authorization_token(), data.expires_at())
}

/// `username`, `password` and `expires_at` from a token and its expiry.
fn credentials(
    token: Option<&str>,
    expires_at: Option<&aws_smithy_types::DateTime>,
) -> Result<SecretMap, ProviderError> {
    let token = token.ok_or_else(|| {
        ProviderError::Malformed("GetAuthorizationToken answered no authorization token".into())
    })?;
    let (username, password) = decode(token)?;
    let expires_at = expires_at.map(|t| t.secs()).ok_or_else(|| {
        ProviderError::Malformed("GetAuthorizationToken answered no expiry".into())
    })?;
    Ok(SecretMap::from([
        ("username".to_string(), SecretBytes::from(username.as_str())),
        ("password".to_string(), SecretBytes::from(password.as_str())),
        (
            "expires_at".to_string(),
            SecretBytes::from(expires_at.to_string().as_str()),
        ),
    ]))
}

/// The base64 `user:password` token, split; errors never quote the token.
fn decode(token: &str) -> Result<(String, String), ProviderError> {
    let malformed = |what: &str| {
        ProviderError::Malformed(format!("GetAuthorizationToken: the token is {what}"))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| malformed("not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| malformed("not of the form user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_without_quoting_them() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode(&enc("AWS:pa:ss")).ok(),
            Some(("AWS".into(), "pa:ss".into()))
        );
        for bad in [enc("no-colon-secret"), "%%%secret".to_string()] {
            let e = decode(&bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("token is") && !e.contains("secret"), "{e}");
        }
    }
}

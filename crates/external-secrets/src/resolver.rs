//! The credential resolver providers use: Secrets, ConfigMaps and ServiceAccount tokens read
//! with the controller's client, with errors that name the object (never its content).

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use strongroom_provider_api::{CredentialResolver, LabelledSecret, ProviderError, SecretBytes};

/// Resolves credentials through the Kubernetes API.
#[derive(Clone)]
pub struct KubeResolver {
    client: Client,
}

impl KubeResolver {
    /// A resolver using `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn api_error(what: &str, e: kube::Error) -> ProviderError {
    denied_as(what, "read", "reading", e)
}

/// A refused or failed API call on `what` (`action` it in a denial, `doing` it otherwise).
fn denied_as(what: &str, action: &str, doing: &str, e: kube::Error) -> ProviderError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => {
            ProviderError::Authentication(format!("{what} not found"))
        }
        kube::Error::Api(s) if s.code == 403 => {
            ProviderError::PermissionDenied(format!("the controller may not {action} {what}"))
        }
        _ => ProviderError::Unavailable(format!("{doing} {what}: {e}")),
    }
}

#[async_trait]
impl CredentialResolver for KubeResolver {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError> {
        let what = format!("Secret {namespace}/{name}");
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(&what, e))?;
        secret
            .data
            .and_then(|mut d| d.remove(key))
            .map(|b| SecretBytes::new(b.0))
            .ok_or_else(|| ProviderError::Authentication(format!("{what} has no key {key:?}")))
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        let what = format!("ConfigMap {namespace}/{name}");
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(&what, e))?;
        cm.data
            .and_then(|mut d| d.remove(key))
            .ok_or_else(|| ProviderError::Authentication(format!("{what} has no key {key:?}")))
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        let what = format!("ServiceAccount {namespace}/{name}");
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(audiences.to_vec()),
                expiration_seconds: Some(expiration_seconds.unwrap_or(600)),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let answer = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                // a denial names the TokenRequest, not a read of the ServiceAccount
                denied_as(
                    &what,
                    "request a token (TokenRequest) for",
                    "requesting a token for",
                    e,
                )
            })?;
        answer
            .status
            .and_then(|s| s.token)
            .map(|t| SecretBytes::from(t.as_str()))
            .ok_or_else(|| ProviderError::Authentication(format!("no token issued for {what}")))
    }

    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let what = format!("ServiceAccount {namespace}/{name}");
        let sa = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(&what, e))?;
        Ok(sa.metadata.annotations.unwrap_or_default())
    }

    async fn labelled_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<LabelledSecret, ProviderError> {
        let what = format!("Secret {namespace}/{name}");
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(&what, e))?;
        Ok(LabelledSecret {
            labels: secret.metadata.labels.unwrap_or_default(),
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, SecretBytes::new(v.0)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn refused(code: u16) -> kube::Error {
        kube::Error::Api(
            serde_json::from_value(serde_json::json!({
                "status": "Failure", "message": "refused", "reason": "Forbidden", "code": code
            }))
            .expect("an API error"),
        )
    }

    #[test]
    fn a_refused_token_request_is_named_as_such() {
        let what = "ServiceAccount team/eso";
        let e = denied_as(
            what,
            "request a token (TokenRequest) for",
            "requesting",
            refused(403),
        );
        assert_eq!(
            e.to_string(),
            ProviderError::PermissionDenied(
                "the controller may not request a token (TokenRequest) for ServiceAccount team/eso"
                    .into()
            )
            .to_string()
        );
        let e = api_error(what, refused(403));
        assert!(
            matches!(&e, ProviderError::PermissionDenied(m) if m == "the controller may not read ServiceAccount team/eso"),
            "{e}"
        );
        assert!(matches!(
            api_error(what, refused(404)),
            ProviderError::Authentication(_)
        ));
    }
}

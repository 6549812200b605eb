//! The `ACRAccessToken` generator (upstream's `generators/v1/acr`): an Entra ID token for Azure
//! Resource Manager, exchanged at the registry for an ACR refresh token
//! (`POST https://{registry}/oauth2/exchange`), and, when `scope` is set, for an ACR access token
//! (`POST https://{registry}/oauth2/token`). The result is `{username:
//! 00000000-0000-0000-0000-000000000000, password: <token>}`, as upstream. Like upstream, it runs
//! at every generation; nothing is cached.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use strongroom_core::crd::external_secrets::{SecretKeySelector, ServiceAccountSelector};
use strongroom_provider_api::{CredentialResolver, ProviderError, SecretBytes, SecretMap};

use crate::config::{Endpoints, https_url, invalid};
use crate::tls;
use crate::token::{AssertionSource, Credential, TokenSource, WORKLOAD_AUDIENCE, token_url};

/// The user name of ACR token logins (upstream's).
pub const ACR_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    registry: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    environment_type: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Auth {
    service_principal: Option<ServicePrincipal>,
    managed_identity: Option<ManagedIdentity>,
    workload_identity: Option<WorkloadIdentity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePrincipal {
    secret_ref: SpSecretRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpSecretRef {
    client_id: SecretKeySelector,
    client_secret: SecretKeySelector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagedIdentity {
    #[serde(default)]
    identity_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadIdentity {
    service_account_ref: Option<ServiceAccountSelector>,
}

/// Upstream's cloud table for ACR: login authority and the ARM token audience.
fn cloud(environment: &str) -> Result<(&'static str, &'static str), ProviderError> {
    Ok(match environment {
        "" | "PublicCloud" => (
            "https://login.microsoftonline.com",
            "https://management.azure.com",
        ),
        "ChinaCloud" => (
            "https://login.chinacloudapi.cn",
            "https://management.chinacloudapi.cn",
        ),
        "USGovernmentCloud" => (
            "https://login.microsoftonline.us",
            "https://management.usgovcloudapi.net",
        ),
        "GermanCloud" => (
            "https://login.microsoftonline.de",
            "https://management.microsoftazure.de",
        ),
        other => {
            return Err(invalid(format!(
                "ACRAccessToken: environmentType {other:?} is not supported"
            )));
        }
    })
}

/// Upstream's service management endpoint per cloud (the audience its workload identity path asks for).
fn service_management(environment: &str) -> &'static str {
    match environment {
        "ChinaCloud" => "https://management.core.chinacloudapi.cn/",
        "USGovernmentCloud" => "https://management.core.usgovcloudapi.net/",
        "GermanCloud" => "https://management.core.cloudapi.de/",
        _ => "https://management.core.windows.net/",
    }
}

async fn secret_text(
    resolver: &dyn CredentialResolver,
    namespace: &str,
    selector: &SecretKeySelector,
    field: &str,
) -> Result<SecretBytes, ProviderError> {
    let name = selector
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("{field}.name is required")))?;
    let key = selector
        .key
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid(format!("{field}.key is required")))?;
    let value = resolver.secret_key(namespace, name, key).await?;
    let text = value
        .expose_str()
        .ok_or_else(|| ProviderError::Authentication(format!("{field} is not UTF-8")))?
        .trim()
        .to_string();
    Ok(SecretBytes::from(text.as_str()))
}

fn form_token(body: &Value, field: &str, what: &str) -> Result<String, ProviderError> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Malformed(format!("{what}: unable to get token")))
}

/// Runs the generator for `spec` (the ACRAccessToken spec as written) in `namespace`.
pub async fn generate(
    spec: &Value,
    namespace: &str,
    resolver: Arc<dyn CredentialResolver>,
    endpoints: &Endpoints,
) -> Result<SecretMap, ProviderError> {
    let spec: Spec = serde_json::from_value(spec.clone())
        .map_err(|_| invalid("ACRAccessToken: unable to parse spec"))?;
    if spec.registry.trim().is_empty() {
        return Err(invalid("ACRAccessToken: registry is required"));
    }
    let (registry_url, _) = https_url(&format!("https://{}", spec.registry.trim()), "registry")?;
    let (default_authority, arm) = cloud(&spec.environment_type)?;
    let authority = endpoints
        .authority_host
        .clone()
        .unwrap_or_else(|| default_authority.to_string());
    let (authority, _) = https_url(&authority, "the login authority")?;
    let http = tls::http_client(endpoints)?;
    let tenant = spec.tenant_id.clone();
    let (credential, url, resource) = match (
        &spec.auth.service_principal,
        &spec.auth.managed_identity,
        &spec.auth.workload_identity,
    ) {
        (Some(sp), _, _) => {
            let client_id = secret_text(
                resolver.as_ref(),
                namespace,
                &sp.secret_ref.client_id,
                "auth.servicePrincipal.secretRef.clientId",
            )
            .await?;
            let secret = secret_text(
                resolver.as_ref(),
                namespace,
                &sp.secret_ref.client_secret,
                "auth.servicePrincipal.secretRef.clientSecret",
            )
            .await?;
            let client_id = client_id.expose_str().unwrap_or("").to_string();
            (
                Credential::ClientSecret { client_id, secret },
                token_url(&authority, &tenant)?,
                arm.to_string(),
            )
        }
        (None, Some(mi), _) => (
            Credential::Managed {
                url: endpoints.imds_token_url()?,
                identity: Some(mi.identity_id.clone()).filter(|i| !i.is_empty()),
            },
            String::new(),
            arm.to_string(),
        ),
        (None, None, Some(wi)) => {
            let resource = service_management(&spec.environment_type).to_string();
            match &wi.service_account_ref {
                None => {
                    let (Some(client_id), Some(tenant), Some(file)) = (
                        endpoints.workload_client_id.clone(),
                        endpoints.workload_tenant_id.clone(),
                        endpoints.workload_token_file.clone(),
                    ) else {
                        return Err(invalid("ACRAccessToken: missing environment variables"));
                    };
                    (
                        Credential::Federated {
                            client_id,
                            source: AssertionSource::File(file),
                        },
                        token_url(&authority, &tenant)?,
                        resource,
                    )
                }
                Some(sa) => {
                    let annotations: BTreeMap<String, String> = resolver
                        .service_account_annotations(namespace, &sa.name)
                        .await?;
                    let client_id = annotations.get("azure.workload.identity/client-id").cloned().ok_or_else(|| {
                        invalid("service account is missing annoation: azure.workload.identity/client-id")
                    })?;
                    let tenant = annotations.get("azure.workload.identity/tenant-id").cloned().ok_or_else(|| {
                        invalid("service account is missing annotation: azure.workload.identity/tenant-id")
                    })?;
                    let mut audiences = vec![WORKLOAD_AUDIENCE.to_string()];
                    audiences.extend(sa.audiences.clone().unwrap_or_default());
                    (
                        Credential::Federated {
                            client_id,
                            source: AssertionSource::ServiceAccount {
                                namespace: namespace.to_string(),
                                name: sa.name.clone(),
                                audiences,
                            },
                        },
                        token_url(&authority, &tenant)?,
                        resource,
                    )
                }
            }
        }
        (None, None, None) => {
            return Err(invalid(
                "ACRAccessToken: unexpeted configuration (auth needs servicePrincipal, managedIdentity or workloadIdentity)",
            ));
        }
    };
    // The workload identity audience ends with '/', as upstream's; `/.default` is appended.
    let aad = TokenSource::new(http.clone(), url, credential, resolver)
        .get(resource.trim_end_matches('/'))
        .await?;
    let service = spec.registry.trim().to_string();
    let what = format!("ACR {service}");
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{registry_url}{path}");
        let what = what.clone();
        async move {
            let response = http.post(&url).form(&form).send().await.map_err(|e| {
                ProviderError::Unavailable(format!("{what}: {}", crate::vault::transport_text(&e)))
            })?;
            let status = response.status().as_u16();
            if status != 200 {
                let wait = crate::vault::retry_after(response.headers());
                let message =
                    format!("{what}: could not generate token, unexpected status code: {status}");
                return Err(match status {
                    401 | 403 => ProviderError::Authentication(message),
                    429 => ProviderError::Throttled {
                        retry_after: wait,
                        message,
                    },
                    s if s >= 500 => ProviderError::Unavailable(message),
                    _ => ProviderError::InvalidConfig(message),
                });
            }
            response
                .json::<Value>()
                .await
                .map_err(|_| ProviderError::Malformed(format!("{what}: the answer is not JSON")))
        }
    };
    let exchanged = post(
        "/oauth2/exchange",
        vec![
            ("grant_type", "access_token".into()),
            ("service", service.clone()),
            ("tenant", tenant.clone()),
            ("access_token", aad.expose().to_string()),
        ],
    )
    .await?;
    let mut token = form_token(&exchanged, "refresh_token", &what)?;
    if !spec.scope.is_empty() {
        let answer = post(
            "/oauth2/token",
            vec![
                ("grant_type", "refresh_token".into()),
                ("service", service.clone()),
                ("scope", spec.scope.clone()),
                ("refresh_token", token),
            ],
        )
        .await?;
        token = form_token(&answer, "access_token", &what)?;
    }
    Ok(SecretMap::from([
        ("username".to_string(), SecretBytes::from(ACR_USERNAME)),
        ("password".to_string(), SecretBytes::from(token.as_str())),
    ]))
}

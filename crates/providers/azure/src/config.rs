//! The `azurekv` block: which vault, which cloud, which credentials; and the process-wide
//! endpoint settings (`AZURE_AUTHORITY_HOST`, IMDS, extra CAs) a test can replace.

use std::path::PathBuf;

use url::{Host, Url};

use strongroom_core::crd::external_secrets::{AzureKvProvider, StoreKind};
use strongroom_provider_api::{ProviderError, StoreContext};

/// `AZURE_AUTHORITY_HOST`: the Entra ID authority the Azure SDKs log in at.
pub const AUTHORITY_HOST_VAR: &str = "AZURE_AUTHORITY_HOST";
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`: where the Azure SDKs find IMDS instead of
/// 169.254.169.254.
pub const IMDS_HOST_VAR: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// IMDS's token path.
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// IMDS's address.
const IMDS_DEFAULT_HOST: &str = "http://169.254.169.254";

pub(crate) fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// Endpoints and trust outside the store: read from the environment in the controller, set
/// directly in tests.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// The login authority (`AZURE_AUTHORITY_HOST`), e.g. `https://login.microsoftonline.com`.
    pub authority_host: Option<String>,
    /// IMDS's base URL (`AZURE_POD_IDENTITY_AUTHORITY_HOST`), `http://169.254.169.254` if unset.
    pub imds_host: Option<String>,
    /// Extra trusted CA certificates (PEM), besides the system roots and `SSL_CERT_FILE`.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Workload identity without `serviceAccountRef`: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` (set by the workload identity webhook).
    pub workload_client_id: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub workload_tenant_id: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub workload_token_file: Option<PathBuf>,
    /// Whether the process trust settings (`SSL_CERT_FILE`, `SSL_CERT_DIR`) are read; tests
    /// that pass `extra_ca_pem` leave this off.
    pub process_trust: bool,
}

impl Endpoints {
    /// The settings of this process's environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            authority_host: var(AUTHORITY_HOST_VAR),
            imds_host: var(IMDS_HOST_VAR),
            extra_ca_pem: None,
            workload_client_id: var("AZURE_CLIENT_ID"),
            workload_tenant_id: var("AZURE_TENANT_ID"),
            workload_token_file: var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
            process_trust: true,
        }
    }

    /// IMDS's token URL.
    pub(crate) fn imds_token_url(&self) -> Result<String, ProviderError> {
        let host = self
            .imds_host
            .as_deref()
            .unwrap_or(IMDS_DEFAULT_HOST)
            .trim_end_matches('/');
        let url = Url::parse(host)
            .map_err(|_| invalid(format!("{IMDS_HOST_VAR} {host:?} is not a URL")))?;
        // IMDS speaks plain HTTP on a link-local address; anything else must be HTTPS.
        let local = match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err(invalid(format!(
                "{IMDS_HOST_VAR} {host:?} must be HTTPS unless it is a loopback or link-local address"
            )));
        }
        Ok(format!("{host}{IMDS_TOKEN_PATH}"))
    }
}

/// How a store authenticates (`authType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthType {
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
}

/// A cloud's login authority and Key Vault resource (upstream's table, from the Azure SDK).
fn cloud(environment: &str) -> Option<(&'static str, &'static str)> {
    Some(match environment {
        "" | "PublicCloud" => (
            "https://login.microsoftonline.com",
            "https://vault.azure.net",
        ),
        "ChinaCloud" => ("https://login.chinacloudapi.cn", "https://vault.azure.cn"),
        "USGovernmentCloud" => (
            "https://login.microsoftonline.us",
            "https://vault.usgovcloudapi.net",
        ),
        "GermanCloud" => (
            "https://login.microsoftonline.de",
            "https://vault.microsoftazure.de",
        ),
        _ => return None,
    })
}

/// A store's checked `azurekv` block.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The block itself.
    pub spec: AzureKvProvider,
    /// `vaultUrl` without a trailing slash.
    pub vault_url: String,
    /// The vault's host (a 401 challenge's resource must be this host or a parent domain).
    pub vault_host: String,
    /// `authType`.
    pub auth: AuthType,
    /// The login authority without a trailing slash.
    pub authority: String,
    /// The Key Vault resource tokens are first asked for (`<resource>/.default`).
    pub resource: String,
}

/// An absolute HTTPS URL without its trailing slash; `field` names it in messages.
pub(crate) fn https_url(value: &str, field: &str) -> Result<(String, String), ProviderError> {
    let trimmed = value.trim().trim_end_matches('/');
    let url =
        Url::parse(trimmed).map_err(|_| invalid(format!("{field} {trimmed:?} is not a URL")))?;
    if url.scheme() != "https" {
        return Err(invalid(format!(
            "{field} {trimmed:?} must be an https:// URL"
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| invalid(format!("{field} {trimmed:?} has no host")))?
        .to_ascii_lowercase();
    Ok((trimmed.to_string(), host))
}

impl Settings {
    /// Checks the block as upstream's `ValidateStore` and `NewClient` do; `endpoints` supplies
    /// `AZURE_AUTHORITY_HOST`.
    pub fn from_store(store: &StoreContext, endpoints: &Endpoints) -> Result<Self, ProviderError> {
        let spec = store
            .provider
            .azurekv
            .as_ref()
            .ok_or_else(|| invalid("the store has no spec.provider.azurekv block"))?;
        let (vault_url, vault_host) = https_url(&spec.vault_url, "vaultUrl")?;
        let auth = match spec.auth_type.as_deref().unwrap_or("ServicePrincipal") {
            "ServicePrincipal" | "" => AuthType::ServicePrincipal,
            "ManagedIdentity" => AuthType::ManagedIdentity,
            "WorkloadIdentity" => AuthType::WorkloadIdentity,
            other => {
                return Err(invalid(format!(
                    "cannot initialize Azure Client: no valid authType was specified ({other:?})"
                )));
            }
        };
        check_selectors(store, spec)?;
        let environment = spec.environment_type.as_deref().unwrap_or("PublicCloud");
        if let Some(custom) = &spec.custom_cloud_config {
            if !spec.use_azure_sdk.unwrap_or(false) {
                return Err(invalid(
                    "CustomCloudConfig requires UseAzureSDK to be set to true - the legacy SDK does not support custom clouds",
                ));
            }
            if custom.active_directory_endpoint.trim().is_empty() {
                return Err(invalid(
                    "activeDirectoryEndpoint is required in CustomCloudConfig",
                ));
            }
        }
        if environment == "AzureStackCloud" && spec.custom_cloud_config.is_none() {
            return Err(invalid(
                "CustomCloudConfig is required when EnvironmentType is AzureStackCloud",
            ));
        }
        let table = cloud(environment);
        if table.is_none() && environment != "AzureStackCloud" {
            return Err(invalid(format!(
                "environmentType {environment:?} is unknown"
            )));
        }
        let custom = spec.custom_cloud_config.as_ref();
        let authority = match (custom, &endpoints.authority_host, table) {
            (Some(c), _, _) => c.active_directory_endpoint.clone(),
            (None, Some(host), _) => host.clone(),
            (None, None, Some((aad, _))) => aad.to_string(),
            (None, None, None) => {
                return Err(invalid("no login authority is known for this cloud"));
            }
        };
        let (authority, _) = https_url(&authority, "the login authority")?;
        let resource = match (custom.and_then(|c| c.key_vault_endpoint.as_deref()), table) {
            (Some(kv), _) if !kv.trim().is_empty() => kv.trim().trim_end_matches('/').to_string(),
            (_, Some((_, kv))) => kv.to_string(),
            _ => custom
                .and_then(|c| c.key_vault_dns_suffix.as_deref())
                .map(|s| format!("https://{}", s.trim().trim_start_matches('.')))
                .unwrap_or_else(|| "https://vault.azure.net".into()),
        };
        Ok(Self {
            spec: spec.clone(),
            vault_url,
            vault_host,
            auth,
            authority,
            resource,
        })
    }

    /// Whether a ClusterSecretStore's credentials are read in the reader's namespace
    /// (upstream's `isReferentSpec`).
    pub fn is_referent(&self, store: &StoreContext) -> bool {
        if store.kind != StoreKind::ClusterSecretStore {
            return false;
        }
        let spec = &self.spec;
        let secret_ref = spec.auth_secret_ref.as_ref().is_some_and(|a| {
            a.client_id.as_ref().is_some_and(|s| s.namespace.is_none())
                || a.client_secret
                    .as_ref()
                    .is_some_and(|s| s.namespace.is_none())
                || a.client_certificate
                    .as_ref()
                    .is_some_and(|s| s.namespace.is_none())
        });
        let sa = spec
            .service_account_ref
            .as_ref()
            .is_some_and(|s| s.namespace.is_none());
        secret_ref || sa
    }
}

/// A namespaced store may only name its own namespace.
fn check_selectors(store: &StoreContext, spec: &AzureKvProvider) -> Result<(), ProviderError> {
    if store.kind != StoreKind::SecretStore {
        return Ok(());
    }
    let own = store.namespace.as_deref();
    let mut named: Vec<(&str, Option<&str>)> = Vec::new();
    if let Some(a) = &spec.auth_secret_ref {
        for (field, sel) in [
            ("authSecretRef.clientId", &a.client_id),
            ("authSecretRef.clientSecret", &a.client_secret),
            ("authSecretRef.clientCertificate", &a.client_certificate),
            ("authSecretRef.tenantId", &a.tenant_id),
        ] {
            if let Some(s) = sel {
                named.push((field, s.namespace.as_deref()));
            }
        }
    }
    if let Some(sa) = &spec.service_account_ref {
        named.push(("serviceAccountRef", sa.namespace.as_deref()));
    }
    for (field, ns) in named {
        if let Some(ns) = ns
            && Some(ns) != own
        {
            return Err(invalid(format!(
                "invalid {field}: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use strongroom_core::crd::external_secrets::{AzureCustomCloudConfig, SecretStoreProvider};

    fn store(spec: AzureKvProvider) -> StoreContext {
        StoreContext {
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: Some("ns".into()),
            referent_namespace: None,
            provider: SecretStoreProvider {
                azurekv: Some(spec),
                ..SecretStoreProvider::default()
            },
            retry: None,
        }
    }

    fn spec(url: &str) -> AzureKvProvider {
        AzureKvProvider {
            vault_url: url.into(),
            tenant_id: Some("t".into()),
            ..AzureKvProvider::default()
        }
    }

    #[test]
    fn clouds_authorities_and_urls() {
        let none = Endpoints::default();
        let s = Settings::from_store(&store(spec("https://v.vault.azure.net/")), &none).unwrap();
        assert_eq!(s.vault_url, "https://v.vault.azure.net");
        assert_eq!(s.authority, "https://login.microsoftonline.com");
        assert_eq!(s.resource, "https://vault.azure.net");
        let mut china = spec("https://v.vault.azure.cn");
        china.environment_type = Some("ChinaCloud".into());
        let s = Settings::from_store(&store(china), &none).unwrap();
        assert_eq!(s.authority, "https://login.chinacloudapi.cn");
        assert_eq!(s.resource, "https://vault.azure.cn");
        let env = Endpoints {
            authority_host: Some("https://login.example.test/".into()),
            ..Endpoints::default()
        };
        let s = Settings::from_store(&store(spec("https://kv.example.test:8443")), &env).unwrap();
        assert_eq!(s.authority, "https://login.example.test");
        assert_eq!(s.vault_host, "kv.example.test");
        assert!(Settings::from_store(&store(spec("http://v.vault.azure.net")), &none).is_err());
        let mut stack = spec("https://v.vault.stack.test");
        stack.environment_type = Some("AzureStackCloud".into());
        assert!(Settings::from_store(&store(stack.clone()), &none).is_err());
        stack.custom_cloud_config = Some(AzureCustomCloudConfig {
            active_directory_endpoint: "https://adfs.stack.test/".into(),
            key_vault_endpoint: Some("https://vault.stack.test/".into()),
            ..AzureCustomCloudConfig::default()
        });
        assert!(Settings::from_store(&store(stack.clone()), &none).is_err());
        stack.use_azure_sdk = Some(true);
        let s = Settings::from_store(&store(stack), &none).unwrap();
        assert_eq!(s.authority, "https://adfs.stack.test");
        assert_eq!(s.resource, "https://vault.stack.test");
    }

    #[test]
    fn imds_must_be_local_or_https() {
        assert_eq!(
            Endpoints::default().imds_token_url().unwrap(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );
        let e = |h: &str| Endpoints {
            imds_host: Some(h.into()),
            ..Endpoints::default()
        };
        assert!(e("http://127.0.0.1:9/").imds_token_url().is_ok());
        assert!(e("http://imds.example.test").imds_token_url().is_err());
        assert!(e("https://imds.example.test").imds_token_url().is_ok());
    }
}

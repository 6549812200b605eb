//! Provider blocks of a (Cluster)SecretStore. Each block keeps fields it does not model, and
//! the provider object keeps blocks of providers Strongroom does not implement, so a store
//! naming one is reported as unsupported instead of breaking the watch.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{CaProvider, SecretKeySelector, ServiceAccountSelector};
use crate::crd::schema::{DNS_LABEL, DNS_SUBDOMAIN, SECRET_KEY, preserve_unknown_fields};

/// Provider blocks upstream defines that Strongroom keeps as written (no schema below the name).
pub const UNMODELLED_PROVIDERS: [&str; 38] = [
    "akeyless",
    "barbican",
    "beyondtrust",
    "beyondtrustworkloadcredentials",
    "bitwardensecretsmanager",
    "chef",
    "cloudrusm",
    "conjur",
    "delinea",
    "device42",
    "doppler",
    "dvls",
    "fortanix",
    "github",
    "gitlab",
    "ibm",
    "infisical",
    "keepersecurity",
    "nebiusmysterybox",
    "ngrok",
    "onboardbase",
    "onepassword",
    "onepasswordSDK",
    "oracle",
    "ovh",
    "passbolt",
    "passworddepot",
    "previder",
    "pulumi",
    "scaleway",
    "secretserver",
    "senhasegura",
    "volcengine",
    "yandexcertificatemanager",
    "yandexlockbox",
    "alibaba",
    "openBao",
    "crd",
];

/// Provider blocks Strongroom models.
pub const MODELLED_PROVIDERS: [&str; 7] = [
    "aws",
    "vault",
    "gcpsm",
    "azurekv",
    "kubernetes",
    "fake",
    "webhook",
];

/// Schema of the provider object: the modelled blocks, every other upstream provider name as an
/// object kept as written, and exactly one of them set.
fn provider_schema(schema: &mut schemars::Schema) {
    preserve_unknown_fields(schema);
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for name in UNMODELLED_PROVIDERS {
            props.insert(
                name.to_string(),
                serde_json::json!({
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "description": "A provider Strongroom does not implement; kept as written and reported as unsupported."
                }),
            );
        }
    }
    schema.insert("minProperties".into(), 1.into());
    schema.insert("maxProperties".into(), 1.into());
    let count = MODELLED_PROVIDERS
        .iter()
        .chain(UNMODELLED_PROVIDERS.iter())
        .map(|n| format!("(has(self.{n}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": format!("{count} == 1"),
            "message": "a store must configure exactly one provider"
        }]),
    );
}

/// Exactly one provider configuration.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = provider_schema)]
pub struct SecretStoreProvider {
    /// AWS Secrets Manager or Parameter Store.
    pub aws: Option<AwsProvider>,
    /// HashiCorp Vault (or OpenBao).
    pub vault: Option<VaultProvider>,
    /// GCP Secret Manager.
    pub gcpsm: Option<GcpSmProvider>,
    /// Azure Key Vault.
    pub azurekv: Option<AzureKvProvider>,
    /// Another Kubernetes cluster or namespace.
    pub kubernetes: Option<KubernetesProvider>,
    /// Static in-memory values, for tests and demos.
    pub fake: Option<FakeProvider>,
    /// Any HTTP endpoint, called with templated URL, headers and body.
    pub webhook: Option<WebhookProvider>,
    /// Blocks of providers Strongroom does not implement, kept as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Which provider a store configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// `aws`.
    Aws,
    /// `vault`.
    Vault,
    /// `gcpsm`.
    GcpSm,
    /// `azurekv`.
    AzureKv,
    /// `kubernetes`.
    Kubernetes,
    /// `fake`.
    Fake,
    /// `webhook`.
    Webhook,
    /// An upstream provider Strongroom does not implement.
    Unsupported(String),
}

/// Why a provider block cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderSelectError {
    /// No provider block at all.
    #[error("spec.provider names no provider")]
    None,
    /// More than one provider block.
    #[error("spec.provider must name exactly one provider, found: {}", .0.join(", "))]
    Several(Vec<String>),
}

impl SecretStoreProvider {
    /// The one provider this block configures.
    pub fn kind(&self) -> Result<ProviderKind, ProviderSelectError> {
        let mut found: Vec<(String, ProviderKind)> = Vec::new();
        let known = [
            (self.aws.is_some(), "aws", ProviderKind::Aws),
            (self.vault.is_some(), "vault", ProviderKind::Vault),
            (self.gcpsm.is_some(), "gcpsm", ProviderKind::GcpSm),
            (self.azurekv.is_some(), "azurekv", ProviderKind::AzureKv),
            (
                self.kubernetes.is_some(),
                "kubernetes",
                ProviderKind::Kubernetes,
            ),
            (self.fake.is_some(), "fake", ProviderKind::Fake),
            (self.webhook.is_some(), "webhook", ProviderKind::Webhook),
        ];
        for (present, name, kind) in known {
            if present {
                found.push((name.to_string(), kind));
            }
        }
        for (name, value) in &self.other {
            if !value.is_null() {
                found.push((name.clone(), ProviderKind::Unsupported(name.clone())));
            }
        }
        match found.len() {
            0 => Err(ProviderSelectError::None),
            1 => Ok(found.remove(0).1),
            _ => Err(ProviderSelectError::Several(
                found.into_iter().map(|(n, _)| n).collect(),
            )),
        }
    }
}

/// AWS provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct AwsProvider {
    /// `SecretsManager`, `ParameterStore` or `CertificateManager`.
    #[schemars(extend("enum" = ["SecretsManager", "ParameterStore", "CertificateManager"]))]
    pub service: String,
    /// AWS region.
    pub region: String,
    /// Credentials; the SDK default chain when empty.
    pub auth: Option<AwsAuth>,
    /// Role ARN assumed after the base credentials.
    pub role: Option<String>,
    /// Roles assumed in order before `role`.
    pub additional_roles: Option<Vec<String>>,
    /// STS ExternalId.
    #[serde(
        rename = "externalID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// Session tags for AssumeRole.
    pub session_tags: Option<Vec<AwsTag>>,
    /// Session tag keys passed on through role chaining.
    pub transitive_tag_keys: Option<Vec<String>>,
    /// Prefix prepended to every key.
    pub prefix: Option<String>,
    /// Secrets Manager options for PushSecret deletes.
    pub secrets_manager: Option<AwsSecretsManagerOptions>,
    /// `None` (default), `Simple` (add esoNamespace, esoStoreName, esoStoreKind session tags)
    /// or `Custom` (those plus `customSessionTags`).
    #[schemars(extend("enum" = ["None", "Simple", "Custom"]))]
    pub session_tags_policy: Option<String>,
    /// Extra session tags when `sessionTagsPolicy` is `Custom`.
    pub custom_session_tags: Option<BTreeMap<String, String>>,
}

/// AWS credentials.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Static access keys from Secrets.
    pub secret_ref: Option<AwsAuthSecretRef>,
    /// Web identity from a ServiceAccount token (IRSA style).
    pub jwt: Option<AwsJwtAuth>,
}

/// Static AWS keys.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuthSecretRef {
    /// Access key id.
    #[serde(
        rename = "accessKeyIDSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id_secret_ref: Option<SecretKeySelector>,
    /// Secret access key.
    pub secret_access_key_secret_ref: Option<SecretKeySelector>,
    /// Session token.
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// Web identity auth.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    /// ServiceAccount annotated with `eks.amazonaws.com/role-arn`.
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// An AWS tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Secrets Manager write options.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretsManagerOptions {
    /// Delete without a recovery window.
    pub force_delete_without_recovery: Option<bool>,
    /// Recovery window in days.
    pub recovery_window_in_days: Option<i64>,
}

/// Vault provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct VaultProvider {
    /// Vault address, e.g. `https://vault.example:8200`.
    pub server: String,
    /// KV mount, e.g. `secret`.
    pub path: Option<String>,
    /// KV engine version: `v1` or `v2` (default).
    pub version: Option<VaultKvVersion>,
    /// Vault namespace.
    pub namespace: Option<String>,
    /// Authentication.
    pub auth: Option<VaultAuth>,
    /// PEM CA bundle (base64 in YAML).
    pub ca_bundle: Option<String>,
    /// Where to read the CA bundle from.
    pub ca_provider: Option<CaProvider>,
    /// Client certificate for mutual TLS.
    pub tls: Option<VaultClientTls>,
    /// Send `X-Vault-Index` for read-your-writes consistency.
    pub read_your_writes: Option<bool>,
    /// Forward inconsistent reads to the active node.
    pub forward_inconsistent: Option<bool>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Check-and-set on KV v2 writes.
    pub check_and_set: Option<VaultCheckAndSet>,
}

/// AWS IAM login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultIamAuth {
    /// Mount path; `aws` when empty.
    pub path: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS role assumed before the login.
    pub role: Option<String>,
    /// Vault role.
    pub vault_role: String,
    /// STS ExternalId for the assumed role.
    #[serde(
        rename = "externalID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// Value of the `X-Vault-AWS-IAM-Server-ID` header.
    #[serde(
        rename = "vaultAwsIamServerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vault_aws_iam_server_id: Option<String>,
    /// Static AWS keys.
    pub secret_ref: Option<AwsAuthSecretRef>,
    /// Web identity from a ServiceAccount token (IRSA style).
    pub jwt: Option<AwsJwtAuth>,
}

/// GCP login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultGcpAuth {
    /// Mount path; `gcp` when empty.
    pub path: Option<String>,
    /// Vault role.
    pub role: String,
    /// GCP project id.
    #[serde(rename = "projectID", default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// GCP location.
    pub location: Option<String>,
    /// Service-account JSON key.
    pub secret_ref: Option<GcpSmAuthSecretRef>,
    /// GKE workload identity.
    pub workload_identity: Option<GcpWorkloadIdentity>,
    /// ServiceAccount to impersonate.
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// KV engine version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VaultKvVersion {
    /// KV version 1.
    #[serde(rename = "v1")]
    V1,
    /// KV version 2.
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// Vault mutual TLS.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultClientTls {
    /// Secret holding the client certificate (`tls.crt`).
    pub cert_secret_ref: Option<SecretKeySelector>,
    /// Secret holding the client key (`tls.key`).
    pub key_secret_ref: Option<SecretKeySelector>,
}

/// Vault check-and-set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultCheckAndSet {
    /// Require CAS on every write.
    pub required: Option<bool>,
}

/// Vault authentication; exactly one method is set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct VaultAuth {
    /// Namespace for the login (overrides the provider namespace).
    pub namespace: Option<String>,
    /// Static token.
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes login.
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// JWT/OIDC login.
    pub jwt: Option<VaultJwtAuth>,
    /// TLS certificate login.
    pub cert: Option<VaultCertAuth>,
    /// Username and password login.
    pub user_pass: Option<VaultUserPassAuth>,
    /// LDAP login.
    pub ldap: Option<VaultUserPassAuth>,
    /// AWS IAM login.
    pub iam: Option<VaultIamAuth>,
    /// GCP login.
    pub gcp: Option<VaultGcpAuth>,
}

/// AppRole login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount path; `approle` when empty.
    pub path: Option<String>,
    /// Role id.
    pub role_id: Option<String>,
    /// Role id from a Secret.
    pub role_ref: Option<SecretKeySelector>,
    /// Secret id from a Secret.
    pub secret_ref: SecretKeySelector,
}

/// Kubernetes login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path; `kubernetes` when empty.
    pub mount_path: Option<String>,
    /// Vault role.
    pub role: String,
    /// ServiceAccount whose token is minted for the login.
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// Legacy ServiceAccount token Secret.
    pub secret_ref: Option<SecretKeySelector>,
}

/// JWT/OIDC login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultJwtAuth {
    /// Mount path; `jwt` when empty.
    pub path: Option<String>,
    /// Vault role.
    pub role: Option<String>,
    /// Raw JWT from a Secret.
    pub secret_ref: Option<SecretKeySelector>,
    /// Mint a ServiceAccount token for the login.
    pub kubernetes_service_account_token: Option<VaultKubernetesServiceAccountToken>,
}

/// A minted ServiceAccount token.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesServiceAccountToken {
    /// The ServiceAccount.
    pub service_account_ref: ServiceAccountSelector,
    /// Token audiences.
    pub audiences: Option<Vec<String>>,
    /// Token lifetime; 600 s when empty.
    pub expiration_seconds: Option<i64>,
}

/// TLS certificate login.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultCertAuth {
    /// Mount path; `cert` when empty.
    pub path: Option<String>,
    /// Vault role.
    pub vault_role: Option<String>,
    /// Client certificate.
    pub client_cert: Option<SecretKeySelector>,
    /// Client key.
    pub secret_ref: Option<SecretKeySelector>,
}

/// Username and password login (userpass or LDAP).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultUserPassAuth {
    /// Mount path; the method name when empty.
    pub path: Option<String>,
    /// User name.
    pub username: String,
    /// Password from a Secret.
    pub secret_ref: Option<SecretKeySelector>,
}

/// GCP Secret Manager provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct GcpSmProvider {
    /// Authentication; Application Default Credentials when empty.
    pub auth: Option<GcpSmAuth>,
    /// Project id.
    #[serde(rename = "projectID")]
    pub project_id: Option<String>,
    /// Location of regional secrets.
    pub location: Option<String>,
    /// `LatestOrFail` (default) or `LatestOrFetch`.
    #[schemars(extend("enum" = ["LatestOrFail", "LatestOrFetch"]))]
    pub secret_version_selection_policy: Option<String>,
}

/// GCP authentication.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSmAuth {
    /// Service-account JSON key.
    pub secret_ref: Option<GcpSmAuthSecretRef>,
    /// GKE workload identity.
    pub workload_identity: Option<GcpWorkloadIdentity>,
    /// Workload identity federation from non-GKE clusters or AWS.
    pub workload_identity_federation: Option<GcpWorkloadIdentityFederation>,
}

/// GCP workload identity federation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentityFederation {
    /// ConfigMap holding an external-account credential configuration (JSON).
    pub cred_config: Option<ConfigMapReference>,
    /// ServiceAccount whose tokens are exchanged (Kubernetes as identity provider).
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// AWS region and credentials used to obtain the token.
    pub aws_security_credentials: Option<AwsCredentialsConfig>,
    /// STS audience (pool and provider).
    pub audience: Option<String>,
    /// Expected `credential_source.url` of the credential configuration.
    pub external_token_endpoint: Option<String>,
    /// Google service account to impersonate with the federated token.
    pub gcp_service_account_email: Option<String>,
}

/// A key of a ConfigMap.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReference {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the ConfigMap; the referent's when empty.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
    /// Key holding the configuration.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,
}

/// AWS credentials for GCP workload identity federation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsConfig {
    /// AWS region.
    #[schemars(length(min = 1, max = 50), pattern(r"^[a-z0-9-]+$"))]
    pub region: String,
    /// Secret with `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`.
    pub aws_credentials_secret_ref: SecretReference,
}

/// A Secret by name.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the Secret; the referent's when empty.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
}

/// Service-account key Secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSmAuthSecretRef {
    /// The JSON key.
    pub secret_access_key_secret_ref: Option<SecretKeySelector>,
}

/// GKE workload identity.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentity {
    /// Kubernetes ServiceAccount bound to a GCP service account.
    pub service_account_ref: ServiceAccountSelector,
    /// Cluster location.
    pub cluster_location: Option<String>,
    /// Cluster name.
    pub cluster_name: Option<String>,
    /// Cluster project id.
    #[serde(
        rename = "clusterProjectID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_project_id: Option<String>,
}

/// Azure Key Vault provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct AzureKvProvider {
    /// `ServicePrincipal` (default), `ManagedIdentity` or `WorkloadIdentity`.
    #[schemars(extend("enum" = ["ServicePrincipal", "ManagedIdentity", "WorkloadIdentity"]))]
    pub auth_type: Option<String>,
    /// Vault URL, e.g. `https://my-vault.vault.azure.net`.
    pub vault_url: String,
    /// Tenant id (service principal).
    pub tenant_id: Option<String>,
    /// `PublicCloud` (default), `USGovernmentCloud`, `ChinaCloud`, `GermanCloud` or `AzureStackCloud`.
    #[schemars(extend("enum" = ["PublicCloud", "USGovernmentCloud", "ChinaCloud", "GermanCloud", "AzureStackCloud"]))]
    pub environment_type: Option<String>,
    /// Service principal credentials.
    pub auth_secret_ref: Option<AzureKvAuth>,
    /// ServiceAccount for workload identity.
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// User-assigned managed identity.
    pub identity_id: Option<String>,
    /// Use the newer Azure SDK client.
    #[serde(
        rename = "useAzureSDK",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub use_azure_sdk: Option<bool>,
    /// Endpoints of sovereign or Stack clouds (needs `useAzureSDK: true`).
    pub custom_cloud_config: Option<AzureCustomCloudConfig>,
}

/// Endpoints of a private Azure cloud.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureCustomCloudConfig {
    /// AAD endpoint.
    pub active_directory_endpoint: String,
    /// Key Vault endpoint.
    pub key_vault_endpoint: Option<String>,
    /// DNS suffix of vault URLs.
    #[serde(
        rename = "keyVaultDNSSuffix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key_vault_dns_suffix: Option<String>,
    /// Resource Manager endpoint.
    pub resource_manager_endpoint: Option<String>,
    /// Token audience for workload identity.
    pub audience: Option<String>,
}

/// Azure service principal credentials.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKvAuth {
    /// Client id.
    pub client_id: Option<SecretKeySelector>,
    /// Tenant id.
    pub tenant_id: Option<SecretKeySelector>,
    /// Client secret.
    pub client_secret: Option<SecretKeySelector>,
    /// Client certificate.
    pub client_certificate: Option<SecretKeySelector>,
}

/// Kubernetes provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct KubernetesProvider {
    /// API server to read from; the local cluster when empty.
    pub server: Option<KubernetesServer>,
    /// Authentication.
    pub auth: Option<KubernetesAuth>,
    /// Kubeconfig from a Secret.
    pub auth_ref: Option<SecretKeySelector>,
    /// Namespace to read Secrets from; `default` when empty.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub remote_namespace: Option<String>,
}

/// A Kubernetes API server.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesServer {
    /// Server URL.
    pub url: Option<String>,
    /// PEM CA bundle.
    pub ca_bundle: Option<String>,
    /// Where to read the CA bundle from.
    pub ca_provider: Option<CaProvider>,
}

/// Kubernetes authentication; exactly one method is set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct KubernetesAuth {
    /// Client certificate.
    pub cert: Option<KubernetesCertAuth>,
    /// Bearer token.
    pub token: Option<KubernetesTokenAuth>,
    /// ServiceAccount token.
    pub service_account: Option<ServiceAccountSelector>,
}

/// Client certificate auth.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCertAuth {
    /// Certificate.
    pub client_cert: Option<SecretKeySelector>,
    /// Key.
    pub client_key: Option<SecretKeySelector>,
}

/// Bearer token auth.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesTokenAuth {
    /// The token.
    pub bearer_token: Option<SecretKeySelector>,
}

/// Fake provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProvider {
    /// Values served.
    pub data: Vec<FakeProviderData>,
    /// Result of store validation: 0 ready (default), 1 unknown, 2 error.
    #[schemars(range(min = 0, max = 2))]
    pub validation_result: Option<i32>,
}

/// Webhook provider (also the spec of the Webhook generator): one HTTP call per read. `url`,
/// `body` and header values are Go templates over `.remoteRef.key`, `.remoteRef.version`,
/// `.remoteRef.property`, `.remoteRef.namespace` (PushSecret: `.remoteRef.remoteKey`) and one
/// map per `secrets[]` entry.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct WebhookProvider {
    /// HTTP method; GET when empty (POST for PushSecret).
    pub method: Option<String>,
    /// URL template.
    pub url: String,
    /// Header templates by header name.
    pub headers: Option<BTreeMap<String, String>>,
    /// Authentication protocol: `ntlm` (the only one upstream has).
    pub auth: Option<WebhookAuth>,
    /// Body template.
    pub body: Option<String>,
    /// Call timeout (a Go duration such as `5s`).
    pub timeout: Option<String>,
    /// How the answer is read.
    pub result: Option<WebhookResult>,
    /// Secrets whose keys the templates can read, each under its `name`.
    pub secrets: Option<Vec<WebhookSecret>>,
    /// PEM CA bundle (base64 in YAML) trusted for an `https` URL instead of the system roots.
    #[serde(rename = "caBundle")]
    pub ca_bundle: Option<String>,
    /// Where the CA bundle is read from instead.
    pub ca_provider: Option<CaProvider>,
}

/// `webhook.auth`: one protocol.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct WebhookAuth {
    /// NTLM with a user name (`DOMAIN\user`, `user@realm` or `user`) and password from Secrets.
    pub ntlm: Option<WebhookNtlm>,
}

/// `webhook.auth.ntlm`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookNtlm {
    /// The user name's Secret key.
    pub username_secret: Option<SecretKeySelector>,
    /// The password's Secret key.
    pub password_secret: Option<SecretKeySelector>,
}

/// `webhook.result`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResult {
    /// JSONPath of the value in a JSON answer (itself a template).
    pub json_path: Option<String>,
}

/// One `webhook.secrets[]` entry.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecret {
    /// The name templates read the Secret's keys under.
    pub name: String,
    /// The Secret (its `key` is not read: every key is available).
    pub secret_ref: SecretKeySelector,
}

/// One fake value.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProviderData {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Option<String>,
    /// Deprecated: a map value.
    pub value_map: Option<BTreeMap<String, String>>,
    /// Version the value answers to.
    pub version: Option<String>,
}

//! Types shared by several external-secrets.io kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::crd::schema::{DNS_LABEL, DNS_SUBDOMAIN, SECRET_KEY};

/// Every generator kind a `generatorRef` may name.
pub const GENERATOR_KINDS: [&str; 20] = [
    "ACRAccessToken",
    "BeyondtrustWorkloadCredentialsDynamicSecret",
    "ClusterGenerator",
    "CloudsmithAccessToken",
    "ECRAuthorizationToken",
    "Fake",
    "GCRAccessToken",
    "GithubAccessToken",
    "GitlabDeployToken",
    "QuayAccessToken",
    "Password",
    "SSHKey",
    "STSSessionToken",
    "STSAssumeRoleToken",
    "UUID",
    "VaultDynamicSecret",
    "Webhook",
    "Grafana",
    "MFA",
    "CodeArtifactAuthorizationToken",
];

/// A key of a Kubernetes Secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,
    /// Namespace of the Secret; ignored for namespaced stores.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: Option<String>,
}

/// A Kubernetes ServiceAccount whose token is used to authenticate.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the ServiceAccount; ignored for namespaced stores.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
    /// Audiences of the minted token.
    pub audiences: Option<Vec<String>>,
}

/// Where a CA certificate is read from.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(rename = "type")]
    pub type_: CaProviderType,
    /// Name of the object.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Key holding the PEM bundle.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: Option<String>,
    /// Namespace of the object (ClusterSecretStore only).
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub namespace: Option<String>,
}

/// Kind of object a CA is read from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CaProviderType {
    /// A Secret.
    #[default]
    Secret,
    /// A ConfigMap.
    ConfigMap,
}

/// Kind of store an object refers to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum StoreKind {
    /// A namespaced SecretStore (the default when empty).
    #[default]
    SecretStore,
    /// A ClusterSecretStore.
    ClusterSecretStore,
}

/// Reference to a SecretStore or ClusterSecretStore.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the store.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,
    /// Kind of the store; `SecretStore` when empty.
    pub kind: Option<StoreKind>,
}

impl SecretStoreRef {
    /// The kind, defaulted as upstream does.
    pub fn kind_or_default(&self) -> StoreKind {
        self.kind.unwrap_or_default()
    }

    /// Whether neither name nor kind is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.kind.is_none()
    }
}

/// Reference to a generator.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    /// API version of the generator; `generators.external-secrets.io/v1alpha1` when empty.
    pub api_version: Option<String>,
    /// Kind of the generator, e.g. `Password`.
    #[schemars(extend("enum" = GENERATOR_KINDS))]
    pub kind: String,
    /// Name of the generator.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
}

/// Labels and annotations to put on a generated object.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetadata {
    /// Annotations to set.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to set.
    pub labels: Option<BTreeMap<String, String>>,
}

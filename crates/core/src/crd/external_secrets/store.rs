//! `external-secrets.io/v1` SecretStore and ClusterSecretStore: the same spec, two scopes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::providers::SecretStoreProvider;
use crate::crd::condition::Condition;

/// Defines the store spec struct once per kind, so both kinds share every field.
macro_rules! store_spec {
    ($(#[$attr:meta])* $name:ident) => {
        #[skip_serializing_none]
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Controller class; only the controller started with this `--controller-class` serves the store.
            pub controller: Option<String>,
            /// Exactly one provider configuration.
            pub provider: SecretStoreProvider,
            /// Provider HTTP retries.
            pub retry_settings: Option<SecretStoreRetrySettings>,
            /// Seconds or Go duration between store validations; 5m when empty.
            pub refresh_interval: Option<IntOrString>,
            /// Namespaces allowed to use a ClusterSecretStore; all when empty.
            pub conditions: Option<Vec<ClusterSecretStoreCondition>>,
        }
    };
}

store_spec!(
    /// Where ExternalSecrets in one namespace read from.
    #[kube(
        group = "external-secrets.io",
        version = "v1",
        kind = "SecretStore",
        plural = "secretstores",
        namespaced,
        status = "SecretStoreStatus",
        shortname = "ss",
        category = "external-secrets",
        label("external-secrets.io/component", "controller"),
        doc = "SecretStore represents a secure external location for storing secrets, which can be referenced as part of `storeRef` fields.",
        printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
        printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
        printcolumn(name = "Capabilities", type_ = "string", json_path = ".status.capabilities"),
        printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status")
    )]
    SecretStoreSpec
);

store_spec!(
    /// Where ExternalSecrets in any (allowed) namespace read from.
    #[kube(
        group = "external-secrets.io",
        version = "v1",
        kind = "ClusterSecretStore",
        plural = "clustersecretstores",
        status = "SecretStoreStatus",
        shortname = "css",
        category = "external-secrets",
        label("external-secrets.io/component", "controller"),
        doc = "ClusterSecretStore represents a secure external location for storing secrets, which can be referenced as part of `storeRef` fields.",
        printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
        printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
        printcolumn(name = "Capabilities", type_ = "string", json_path = ".status.capabilities"),
        printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status")
    )]
    ClusterSecretStoreSpec
);

impl From<ClusterSecretStoreSpec> for SecretStoreSpec {
    fn from(c: ClusterSecretStoreSpec) -> Self {
        Self {
            controller: c.controller,
            provider: c.provider,
            retry_settings: c.retry_settings,
            refresh_interval: c.refresh_interval,
            conditions: c.conditions,
        }
    }
}

/// Provider HTTP retries.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRetrySettings {
    /// Maximum retries.
    pub max_retries: Option<i32>,
    /// Go duration between retries.
    pub retry_interval: Option<String>,
}

/// Which namespaces may use a ClusterSecretStore; any matching condition allows.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Namespaces with these labels.
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces by name.
    pub namespaces: Option<Vec<String>>,
    /// Namespaces matching these regular expressions.
    pub namespace_regexes: Option<Vec<String>>,
}

/// What the controller last observed of a store.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
    /// `ReadOnly`, `WriteOnly` or `ReadWrite`.
    pub capabilities: Option<String>,
}

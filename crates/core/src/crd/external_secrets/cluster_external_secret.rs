//! `external-secrets.io/v1` ClusterExternalSecret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::ObjectMetadata;
use super::external_secret::ExternalSecretSpec;
use crate::crd::condition::Condition;

/// Stamps one ExternalSecret into every selected namespace.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterExternalSecret",
    plural = "clusterexternalsecrets",
    status = "ClusterExternalSecretStatus",
    shortname = "ces",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    doc = "ClusterExternalSecret is the Schema for the clusterexternalsecrets API.",
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.externalSecretSpec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshTime"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// The ExternalSecret to create in each namespace.
    pub external_secret_spec: ExternalSecretSpec,
    /// Name of the created ExternalSecrets; the ClusterExternalSecret's name when empty.
    pub external_secret_name: Option<String>,
    /// Labels and annotations of the created ExternalSecrets.
    pub external_secret_metadata: Option<ObjectMetadata>,
    /// Deprecated: one namespace label selector.
    pub namespace_selector: Option<LabelSelector>,
    /// Namespace label selectors, ORed.
    pub namespace_selectors: Option<Vec<LabelSelector>>,
    /// Deprecated: namespaces by name.
    pub namespaces: Option<Vec<String>>,
    /// Go duration between namespace re-scans.
    pub refresh_time: Option<String>,
}

/// What the controller last observed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    /// Name of the created ExternalSecrets.
    pub external_secret_name: Option<String>,
    /// Namespaces where creation failed, with the reason.
    pub failed_namespaces: Option<Vec<ClusterExternalSecretNamespaceFailure>>,
    /// Namespaces where the ExternalSecret exists.
    pub provisioned_namespaces: Option<Vec<String>>,
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
}

/// One namespace that failed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why it failed.
    pub reason: Option<String>,
}

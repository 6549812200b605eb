//! `external-secrets.io/v1alpha1` PushSecret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{GeneratorRef, StoreKind};
use super::external_secret::ExternalSecretTemplate;
use crate::crd::condition::Condition;
use crate::crd::schema::Unmodelled;

/// Pushes a Kubernetes Secret's values to one or more providers.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "PushSecret",
    plural = "pushsecrets",
    namespaced,
    status = "PushSecretStatus",
    shortname = "ps",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    doc = "PushSecret is the Schema for the pushsecrets API.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSpec {
    /// Go duration between pushes; `1h` when empty.
    pub refresh_interval: Option<String>,
    /// Stores to push to.
    pub secret_store_refs: Vec<PushSecretStoreRef>,
    /// `Replace` (default) or `IfNotExists`.
    pub update_policy: Option<String>,
    /// `None` (default) or `Delete` (remove pushed values when this object goes).
    pub deletion_policy: Option<String>,
    /// The source Secret or generator.
    pub selector: PushSecretSelector,
    /// Which keys go where.
    pub data: Option<Vec<PushSecretData>>,
    /// Bulk pushes (not implemented by Strongroom yet).
    pub data_to: Option<Vec<Unmodelled>>,
    /// Template applied before pushing.
    pub template: Option<ExternalSecretTemplate>,
}

/// A store to push to, by name or by labels.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStoreRef {
    /// Store name.
    pub name: Option<String>,
    /// Stores with these labels.
    pub label_selector: Option<LabelSelector>,
    /// Kind of the store; `SecretStore` when empty.
    pub kind: Option<StoreKind>,
}

/// The source of pushed values.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSelector {
    /// A Secret in the PushSecret's namespace.
    pub secret: Option<PushSecretSecret>,
    /// A generator.
    pub generator_ref: Option<GeneratorRef>,
}

/// A source Secret, by name or labels.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSecret {
    /// Secret name.
    pub name: Option<String>,
    /// Secrets with these labels.
    pub selector: Option<LabelSelector>,
}

/// One pushed value.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretData {
    /// Source key and remote location.
    #[serde(rename = "match")]
    pub match_: PushSecretMatch,
    /// Provider-specific metadata.
    pub metadata: Option<Unmodelled>,
    /// `None` (default) or `ReverseUnicode`.
    pub conversion_strategy: Option<String>,
}

/// Source key and remote location.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretMatch {
    /// Key of the source Secret; the whole Secret when empty.
    pub secret_key: Option<String>,
    /// Where to write it.
    pub remote_ref: PushSecretRemoteRef,
}

/// A remote location.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretRemoteRef {
    /// Key in the provider.
    pub remote_key: String,
    /// Property inside the remote value.
    pub property: Option<String>,
}

/// What the controller last observed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStatus {
    /// Time of the last push.
    pub refresh_time: Option<Time>,
    /// Generation and labels hash at the last push.
    pub synced_resource_version: Option<String>,
    /// Store, then remote key, to what was pushed there.
    pub synced_push_secrets: Option<BTreeMap<String, BTreeMap<String, PushSecretData>>>,
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
}

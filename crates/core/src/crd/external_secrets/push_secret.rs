//! `external-secrets.io/v1alpha1` PushSecret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{GeneratorRef, ObjectMetadata, StoreKind};
use super::external_secret::{ExternalSecretTemplate, RewriteRegexp, RewriteTransform};
use crate::crd::condition::Condition;
use crate::crd::schema::{DNS_SUBDOMAIN, Unmodelled};

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
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime")
)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSpec {
    /// Go duration between pushes; `1h` when empty.
    pub refresh_interval: Option<String>,
    /// Stores to push to.
    pub secret_store_refs: Vec<PushSecretStoreRef>,
    /// `Replace` (default) or `IfNotExists`.
    #[schemars(extend("enum" = ["Replace", "IfNotExists"]))]
    pub update_policy: Option<String>,
    /// `None` (default) or `Delete` (remove pushed values when this object goes).
    #[schemars(extend("enum" = ["Delete", "None"]))]
    pub deletion_policy: Option<String>,
    /// The source Secret or generator.
    pub selector: PushSecretSelector,
    /// Which keys go where.
    pub data: Option<Vec<PushSecretData>>,
    /// Bulk pushes: many keys of the source to one store.
    pub data_to: Option<Vec<PushSecretDataTo>>,
    /// Template applied before pushing.
    pub template: Option<ExternalSecretTemplate>,
}

/// A store to push to, by name or by labels.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStoreRef {
    /// Store name.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,
    /// Stores with these labels.
    pub label_selector: Option<LabelSelector>,
    /// Kind of the store; `SecretStore` when empty.
    pub kind: Option<StoreKind>,
}

/// The source of pushed values: exactly one of a Secret or a generator.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.secret) != has(self.generatorRef)",
        "message": "selector must set exactly one of secret or generatorRef"
    }
]))]
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
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
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
    #[schemars(extend("enum" = ["None", "ReverseUnicode"]))]
    pub conversion_strategy: Option<String>,
}

/// A bulk push: the matching keys of the source to one store.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storeRef) && (has(self.storeRef.name) || has(self.storeRef.labelSelector))",
        "message": "storeRef must specify either name or labelSelector"
    }
]))]
pub struct PushSecretDataTo {
    /// The store to push to.
    pub store_ref: Option<PushSecretStoreRef>,
    /// Which keys of the source; all when empty.
    #[serde(rename = "match")]
    pub match_: Option<PushSecretDataToMatch>,
    /// Key rewrites applied in order before pushing.
    pub rewrite: Option<Vec<PushSecretRewrite>>,
    /// Provider-specific metadata.
    pub metadata: Option<Unmodelled>,
    /// `None` (default) or `ReverseUnicode`.
    #[schemars(extend("enum" = ["None", "ReverseUnicode"]))]
    pub conversion_strategy: Option<String>,
}

/// Which keys a bulk push takes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretDataToMatch {
    /// Regular expression the key must match; all keys when empty.
    pub regexp: Option<String>,
}

/// One key rewrite of a bulk push; exactly one field is set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.regexp) != has(self.transform)",
        "message": "exactly one of regexp or transform must be set"
    }
]))]
pub struct PushSecretRewrite {
    /// Regular-expression replacement on the key.
    pub regexp: Option<RewriteRegexp>,
    /// Template applied to the key.
    pub transform: Option<RewriteTransform>,
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

/// Stamps one PushSecret into every selected namespace.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterPushSecret",
    plural = "clusterpushsecrets",
    status = "ClusterPushSecretStatus",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    doc = "ClusterPushSecret is the Schema for the ClusterPushSecrets API that enables cluster-wide management of pushing Kubernetes secrets to external providers.",
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
pub struct ClusterPushSecretSpec {
    /// The PushSecret to create in each namespace.
    pub push_secret_spec: PushSecretSpec,
    /// Go duration between namespace re-scans.
    pub refresh_time: Option<String>,
    /// Name of the created PushSecrets; the ClusterPushSecret's name when empty.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub push_secret_name: Option<String>,
    /// Labels and annotations of the created PushSecrets.
    pub push_secret_metadata: Option<ObjectMetadata>,
    /// Namespace label selectors, ORed.
    pub namespace_selectors: Option<Vec<LabelSelector>>,
}

/// What the controller last observed of a ClusterPushSecret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretStatus {
    /// Namespaces where creation failed, with the reason.
    pub failed_namespaces: Option<Vec<ClusterPushSecretNamespaceFailure>>,
    /// Namespaces where the PushSecret exists.
    pub provisioned_namespaces: Option<Vec<String>>,
    /// Name of the created PushSecrets.
    pub push_secret_name: Option<String>,
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
}

/// One namespace that failed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why it failed.
    pub reason: Option<String>,
}

//! `external-secrets.io/v1` ExternalSecret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{GeneratorRef, SecretStoreRef};
use crate::crd::condition::Condition;
use crate::crd::schema::{DNS_SUBDOMAIN, SECRET_KEY};

/// Syncs values from a provider into a Kubernetes Secret and keeps them fresh.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ExternalSecret",
    plural = "externalsecrets",
    namespaced,
    status = "ExternalSecretStatus",
    shortname = "es",
    category = "external-secrets",
    label("external-secrets.io/component", "controller"),
    doc = "ExternalSecret is the Schema for the external-secrets API.",
    printcolumn(
        name = "StoreType",
        type_ = "string",
        json_path = ".spec.secretStoreRef.kind"
    ),
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshInterval"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime"),
    selectable = ".spec.secretStoreRef.name",
    selectable = ".spec.secretStoreRef.kind",
    selectable = ".spec.target.name",
    selectable = ".spec.refreshInterval"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0)",
        "message": "either data or dataFrom should be specified"
    }
]))]
pub struct ExternalSecretSpec {
    /// Store to read from; optional when every entry names its own source.
    pub secret_store_ref: Option<SecretStoreRef>,
    /// The Secret to write.
    pub target: Option<ExternalSecretTarget>,
    /// When to refresh: `CreatedOnce`, `Periodic` (default) or `OnChange`.
    pub refresh_policy: Option<RefreshPolicy>,
    /// Go duration between refreshes; `1h` when empty, `0s` syncs once.
    pub refresh_interval: Option<String>,
    /// Windows that allow or deny periodic refreshes.
    pub sync_windows: Option<SyncWindows>,
    /// One Secret key per remote value; each `secretKey` at most once.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["secretKey"]))]
    pub data: Option<Vec<ExternalSecretData>>,
    /// Remote values expanded into many keys (extract, find or generator).
    pub data_from: Option<Vec<ExternalSecretDataFromRemoteRef>>,
}

/// When an ExternalSecret refreshes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RefreshPolicy {
    /// Only the first time.
    CreatedOnce,
    /// Every refresh interval (the default).
    #[default]
    Periodic,
    /// When the ExternalSecret changes.
    OnChange,
}

/// Refresh windows.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindows {
    /// `allow` or `deny`.
    #[schemars(extend("enum" = ["allow", "deny"]))]
    pub kind: String,
    /// Cron schedules (UTC) and how long each window stays open.
    pub windows: Vec<SyncWindow>,
}

/// One refresh window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// Five-field cron expression or `@hourly`-style shorthand, in UTC.
    pub schedule: String,
    /// How long the window stays open after each firing (Go duration).
    pub duration: String,
}

/// The Secret an ExternalSecret writes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.deletionPolicy) || self.deletionPolicy != 'Delete' || !has(self.creationPolicy) || !(self.creationPolicy in ['Merge', 'None', 'CreateOrMerge'])",
        "message": "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"
    },
    {
        "rule": "!has(self.deletionPolicy) || self.deletionPolicy != 'Merge' || !has(self.creationPolicy) || self.creationPolicy != 'None'",
        "message": "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with"
    },
    {
        "rule": "has(self.manifest) || !has(self.template) || !has(self.template.templateFrom) || self.template.templateFrom.all(t, !has(t.target) || t.target.matches('^(?i)(data|annotations|labels)$'))",
        "message": "templateFrom[].target must be Data, Annotations or Labels when the target is a Secret"
    }
]))]
pub struct ExternalSecretTarget {
    /// Name of the Secret; the ExternalSecret's name when empty.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: Option<String>,
    /// How the Secret is created and owned; `Owner` when empty.
    pub creation_policy: Option<CreationPolicy>,
    /// What happens when the provider has no data; `Retain` when empty.
    pub deletion_policy: Option<DeletionPolicy>,
    /// Template for the Secret's type, metadata and data.
    pub template: Option<ExternalSecretTemplate>,
    /// Make the Secret immutable.
    pub immutable: Option<bool>,
    /// Write another kind (ConfigMap, custom resource) instead of a Secret.
    pub manifest: Option<ManifestReference>,
}

/// A non-Secret target kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReference {
    /// API version of the target.
    pub api_version: String,
    /// Kind of the target.
    pub kind: String,
}

/// How the target Secret is created and owned.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// Create it and own it (garbage-collected with the ExternalSecret).
    #[default]
    Owner,
    /// Create and update it without an owner.
    Orphan,
    /// Only write into an existing Secret.
    Merge,
    /// Write nothing.
    None,
    /// Create if missing, else merge, without an owner.
    CreateOrMerge,
}

/// What happens when the provider returns no data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the Secret.
    #[default]
    Retain,
    /// Delete the Secret.
    Delete,
    /// Remove only the keys this ExternalSecret manages.
    Merge,
}

/// Template for the target Secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret type, e.g. `kubernetes.io/dockerconfigjson`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Template engine; only `v2` exists.
    pub engine_version: Option<TemplateEngineVersion>,
    /// Labels, annotations and finalizers (values are templates).
    pub metadata: Option<ExternalSecretTemplateMetadata>,
    /// `Replace` (default) or `Merge` (keep fetched keys under the templated ones).
    pub merge_policy: Option<TemplateMergePolicy>,
    /// Secret key to template.
    pub data: Option<BTreeMap<String, String>>,
    /// Templates read from ConfigMaps, Secrets or literals (at most 100, which bounds the cost
    /// of the CRD's validation rules).
    #[schemars(length(max = 100))]
    pub template_from: Option<Vec<TemplateFrom>>,
}

/// Template engine version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateEngineVersion {
    /// Go text/template with sprig-style functions.
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// How templated keys combine with fetched keys.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateMergePolicy {
    /// Only templated keys.
    #[default]
    Replace,
    /// Fetched keys, overlaid by templated keys.
    Merge,
}

/// Templated metadata of the target.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplateMetadata {
    /// Annotations (values are templates).
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels (values are templates).
    pub labels: Option<BTreeMap<String, String>>,
    /// Finalizers to set.
    pub finalizers: Option<Vec<String>>,
}

/// One source of templates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Templates from a ConfigMap.
    pub config_map: Option<TemplateRef>,
    /// Templates from a Secret.
    pub secret: Option<TemplateRef>,
    /// Where the rendered result goes: `Data` (default), `Annotations` or `Labels`; a field
    /// path for generic targets.
    #[schemars(length(max = 253))]
    pub target: Option<String>,
    /// An inline template.
    pub literal: Option<String>,
    /// How the values of the template source are decoded before templating.
    pub values_decoding_strategy: Option<DecodingStrategy>,
}

/// A ConfigMap or Secret holding templates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Keys to use as templates.
    pub items: Vec<TemplateRefItem>,
}

/// One template key.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// Key in the object.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub key: String,
    /// `Values` (default) or `KeysAndValues`.
    pub template_as: Option<TemplateScope>,
}

/// What part of a template source is templated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateScope {
    /// Only values.
    #[default]
    Values,
    /// Keys and values.
    KeysAndValues,
}

/// One Secret key from one remote value.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the target Secret.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY))]
    pub secret_key: String,
    /// The remote value.
    pub remote_ref: ExternalSecretDataRemoteRef,
    /// Store for this entry only.
    pub source_ref: Option<StoreSourceRef>,
}

/// A value in the provider.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataRemoteRef {
    /// Key, path or name in the provider.
    pub key: String,
    /// `None` (default) or `Fetch` (read tags/metadata instead of the value).
    pub metadata_policy: Option<MetadataPolicy>,
    /// Field of a JSON value.
    pub property: Option<String>,
    /// Provider version of the value.
    pub version: Option<String>,
    /// Key sanitising for extracted keys: `Default` or `Unicode`.
    pub conversion_strategy: Option<ConversionStrategy>,
    /// Value decoding: `None`, `Base64`, `Base64URL` or `Auto`.
    pub decoding_strategy: Option<DecodingStrategy>,
    /// `Ignore` (default) or `Fail` on values containing NUL bytes.
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// Whether to read a value or its metadata.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MetadataPolicy {
    /// Read the value.
    #[default]
    None,
    /// Read tags, labels or custom metadata.
    Fetch,
}

/// How invalid characters in extracted keys are replaced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConversionStrategy {
    /// Replace with `_`.
    #[default]
    Default,
    /// Replace with `_Uxxxx_`.
    Unicode,
}

/// How fetched values are decoded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DecodingStrategy {
    /// Use as-is.
    #[default]
    None,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Try standard, then URL-safe base64, else use as-is.
    Auto,
}

/// What to do with values containing NUL bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NullBytePolicy {
    /// Accept them.
    #[default]
    Ignore,
    /// Fail the sync.
    Fail,
}

/// A per-entry store (or, deprecated, generator); exactly one of the two.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storeRef) != has(self.generatorRef)",
        "message": "sourceRef must set exactly one of storeRef or generatorRef"
    }
]))]
pub struct StoreSourceRef {
    /// The store; absent when `generatorRef` is used.
    pub store_ref: Option<SecretStoreRef>,
    /// Deprecated here; use `dataFrom[].sourceRef.generatorRef`.
    pub generator_ref: Option<GeneratorRef>,
}

/// A per-entry store or generator; exactly one of the two.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storeRef) != has(self.generatorRef)",
        "message": "sourceRef must set exactly one of storeRef or generatorRef"
    }
]))]
pub struct StoreGeneratorSourceRef {
    /// The store.
    pub store_ref: Option<SecretStoreRef>,
    /// The generator.
    pub generator_ref: Option<GeneratorRef>,
}

/// Many keys from the provider: exactly one of `extract`, `find` or `sourceRef.generatorRef`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.extract) ? 1 : 0) + (has(self.find) ? 1 : 0) + ((has(self.sourceRef) && has(self.sourceRef.generatorRef)) ? 1 : 0) == 1",
        "message": "dataFrom entries must set exactly one of extract, find or sourceRef.generatorRef"
    }
]))]
pub struct ExternalSecretDataFromRemoteRef {
    /// Expand one JSON value into keys.
    pub extract: Option<ExternalSecretDataRemoteRef>,
    /// Search the provider; each match becomes a key.
    pub find: Option<ExternalSecretFind>,
    /// Key rewrites applied in order.
    pub rewrite: Option<Vec<ExternalSecretRewrite>>,
    /// Key filters applied in order, each including or excluding keys.
    pub select: Option<Vec<ExternalSecretSelect>>,
    /// Store or generator for this entry.
    pub source_ref: Option<StoreGeneratorSourceRef>,
}

/// One key filter of a `dataFrom` entry: the keys matching `regexp` or listed in `names`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSelect {
    /// Regular expression a key must match.
    pub regexp: Option<String>,
    /// Keys selected by name.
    pub names: Option<Vec<String>>,
    /// `Include` or `Exclude` the selected keys.
    pub operation: Option<SelectOperation>,
}

/// What a key filter does with the keys it selects.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectOperation {
    /// Keep only the selected keys.
    Include,
    /// Drop the selected keys.
    Exclude,
}

/// A provider search.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretFind {
    /// Path prefix to search under.
    pub path: Option<String>,
    /// Name pattern.
    pub name: Option<FindName>,
    /// Tags that must all match.
    pub tags: Option<BTreeMap<String, String>>,
    /// Key sanitising: `Default` or `Unicode`.
    pub conversion_strategy: Option<ConversionStrategy>,
    /// Value decoding.
    pub decoding_strategy: Option<DecodingStrategy>,
    /// `Ignore` (default) or `Fail` on NUL bytes.
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// A name pattern.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    /// Regular expression the name must match.
    pub regexp: Option<String>,
}

/// One key rewrite; exactly one field is set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.regexp) ? 1 : 0) + (has(self.transform) ? 1 : 0) + (has(self.merge) ? 1 : 0) == 1",
        "message": "a rewrite must set exactly one of regexp, transform or merge"
    }
]))]
pub struct ExternalSecretRewrite {
    /// Regular-expression replacement on the key.
    pub regexp: Option<RewriteRegexp>,
    /// Template applied to the key (`.value`).
    pub transform: Option<RewriteTransform>,
    /// Merge several JSON values into one key.
    pub merge: Option<RewriteMerge>,
}

/// Regular-expression rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteRegexp {
    /// Pattern to find.
    pub source: String,
    /// Replacement.
    pub target: String,
}

/// Template rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteTransform {
    /// Template producing the new key.
    pub template: String,
}

/// Merge rewrite.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteMerge {
    /// Key to merge into.
    pub into: Option<String>,
    /// Keys that win conflicts, in order.
    pub priority: Option<Vec<String>>,
    /// `Strict` (default) or `IgnoreNotFound`.
    #[schemars(extend("enum" = ["IgnoreNotFound", "Strict"]))]
    pub priority_policy: Option<String>,
    /// `Error` (default) or `Ignore`.
    #[schemars(extend("enum" = ["Ignore", "Error"]))]
    pub conflict_policy: Option<String>,
    /// `Extract` (default) or `JSON`.
    #[schemars(extend("enum" = ["Extract", "JSON"]))]
    pub strategy: Option<String>,
}

/// What the controller last observed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// Time of the last successful sync.
    pub refresh_time: Option<Time>,
    /// `<generation>-<hash of labels and annotations>` at the last sync.
    pub synced_resource_version: Option<String>,
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
    /// Pointer to the target Secret (servicebinding.io).
    pub binding: Option<SecretBinding>,
    /// The apiVersion and kind of the target the last sync wrote (`v1` `Secret` for a Secret),
    /// so that the object of the previous kind is found when the kind changes. Not upstream's.
    pub target_manifest: Option<ManifestReference>,
}

/// Name of a Secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretBinding {
    /// Name of the Secret.
    pub name: Option<String>,
}

impl ExternalSecretSpec {
    /// The refresh interval text, defaulted as upstream does.
    pub fn refresh_interval_or_default(&self) -> &str {
        self.refresh_interval.as_deref().unwrap_or("1h0m0s")
    }
}

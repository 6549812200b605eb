//! `bitnami.com/v1alpha1` SealedSecret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::scope::SealingScope;

/// Annotation that lets the controller take over a Secret it did not create.
pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";
/// Annotation that merges into an existing Secret instead of replacing it.
pub const PATCH_ANNOTATION: &str = "sealedsecrets.bitnami.com/patch";
/// Template annotation that leaves the Secret without an ownerReference.
pub const SKIP_SET_OWNER_REFERENCES_ANNOTATION: &str =
    "sealedsecrets.bitnami.com/skip-set-owner-references";
/// Label that marks a Secret in the controller namespace as a sealing key.
pub const SEALING_KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// Value of [`SEALING_KEY_LABEL`] for keys in use.
pub const SEALING_KEY_ACTIVE: &str = "active";

/// An encrypted Secret that only the controller holding the private key can open.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    namespaced,
    status = "SealedSecretStatus",
    doc = "SealedSecret is the K8s representation of a \"sealed Secret\": a regular k8s Secret that has been sealed (encrypted) using the controller's key.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[0].message"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[0].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Sealed values, one per Secret key, as base64 of the hybrid RSA-OAEP + AES-GCM blob.
    #[schemars(schema_with = "encrypted_data_schema")]
    pub encrypted_data: BTreeMap<String, serde_json::Value>,
    /// Metadata, type and templated data of the Secret the controller writes.
    pub template: Option<SecretTemplateSpec>,
    /// Deprecated v1 format: base64 of one sealed blob holding the whole Secret as JSON.
    pub data: Option<String>,
}

fn encrypted_data_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "Sealed values, one per Secret key, as base64 of the hybrid RSA-OAEP + AES-GCM blob.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn template_metadata_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "description": "Standard object metadata copied to the Secret (name and namespace are forced to the SealedSecret's).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The shape of the Secret the controller writes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplateSpec {
    /// Standard object metadata copied to the Secret (name and namespace are forced to the SealedSecret's).
    #[serde(default)]
    #[schemars(schema_with = "template_metadata_schema")]
    pub metadata: Option<ObjectMeta>,
    /// Secret type, e.g. `kubernetes.io/tls`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Make the Secret immutable.
    pub immutable: Option<bool>,
    /// Keys rendered from Go templates over the unsealed items.
    pub data: Option<BTreeMap<String, String>>,
}

/// What the controller last observed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// Latest state observations.
    pub conditions: Option<Vec<SealedSecretCondition>>,
    /// The generation the conditions describe.
    pub observed_generation: Option<i64>,
}

/// A SealedSecret condition; upstream writes only `Synced`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    /// Condition type (`Synced`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why the condition is in this state; empty on success.
    pub message: Option<String>,
    /// Machine-readable reason.
    pub reason: Option<String>,
    /// Last time the condition was written.
    pub last_update_time: Option<Time>,
    /// Last time the status flipped.
    pub last_transition_time: Option<Time>,
}

impl SealedSecret {
    /// The sealing scope, read from the top-level annotations (never from the template).
    pub fn scope(&self) -> SealingScope {
        SealingScope::from_annotations(self.metadata.annotations.as_ref())
    }
}

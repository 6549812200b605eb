//! `external-secrets.io` kinds: ExternalSecret, SecretStore, ClusterSecretStore and
//! ClusterExternalSecret at `v1`, PushSecret at `v1alpha1`.

mod cluster_external_secret;
mod common;
mod external_secret;
mod providers;
mod push_secret;
mod store;
pub mod validation;

pub use cluster_external_secret::*;
pub use common::*;
pub use external_secret::*;
pub use providers::*;
pub use push_secret::*;
pub use store::*;
pub use validation::{validate, validate_store};

/// The API group of every kind here.
pub const GROUP: &str = "external-secrets.io";
/// Label on managed target Secrets.
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Annotation with the hash of the target Secret's data.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Label naming (by hash) the ExternalSecret that created a target Secret.
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Finalizer on ExternalSecrets.
pub const EXTERNAL_SECRET_FINALIZER: &str =
    "externalsecrets.external-secrets.io/externalsecret-cleanup";
/// Annotation whose change forces a refresh.
pub const FORCE_SYNC_ANNOTATION: &str = "external-secrets.io/force-sync";

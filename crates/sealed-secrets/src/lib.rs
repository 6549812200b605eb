//! The sealed-secrets controller's logic: key Secrets (loading, choosing the newest, minting),
//! the Secret a SealedSecret unseals into, and the ownership rules for existing Secrets.
//! The reconcile loop, HTTP endpoints and binary build on these pure pieces and on
//! `strongroom-controller-kit`.
#![forbid(unsafe_code)]

pub mod context;
pub mod controller;
pub mod desired;
pub mod error;
pub mod gc;
pub mod http;
pub mod invalid;
pub mod keys;
pub mod keystore;
pub mod metrics;
pub mod ownership;
pub mod secret_index;
pub mod write;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "sealed-secrets-controller";
/// Controller name in the reconcile metrics and logs.
pub const CONTROLLER_NAME: &str = "sealedsecret";
/// Name of the leader election Lease.
pub const LEASE_NAME: &str = "sealed-secrets-controller";
/// Annotation on the Secret: fingerprint of the key that unsealed it.
pub const KEY_ANNOTATION: &str = "sealedsecrets.strongroom.dev/sealing-key";
/// Annotation on the Secret: hash of the SealedSecret it was produced from, so a restart can
/// skip decrypting what is already in place.
pub const SOURCE_HASH_ANNOTATION: &str = "sealedsecrets.strongroom.dev/source-hash";

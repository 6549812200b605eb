//! The external-secrets controller: `external-secrets.io` SecretStores, ClusterSecretStores and
//! ExternalSecrets, drop-in compatible with External Secrets Operator (labels, annotations,
//! hashes, field managers, conditions, events and metric names as upstream), with provider
//! clients kept across reconciles and reads shared between ExternalSecrets.

pub mod context;
pub mod desired;
pub mod error;
pub mod externalsecret;
pub mod fanout;
pub mod fetch;
pub mod field_takeover;
pub mod generator_state;
pub mod generators;
pub mod generic_body;
pub mod generic_sync;
pub mod generic_watch;
pub mod hash;
pub mod keys;
pub mod metrics;
pub mod previous_kind;
pub mod push_cleanup;
pub mod push_plan;
pub mod push_secret;
pub mod push_source;
pub mod rate_limit;
pub mod ready;
pub mod refresh;
pub mod resolver;
pub mod rewrite_merge;
pub mod run;
pub mod store;
pub mod store_finalizer;
pub mod stores;
pub mod windows;

/// The controller name in metrics and logs.
pub const CONTROLLER_NAME: &str = "externalsecret";
/// Field manager of status writes and store status.
pub const FIELD_MANAGER: &str = "external-secrets";
/// The event reporter name upstream uses.
pub const REPORTER: &str = "external-secrets";
/// Ready condition type.
pub const READY: &str = "Ready";

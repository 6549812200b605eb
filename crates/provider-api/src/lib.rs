//! The provider API of the external-secrets controller.
//!
//! A provider crate implements [`Provider`] (a factory: id, capabilities, static validation of
//! the store's provider block, connect) and [`SecretsClient`] (one authenticated session per
//! store: read, find, push, delete, validate). Credentials come through a
//! [`CredentialResolver`] the controller implements; providers never see kube-runtime.
//! Failures are [`ProviderError`]s, whose category is a metric label.
//!
//! The controller enables providers with cargo features and registers them in a
//! [`ProviderRegistry`]. Every provider runs [`conformance`] in its tests
//! (always compiled, so provider crates outside this workspace can run it too).

mod ca;
mod error;
mod property;
mod provider;
mod refs;
mod registry;
mod resolver;
mod retry;

pub mod conformance;

pub use ca::decode_ca_bundle;
pub use error::ProviderError;
pub use property::{go_json, json_property, map_from_json};
pub use provider::{Capabilities, Provider, ProviderEnv, SecretsClient, StoreContext, Validation};
pub use refs::{FindQuery, PushRef, RemoteRef};
pub use registry::{ProviderRegistry, ProviderRegistryBuilder};
pub use resolver::{CallObserver, CredentialResolver, LabelledSecret, NoCalls};
pub use retry::RetrySettings;
pub use strongroom_core::secret::SecretBytes;

/// Values keyed by remote name (a `find` result, or the keys of one JSON secret).
pub type SecretMap = std::collections::BTreeMap<String, SecretBytes>;

//! How providers get credentials: through the controller, never through a Kubernetes client
//! of their own.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{ProviderError, SecretBytes};

/// Credential lookups the controller performs for a provider. Errors are
/// [`ProviderError::Authentication`] (missing Secret or key) or
/// [`ProviderError::PermissionDenied`] (the controller may not read it).
#[async_trait]
pub trait CredentialResolver: Send + Sync {
    /// The value of `key` in Secret `namespace/name`.
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError>;

    /// The value of `key` in ConfigMap `namespace/name` (CA bundles).
    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<String, ProviderError>;

    /// A token for ServiceAccount `namespace/name` from the TokenRequest API.
    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: Option<i64>,
    ) -> Result<SecretBytes, ProviderError>;

    /// The annotations of ServiceAccount `namespace/name` (role ARNs, client ids).
    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError>;

    /// Every key of Secret `namespace/name` with the Secret's labels (the webhook provider's
    /// `secrets[]`, which expose whole Secrets carrying a type label). Resolvers that cannot
    /// read whole Secrets keep the default, which refuses.
    async fn labelled_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<LabelledSecret, ProviderError> {
        let _ = (namespace, name);
        Err(ProviderError::Unsupported(
            "reading whole Secrets (this credential resolver reads single keys only)".into(),
        ))
    }
}

/// A whole Secret as [`CredentialResolver::labelled_secret`] returns it.
#[derive(Debug, Clone, Default)]
pub struct LabelledSecret {
    /// The Secret's labels.
    pub labels: BTreeMap<String, String>,
    /// Its data, by key.
    pub data: BTreeMap<String, SecretBytes>,
}

/// Observes every call a provider makes to its backend, for
/// `externalsecret_provider_api_calls_count{provider,call,status}` and the benchmark.
pub trait CallObserver: Send + Sync {
    /// One call of `call` (e.g. `GetSecretValue`) to `provider` (e.g. `AWS/SecretsManager`).
    fn observe(&self, provider: &str, call: &str, ok: bool);
}

/// A [`CallObserver`] that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCalls;

impl CallObserver for NoCalls {
    fn observe(&self, _provider: &str, _call: &str, _ok: bool) {}
}

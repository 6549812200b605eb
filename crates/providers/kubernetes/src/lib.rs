//! The `kubernetes` provider: Secrets of a namespace (`remoteNamespace`, `default` when empty)
//! on an API server (`server.url`, or the cluster the controller runs in), read and pushed
//! through the Kubernetes REST API as upstream's provider does.
//!
//! - Authentication: exactly one of `auth.token.bearerToken`, `auth.cert` (TLS client
//!   certificate), `auth.serviceAccount` (a TokenRequest token) or `authRef` (a kubeconfig in a
//!   Secret: its current context's server, CA and token or client certificate).
//! - Reads: a key is a Secret name. Without `property` the value is the Secret's data as a JSON
//!   object of strings; with it, that data key (or `<key>.<gjson path>`). `metadataPolicy:
//!   Fetch` reads `labels`/`annotations` instead. `find` matches Secret names by regexp and/or
//!   labels (server-side label selector); each match is its data as JSON.
//! - Push: sets one data key (`property`, else `value`) of a Secret (created if missing);
//!   labels and annotations from `PushSecretMetadata` (`kubernetes.external-secrets.io/v1alpha1`),
//!   `remoteNamespace` there for ClusterSecretStores. Delete removes that key, or the Secret
//!   when it was the last one. As upstream, no ownership mark is required on the target.
//! - Every API call is reported as `Kubernetes`/`GetSecret`, `ListSecrets`, `CreateSecret`,
//!   `UpdateSecret`, `DeleteSecret`, `CreateSelfSubjectRulesReview` or
//!   `CreateSelfSubjectAccessReview`.
//!
//! HTTP goes through reqwest with a rustls configuration built here on the `ring` provider;
//! no kube client is involved (providers never see kube-runtime).

mod client;
mod connection;
mod http;
mod kubeconfig;
mod secret;

use async_trait::async_trait;
use strongroom_provider_api::{
    Capabilities, Provider, ProviderEnv, ProviderError, SecretsClient, StoreContext,
};

pub use client::KubernetesClient;

/// The provider-block key.
const ID: &str = "kubernetes";
/// The `provider` label of the call metric.
pub(crate) const METRIC_NAME: &str = "Kubernetes";

/// The kubernetes provider factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct KubernetesProvider;

#[async_trait]
impl Provider for KubernetesProvider {
    fn id(&self) -> &'static str {
        ID
    }

    fn metric_name(&self) -> &'static str {
        METRIC_NAME
    }

    fn capabilities(&self, _store: &StoreContext) -> Capabilities {
        Capabilities::ReadWrite
    }

    fn validate_store(&self, store: &StoreContext) -> Result<Vec<String>, ProviderError> {
        connection::validate(store)
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        self.validate_store(store)?;
        Ok(Box::new(KubernetesClient::connect(store, env).await?))
    }
}

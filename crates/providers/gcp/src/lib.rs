//! The `gcpsm` provider: Google Cloud Secret Manager over its REST API (v1), read, searched
//! and pushed as upstream's `gcpsm` provider does, with one token per token lifetime.
//!
//! - Reads: `versions/{v}:access` (default `latest`), `payload.data` base64 with its
//!   `dataCrc32c` checked; `property` as a gjson path (an exact top-level member first);
//!   `metadataPolicy: Fetch` returns `labels`/`annotations` (property `labels.x`,
//!   `annotations.y`, `labels`, `annotations`); regional secrets with `location`;
//!   `secretVersionSelectionPolicy: LatestOrFetch` falls back to the newest enabled version
//!   when `latest` is disabled or destroyed.
//! - `find`: `ListSecrets` with a server-side filter (`labels.k=v`, `name:path`), every page,
//!   then the name regexp; one access per match.
//! - Auth (upstream's order): `auth.secretRef` service-account key (an RS256 JWT exchanged at
//!   the key's `token_uri`), `auth.workloadIdentity` (TokenRequest for the KSA, STS exchange,
//!   impersonation of the GSA annotated `iam.gke.io/gcp-service-account`),
//!   `auth.workloadIdentityFederation` (an external-account configuration or a KSA token),
//!   else Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, else the
//!   metadata server). Tokens are cached per store client and refreshed shortly before they
//!   expire or when Secret Manager answers 401; there is no process-wide lock.
//! - Push: creates the secret labelled `managed-by=external-secrets`, refuses secrets without
//!   the label, adds a version only when the payload changed; delete only managed secrets.
//! - Endpoints: see [`Endpoints`]; plain HTTP only for loopback addresses.
//! - The `GCRAccessToken` generator ([`GcpProvider::gcr_access_token`]) uses the same auth.
//! - Every call is counted as `GCP/SecretManager` with upstream's call names.

mod api;
mod auth;
mod client;
mod config;
mod endpoints;
mod gcr;
mod token;

use async_trait::async_trait;
use strongroom_provider_api::{
    Capabilities, Provider, ProviderEnv, ProviderError, SecretsClient, StoreContext,
};

pub use client::GcpSecretsClient;
pub use endpoints::Endpoints;

/// The provider-block key.
const ID: &str = "gcpsm";
/// The `provider` label of the call metric (upstream's).
pub(crate) const METRIC_NAME: &str = "GCP/SecretManager";

/// The gcpsm provider factory.
#[derive(Debug, Clone, Default)]
pub struct GcpProvider {
    endpoints: Endpoints,
}

impl GcpProvider {
    /// A provider using the endpoints of the process environment (what the controller runs).
    pub fn from_env() -> Self {
        Self {
            endpoints: Endpoints::from_env(),
        }
    }

    /// A provider using `endpoints` (tests).
    pub fn with_endpoints(endpoints: Endpoints) -> Self {
        Self { endpoints }
    }

    /// Upstream's `GCRAccessToken` generator: `username` (`oauth2accesstoken`), `password` (a
    /// fresh access token for the spec's `auth`, read in `namespace`) and `expiry` (Unix
    /// seconds). `spec` is the generator's spec as written.
    pub async fn gcr_access_token(
        &self,
        spec: &std::collections::BTreeMap<String, serde_json::Value>,
        namespace: &str,
        env: ProviderEnv,
    ) -> Result<strongroom_provider_api::SecretMap, ProviderError> {
        gcr::generate(spec, namespace, env, &self.endpoints).await
    }
}

#[async_trait]
impl Provider for GcpProvider {
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
        config::validate(store)
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        self.validate_store(store)?;
        Ok(Box::new(
            GcpSecretsClient::connect(store, env, &self.endpoints).await?,
        ))
    }
}

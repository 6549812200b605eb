//! The `azurekv` provider: Azure Key Vault secrets, certificates and keys, read, searched and
//! pushed as upstream's `azurekv` provider does, over Key Vault's REST API (`api-version`
//! 7.4) with Microsoft Entra ID tokens.
//!
//! - Objects: `secret/<name>` (or a bare name), `cert/<name>` (the certificate's DER bytes),
//!   `key/<name>` (the public JWK as JSON); `version` selects a version, `property` a gjson
//!   path of the value, `metadataPolicy: Fetch` returns tags and `attribute.*` times.
//! - Auth (`token`): `ServicePrincipal` with a client secret or a client certificate (an
//!   RS256 client assertion with the certificate's `x5t`), `ManagedIdentity` (IMDS, optional
//!   user-assigned `identityId`), `WorkloadIdentity` (a TokenRequest token for the
//!   ServiceAccount, or `AZURE_FEDERATED_TOKEN_FILE`, exchanged as a federated assertion).
//!   Tokens are cached per resource until shortly before they expire and refreshed on a 401,
//!   never per read.
//! - Endpoints ([`Endpoints`]): the vault is the store's `vaultUrl` (any HTTPS host); the login
//!   authority is `customCloudConfig.activeDirectoryEndpoint`, else `AZURE_AUTHORITY_HOST`,
//!   else the `environmentType`'s; IMDS is `AZURE_POD_IDENTITY_AUTHORITY_HOST` or
//!   169.254.169.254. TLS trusts the system roots plus `SSL_CERT_FILE`.
//! - Every Key Vault call is counted as `Azure/KeyVault` with upstream's call names.
//!
//! [`acr`] is upstream's `ACRAccessToken` generator on the same token code.
//!
//! The official Azure SDK crates are not used: see `docs/providers/azure.md`.

pub mod acr;
mod challenge;
mod client;
mod config;
mod keys;
mod metadata;
mod push;
mod tls;
mod token;
mod vault;

use async_trait::async_trait;
use strongroom_provider_api::{
    Capabilities, Provider, ProviderEnv, ProviderError, SecretsClient, StoreContext,
};

pub use client::AzureSecretsClient;
pub use config::Endpoints;

/// The provider-block key.
const ID: &str = "azurekv";
/// The `provider` label of the call metric (upstream's).
pub(crate) const METRIC_NAME: &str = "Azure/KeyVault";

/// The azurekv provider factory.
#[derive(Debug, Default, Clone)]
pub struct AzureProvider {
    /// Endpoints and extra trust given by a test; `None` reads the process environment at
    /// connect time.
    endpoints: Option<Endpoints>,
}

impl AzureProvider {
    /// A provider with explicit endpoints instead of the process environment (tests, where a
    /// process-wide variable would leak between tests).
    pub fn with_endpoints(endpoints: Endpoints) -> Self {
        Self {
            endpoints: Some(endpoints),
        }
    }
}

#[async_trait]
impl Provider for AzureProvider {
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
        config::Settings::from_store(store, &Endpoints::default()).map(|_| Vec::new())
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        let endpoints = match &self.endpoints {
            Some(e) => e.clone(),
            None => Endpoints::from_env(),
        };
        Ok(Box::new(
            AzureSecretsClient::connect(store, env, endpoints).await?,
        ))
    }
}

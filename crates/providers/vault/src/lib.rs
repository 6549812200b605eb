//! The `vault` provider: HashiCorp Vault and OpenBao KV engines (v2 and v1), read, searched
//! and pushed as upstream's `vault` provider does, with one token per store, renewed.
//!
//! - Keys: `path` is the mount (`/data` handled as upstream's `buildPath`); without it the
//!   key's first segment is the mount. `version` selects a KV v2 version. `namespace` sends
//!   `X-Vault-Namespace` (`auth.namespace` overrides it for the login). `caBundle`/`caProvider`
//!   set the trusted CA, `tls` a client certificate, `headers` extra headers,
//!   `forwardInconsistent` `X-Vault-Inconsistent: forward-active-node`, `readYourWrites` the
//!   newest `X-Vault-Index` seen on every KV call (`consistency`, `exec`).
//! - Auth: `tokenSecretRef` (static, never revoked), `appRole`, `kubernetes`
//!   (`serviceAccountRef` through TokenRequest, or a legacy token Secret), `jwt` (a JWT Secret
//!   or a minted ServiceAccount token), `userPass`, `ldap`, `cert`.
//! - Token lifecycle (`token`): the login happens once in `connect`; the token is renewed at
//!   two thirds of its TTL, replaced by a login only at its max TTL or when it cannot be
//!   renewed, and `close` revokes it (revoke-self) unless it was a static one. No token
//!   lookup per read.
//! - Reads: without `property` the value is the JSON of the data map; with it, the exact
//!   top-level key first, else a gjson path. Deleted or destroyed versions are NotFound.
//!   `metadataPolicy: Fetch` reads `custom_metadata` (and upstream's system keys).
//!   `find` lists recursively and filters by name regexp and/or `custom_metadata` tags.
//! - Push: KV v2 marks the key with `custom_metadata.managed-by=external-secrets` and refuses
//!   unmarked keys; KV v1 embeds the mark in the data. `checkAndSet.required` writes with CAS.
//! - Every call is counted as `HashiCorp/Vault` with upstream's call names (`Login`,
//!   `LookupSelf`, `RevokeSelf`, `ReadSecretData`, `WriteSecretData`, `DeleteSecret`,
//!   `ListSecrets`).
//!
//! HTTP goes through vaultrs over a reqwest client built here (rustls on `ring`).

mod auth;
mod client;
mod config;
mod consistency;
pub mod dynamic;
mod exec;
mod token;
mod vault;

use async_trait::async_trait;
use strongroom_provider_api::{
    Capabilities, Provider, ProviderEnv, ProviderError, SecretsClient, StoreContext,
};

pub use client::VaultSecretsClient;

/// The provider-block key.
const ID: &str = "vault";
/// The `provider` label of the call metric (upstream's).
pub(crate) const METRIC_NAME: &str = "HashiCorp/Vault";

/// The vault provider factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct VaultProvider;

#[async_trait]
impl Provider for VaultProvider {
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
        Ok(Box::new(VaultSecretsClient::connect(store, env).await?))
    }
}

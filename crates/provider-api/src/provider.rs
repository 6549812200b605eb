//! The two traits a provider implements: a factory per backend and a client per store.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use strongroom_core::crd::external_secrets::{
    SecretKeySelector, SecretStoreProvider, SecretStoreRetrySettings, StoreKind,
};

use crate::{
    CallObserver, CredentialResolver, FindQuery, ProviderError, PushRef, RemoteRef, SecretBytes,
    SecretMap, json_property, map_from_json,
};

/// What a store can do, as reported in `status.capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// Read only.
    ReadOnly,
    /// Push only.
    WriteOnly,
    /// Read and push.
    ReadWrite,
}

impl Capabilities {
    /// The status value (`ReadOnly`, `WriteOnly`, `ReadWrite`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "ReadOnly",
            Self::WriteOnly => "WriteOnly",
            Self::ReadWrite => "ReadWrite",
        }
    }
}

/// The outcome of [`SecretsClient::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The store works.
    Ready,
    /// Cannot tell yet (referent authentication: credentials depend on the reader's namespace).
    Unknown,
}

/// The store a client is made for.
#[derive(Debug, Clone)]
pub struct StoreContext {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// The store's name.
    pub name: String,
    /// The SecretStore's namespace; `None` for a ClusterSecretStore.
    pub namespace: Option<String>,
    /// For a ClusterSecretStore read by an ExternalSecret: that ExternalSecret's namespace,
    /// where credential references without a namespace are resolved (referent authentication).
    pub referent_namespace: Option<String>,
    /// The store's provider block.
    pub provider: SecretStoreProvider,
    /// `spec.retrySettings` as written; [`StoreContext::retry_settings`] checks it.
    pub retry: Option<SecretStoreRetrySettings>,
}

impl StoreContext {
    /// Where a credential reference is looked up: a SecretStore's own namespace always; for a
    /// ClusterSecretStore the reference's namespace, else the reader's (referent
    /// authentication). `None` when a ClusterSecretStore's reference names no namespace and no
    /// reader is known (store validation of a referent store).
    pub fn credential_namespace(&self, explicit: Option<&str>) -> Option<String> {
        match self.kind {
            StoreKind::SecretStore => self.namespace.clone(),
            StoreKind::ClusterSecretStore => explicit
                .map(str::to_string)
                .or_else(|| self.referent_namespace.clone()),
        }
    }

    /// The checked `spec.retrySettings` (`None` when the store has none).
    pub fn retry_settings(&self) -> Result<Option<crate::RetrySettings>, ProviderError> {
        crate::RetrySettings::from_spec(self.retry.as_ref())
    }

    /// Whether this is a ClusterSecretStore whose credentials depend on the reader.
    pub fn is_referent(&self, explicit: Option<&str>) -> bool {
        self.kind == StoreKind::ClusterSecretStore && explicit.is_none()
    }

    /// A human name for messages: `SecretStore "ns/name"` or `ClusterSecretStore "name"`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{:?} \"{ns}/{}\"", self.kind, self.name),
            None => format!("{:?} \"{}\"", self.kind, self.name),
        }
    }

    /// Reads the Secret key a selector in the provider block points at. `field` names the
    /// selector in messages (e.g. `auth.token.bearerToken`).
    pub async fn secret_key(
        &self,
        creds: &dyn CredentialResolver,
        selector: &SecretKeySelector,
        field: &str,
    ) -> Result<SecretBytes, ProviderError> {
        let name = selector
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ProviderError::InvalidConfig(format!("{field}.name is required")))?;
        let key = selector
            .key
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ProviderError::InvalidConfig(format!("{field}.key is required")))?;
        let namespace = self
            .credential_namespace(selector.namespace.as_deref())
            .ok_or_else(|| {
                ProviderError::InvalidConfig(format!(
                    "{field} names no namespace and the store is not read from one"
                ))
            })?;
        creds.secret_key(&namespace, name, key).await
    }
}

/// What a provider receives from the controller when connecting.
#[derive(Clone)]
pub struct ProviderEnv {
    /// Credential lookups.
    pub credentials: Arc<dyn CredentialResolver>,
    /// Backend call counting.
    pub calls: Arc<dyn CallObserver>,
}

/// A backend: builds clients for stores that name it.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider block's key in the store spec (`aws`, `vault`, `fake`, …).
    fn id(&self) -> &'static str;

    /// The `provider` label of `externalsecret_provider_api_calls_count` (e.g. `Kubernetes`).
    fn metric_name(&self) -> &'static str;

    /// What stores of this provider can do.
    fn capabilities(&self, store: &StoreContext) -> Capabilities;

    /// Static checks of the provider block, without I/O. Returns warnings on success.
    fn validate_store(&self, store: &StoreContext) -> Result<Vec<String>, ProviderError>;

    /// Authenticates and returns a client for `store`. The controller keeps the client across
    /// reconciles until [`SecretsClient::valid_until`] or the store changes.
    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError>;
}

/// An authenticated session with one store's backend.
#[async_trait]
pub trait SecretsClient: Send + Sync {
    /// The value of one remote key (its `property`, if asked for).
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError>;

    /// One remote value split into keys (`dataFrom[].extract`). By default the value (or its
    /// property) must be a JSON object.
    async fn get_secret_map(&self, remote: &RemoteRef) -> Result<SecretMap, ProviderError> {
        let whole = self.get_secret(&remote.without_property()).await?;
        let value = match &remote.property {
            Some(p) => json_property(&remote.key, whole.expose(), p)?,
            None => whole,
        };
        map_from_json(&remote.key, value.expose())
    }

    /// Every remote key matching a search (`dataFrom[].find`), keyed by remote name.
    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let _ = query;
        Err(ProviderError::Unsupported("find".into()))
    }

    /// Writes one value (PushSecret).
    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let _ = (value, target);
        Err(ProviderError::Unsupported("push".into()))
    }

    /// Deletes a pushed value (PushSecret `deletionPolicy: Delete`). Where the backend can
    /// mark what was pushed (upstream's `managed-by: external-secrets` tag), a provider deletes
    /// only values so marked; deleting a missing value succeeds.
    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let _ = target;
        Err(ProviderError::Unsupported("delete".into()))
    }

    /// Whether a push target exists (PushSecret `updatePolicy: IfNotExists`).
    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let _ = target;
        Err(ProviderError::Unsupported("exists".into()))
    }

    /// Checks that the store works (store status).
    async fn validate(&self) -> Result<Validation, ProviderError>;

    /// When this client's credentials expire; the controller reconnects before then.
    fn valid_until(&self) -> Option<Instant> {
        None
    }

    /// Whether the client keeps its own credentials alive (a Vault token it renews, or
    /// replaces by a new login, before it expires). The controller then keeps the client as
    /// long as the store is unchanged instead of replacing it after a bounded age.
    fn renews_itself(&self) -> bool {
        false
    }

    /// Releases what the session holds (revokes tokens). Called once, when the controller
    /// drops the client.
    async fn close(&self) {}
}

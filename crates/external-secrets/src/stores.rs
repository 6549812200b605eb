//! Access to stores for reading: finds the store an ExternalSecret names, checks that it may be
//! used (controller class, ClusterSecretStore conditions, Ready), and hands out a client that
//! is kept across reconciles, with reads shared by every ExternalSecret through a short-lived
//! cache and in-flight de-duplication. Every provider call of a store waits for its turn under
//! the store's rate limit ([`crate::rate_limit`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use strongroom_core::crd::external_secrets::{
    ClusterSecretStore, SecretStore, SecretStoreRef, SecretStoreSpec, SecretStoreStatus, StoreKind,
};
use strongroom_provider_api::{
    CallObserver, FindQuery, ProviderEnv, ProviderError, ProviderRegistry, RemoteRef, SecretBytes,
    SecretMap, SecretsClient, StoreContext,
};
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::metrics::{Metrics, StoreLabels};
use crate::rate_limit::RateLimits;
use crate::resolver::KubeResolver;

/// The longest a client without a known lifetime is kept: a rotated or revoked credential
/// Secret (which does not change the store) takes effect within this time.
const MAX_CLIENT_AGE: Duration = Duration::from_secs(600);

/// Reconnect this long before a client's credentials expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How long a replaced client may stay in use by reads that started before it is closed anyway.
const RETIRE_WITHIN: Duration = Duration::from_secs(30);

/// Closes a client that was replaced or whose store is gone, once no read uses it any more
/// (never under a read in flight: revoking its token there would fail that read), or after
/// [`RETIRE_WITHIN`] at the latest.
fn retire(client: Arc<dyn SecretsClient>) {
    tokio::spawn(async move {
        let since = Instant::now();
        while Arc::strong_count(&client) > 1 && since.elapsed() < RETIRE_WITHIN {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.close().await;
    });
}

/// Which client: a store, and for a ClusterSecretStore the reader's namespace (credentials may
/// be resolved there).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreId {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// The SecretStore's namespace.
    pub namespace: Option<String>,
    /// The store's name.
    pub name: String,
    /// The reading ExternalSecret's namespace (ClusterSecretStore only).
    pub referent: Option<String>,
}

/// A store resolved for use: its spec, its identity, its status.
#[derive(Debug, Clone)]
pub struct ResolvedStore {
    /// Identity.
    pub id: StoreId,
    /// The store's spec (both kinds share it).
    pub spec: SecretStoreSpec,
    /// The store's status.
    pub status: Option<SecretStoreStatus>,
    /// The store's generation: a new one drops the client.
    pub generation: i64,
}

impl ResolvedStore {
    /// The provider's view of the store.
    pub fn context(&self) -> StoreContext {
        StoreContext {
            kind: self.id.kind,
            name: self.id.name.clone(),
            namespace: self.id.namespace.clone(),
            referent_namespace: self.id.referent.clone(),
            provider: self.spec.provider.clone(),
            retry: self.spec.retry_settings.clone(),
        }
    }

    /// Whether the store's Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// `SecretStore "name"` / `ClusterSecretStore "name"`, as upstream's messages say.
    pub fn describe(&self) -> String {
        format!("{:?} {:?}", self.id.kind, self.id.name)
    }
}

struct Connected {
    client: Arc<dyn SecretsClient>,
    made: Instant,
    generation: i64,
    valid_until: Option<Instant>,
}

/// What a cached read returned.
#[derive(Clone)]
enum Read {
    Value(SecretBytes),
    Map(SecretMap),
}

impl Read {
    fn into_map(self) -> Result<SecretMap, ProviderError> {
        match self {
            Read::Map(m) => Ok(m),
            Read::Value(_) => Err(ProviderError::Malformed(
                "cache holds a value for a map".into(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReadKey {
    Value(RemoteRef),
    Map(RemoteRef),
    Find(FindQuery),
}

struct Flight {
    started: Instant,
    cell: OnceCell<Result<Read, ProviderError>>,
}

/// Store lookup, clients and the shared read cache.
pub struct Stores {
    client: Client,
    secret_stores: Store<SecretStore>,
    cluster_stores: Store<ClusterSecretStore>,
    registry: ProviderRegistry,
    calls: Arc<dyn CallObserver>,
    controller_class: String,
    flood_gate: bool,
    read_ttl: Duration,
    clients: Mutex<HashMap<StoreId, Arc<tokio::sync::Mutex<Option<Connected>>>>>,
    reads: Mutex<HashMap<(StoreId, i64, ReadKey), Arc<Flight>>>,
    /// Per store (a ClusterSecretStore once, whichever namespace reads): the rate of calls,
    /// lowered and paused when the provider throttles.
    limits: RateLimits<StoreId>,
    /// Where the rate limit's waits and refusals are counted.
    limit_metrics: Option<Metrics>,
}

/// Options of [`Stores`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `--controller-class`.
    pub controller_class: String,
    /// `--enable-flood-gate`: refuse stores that are not Ready.
    pub flood_gate: bool,
    /// How long a provider read is shared with later readers.
    pub read_ttl: Duration,
    /// `--provider-rate-limit`: provider calls per second per store at most (0: unlimited).
    pub rate_limit: f64,
}

impl Stores {
    /// Store access over the given caches.
    pub fn new(
        client: Client,
        secret_stores: Store<SecretStore>,
        cluster_stores: Store<ClusterSecretStore>,
        registry: ProviderRegistry,
        calls: Arc<dyn CallObserver>,
        options: StoreOptions,
    ) -> Self {
        Self {
            client,
            secret_stores,
            cluster_stores,
            registry,
            calls,
            controller_class: options.controller_class,
            flood_gate: options.flood_gate,
            read_ttl: options.read_ttl,
            clients: Mutex::default(),
            reads: Mutex::default(),
            limits: RateLimits::new(options.rate_limit),
            limit_metrics: None,
        }
    }

    /// With the rate limit's waits and refusals counted in `metrics`.
    pub fn with_rate_limit_metrics(mut self, metrics: Metrics) -> Self {
        self.limit_metrics = Some(metrics);
        self
    }

    fn limit_labels(id: &StoreId) -> StoreLabels<'_> {
        StoreLabels {
            kind: match id.kind {
                StoreKind::SecretStore => "SecretStore",
                StoreKind::ClusterSecretStore => "ClusterSecretStore",
            },
            name: &id.name,
            namespace: id.namespace.as_deref().unwrap_or_default(),
        }
    }

    /// The Kubernetes client (generators read their objects with it).
    pub fn client_api(&self) -> &Client {
        &self.client
    }

    /// Credentials and call counting for provider code outside a store (generators).
    pub fn provider_env(&self) -> ProviderEnv {
        ProviderEnv {
            credentials: Arc::new(KubeResolver::new(self.client.clone())),
            calls: self.calls.clone(),
        }
    }

    /// The provider registry.
    pub fn registry(&self) -> &ProviderRegistry {
        &self.registry
    }

    /// Whether a store with this `spec.controller` belongs to this controller.
    pub fn serves_class(&self, class: Option<&str>) -> bool {
        class.is_none_or(|c| c.is_empty() || c == self.controller_class)
    }

    /// The store `store_ref` names, for an ExternalSecret in `namespace`. Errors are upstream's
    /// messages: missing store, class, ClusterSecretStore conditions, not ready (flood gate).
    pub async fn resolve(
        &self,
        store_ref: &SecretStoreRef,
        namespace: &str,
    ) -> Result<Option<ResolvedStore>, Error> {
        let name = store_ref.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::InvalidSpec("secretStoreRef.name is empty".into()));
        }
        let kind = store_ref.kind_or_default();
        let resolved = match kind {
            StoreKind::SecretStore => {
                let store = self
                    .secret_stores
                    .get(&ObjectRef::new(&name).within(namespace))
                    .ok_or_else(|| Error::Store(format!("SecretStore {name:?} not found")))?;
                ResolvedStore {
                    id: StoreId {
                        kind,
                        namespace: Some(namespace.to_string()),
                        name,
                        referent: None,
                    },
                    generation: store.metadata.generation.unwrap_or_default(),
                    spec: store.spec.clone(),
                    status: store.status.clone(),
                }
            }
            StoreKind::ClusterSecretStore => {
                let store = self
                    .cluster_stores
                    .get(&ObjectRef::new(&name))
                    .ok_or_else(|| {
                        Error::Store(format!("ClusterSecretStore {name:?} not found"))
                    })?;
                let spec: SecretStoreSpec = store.spec.clone().into();
                if !self.namespace_allowed(&spec, namespace).await? {
                    return Err(Error::Store(format!(
                        "using cluster store {name:?} is not allowed from namespace \
                         {namespace:?}: denied by spec.condition"
                    )));
                }
                ResolvedStore {
                    id: StoreId {
                        kind,
                        namespace: None,
                        name,
                        referent: Some(namespace.to_string()),
                    },
                    generation: store.metadata.generation.unwrap_or_default(),
                    spec,
                    status: store.status.clone(),
                }
            }
        };
        if !self.serves_class(resolved.spec.controller.as_deref()) {
            return Ok(None);
        }
        if self.flood_gate && !resolved.is_ready() {
            return Err(Error::Store(format!(
                "{} is not ready",
                resolved.describe()
            )));
        }
        Ok(Some(resolved))
    }

    /// The names of the stores of `kind` (in `namespace` for SecretStores) whose labels match
    /// `selector`.
    pub fn matching(
        &self,
        kind: StoreKind,
        namespace: &str,
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Vec<String> {
        match kind {
            StoreKind::SecretStore => self
                .secret_stores
                .state()
                .iter()
                .filter(|s| s.namespace().as_deref() == Some(namespace))
                .filter(|s| selector_matches(selector, s.labels()))
                .map(|s| s.name_any())
                .collect(),
            StoreKind::ClusterSecretStore => self
                .cluster_stores
                .state()
                .iter()
                .filter(|s| selector_matches(selector, s.labels()))
                .map(|s| s.name_any())
                .collect(),
        }
    }

    async fn namespace_allowed(
        &self,
        spec: &SecretStoreSpec,
        namespace: &str,
    ) -> Result<bool, Error> {
        let Some(conditions) = spec.conditions.as_ref().filter(|c| !c.is_empty()) else {
            return Ok(true);
        };
        let mut labels = None;
        for c in conditions {
            if c.namespaces
                .as_ref()
                .is_some_and(|ns| ns.iter().any(|n| n == namespace))
            {
                return Ok(true);
            }
            for pattern in c.namespace_regexes.iter().flatten() {
                let re = regex::Regex::new(pattern).map_err(|e| {
                    Error::Store(format!(
                        "ClusterSecretStore namespaceRegexes {pattern:?}: {e}"
                    ))
                })?;
                if re.is_match(namespace) {
                    return Ok(true);
                }
            }
            if let Some(selector) = &c.namespace_selector {
                if labels.is_none() {
                    let ns = Api::<Namespace>::all(self.client.clone())
                        .get(namespace)
                        .await
                        .map_err(Error::kube("read the namespace"))?;
                    labels = Some(ns.labels().clone());
                }
                if selector_matches(selector, labels.as_ref().unwrap_or(&Default::default())) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The client of `store`, connecting (and closing a stale client) when needed.
    pub async fn client(
        &self,
        store: &ResolvedStore,
    ) -> Result<Arc<dyn SecretsClient>, ProviderError> {
        let slot = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.entry(store.id.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            // a session with a lifetime (a Vault token) is kept for that lifetime: one login
            // per token, not per interval; others get a bounded age, so credentials rotated in
            // their Secret reach the client this soon
            let fresh = c.generation == store.generation
                && match c.valid_until {
                    Some(t) => Instant::now() + EXPIRY_MARGIN < t,
                    None => c.client.renews_itself() || c.made.elapsed() < MAX_CLIENT_AGE,
                };
            if fresh {
                return Ok(c.client.clone());
            }
        }
        if let Some(old) = guard.take() {
            retire(old.client);
        }
        let provider = self.registry.get(&store.spec.provider)?;
        let client: Arc<dyn SecretsClient> = Arc::from(
            provider
                .connect(
                    &store.context(),
                    ProviderEnv {
                        credentials: Arc::new(KubeResolver::new(self.client.clone())),
                        calls: self.calls.clone(),
                    },
                )
                .await?,
        );
        *guard = Some(Connected {
            client: client.clone(),
            made: Instant::now(),
            generation: store.generation,
            valid_until: client.valid_until(),
        });
        Ok(client)
    }

    /// Drops the client of `id` (after an authentication failure, or when the store is gone).
    pub async fn forget(&self, id: &StoreId) {
        let slot = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(slot) = slot
            && let Some(old) = slot.lock().await.take()
        {
            retire(old.client);
        }
    }

    /// The current generation of the store `id` names, `None` when it is gone.
    fn live_generation(&self, id: &StoreId) -> Option<i64> {
        let generation = match id.kind {
            StoreKind::SecretStore => {
                let key = ObjectRef::new(&id.name).within(id.namespace.as_deref()?);
                self.secret_stores.get(&key)?.metadata.generation
            }
            StoreKind::ClusterSecretStore => {
                self.cluster_stores
                    .get(&ObjectRef::new(&id.name))?
                    .metadata
                    .generation
            }
        };
        Some(generation.unwrap_or_default())
    }

    /// Closes (revoking their tokens) the clients of stores that were deleted or changed, and
    /// of clients whose credentials expired, and drops the reads made through them. The
    /// controller runs this periodically, so a deleted store leaves no live session behind.
    /// Returns how many clients were closed.
    pub async fn sweep(&self) -> usize {
        let slots: Vec<(StoreId, Arc<tokio::sync::Mutex<Option<Connected>>>)> = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut closed = 0;
        for (id, slot) in slots {
            // a slot being connected right now is left for the next round
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            let live = self.live_generation(&id);
            let stale = match guard.as_ref() {
                Some(c) => {
                    live != Some(c.generation) || c.valid_until.is_some_and(|t| t <= Instant::now())
                }
                None => live.is_none(),
            };
            if !stale {
                continue;
            }
            if let Some(old) = guard.take() {
                retire(old.client);
                closed += 1;
            }
            drop(guard);
            if live.is_none() {
                self.clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                let gone = limit_key(&id);
                self.limits.retain(|k| *k != gone);
            }
            self.reads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(read_id, _, _), _| read_id != &id);
        }
        closed
    }

    /// Closes every client at once (on shutdown: tokens the controller logged in for are
    /// revoked; one slow backend does not hold up the others). A client an in-flight read still
    /// uses gets up to `wait` to finish first.
    pub async fn close_all(&self, wait: Duration) {
        let slots: Vec<_> = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        let closes = slots.into_iter().map(|slot| async move {
            if let Some(old) = slot.lock().await.take() {
                let since = Instant::now();
                while Arc::strong_count(&old.client) > 1 && since.elapsed() < wait {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                old.client.close().await;
            }
        });
        futures::future::join_all(closes).await;
    }

    async fn shared_read<F, Fut>(
        &self,
        store: &ResolvedStore,
        max_age: Duration,
        key: ReadKey,
        read: F,
    ) -> Result<Read, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Read, ProviderError>>,
    {
        let id = &store.id;
        // a changed store (new generation) never answers from reads made before the change
        let cache_key = (id.clone(), store.generation, key);
        let flight = {
            let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            let ttl = self.read_ttl.min(max_age);
            // expired reads (secret values) are dropped as the map grows, at most every 256
            // inserts' worth of growth, so memory follows the live set
            if reads.len() > 256 && reads.len().is_power_of_two() {
                let keep = self.read_ttl;
                reads.retain(|_, f| f.started.elapsed() < keep);
            }
            match reads.get(&cache_key) {
                Some(f) if f.started.elapsed() < ttl => f.clone(),
                _ => {
                    let f = Arc::new(Flight {
                        started: Instant::now(),
                        cell: OnceCell::new(),
                    });
                    reads.insert(cache_key.clone(), f.clone());
                    f
                }
            }
        };
        let result = flight
            .cell
            .get_or_init(|| async {
                // the read waits for the store's turn; a store that throttled us gets no call
                // until its wait is over, so every reader of it backs off together
                self.limited(id, read).await
            })
            .await
            .clone();
        if result.is_err() {
            // a failure is shared with whoever waited for it, never with later readers
            let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            if reads
                .get(&cache_key)
                .is_some_and(|f| Arc::ptr_eq(f, &flight))
            {
                reads.remove(&cache_key);
            }
        }
        if matches!(&result, Err(ProviderError::Authentication(_))) {
            self.forget(id).await;
        }
        result
    }

    /// Makes one provider call of the store `id` under its rate limit: waits for its turn (or
    /// fails as throttled at once while the store is paused), and lowers the store's rate when
    /// the provider throttles the call. Every call to a provider goes through here.
    pub async fn limited<T, F, Fut>(&self, id: &StoreId, call: F) -> Result<T, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let key = limit_key(id);
        let permit = self.limits.acquire(&key).await.map_err(|wait| {
            if let Some(m) = &self.limit_metrics {
                m.rate_limit_refused(Self::limit_labels(&key));
            }
            ProviderError::Throttled {
                retry_after: Some(wait),
                message: "the store asked to slow down or its call queue is full; waiting \
                          before the next call"
                    .into(),
            }
        })?;
        if !permit.waited.is_zero() {
            if let Some(m) = &self.limit_metrics {
                m.rate_limit_waited(Self::limit_labels(&key), permit.waited);
            }
            tracing::debug!(store = %describe(id), waited = ?permit.waited, "provider call waited for the store's rate limit");
        }
        let result = call().await;
        if let Err(ProviderError::Throttled { retry_after, .. }) = &result {
            self.limits.throttled(&key, permit, *retry_after);
            tracing::info!(store = %describe(id), rate = self.limits.rate(&key), "provider throttled: the store's call rate is lowered");
        }
        result
    }

    /// Reads through the shared cache: the provider is called only when no read of the same
    /// thing, recent enough for `max_age`, is cached or in flight.
    async fn read(
        &self,
        store: &ResolvedStore,
        max_age: Duration,
        key: ReadKey,
    ) -> Result<Read, ProviderError> {
        let client = self.client(store).await?;
        self.shared_read(store, max_age, key.clone(), || async move {
            match &key {
                ReadKey::Value(r) => client.get_secret(r).await.map(Read::Value),
                ReadKey::Map(r) => client.get_secret_map(r).await.map(Read::Map),
                ReadKey::Find(q) => client.get_all(q).await.map(Read::Map),
            }
        })
        .await
    }

    /// One value, shared with concurrent readers of the same reference and with readers that
    /// accept a read up to `max_age` old (and at most the read-cache TTL).
    pub async fn get(
        &self,
        store: &ResolvedStore,
        max_age: Duration,
        remote: &RemoteRef,
    ) -> Result<SecretBytes, ProviderError> {
        match self
            .read(store, max_age, ReadKey::Value(remote.clone()))
            .await?
        {
            Read::Value(v) => Ok(v),
            Read::Map(_) => Err(ProviderError::Malformed(
                "cache holds a map for a value".into(),
            )),
        }
    }

    /// One value split into keys, shared like [`Stores::get`].
    pub async fn get_map(
        &self,
        store: &ResolvedStore,
        max_age: Duration,
        remote: &RemoteRef,
    ) -> Result<SecretMap, ProviderError> {
        self.read(store, max_age, ReadKey::Map(remote.clone()))
            .await?
            .into_map()
    }

    /// A search, shared like [`Stores::get`].
    pub async fn find(
        &self,
        store: &ResolvedStore,
        max_age: Duration,
        query: &FindQuery,
    ) -> Result<SecretMap, ProviderError> {
        self.read(store, max_age, ReadKey::Find(query.clone()))
            .await?
            .into_map()
    }
}

/// The rate limit of a store: the store itself, not the namespace a ClusterSecretStore is read
/// from (the provider account behind it is the same).
fn limit_key(id: &StoreId) -> StoreId {
    StoreId {
        referent: None,
        ..id.clone()
    }
}

/// `SecretStore "ns/name"` / `ClusterSecretStore "name"`, for logs.
fn describe(id: &StoreId) -> String {
    match &id.namespace {
        Some(ns) => format!("{:?} \"{ns}/{}\"", id.kind, id.name),
        None => format!("{:?} {:?}", id.kind, id.name),
    }
}

/// Whether `labels` satisfy a label selector (matchLabels and matchExpressions).
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Store access with empty caches and a client that never connects: only the read path
    /// is exercised, with a counting read standing in for the provider.
    fn stores(read_ttl: Duration) -> Stores {
        limited_stores(read_ttl, 0.0)
    }

    /// [`stores`] with a rate limit of `rate` calls per second per store.
    fn limited_stores(read_ttl: Duration, rate: f64) -> Stores {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap_or_default());
        let Ok(client) = Client::try_from(config) else {
            panic!("a client needs no server to exist");
        };
        Stores::new(
            client,
            kube::runtime::reflector::store().0,
            kube::runtime::reflector::store().0,
            ProviderRegistry::builder().build(),
            Arc::new(strongroom_provider_api::NoCalls),
            StoreOptions {
                controller_class: "default".into(),
                flood_gate: true,
                read_ttl,
                rate_limit: rate,
            },
        )
    }

    fn store(generation: i64) -> ResolvedStore {
        ResolvedStore {
            id: StoreId {
                kind: StoreKind::SecretStore,
                namespace: Some("ns".into()),
                name: "s".into(),
                referent: None,
            },
            spec: SecretStoreSpec::default(),
            status: None,
            generation,
        }
    }

    fn key(k: &str) -> ReadKey {
        ReadKey::Value(RemoteRef::key(k))
    }

    async fn counted(
        stores: &Stores,
        store: &ResolvedStore,
        max_age: Duration,
        k: &str,
        calls: &AtomicUsize,
        answer: Result<&str, ProviderError>,
    ) -> Result<Read, ProviderError> {
        stores
            .shared_read(store, max_age, key(k), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                answer.map(|v| Read::Value(SecretBytes::from(v)))
            })
            .await
    }

    /// A client that counts its `close` calls.
    struct Closing(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl SecretsClient for Closing {
        async fn get_secret(&self, _: &RemoteRef) -> Result<SecretBytes, ProviderError> {
            Ok(SecretBytes::from(b"v".to_vec()))
        }
        async fn validate(&self) -> Result<strongroom_provider_api::Validation, ProviderError> {
            Ok(strongroom_provider_api::Validation::Ready)
        }
        async fn close(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn sweep_closes_clients_of_changed_and_deleted_stores() {
        use kube::runtime::watcher::Event;
        let (reader, mut writer) = kube::runtime::reflector::store::<SecretStore>();
        let mut stores = stores(Duration::from_secs(30));
        stores.secret_stores = reader;
        let object = |generation: i64| -> SecretStore {
            let Ok(s) = serde_json::from_value(serde_json::json!({
                "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": {"name": "s", "namespace": "ns", "generation": generation},
                "spec": {"provider": {"fake": {"data": []}}}
            })) else {
                panic!("a valid SecretStore")
            };
            s
        };
        let closes = Arc::new(AtomicUsize::new(0));
        let connect = |generation: i64| {
            let client: Arc<dyn SecretsClient> = Arc::new(Closing(closes.clone()));
            let slot = Arc::new(tokio::sync::Mutex::new(Some(Connected {
                client: client.clone(),
                made: Instant::now(),
                generation,
                valid_until: None,
            })));
            stores
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(store(generation).id, slot);
            client
        };
        let settle = || tokio::time::sleep(Duration::from_millis(300));
        let closed = || closes.load(Ordering::SeqCst);

        writer.apply_watcher_event(&Event::Apply(object(1)));
        let in_use = connect(1);
        assert_eq!(
            stores.sweep().await,
            0,
            "a live, unchanged store keeps its client"
        );
        writer.apply_watcher_event(&Event::Apply(object(2)));
        assert_eq!(
            stores.sweep().await,
            1,
            "a changed store's client is retired"
        );
        settle().await;
        assert_eq!(
            closed(),
            0,
            "a client a read still uses is not closed under it"
        );
        drop(in_use);
        settle().await;
        assert_eq!(closed(), 1, "it is closed once the read is done");

        drop(connect(2));
        writer.apply_watcher_event(&Event::Delete(object(2)));
        assert_eq!(
            stores.sweep().await,
            1,
            "a deleted store's client is closed"
        );
        assert!(
            stores
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty(),
            "and its slot is gone"
        );
        settle().await;
        assert_eq!(closed(), 2);
        drop(connect(2));
        stores.close_all(Duration::from_millis(100)).await;
        assert_eq!(closed(), 3, "shutdown closes every client");
    }

    #[tokio::test]
    async fn reads_are_shared_while_fresh_and_never_across_a_store_change() {
        let stores = stores(Duration::from_secs(30));
        let calls = AtomicUsize::new(0);
        let minute = Duration::from_secs(60);
        let first = store(1);
        let (a, b) = tokio::join!(
            counted(&stores, &first, minute, "k", &calls, Ok("v")),
            counted(&stores, &first, minute, "k", &calls, Ok("v")),
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "concurrent readers share one call"
        );
        let _ = counted(&stores, &store(1), minute, "k", &calls, Ok("v")).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a recent read is shared");
        let _ = counted(&stores, &store(1), Duration::ZERO, "k", &calls, Ok("v")).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a reader that wants fresh data reads"
        );
        let _ = counted(&stores, &store(2), minute, "k", &calls, Ok("v")).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "a changed store never answers from older reads"
        );
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_throttling_pauses_the_store() {
        let stores = stores(Duration::from_secs(30));
        let calls = AtomicUsize::new(0);
        let minute = Duration::from_secs(60);
        let down = Err(ProviderError::Unavailable("backend down".into()));
        assert!(
            counted(&stores, &store(1), minute, "k", &calls, down)
                .await
                .is_err()
        );
        assert!(
            counted(&stores, &store(1), minute, "k", &calls, Ok("v"))
                .await
                .is_ok()
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a failure is not served to later readers"
        );

        let throttled = Err(ProviderError::Throttled {
            retry_after: Some(minute),
            message: "rate exceeded".into(),
        });
        assert!(
            counted(&stores, &store(1), minute, "a", &calls, throttled)
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // every key of that store now waits, without calling the provider
        let paused = counted(&stores, &store(1), minute, "b", &calls, Ok("v")).await;
        assert!(
            matches!(paused, Err(ProviderError::Throttled { retry_after: Some(d), .. }) if d <= minute)
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "no call while the store is paused"
        );
        // another store is not paused
        let mut other = store(1);
        other.id.name = "other".into();
        assert!(
            counted(&stores, &other, minute, "b", &calls, Ok("v"))
                .await
                .is_ok()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
    /// The fake-provider stand-in (a counting read) at the store level: the rate limit applies
    /// to provider calls only, so shared reads cost no turn; a ClusterSecretStore has one limit
    /// for every namespace reading through it. Waits are counted per store.
    #[tokio::test]
    async fn cache_hits_take_no_turn_and_new_reads_wait_for_one() {
        let registry = prometheus::Registry::new();
        let Ok(metrics) = Metrics::register(&registry, false) else {
            panic!("the metrics register");
        };
        let stores = limited_stores(Duration::from_secs(30), 2.0).with_rate_limit_metrics(metrics);
        let calls = AtomicUsize::new(0);
        let minute = Duration::from_secs(60);
        let started = Instant::now();
        for k in ["a", "b"] {
            assert!(
                counted(&stores, &store(1), minute, k, &calls, Ok("v"))
                    .await
                    .is_ok()
            );
        }
        for _ in 0..20 {
            assert!(
                counted(&stores, &store(1), minute, "a", &calls, Ok("v"))
                    .await
                    .is_ok()
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "cache hits call nothing");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "two turns at once, cache hits wait for none: {:?}",
            started.elapsed()
        );
        let before = Instant::now();
        assert!(
            counted(&stores, &store(1), minute, "c", &calls, Ok("v"))
                .await
                .is_ok()
        );
        let waited = before.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_millis(1500),
            "the third key waits for its turn (about 0.5 s at 2/s, then the 50 ms read): {waited:?}"
        );
        // one ClusterSecretStore, read from two namespaces: one limit
        let cluster = |referent: &str| {
            let mut s = store(1);
            s.id = StoreId {
                kind: StoreKind::ClusterSecretStore,
                namespace: None,
                name: "shared".into(),
                referent: Some(referent.into()),
            };
            s
        };
        let before = Instant::now();
        for (ns, k) in [("x", "a"), ("y", "b"), ("x", "c")] {
            assert!(
                counted(&stores, &cluster(ns), minute, k, &calls, Ok("v"))
                    .await
                    .is_ok()
            );
        }
        assert!(
            before.elapsed() >= Duration::from_millis(350),
            "the third read of the cluster store waits, whichever namespace reads: {:?}",
            before.elapsed()
        );
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap_or_default();
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        };
        for store in [
            r#"{kind="SecretStore",name="s",namespace="ns"}"#,
            r#"{kind="ClusterSecretStore",name="shared",namespace=""}"#,
        ] {
            assert_eq!(
                value(&format!(
                    "strongroom_provider_rate_limit_waits_total{store}"
                )),
                1.0,
                "one call of {store} waited"
            );
            let waited = value(&format!(
                "strongroom_provider_rate_limit_wait_seconds_total{store}"
            ));
            assert!((0.3..1.5).contains(&waited), "{store} waited {waited} s");
        }
        assert!(
            !text.contains("strongroom_provider_rate_limit_refused_total{"),
            "no call was refused"
        );
    }

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use std::collections::BTreeMap;

    #[test]
    fn label_selectors() {
        let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let sel = |labels: Option<BTreeMap<String, String>>,
                   exprs: Vec<(&str, &str, Vec<&str>)>| LabelSelector {
            match_labels: labels,
            match_expressions: Some(
                exprs
                    .into_iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.into(),
                        operator: op.into(),
                        values: Some(vals.into_iter().map(str::to_string).collect()),
                    })
                    .collect(),
            ),
        };
        assert!(
            selector_matches(&LabelSelector::default(), &labels),
            "empty selects all"
        );
        assert!(selector_matches(
            &sel(Some(labels.clone()), vec![]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(Some(BTreeMap::from([("team".into(), "b".into())])), vec![]),
            &labels
        ));
        assert!(selector_matches(
            &sel(None, vec![("team", "In", vec!["a", "b"])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(None, vec![("team", "NotIn", vec!["a"])]),
            &labels
        ));
        assert!(selector_matches(
            &sel(None, vec![("env", "DoesNotExist", vec![])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(None, vec![("team", "Bogus", vec![])]),
            &labels
        ));
    }
}

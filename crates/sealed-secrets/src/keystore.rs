//! The keys the controller holds, kept in step with the key Secrets: added, relabelled or
//! removed key Secrets take effect without a restart (upstream needs one).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use strongroom_controller_kit::readiness::Component;
use strongroom_controller_kit::shutdown::{CancellationToken, unless_cancelled};
use strongroom_core::crd::sealed_secret::{SEALING_KEY_ACTIVE, SEALING_KEY_LABEL};
use strongroom_core::sealing::{Fingerprint, KeyGenParams, KeyRing, generate_key_and_cert};

use crate::keys::{self, KeyOrder, LoadedKey};

/// How keys are named, generated and renewed (controller flags).
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// Controller namespace.
    pub namespace: String,
    /// `--key-prefix`.
    pub prefix: String,
    /// `--key-size`.
    pub bits: usize,
    /// `--key-ttl`.
    pub ttl: chrono::Duration,
    /// `--my-cn`.
    pub common_name: String,
    /// `--key-renew-period` (zero disables renewal).
    pub renew_period: chrono::Duration,
    /// `--key-order-priority`.
    pub order: KeyOrder,
    /// `--key-cutoff-time`.
    pub cutoff: Option<DateTime<Utc>>,
    /// `--privatekey-labels`.
    pub labels: BTreeMap<String, String>,
    /// `--privatekey-annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// The newest key's certificate.
#[derive(Debug, Clone)]
pub struct Newest {
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// PEM served at `/v1/cert.pem`.
    pub cert_pem: String,
}

/// Every loaded key, and which one seals.
#[derive(Debug)]
pub struct KeyStore {
    ring: RwLock<KeyRing>,
    newest: RwLock<Option<Newest>>,
    loaded: RwLock<Vec<(Fingerprint, DateTime<Utc>)>>,
    /// Whether the key Secrets were loaded at least once.
    first_load: tokio::sync::watch::Sender<bool>,
}

impl Default for KeyStore {
    fn default() -> Self {
        Self {
            ring: RwLock::default(),
            newest: RwLock::default(),
            loaded: RwLock::default(),
            first_load: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl KeyStore {
    /// Waits until the key Secrets were loaded once (by [`follow`]).
    pub async fn wait_loaded(&self) {
        let mut rx = self.first_load.subscribe();
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    /// Whether a new key is due at start: none is held, or the newest is older than `cutoff`.
    pub fn needs_new_key(&self, cutoff: Option<DateTime<Utc>>) -> bool {
        match (self.newest_time(), cutoff) {
            (None, _) => true,
            (Some(newest), Some(cutoff)) => newest < cutoff,
            (Some(_), None) => false,
        }
    }

    /// Replaces the held keys with `keys`.
    pub fn replace_all(&self, keys: Vec<LoadedKey>, order: KeyOrder) {
        let newest = keys::newest(&keys, order).map(|k| Newest {
            fingerprint: k.key.fingerprint().clone(),
            cert_pem: k.cert.pem.clone(),
        });
        let loaded = keys
            .iter()
            .map(|k| (k.key.fingerprint().clone(), keys::order_time(k, order)))
            .collect();
        let mut ring = KeyRing::new();
        for k in keys {
            ring.insert(k.key);
        }
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        *self.newest.write().unwrap_or_else(|p| p.into_inner()) = newest;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        self.first_load.send_replace(true);
    }

    /// Runs `f` with the key ring (unsealing holds only a read lock).
    pub fn with_ring<T>(&self, f: impl FnOnce(&KeyRing) -> T) -> T {
        f(&self.ring.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The sealing key's certificate, if any key is loaded.
    pub fn newest(&self) -> Option<Newest> {
        self.newest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.with_ring(KeyRing::len)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ordering time of the newest key.
    pub fn newest_time(&self) -> Option<DateTime<Utc>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, t)| *t)
            .max()
    }
}

/// Lists and loads the key Secrets (labelled ones and the legacy one). Broken ones are logged
/// and skipped: one bad Secret must not take every key down.
pub async fn load(client: &Client, cfg: &KeyConfig) -> Result<Vec<LoadedKey>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    let selector = format!("{SEALING_KEY_LABEL}={SEALING_KEY_ACTIVE}");
    let mut secrets = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    if let Some(legacy) = api.get_opt(&cfg.prefix).await?
        && !secrets
            .iter()
            .any(|s| s.metadata.name == legacy.metadata.name)
    {
        secrets.push(legacy);
    }
    let mut out = Vec::new();
    for s in secrets
        .iter()
        .filter(|s| keys::is_key_secret(s, &cfg.prefix))
    {
        match keys::from_secret(s) {
            Ok(k) => out.push(k),
            Err(e) => tracing::error!(error = %e, "skipping unusable key Secret"),
        }
    }
    Ok(out)
}

/// Generates a key, stores it in a new key Secret, and returns the Secret's name.
pub async fn create_key(client: &Client, cfg: &KeyConfig) -> anyhow::Result<String> {
    let params = KeyGenParams {
        bits: cfg.bits,
        ttl: cfg.ttl,
        common_name: cfg.common_name.clone(),
        now: Utc::now(),
    };
    tracing::info!(bits = cfg.bits, "generating a new sealing key");
    let (key, cert) = tokio::task::spawn_blocking(move || generate_key_and_cert(&params)).await??;
    let secret = keys::key_secret(
        &cfg.namespace,
        &cfg.prefix,
        &key,
        &cert.pem,
        &cfg.labels,
        &cfg.annotations,
    )?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    let created = api.create(&PostParams::default(), &secret).await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(secret = %name, fingerprint = %key.fingerprint(), "new sealing key generated");
    Ok(name)
}

/// Generates a key when none exists or the newest is older than the cutoff, once [`follow`]
/// has loaded the keys (so a restart reads nothing twice). Writes a key Secret, so only the
/// leader calls it.
pub async fn ensure_key(client: &Client, cfg: &KeyConfig, store: &KeyStore) -> anyhow::Result<()> {
    store.wait_loaded().await;
    if store.needs_new_key(cfg.cutoff) {
        create_key(client, cfg).await?;
        let loaded = load(client, cfg).await?;
        tracing::info!(keys = loaded.len(), "sealing keys loaded");
        store.replace_all(loaded, cfg.order);
    }
    Ok(())
}

/// Keeps `store` in step with the key Secrets: loads them, then reloads whenever a Secret in
/// the controller namespace that is or may be a key changes. Read-only, so followers run it
/// too (they serve the certificate and `/v1/verify`); `ready` is reported while at least one
/// key is held. Runs until `stop`.
pub async fn follow(
    client: Client,
    cfg: KeyConfig,
    store: Arc<KeyStore>,
    ready: Component,
    stop: CancellationToken,
) {
    // a failed load is retried with backoff (a transient error at start must not leave the
    // replica without keys, and the leader waiting for them, for good)
    let reload = |why: &'static str| {
        let (client, cfg, store, ready) =
            (client.clone(), cfg.clone(), store.clone(), ready.clone());
        async move {
            let mut wait = Duration::from_millis(500);
            loop {
                match load(&client, &cfg).await {
                    Ok(keys) => {
                        let before = store.len();
                        store.replace_all(keys, cfg.order);
                        tracing::info!(before, after = store.len(), why, "sealing keys loaded");
                        if store.is_empty() {
                            ready.not_ready();
                        } else {
                            ready.ready();
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "loading sealing keys failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.next() => e,
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::InitDone) => {
                if unless_cancelled(&stop, reload("start")).await.is_none() {
                    return;
                }
            }
            Ok(watcher::Event::Apply(s) | watcher::Event::Delete(s))
                if keys::is_key_secret(&s, &cfg.prefix)
                    || s.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(&cfg.prefix)) =>
            {
                if unless_cancelled(&stop, reload("key Secret changed"))
                    .await
                    .is_none()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "key Secret watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Generates a new key every renew period, counted from the newest key's age, until `stop`.
pub async fn renew(client: Client, cfg: KeyConfig, store: Arc<KeyStore>, stop: CancellationToken) {
    if cfg.renew_period <= chrono::Duration::zero() {
        return;
    }
    unless_cancelled(&stop, async {
        loop {
            let age = store
                .newest_time()
                .map_or(cfg.renew_period, |t| Utc::now() - t);
            let wait = (cfg.renew_period - age).max(chrono::Duration::zero());
            tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
            match create_key(&client, &cfg).await {
                // load it now, so the next round sees the new key's age even if the watch lags
                Ok(_) => match load(&client, &cfg).await {
                    Ok(keys) => store.replace_all(keys, cfg.order),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading keys after renewal failed");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "key renewal failed; retrying in a minute");
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }
    })
    .await;
}

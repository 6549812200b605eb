//! What every reconcile shares, built once at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use strongroom_controller_kit::reconcile::ErrorPolicy;
use strongroom_core::crd::external_secrets::PushSecret;
use strongroom_core::template::Engine;

use crate::metrics::Metrics;
use crate::stores::Stores;

/// Shared state of the controllers.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Store lookup, provider clients and the read cache.
    pub stores: Arc<Stores>,
    /// ESO's template function set, with the `--template-*-delimiter` delimiters: for
    /// `target.template` (data, metadata, `templateFrom`) and PushSecret templates.
    pub engine: Engine,
    /// The same with the default delimiters, for `rewrite[].transform`, which upstream always
    /// parses with `{{` and `}}`.
    pub rewrite_engine: Engine,
    /// Upstream-named metrics.
    pub metrics: Metrics,
    /// Error handling, events and reconcile metrics.
    pub policy: ErrorPolicy,
    /// `--enable-cluster-store-reconciler`: without it ExternalSecrets using a
    /// ClusterSecretStore are skipped, as upstream.
    pub cluster_stores: bool,
    /// The PushSecret cache, when the PushSecret reconciler runs: the stores' finalizer
    /// (`secretstore.externalsecrets.io/finalizer`) follows it.
    pub pushes: Option<kube::runtime::reflector::Store<PushSecret>>,
    /// `--store-requeue-interval`.
    pub store_requeue: Duration,
    /// The oldest shared read an ExternalSecret with `refreshInterval: 0` accepts.
    pub read_max_age: Duration,
    /// `--generator-gc-grace-period`: how long a replaced generator state lives on.
    pub generator_gc_grace: Duration,
    /// Generic targets (`spec.target.manifest`): the flag, resolved kinds and their watches.
    pub generic: crate::generic_watch::GenericTargets,
    /// Per ExternalSecret uid: the `syncedResourceVersion` and time (unix seconds) of the last
    /// sync this process wrote, for when the cache lags behind its own status write.
    pub synced: Mutex<HashMap<String, (String, i64)>>,
    /// `<kind>/<namespace>/<name>` → the resourceVersion this process's last write of that
    /// object returned: a watch event of exactly that version is our own write (an
    /// ExternalSecret's finalizer, its target Secret) and needs no second reconcile.
    pub own_writes: Mutex<HashMap<String, String>>,
}

impl Context {
    /// What this process last recorded as synced for the ExternalSecret `uid`.
    pub fn last_synced(&self, uid: &str) -> Option<(String, i64)> {
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    /// The newer of a status's last sync (`version`, `at` in Unix seconds) and what this
    /// process recorded for `uid`: the watch cache may not show a status written a moment ago,
    /// and a sync must never be repeated because of that (a generator would regenerate, a
    /// CreatedOnce would read again).
    pub fn latest_sync(
        &self,
        uid: &str,
        version: Option<String>,
        at: Option<i64>,
    ) -> (Option<String>, Option<i64>) {
        match self.last_synced(uid) {
            Some((recorded, when)) if at.is_none_or(|t| t < when) => (Some(recorded), Some(when)),
            _ => (version, at),
        }
    }

    /// Records a sync of the ExternalSecret `uid`.
    pub fn remember_synced(&self, uid: &str, version: &str, at: i64) {
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_string(), (version.to_string(), at));
    }

    /// Forgets the ExternalSecret `uid` (deleted).
    pub fn forget_synced(&self, uid: &str) {
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// Records that this process wrote `kind` `namespace/name`, which is now at `version`.
    pub fn wrote(&self, kind: &str, namespace: &str, name: &str, version: Option<String>) {
        let mut writes = self.own_writes.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{kind}/{namespace}/{name}");
        match version {
            Some(v) => writes.insert(key, v),
            None => writes.remove(&key),
        };
    }

    /// Whether `kind` `namespace/name` at `version` is as this process last wrote it.
    pub fn is_own_write(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> bool {
        let writes = self.own_writes.lock().unwrap_or_else(|p| p.into_inner());
        version.is_some_and(|v| {
            writes
                .get(&format!("{kind}/{namespace}/{name}"))
                .map(String::as_str)
                == Some(v)
        })
    }
}

//! What every reconcile shares, built once at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use strongroom_controller_kit::reconcile::ErrorPolicy;
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
    /// `--store-requeue-interval`.
    pub store_requeue: Duration,
    /// The oldest shared read an ExternalSecret with `refreshInterval: 0` accepts.
    pub read_max_age: Duration,
    /// `--generator-gc-grace-period`: how long a replaced generator state lives on.
    pub generator_gc_grace: Duration,
    /// Per ExternalSecret uid: the `syncedResourceVersion` and time (unix seconds) of the last
    /// sync this process wrote, for when the cache lags behind its own status write.
    pub synced: Mutex<HashMap<String, (String, i64)>>,
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
}

//! What every reconcile shares, built once at start.

use std::sync::Arc;
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
    /// ESO's template function set.
    pub engine: Engine,
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
}

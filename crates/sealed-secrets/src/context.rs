//! What every reconcile shares, built once when this replica starts leading.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use strongroom_controller_kit::reconcile::ErrorPolicy;
use strongroom_controller_kit::workqueue::WorkQueue;
use strongroom_core::sealing::Fingerprint;

use crate::keystore::KeyStore;
use crate::metrics::Metrics;
use crate::secret_index::SecretIndex;

/// Everything a reconcile needs, built once.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The keys.
    pub keys: Arc<KeyStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Events, per-object backoff, reconcile metrics and spans, and the token that stops
    /// this leader's work.
    pub policy: ErrorPolicy,
    /// The controller's `workqueue_*` metrics (`name="sealedsecret"`).
    pub queue: WorkQueue,
    /// `--accept-deprecated-v1-data`.
    pub accept_v1_data: bool,
    /// `--update-status`.
    pub update_status: bool,
    /// Which key opened each SealedSecret last (uid → fingerprint), tried first next time.
    pub last_key: Mutex<HashMap<String, Fingerprint>>,
    /// How often everything is re-checked (drift repair).
    pub resync: Duration,
    /// Secret metadata caches and the Secret versions known to be in place.
    pub secret_index: SecretIndex,
    /// uid → (SealedSecret resourceVersion, Synced status, message) of the last status this
    /// process wrote, so a reconcile that still sees the pre-write object does not write again.
    pub status_written: Mutex<HashMap<String, (String, bool, String)>>,
}

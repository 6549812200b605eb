//! Upstream's metric names and labels, so existing dashboards and alerts keep working. (The
//! kit adds `controller_runtime_*` and a real reconcile-duration histogram beside upstream's
//! nanosecond gauges.)

use prometheus::{CounterVec, GaugeVec, Opts, Registry};
use strongroom_provider_api::CallObserver;

/// The controller's upstream-named metrics.
#[derive(Clone)]
pub struct Metrics {
    provider_calls: CounterVec,
    sync_calls: CounterVec,
    sync_errors: CounterVec,
    es_condition: GaugeVec,
    es_duration: GaugeVec,
    ss_condition: GaugeVec,
    css_condition: GaugeVec,
    ss_duration: GaugeVec,
    css_duration: GaugeVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<CounterVec> {
    let c = CounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

const OBJECT: [&str; 2] = ["name", "namespace"];
const CONDITION: [&str; 4] = ["name", "namespace", "condition", "status"];

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            provider_calls: counter(
                registry,
                "externalsecret_provider_api_calls_count",
                "Number of API calls towards the secret provider",
                &["provider", "call", "status"],
            )?,
            sync_calls: counter(
                registry,
                "externalsecret_sync_calls_total",
                "Total number of the External Secret sync calls",
                &OBJECT,
            )?,
            sync_errors: counter(
                registry,
                "externalsecret_sync_calls_error",
                "Total number of the External Secret sync errors",
                &OBJECT,
            )?,
            es_condition: gauge(
                registry,
                "externalsecret_status_condition",
                "The status condition of a specific External Secret",
                &CONDITION,
            )?,
            es_duration: gauge(
                registry,
                "externalsecret_reconcile_duration",
                "The duration time to reconcile the External Secret",
                &OBJECT,
            )?,
            ss_condition: gauge(
                registry,
                "secretstore_status_condition",
                "The status condition of a specific Secret Store",
                &CONDITION,
            )?,
            css_condition: gauge(
                registry,
                "clustersecretstore_status_condition",
                "The status condition of a specific Cluster Secret Store",
                &CONDITION,
            )?,
            ss_duration: gauge(
                registry,
                "secretstore_reconcile_duration",
                "The duration time to reconcile the Secret Store",
                &OBJECT,
            )?,
            css_duration: gauge(
                registry,
                "clustersecretstore_reconcile_duration",
                "The duration time to reconcile the Cluster Secret Store",
                &OBJECT,
            )?,
        })
    }

    /// One ExternalSecret reconcile finished; `ok` says whether it succeeded.
    pub fn synced(&self, name: &str, namespace: &str, ok: bool, nanos: f64) {
        self.sync_calls.with_label_values(&[name, namespace]).inc();
        if !ok {
            self.sync_errors.with_label_values(&[name, namespace]).inc();
        }
        self.es_duration
            .with_label_values(&[name, namespace])
            .set(nanos);
    }

    /// The ExternalSecret's Ready condition: 1 for the current status, 0 for the opposite.
    pub fn es_ready(&self, name: &str, namespace: &str, ready: bool) {
        set_condition(&self.es_condition, name, namespace, ready);
    }

    /// A store's Ready condition (`namespace` empty for a ClusterSecretStore).
    pub fn store_ready(&self, cluster: bool, name: &str, namespace: &str, ready: bool, nanos: f64) {
        let (cond, dur) = if cluster {
            (&self.css_condition, &self.css_duration)
        } else {
            (&self.ss_condition, &self.ss_duration)
        };
        set_condition(cond, name, namespace, ready);
        dur.with_label_values(&[name, namespace]).set(nanos);
    }

    /// Drops every series of a deleted SecretStore (`cluster` false) or ClusterSecretStore.
    pub fn forget_store(&self, cluster: bool, name: &str, namespace: &str) {
        let (cond, dur) = if cluster {
            (&self.css_condition, &self.css_duration)
        } else {
            (&self.ss_condition, &self.ss_duration)
        };
        for status in ["True", "False"] {
            let _ = cond.remove_label_values(&[name, namespace, "Ready", status]);
        }
        let _ = dur.remove_label_values(&[name, namespace]);
    }

    /// Drops every series of a deleted ExternalSecret.
    pub fn forget_es(&self, name: &str, namespace: &str) {
        for status in ["True", "False"] {
            let _ = self
                .es_condition
                .remove_label_values(&[name, namespace, "Ready", status]);
        }
        let _ = self.es_duration.remove_label_values(&[name, namespace]);
        let _ = self.sync_calls.remove_label_values(&[name, namespace]);
        let _ = self.sync_errors.remove_label_values(&[name, namespace]);
    }
}

fn set_condition(g: &GaugeVec, name: &str, namespace: &str, ready: bool) {
    let (on, off) = if ready {
        ("True", "False")
    } else {
        ("False", "True")
    };
    g.with_label_values(&[name, namespace, "Ready", on])
        .set(1.0);
    g.with_label_values(&[name, namespace, "Ready", off])
        .set(0.0);
}

impl CallObserver for Metrics {
    fn observe(&self, provider: &str, call: &str, ok: bool) {
        self.provider_calls
            .with_label_values(&[provider, call, if ok { "success" } else { "error" }])
            .inc();
    }
}

//! Upstream's metric names, help texts and labels, so existing dashboards and alerts keep
//! working. (The kit adds `controller_runtime_*` and a real reconcile-duration histogram beside
//! upstream's nanosecond gauges.)
//!
//! Every kind has `<kind>_status_condition{name,namespace,condition,status}` (1 for the current
//! status of `Ready`, 0 for the opposite one) and `<kind>_reconcile_duration{name,namespace}`
//! (nanoseconds of the last reconcile); cluster-scoped kinds report namespace `""`. With
//! `--enable-extended-metric-labels` every one of those (and the ExternalSecret sync counters)
//! carries six more labels, `app_kubernetes_io_{name,instance,version,component,part_of,
//! managed_by}`, read from the object's `app.kubernetes.io/*` labels. A deleted object's series
//! leave with it, and so do series under label values the object no longer has.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Resource;
use prometheus::{CounterVec, GaugeVec, Opts, Registry};
use strongroom_provider_api::CallObserver;

/// The kinds with upstream `<kind>_status_condition` and `<kind>_reconcile_duration` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `externalsecret_*`.
    ExternalSecret,
    /// `secretstore_*`.
    SecretStore,
    /// `clustersecretstore_*`.
    ClusterSecretStore,
    /// `pushsecret_*`.
    PushSecret,
    /// `clusterexternalsecret_*`.
    ClusterExternalSecret,
    /// `clusterpushsecret_*`.
    ClusterPushSecret,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::ExternalSecret,
        Kind::SecretStore,
        Kind::ClusterSecretStore,
        Kind::PushSecret,
        Kind::ClusterExternalSecret,
        Kind::ClusterPushSecret,
    ];

    /// The metric name prefix (upstream's subsystem).
    fn prefix(self) -> &'static str {
        match self {
            Kind::ExternalSecret => "externalsecret",
            Kind::SecretStore => "secretstore",
            Kind::ClusterSecretStore => "clustersecretstore",
            Kind::PushSecret => "pushsecret",
            Kind::ClusterExternalSecret => "clusterexternalsecret",
            Kind::ClusterPushSecret => "clusterpushsecret",
        }
    }

    /// The name upstream's controller-runtime gives the kind's controller (the lowercase
    /// kind), as in `workqueue_depth{name}`.
    pub fn controller_name(self) -> &'static str {
        self.prefix()
    }

    /// The kind as upstream's help texts spell it.
    fn spelled(self) -> &'static str {
        match self {
            Kind::ExternalSecret => "External Secret",
            Kind::SecretStore => "Secret Store",
            Kind::ClusterSecretStore => "Cluster Secret Store",
            Kind::PushSecret => "Push Secret",
            Kind::ClusterExternalSecret => "Cluster External Secret",
            Kind::ClusterPushSecret => "Cluster Push Secret",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upstream's extra labels, in its order, with `--enable-extended-metric-labels`.
pub const EXTENDED_LABELS: [&str; 6] = [
    "app_kubernetes_io_name",
    "app_kubernetes_io_instance",
    "app_kubernetes_io_version",
    "app_kubernetes_io_component",
    "app_kubernetes_io_part_of",
    "app_kubernetes_io_managed_by",
];

/// The object a series is about: its name, namespace (`""` for cluster-scoped kinds), uid,
/// labels, and whether it is being deleted.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`, `""` for cluster-scoped kinds.
    pub namespace: &'a str,
    /// `metadata.uid` (empty when unknown).
    pub uid: &'a str,
    /// `metadata.labels`.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl<'a> Subject<'a> {
    /// The subject of a Kubernetes object.
    pub fn of<K: Resource>(obj: &'a K) -> Self {
        let meta = obj.meta();
        Self {
            name: meta.name.as_deref().unwrap_or_default(),
            namespace: meta.namespace.as_deref().unwrap_or_default(),
            uid: meta.uid.as_deref().unwrap_or_default(),
            labels: meta.labels.as_ref(),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }
}

/// The store a rate-limit series is about: `kind` (`SecretStore`, `ClusterSecretStore`),
/// `name`, `namespace` (`""` for a ClusterSecretStore).
#[derive(Debug, Clone, Copy)]
pub struct StoreLabels<'a> {
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: &'static str,
    /// The store's name.
    pub name: &'a str,
    /// The SecretStore's namespace; `""` for a ClusterSecretStore.
    pub namespace: &'a str,
}

impl StoreLabels<'_> {
    fn values(&self) -> [&str; 3] {
        [self.kind, self.name, self.namespace]
    }
}

/// The values of [`EXTENDED_LABELS`] for an object's labels, as upstream derives them: a label
/// key with every run of characters other than ASCII letters and digits turned into `_` that
/// equals an extended label name gives its value (`app.kubernetes.io/part-of` gives
/// `app_kubernetes_io_part_of`). The `app.kubernetes.io/*` key itself wins over look-alikes.
pub fn extended_values(labels: Option<&BTreeMap<String, String>>) -> [String; 6] {
    let mut out: [String; 6] = Default::default();
    let mut exact = [false; 6];
    for (key, value) in labels.into_iter().flatten() {
        let clean = sanitize(key);
        let Some(i) = EXTENDED_LABELS.iter().position(|l| *l == clean) else {
            continue;
        };
        let is_exact = key.starts_with("app.kubernetes.io/");
        if !exact[i] && (is_exact || out[i].is_empty()) {
            out[i] = value.clone();
            exact[i] = is_exact;
        }
    }
    out
}

fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_run = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == ' ' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// One kind's gauges.
#[derive(Clone)]
struct Family {
    condition: GaugeVec,
    duration: GaugeVec,
}

/// The label values last written for one object, so that changed ones can be removed.
#[derive(Debug, Default)]
struct Written {
    /// Extended values of the condition series.
    condition: Option<Vec<String>>,
    /// Extended values of the duration series (and the ExternalSecret counters).
    other: Option<Vec<String>>,
}

/// How long a deleted object's uid keeps a late reconcile from writing its series again.
const TOMBSTONE_FOR: Duration = Duration::from_secs(600);

#[derive(Default)]
struct State {
    written: HashMap<(Kind, String, String), Written>,
    /// uids of deleted objects, with when they were forgotten.
    tombstones: HashMap<String, Instant>,
}

/// The controller's upstream-named metrics.
#[derive(Clone)]
pub struct Metrics {
    extended: bool,
    provider_calls: CounterVec,
    sync_calls: CounterVec,
    sync_errors: CounterVec,
    limit_waits: CounterVec,
    limit_wait_seconds: CounterVec,
    limit_refused: CounterVec,
    families: Vec<Family>,
    state: Arc<Mutex<State>>,
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

impl Metrics {
    /// Registers every metric in `registry`; `extended` is `--enable-extended-metric-labels`.
    pub fn register(registry: &Registry, extended: bool) -> prometheus::Result<Self> {
        let with_extended = |base: &[&'static str]| -> Vec<&'static str> {
            let mut labels = base.to_vec();
            if extended {
                labels.extend(EXTENDED_LABELS);
            }
            labels
        };
        let object = with_extended(&["name", "namespace"]);
        let condition = with_extended(&["name", "namespace", "condition", "status"]);
        let provider_calls = counter(
            registry,
            "externalsecret_provider_api_calls_count",
            "Number of API calls towards the secret provider",
            &["provider", "call", "status"],
        )?;
        let sync_calls = counter(
            registry,
            "externalsecret_sync_calls_total",
            "Total number of the External Secret sync calls",
            &object,
        )?;
        let sync_errors = counter(
            registry,
            "externalsecret_sync_calls_error",
            "Total number of the External Secret sync errors",
            &object,
        )?;
        let store = ["kind", "name", "namespace"];
        let limit_waits = counter(
            registry,
            "strongroom_provider_rate_limit_waits_total",
            "Provider calls that waited for their turn under the store's rate limit",
            &store,
        )?;
        let limit_wait_seconds = counter(
            registry,
            "strongroom_provider_rate_limit_wait_seconds_total",
            "Seconds provider calls waited for their turn under the store's rate limit",
            &store,
        )?;
        let limit_refused = counter(
            registry,
            "strongroom_provider_rate_limit_refused_total",
            "Provider calls not made because the store was paused after throttling or its \
             queue of waiting calls was too long",
            &store,
        )?;
        let mut families = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            families.push(Family {
                condition: gauge(
                    registry,
                    &format!("{}_status_condition", kind.prefix()),
                    &format!("The status condition of a specific {}", kind.spelled()),
                    &condition,
                )?,
                duration: gauge(
                    registry,
                    &format!("{}_reconcile_duration", kind.prefix()),
                    &format!("The duration time to reconcile the {}", kind.spelled()),
                    &object,
                )?,
            });
        }
        Ok(Self {
            extended,
            provider_calls,
            sync_calls,
            sync_errors,
            limit_waits,
            limit_wait_seconds,
            limit_refused,
            families,
            state: Default::default(),
        })
    }

    fn family(&self, kind: Kind) -> &Family {
        &self.families[kind.index()]
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The extended label values of `subject` (none without the flag).
    fn extras(&self, labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
        if self.extended {
            extended_values(labels).to_vec()
        } else {
            Vec::new()
        }
    }

    /// Whether `subject` may have series: not being deleted, not deleted already.
    fn live(&self, state: &State, subject: &Subject<'_>) -> bool {
        !subject.deleting && (subject.uid.is_empty() || !state.tombstones.contains_key(subject.uid))
    }

    /// A kind's `Ready` condition: 1 for the current status, 0 for the opposite one.
    pub fn ready(&self, kind: Kind, subject: Subject<'_>, ready: bool) {
        let mut state = self.state();
        if !self.live(&state, &subject) {
            return;
        }
        let extras = self.extras(subject.labels);
        let key = (
            kind,
            subject.namespace.to_string(),
            subject.name.to_string(),
        );
        let written = state.written.entry(key).or_default();
        let family = self.family(kind);
        if let Some(old) = written.condition.as_ref().filter(|old| **old != extras) {
            remove_conditions(&family.condition, subject.name, subject.namespace, old);
        }
        let (on, off) = if ready {
            ("True", "False")
        } else {
            ("False", "True")
        };
        for (status, value) in [(on, 1.0), (off, 0.0)] {
            family
                .condition
                .with_label_values(&values(
                    &[subject.name, subject.namespace, "Ready", status],
                    &extras,
                ))
                .set(value);
        }
        written.condition = Some(extras);
    }

    /// One reconcile of `subject` took `nanos`; for an ExternalSecret `ok` also counts the sync
    /// (and its failure), as upstream does on every reconcile.
    pub fn reconciled(&self, kind: Kind, subject: Subject<'_>, ok: bool, nanos: f64) {
        let mut state = self.state();
        if !self.live(&state, &subject) {
            return;
        }
        // as upstream: only the ExternalSecret's duration and counters carry the object's
        // label values; the other kinds' durations carry empty extended labels
        let extras = if kind == Kind::ExternalSecret {
            self.extras(subject.labels)
        } else {
            self.extras(None)
        };
        let key = (
            kind,
            subject.namespace.to_string(),
            subject.name.to_string(),
        );
        let written = state.written.entry(key).or_default();
        if let Some(old) = written.other.as_ref().filter(|old| **old != extras) {
            self.remove_other(kind, subject.name, subject.namespace, old);
        }
        let labels = values(&[subject.name, subject.namespace], &extras);
        self.family(kind)
            .duration
            .with_label_values(&labels)
            .set(nanos);
        if kind == Kind::ExternalSecret {
            self.sync_calls.with_label_values(&labels).inc();
            if !ok {
                self.sync_errors.with_label_values(&labels).inc();
            }
        }
        written.other = Some(extras);
    }

    /// A provider call of the store `store` waited `waited` for its turn under the store's
    /// rate limit.
    pub fn rate_limit_waited(&self, store: StoreLabels<'_>, waited: Duration) {
        let labels = store.values();
        self.limit_waits.with_label_values(&labels).inc();
        self.limit_wait_seconds
            .with_label_values(&labels)
            .inc_by(waited.as_secs_f64());
    }

    /// A provider call of the store `store` was refused: the store is paused after
    /// throttling, or its queue is too long.
    pub fn rate_limit_refused(&self, store: StoreLabels<'_>) {
        self.limit_refused.with_label_values(&store.values()).inc();
    }

    /// Drops every series of a deleted (or deleting) object; a reconcile of it that ends
    /// later writes none again.
    pub fn forget(&self, kind: Kind, subject: Subject<'_>) {
        let mut state = self.state();
        let now = Instant::now();
        state
            .tombstones
            .retain(|_, at| now.duration_since(*at) < TOMBSTONE_FOR);
        if !subject.uid.is_empty() {
            state.tombstones.insert(subject.uid.to_string(), now);
        }
        let key = (
            kind,
            subject.namespace.to_string(),
            subject.name.to_string(),
        );
        let written = state.written.remove(&key).unwrap_or_default();
        // the values written, and the ones the object has now
        let current = self.extras(subject.labels);
        let mut conditions = vec![current.clone()];
        conditions.extend(written.condition);
        let mut others = vec![current, self.extras(None)];
        others.extend(written.other);
        let family = self.family(kind);
        for extras in &conditions {
            remove_conditions(&family.condition, subject.name, subject.namespace, extras);
        }
        for extras in &others {
            self.remove_other(kind, subject.name, subject.namespace, extras);
        }
        let store_kind = match kind {
            Kind::SecretStore => Some("SecretStore"),
            Kind::ClusterSecretStore => Some("ClusterSecretStore"),
            _ => None,
        };
        if let Some(store_kind) = store_kind {
            let labels = [store_kind, subject.name, subject.namespace];
            let _ = self.limit_waits.remove_label_values(&labels);
            let _ = self.limit_wait_seconds.remove_label_values(&labels);
            let _ = self.limit_refused.remove_label_values(&labels);
        }
    }

    fn remove_other(&self, kind: Kind, name: &str, namespace: &str, extras: &[String]) {
        let labels = values(&[name, namespace], extras);
        let _ = self.family(kind).duration.remove_label_values(&labels);
        if kind == Kind::ExternalSecret {
            let _ = self.sync_calls.remove_label_values(&labels);
            let _ = self.sync_errors.remove_label_values(&labels);
        }
    }
}

fn values<'a>(base: &[&'a str], extras: &'a [String]) -> Vec<&'a str> {
    base.iter()
        .copied()
        .chain(extras.iter().map(String::as_str))
        .collect()
}

fn remove_conditions(g: &GaugeVec, name: &str, namespace: &str, extras: &[String]) {
    for status in ["True", "False"] {
        let _ = g.remove_label_values(&values(&[name, namespace, "Ready", status], extras));
    }
}

impl CallObserver for Metrics {
    fn observe(&self, provider: &str, call: &str, ok: bool) {
        self.provider_calls
            .with_label_values(&[provider, call, if ok { "success" } else { "error" }])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn scrape(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn subject<'a>(
        name: &'a str,
        namespace: &'a str,
        labels: Option<&'a BTreeMap<String, String>>,
    ) -> Subject<'a> {
        Subject {
            name,
            namespace,
            uid: name,
            labels,
            deleting: false,
        }
    }

    fn series<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn every_kind_has_upstreams_names_help_and_labels() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, false).unwrap();
        for kind in Kind::ALL {
            let ns = if matches!(
                kind,
                Kind::ClusterSecretStore | Kind::ClusterExternalSecret | Kind::ClusterPushSecret
            ) {
                ""
            } else {
                "team"
            };
            m.ready(kind, subject("a", ns, None), true);
            m.reconciled(kind, subject("a", ns, None), true, 1500.0);
        }
        let text = scrape(&registry);
        for (help, metric) in [
            (
                "The status condition of a specific Push Secret",
                "pushsecret_status_condition",
            ),
            (
                "The duration time to reconcile the Push Secret",
                "pushsecret_reconcile_duration",
            ),
            (
                "The status condition of a specific Cluster External Secret",
                "clusterexternalsecret_status_condition",
            ),
            (
                "The duration time to reconcile the Cluster External Secret",
                "clusterexternalsecret_reconcile_duration",
            ),
            (
                "The status condition of a specific Cluster Push Secret",
                "clusterpushsecret_status_condition",
            ),
            (
                "The duration time to reconcile the Cluster Push Secret",
                "clusterpushsecret_reconcile_duration",
            ),
            (
                "The status condition of a specific External Secret",
                "externalsecret_status_condition",
            ),
            (
                "The duration time to reconcile the Cluster Secret Store",
                "clustersecretstore_reconcile_duration",
            ),
        ] {
            assert!(
                text.contains(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge")),
                "{metric}: {text}"
            );
        }
        assert!(text.contains(
            r#"pushsecret_status_condition{condition="Ready",name="a",namespace="team",status="True"} 1"#
        ));
        assert!(text.contains(
            r#"pushsecret_status_condition{condition="Ready",name="a",namespace="team",status="False"} 0"#
        ));
        assert!(text.contains(
            r#"clusterexternalsecret_status_condition{condition="Ready",name="a",namespace="",status="True"} 1"#
        ));
        assert!(
            text.contains(r#"clusterpushsecret_reconcile_duration{name="a",namespace=""} 1500"#)
        );
        assert!(!text.contains("app_kubernetes_io"), "{text}");
    }

    #[test]
    fn a_failed_object_flips_its_ready_series() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, false).unwrap();
        m.ready(Kind::ClusterPushSecret, subject("c", "", None), true);
        m.ready(Kind::ClusterPushSecret, subject("c", "", None), false);
        let text = scrape(&registry);
        assert!(text.contains(
            r#"clusterpushsecret_status_condition{condition="Ready",name="c",namespace="",status="False"} 1"#
        ));
        assert!(text.contains(
            r#"clusterpushsecret_status_condition{condition="Ready",name="c",namespace="",status="True"} 0"#
        ));
    }

    #[test]
    fn external_secret_reconciles_count_syncs_and_errors() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, false).unwrap();
        m.reconciled(Kind::ExternalSecret, subject("e", "ns", None), true, 10.0);
        m.reconciled(Kind::ExternalSecret, subject("e", "ns", None), false, 20.0);
        let text = scrape(&registry);
        assert!(text.contains(r#"externalsecret_sync_calls_total{name="e",namespace="ns"} 2"#));
        assert!(text.contains(r#"externalsecret_sync_calls_error{name="e",namespace="ns"} 1"#));
        assert!(text.contains(r#"externalsecret_reconcile_duration{name="e",namespace="ns"} 20"#));
        // other kinds count nothing
        m.reconciled(Kind::PushSecret, subject("p", "ns", None), false, 5.0);
        assert!(!scrape(&registry).contains(r#"name="p",namespace="ns"} 1"#));
    }

    #[test]
    fn forgetting_removes_every_series_and_late_writes() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, false).unwrap();
        for kind in [Kind::PushSecret, Kind::ExternalSecret] {
            m.ready(kind, subject("gone", "ns", None), true);
            m.reconciled(kind, subject("gone", "ns", None), false, 1.0);
            m.ready(kind, subject("kept", "ns", None), true);
        }
        m.ready(Kind::ClusterExternalSecret, subject("gone", "", None), true);
        m.reconciled(
            Kind::ClusterExternalSecret,
            subject("gone", "", None),
            true,
            1.0,
        );
        for (kind, ns) in [
            (Kind::PushSecret, "ns"),
            (Kind::ExternalSecret, "ns"),
            (Kind::ClusterExternalSecret, ""),
        ] {
            m.forget(kind, subject("gone", ns, None));
            // a reconcile that was in flight when the object went away writes nothing
            m.ready(kind, subject("gone", ns, None), false);
            m.reconciled(kind, subject("gone", ns, None), true, 2.0);
        }
        let text = scrape(&registry);
        assert!(!text.contains(r#"name="gone""#), "{text}");
        assert!(text.contains(r#"name="kept""#));
        // a deleting object writes nothing either
        let mut deleting = subject("going", "ns", None);
        deleting.deleting = true;
        m.ready(Kind::PushSecret, deleting, true);
        assert!(!scrape(&registry).contains(r#"name="going""#));
    }

    #[test]
    fn extended_labels_come_from_the_objects_app_kubernetes_io_labels() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, true).unwrap();
        let l = labels(&[
            ("app.kubernetes.io/name", "billing"),
            ("app.kubernetes.io/part-of", "shop"),
            ("app_kubernetes_io_name", "look-alike"),
            ("team", "payments"),
        ]);
        m.ready(Kind::PushSecret, subject("p", "ns", Some(&l)), true);
        m.reconciled(Kind::PushSecret, subject("p", "ns", Some(&l)), true, 3.0);
        m.reconciled(
            Kind::ExternalSecret,
            subject("e", "ns", Some(&l)),
            true,
            3.0,
        );
        let text = scrape(&registry);
        let cond = series(&text, "pushsecret_status_condition{");
        assert_eq!(cond.len(), 2, "{text}");
        for line in cond {
            assert!(
                line.contains(r#"app_kubernetes_io_name="billing""#),
                "{line}"
            );
            assert!(
                line.contains(r#"app_kubernetes_io_part_of="shop""#),
                "{line}"
            );
            assert!(line.contains(r#"app_kubernetes_io_version="""#), "{line}");
            assert!(
                line.contains(r#"app_kubernetes_io_managed_by="""#),
                "{line}"
            );
            assert!(!line.contains("payments"), "{line}");
        }
        // as upstream: the PushSecret's duration has the labels, empty
        let dur = series(&text, "pushsecret_reconcile_duration{");
        assert_eq!(dur.len(), 1);
        assert!(
            dur[0].contains(r#"app_kubernetes_io_name="""#),
            "{}",
            dur[0]
        );
        // the ExternalSecret's duration and counters carry the values
        for prefix in [
            "externalsecret_reconcile_duration{",
            "externalsecret_sync_calls_total{",
        ] {
            let s = series(&text, prefix);
            assert_eq!(s.len(), 1, "{prefix}");
            assert!(
                s[0].contains(r#"app_kubernetes_io_name="billing""#),
                "{}",
                s[0]
            );
        }
        // the provider call counter is never extended
        m.observe("Fake", "GetSecret", true);
        assert!(scrape(&registry).contains(
            r#"externalsecret_provider_api_calls_count{call="GetSecret",provider="Fake",status="success"} 1"#
        ));
    }

    #[test]
    fn a_changed_label_value_replaces_the_old_series() {
        let registry = Registry::new();
        let m = Metrics::register(&registry, true).unwrap();
        let v1 = labels(&[("app.kubernetes.io/version", "1")]);
        let v2 = labels(&[("app.kubernetes.io/version", "2")]);
        m.ready(Kind::ExternalSecret, subject("e", "ns", Some(&v1)), true);
        m.reconciled(
            Kind::ExternalSecret,
            subject("e", "ns", Some(&v1)),
            true,
            1.0,
        );
        m.ready(Kind::ExternalSecret, subject("e", "ns", Some(&v2)), false);
        m.reconciled(
            Kind::ExternalSecret,
            subject("e", "ns", Some(&v2)),
            true,
            1.0,
        );
        let text = scrape(&registry);
        assert!(!text.contains(r#"app_kubernetes_io_version="1""#), "{text}");
        assert_eq!(
            series(&text, "externalsecret_status_condition{").len(),
            2,
            "{text}"
        );
        m.forget(Kind::ExternalSecret, subject("e", "ns", Some(&v2)));
        assert!(!scrape(&registry).contains(r#"name="e""#));
    }

    #[test]
    fn label_keys_sanitize_as_upstream() {
        assert_eq!(
            sanitize("app.kubernetes.io/part-of"),
            "app_kubernetes_io_part_of"
        );
        assert_eq!(sanitize("a..b"), "a_b");
        let l = labels(&[
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app-kubernetes-io/instance", "x"),
        ]);
        let v = extended_values(Some(&l));
        assert_eq!(v[5], "Helm");
        assert_eq!(v[1], "x");
        assert_eq!(extended_values(None), <[String; 6]>::default());
    }
}

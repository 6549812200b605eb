//! Reconcile plumbing: the error trait every controller's error enum implements, one
//! [`ErrorPolicy`] (count it, log it, emit a Warning event naming the object, back off per
//! object with jitter), reconcile metrics under controller-runtime's names with real duration
//! histograms, a tracing span per reconcile, and [`RunConfig`].

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::shutdown::unless_cancelled;

/// What every controller error tells the plumbing.
pub trait ReconcileError: std::error::Error + Send + Sync + 'static {
    /// A short, fixed category (`unseal`, `provider`, `update`, ...): a metric label, so never
    /// built from input.
    fn category(&self) -> &'static str;

    /// The Warning event's reason (CamelCase, as Kubernetes reasons are).
    fn event_reason(&self) -> &'static str {
        "ReconcileError"
    }

    /// The Warning event's note; the error's message unless the kind's upstream words it
    /// differently.
    fn event_note(&self) -> String {
        self.to_string()
    }

    /// Whether a Warning event is due (false for expected waits, such as a store not ready
    /// yet, that a condition already reports).
    fn warn_event(&self) -> bool {
        true
    }

    /// A fixed retry delay instead of the per-object backoff (say, when another object will
    /// trigger the retry anyway and this is only a safety net).
    fn requeue_after(&self) -> Option<Duration> {
        None
    }

    /// Whether retrying can help. `false` waits for the object to change instead (an
    /// immutable target that differs, say).
    fn retryable(&self) -> bool {
        true
    }
}

/// Where the objects a controller watches live, and how it works through them.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Name of the controller in metrics and logs (`sealedsecret`, `externalsecret`, ...).
    pub controller: &'static str,
    /// Namespaces to watch; empty means every namespace.
    pub namespaces: Vec<String>,
    /// Label selector of the primary watch.
    pub label_selector: Option<String>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// How often an object in sync is checked again (drift repair).
    pub resync: Duration,
    /// How long in-flight reconciles may finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl RunConfig {
    /// The watch scopes: `None` for one cluster-wide watch, else one per namespace.
    pub fn scopes(&self) -> Vec<Option<String>> {
        if self.namespaces.is_empty() {
            vec![None]
        } else {
            self.namespaces.iter().cloned().map(Some).collect()
        }
    }
}

/// Reconcile metrics under controller-runtime's names, so dashboards built for Go controllers
/// (external-secrets' among them) keep working, plus errors by category.
#[derive(Clone)]
pub struct ReconcileMetrics {
    /// `controller_runtime_reconcile_total{controller,result}`.
    pub total: IntCounterVec,
    /// `controller_runtime_reconcile_errors_total{controller}`.
    pub errors: IntCounterVec,
    /// `controller_runtime_reconcile_time_seconds{controller}`.
    pub duration: HistogramVec,
    /// `strongroom_reconcile_errors_by_category_total{controller,category}`.
    pub by_category: IntCounterVec,
}

impl ReconcileMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let total = IntCounterVec::new(
            Opts::new(
                "controller_runtime_reconcile_total",
                "Total number of reconciliations per controller",
            ),
            &["controller", "result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "controller_runtime_reconcile_errors_total",
                "Total number of reconciliation errors per controller",
            ),
            &["controller"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["controller"],
        )?;
        let by_category = IntCounterVec::new(
            Opts::new(
                "strongroom_reconcile_errors_by_category_total",
                "Reconciliation errors per controller and error category",
            ),
            &["controller", "category"],
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(by_category.clone()))?;
        Ok(Self {
            total,
            errors,
            duration,
            by_category,
        })
    }
}

/// `namespace/name` of an object (or `name` for cluster-scoped ones), for logs and keys.
pub fn object_key<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

/// The error policy and reconcile instrumentation of one controller.
pub struct ErrorPolicy {
    controller: &'static str,
    per_kind: bool,
    action: &'static str,
    metrics: ReconcileMetrics,
    recorder: Recorder,
    backoff: Backoff,
    stop: CancellationToken,
    notes: Option<NoteSeries>,
}

/// Makes a [`Recorder`] with an empty event cache.
pub type RecorderFactory = std::sync::Arc<dyn Fn() -> Recorder + Send + Sync>;

/// How many (object, type, reason) entries [`NoteSeries`] keeps before starting over.
const MAX_NOTE_SERIES: usize = 4096;

/// Per object, event type and reason: the note last published and the recorder whose series
/// carries it. kube's recorder counts every event of one reason about one object into one
/// series that keeps its first note; as client-go (whose key includes the message), an event
/// with another note starts an event of its own (through a recorder with an empty cache).
struct NoteSeries {
    fresh: RecorderFactory,
    last: std::sync::Mutex<std::collections::HashMap<String, (String, Recorder)>>,
}

impl ErrorPolicy {
    /// A policy for `controller` that backs off from 500 ms to 5 min. Events it emits after
    /// `stop` is cancelled are dropped (a replica that lost its Lease writes nothing).
    pub fn new(
        controller: &'static str,
        metrics: ReconcileMetrics,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> Self {
        Self {
            controller,
            per_kind: false,
            action: "Reconcile",
            metrics,
            recorder,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(300)),
            stop,
            notes: None,
        }
    }

    /// Events with a note other than the last one of their object, type and reason become
    /// events of their own (recorded through recorders `fresh` makes), as upstream's are,
    /// instead of counting into the earlier event's series under its first note.
    pub fn with_distinct_notes(mut self, fresh: RecorderFactory) -> Self {
        self.notes = Some(NoteSeries {
            fresh,
            last: Default::default(),
        });
        self
    }

    /// The recorder to publish an event with `note` through (see
    /// [`ErrorPolicy::with_distinct_notes`]).
    fn recorder_for(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Recorder {
        let Some(notes) = &self.notes else {
            return self.recorder.clone();
        };
        let key = format!(
            "{:?}/{:?}/{:?}/{:?}/{:?}/{type_:?}/{reason}",
            reference.kind,
            reference.namespace,
            reference.name,
            reference.uid,
            reference.api_version
        );
        let mut last = notes.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, recorder)) = last.get(&key)
            && seen == note
        {
            return recorder.clone();
        }
        let recorder = if last.contains_key(&key) {
            (notes.fresh)()
        } else {
            self.recorder.clone()
        };
        if last.len() >= MAX_NOTE_SERIES {
            last.clear();
        }
        last.insert(key, (note.to_string(), recorder.clone()));
        recorder
    }

    /// With another event `action` (default `Reconcile`).
    pub fn with_action(mut self, action: &'static str) -> Self {
        self.action = action;
        self
    }

    /// Names the controller of each object by its lowercased kind (`secretstore`,
    /// `pushsecret`, ...) in metrics and logs, as controller-runtime names one controller per
    /// kind, for a policy shared by several controllers.
    pub fn named_per_kind(mut self) -> Self {
        self.per_kind = true;
        self
    }

    /// The controller name for objects of kind `K`.
    fn name_for<K: Resource<DynamicType = ()>>(&self) -> std::borrow::Cow<'static, str> {
        if self.per_kind {
            K::kind(&()).to_lowercase().into()
        } else {
            self.controller.into()
        }
    }

    /// With another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The token that stops this controller's work.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// The event recorder.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Runs one reconcile inside a span naming the object, timing it and counting its result.
    pub async fn observe<K, E, Fut>(&self, obj: &K, reconcile: Fut) -> Result<Action, E>
    where
        K: Resource<DynamicType = ()>,
        Fut: Future<Output = Result<Action, E>>,
    {
        let controller = self.name_for::<K>();
        let span = tracing::info_span!(
            "reconcile",
            controller = %controller,
            object = %object_key(obj),
        );
        let start = Instant::now();
        let result = reconcile.instrument(span).await;
        self.metrics
            .duration
            .with_label_values(&[&*controller])
            .observe(start.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "success",
            Err(_) => "error",
        };
        self.metrics
            .total
            .with_label_values(&[&*controller, outcome])
            .inc();
        if result.is_ok() {
            self.backoff.succeeded(&backoff_key(obj));
        }
        result
    }

    /// Handles a failed reconcile: counts it by category, logs it naming the object, emits a
    /// Warning event (in the background, unless stopped) and returns when to retry: per-object
    /// exponential backoff with jitter, or on the next change when retrying cannot help.
    pub fn on_error<K, E>(&self, obj: &K, err: &E) -> Action
    where
        K: Resource<DynamicType = ()>,
        E: ReconcileError,
    {
        let key = object_key(obj);
        let controller = self.name_for::<K>();
        self.metrics.errors.with_label_values(&[&*controller]).inc();
        self.metrics
            .by_category
            .with_label_values(&[&*controller, err.category()])
            .inc();
        tracing::warn!(
            controller = %controller,
            object = %key,
            category = err.category(),
            error = %err,
            "reconcile failed"
        );
        if err.warn_event() {
            self.warn(obj, err.event_reason(), err.event_note());
        }
        match (err.retryable(), err.requeue_after()) {
            (false, _) => Action::await_change(),
            (true, Some(after)) => Action::requeue(after),
            (true, None) => Action::requeue(self.backoff.failed(&backoff_key(obj))),
        }
    }

    /// Emits a Warning event about `obj` in the background (unless stopped).
    pub fn warn<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj.object_ref(&()), EventType::Warning, reason, note);
    }

    /// Emits an event about `obj` in the background (unless stopped).
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.publish(obj.object_ref(&()), type_, reason, note);
    }

    /// Emits an event about the object `reference` names, in the background (unless stopped).
    pub fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let recorder = self.recorder_for(&reference, type_, reason, &note);
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: self.action.into(),
            secondary: None,
        };
        let stop = self.stop.clone();
        tokio::spawn(async move {
            if let Some(Err(e)) =
                unless_cancelled(&stop, recorder.publish(&event, &reference)).await
            {
                tracing::warn!(error = %e, "could not publish event");
            }
        });
    }

    /// How many times `obj` failed in a row.
    pub fn failures<K: Resource<DynamicType = ()>>(&self, obj: &K) -> u32 {
        self.backoff.failures(&backoff_key(obj))
    }

    /// Forgets the backoff of every `K` not in `live` (call it now and then, so the failure
    /// counts of deleted objects do not accumulate).
    pub fn retain<'a, K>(&self, live: impl IntoIterator<Item = &'a K>)
    where
        K: Resource<DynamicType = ()> + 'a,
    {
        let prefix = format!("{}/", K::kind(&()));
        let live: std::collections::HashSet<String> = live.into_iter().map(backoff_key).collect();
        self.backoff
            .retain(|key| !key.starts_with(&prefix) || live.contains(key));
    }
}

/// The backoff key of an object: its kind and `namespace/name`, so one policy can serve
/// several kinds.
fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}", K::kind(&()), object_key(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::events::Reporter;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("transient")]
        Transient,
        #[error("waits for a change")]
        Permanent,
        #[error("store not ready")]
        Waiting,
    }

    impl ReconcileError for TestError {
        fn category(&self) -> &'static str {
            match self {
                Self::Transient => "transient",
                Self::Permanent => "permanent",
                Self::Waiting => "waiting",
            }
        }
        fn retryable(&self) -> bool {
            !matches!(self, Self::Permanent)
        }
        fn warn_event(&self) -> bool {
            !matches!(self, Self::Waiting)
        }
        fn requeue_after(&self) -> Option<Duration> {
            matches!(self, Self::Waiting).then(|| Duration::from_secs(42))
        }
    }

    fn config_map(ns: &str, name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm
    }

    fn policy(registry: &Registry) -> ErrorPolicy {
        // a client for an address nothing listens on: events fail and are logged, no more
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "test".into(),
                instance: None,
            },
        );
        ErrorPolicy::new(
            "demo",
            ReconcileMetrics::register(registry).unwrap(),
            recorder,
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn another_note_gets_an_event_of_its_own() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let registry = Registry::new();
        let made = Arc::new(AtomicUsize::new(0));
        let policy = policy(&registry).with_distinct_notes({
            let made = made.clone();
            Arc::new(move || {
                made.fetch_add(1, Ordering::SeqCst);
                let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
                Recorder::new(
                    kube::Client::try_from(config).unwrap(),
                    Reporter {
                        controller: "test".into(),
                        instance: None,
                    },
                )
            })
        });
        let (a, b) = (
            config_map("ns", "a").object_ref(&()),
            config_map("ns", "b").object_ref(&()),
        );
        let warn = |r: &ObjectReference, note: &str| {
            policy.recorder_for(r, EventType::Warning, "UpdateFailed", note);
            made.load(Ordering::SeqCst)
        };
        // a first note and its repeats go through the shared recorder (one series)
        assert_eq!(warn(&a, "one"), 0);
        assert_eq!(warn(&a, "one"), 0);
        assert_eq!(warn(&b, "two"), 0, "another object has its own series");
        // another note of the same object and reason: an event of its own
        assert_eq!(warn(&a, "two"), 1);
        assert_eq!(warn(&a, "two"), 1);
        assert_eq!(warn(&a, "one"), 2);
        // another reason or type is another series anyway
        policy.recorder_for(&a, EventType::Normal, "UpdateFailed", "three");
        policy.recorder_for(&a, EventType::Warning, "Other", "three");
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_counted_and_backed_off_per_object_and_kind() {
        let registry = Registry::new();
        let policy = policy(&registry);
        let a = config_map("ns", "a");
        let b = config_map("ns", "b");
        for _ in 0..3 {
            policy.on_error(&a, &TestError::Transient);
        }
        policy.on_error(&b, &TestError::Transient);
        assert_eq!(policy.failures(&a), 3);
        assert_eq!(policy.failures(&b), 1);
        assert_eq!(
            policy.on_error(&a, &TestError::Permanent),
            Action::await_change()
        );
        assert_eq!(
            policy.on_error(&a, &TestError::Waiting),
            Action::requeue(Duration::from_secs(42))
        );
        // a success resets the object's backoff; a deleted object's is forgotten
        let ok: Result<Action, TestError> = policy
            .observe(&a, async { Ok(Action::await_change()) })
            .await;
        assert!(ok.is_ok());
        assert_eq!(policy.failures(&a), 0);
        policy.retain::<ConfigMap>([&a]);
        assert_eq!(policy.failures(&b), 0);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(r#"controller_runtime_reconcile_errors_total{controller="demo"} 6"#),
            "{text}"
        );
        assert!(text.contains(r#"strongroom_reconcile_errors_by_category_total{category="transient",controller="demo"} 4"#), "{text}");
        assert!(
            text.contains(
                r#"controller_runtime_reconcile_total{controller="demo",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("controller_runtime_reconcile_time_seconds_count"),
            "{text}"
        );
    }
}

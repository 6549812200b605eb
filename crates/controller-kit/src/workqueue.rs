//! client-go's `workqueue_*` metrics for kube-runtime controllers.
//!
//! kube-runtime keeps its queue (a scheduler of object references, each with the time it is
//! due) to itself, so the queue is measured from its edges instead: every trigger a
//! controller is given (its own watch, mapped watches, owned objects), every requeue a
//! reconcile or the error policy asks for, and the start and end of every reconcile. From
//! those, per controller:
//!
//! - an object is **queued** from the moment it is due (a trigger arrived, or the requeue time
//!   it asked for passed) until its reconcile starts. As in client-go, an object is queued at
//!   most once: a trigger for an object already queued adds nothing, and an object triggered
//!   while its reconcile runs is queued (kube-runtime runs it again once that reconcile ends);
//! - `workqueue_depth` is the number of queued objects; `workqueue_adds_total` counts objects
//!   becoming queued; `workqueue_queue_duration_seconds` is the time from queued to started;
//! - `workqueue_work_duration_seconds` is the time of each reconcile; `unfinished_work_seconds`
//!   and `longest_running_processor_seconds` are the sum and the maximum of the running times of
//!   the reconciles in progress, at scrape time;
//! - `workqueue_retries_total` counts requeues the error policy asks for (client-go counts its
//!   rate-limited re-adds, which controller-runtime makes for every failed reconcile).
//!
//! A requeue that is not due yet is not counted, as client-go's delaying queue does not count
//! it before its time. A reconcile that starts for an object not seen queued (a trigger from a
//! source that was not wrapped) counts one add with a queue time of zero. Time-based changes
//! (a requeue becoming due) are brought up to date on every event and at every scrape, so the
//! values are exact at each scrape.
//!
//! Use: [`WorkQueueMetrics::register`] once, [`WorkQueueMetrics::queue`] per controller, its
//! trigger wrappers ([`WorkQueue::triggers`], [`WorkQueue::mapper`],
//! [`WorkQueue::owner_triggers`]) on the streams given to the `Controller`, and
//! [`WorkQueue::run`] in place of `Controller::run`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::lanes::{Lane, Lanes};

/// client-go's buckets for both duration histograms: 10 ns to 1000 s, times ten each.
fn buckets() -> Vec<f64> {
    vec![
        1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0,
    ]
}

/// Where one controller's queue stands.
#[derive(Default)]
struct QueueState {
    /// Objects due now or later: when they are (or become) due, and whether that was counted
    /// as an add already.
    pending: HashMap<String, Pending>,
    /// The requeues not due yet, soonest first (entries a trigger or an earlier requeue
    /// replaced are skipped when they come up), so bringing the queue up to date costs only
    /// what became due.
    upcoming: BinaryHeap<Reverse<(Instant, String)>>,
    /// Objects whose reconcile runs, since when.
    running: HashMap<String, Instant>,
    /// Controllers running on this queue (several share one: one per namespace, say).
    runs: usize,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    at: Instant,
    counted: bool,
}

struct Inner {
    queues: Mutex<HashMap<&'static str, QueueState>>,
    depth: GaugeVec,
    adds: IntCounterVec,
    latency: HistogramVec,
    work: HistogramVec,
    unfinished: GaugeVec,
    longest: GaugeVec,
    retries: IntCounterVec,
}

/// The seven client-go workqueue metric families, for every controller of a process. One
/// [`Collector`]: values are brought up to date when scraped.
#[derive(Clone)]
pub struct WorkQueueMetrics {
    inner: Arc<Inner>,
}

impl WorkQueueMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let by = ["name", "controller"];
        let depth = GaugeVec::new(
            Opts::new(
                "workqueue_depth",
                "Current depth of workqueue by workqueue and priority",
            ),
            &["name", "controller", "priority"],
        )?;
        let adds = IntCounterVec::new(
            Opts::new(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
            ),
            &by,
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested",
            )
            .buckets(buckets()),
            &by,
        )?;
        let work = HistogramVec::new(
            HistogramOpts::new(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
            )
            .buckets(buckets()),
            &by,
        )?;
        let unfinished = GaugeVec::new(
            Opts::new(
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been \
                 observed by work_duration. Large values indicate stuck threads. One can deduce \
                 the number of stuck threads by observing the rate at which this increases.",
            ),
            &by,
        )?;
        let longest = GaugeVec::new(
            Opts::new(
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
            ),
            &by,
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
            ),
            &by,
        )?;
        let metrics = Self {
            inner: Arc::new(Inner {
                queues: Mutex::default(),
                depth,
                adds,
                latency,
                work,
                unfinished,
                longest,
                retries,
            }),
        };
        registry.register(Box::new(metrics.clone()))?;
        Ok(metrics)
    }

    /// The queue of controller `name` (its `name` and `controller` label), starting empty.
    /// Its series appear when [`WorkQueue::run`] starts.
    pub fn queue(&self, name: &'static str) -> WorkQueue {
        self.inner
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        WorkQueue {
            name,
            inner: self.inner.clone(),
        }
    }
}

impl Collector for WorkQueueMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let i = &self.inner;
        let mut descs = i.depth.desc();
        descs.extend(i.adds.desc());
        descs.extend(i.latency.desc());
        descs.extend(i.work.desc());
        descs.extend(i.unfinished.desc());
        descs.extend(i.longest.desc());
        descs.extend(i.retries.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let i = &self.inner;
        let now = Instant::now();
        {
            let mut queues = i.queues.lock().unwrap_or_else(|p| p.into_inner());
            for (name, state) in queues.iter_mut() {
                advance(i, name, state, now);
                let due = state.pending.values().filter(|p| p.at <= now).count();
                let running = state.running.values().map(|s| now.duration_since(*s));
                let (sum, max) = running.fold((0.0, 0.0f64), |(sum, max), d| {
                    (sum + d.as_secs_f64(), max.max(d.as_secs_f64()))
                });
                i.depth.with_label_values(&[name, name, ""]).set(due as f64);
                i.unfinished.with_label_values(&[name, name]).set(sum);
                i.longest.with_label_values(&[name, name]).set(max);
            }
        }
        let mut families = i.depth.collect();
        families.extend(i.adds.collect());
        families.extend(i.latency.collect());
        families.extend(i.work.collect());
        families.extend(i.unfinished.collect());
        families.extend(i.longest.collect());
        families.extend(i.retries.collect());
        families
    }
}

/// Counts the requeues of `state` that became due by `now` as adds.
fn advance(inner: &Inner, name: &str, state: &mut QueueState, now: Instant) {
    while state
        .upcoming
        .peek()
        .is_some_and(|Reverse((at, _))| *at <= now)
    {
        let Some(Reverse((at, key))) = state.upcoming.pop() else {
            break;
        };
        if let Some(pending) = state.pending.get_mut(&key)
            && !pending.counted
            && pending.at == at
        {
            pending.counted = true;
            inner.adds.with_label_values(&[name, name]).inc();
        }
    }
}

/// The queue key of an object: `namespace/name`, or `name` when cluster-scoped.
fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    key(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// When an [`Action`] asks to run again. kube-runtime keeps the delay private; its `Debug`
/// output (`Action { requeue_after: Some(1.5s) }`) is the only way to read it, and the
/// `requeue_delays_are_read_back_exactly` test pins that format.
pub fn requeue_after(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    let (number, scale) = if let Some(n) = inner.strip_suffix("ns") {
        (n, 1e-9)
    } else if let Some(n) = inner.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = inner.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (inner.strip_suffix('s')?, 1.0)
    };
    Duration::try_from_secs_f64(number.parse::<f64>().ok()? * scale).ok()
}

/// One controller's queue bookkeeping (cheap to clone).
#[derive(Clone)]
pub struct WorkQueue {
    name: &'static str,
    inner: Arc<Inner>,
}

impl WorkQueue {
    fn with<T>(&self, f: impl FnOnce(&Inner, &mut QueueState, Instant) -> T) -> T {
        let now = Instant::now();
        let mut queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let state = queues.entry(self.name).or_default();
        advance(&self.inner, self.name, state, now);
        f(&self.inner, state, now)
    }

    fn labels(&self) -> [&str; 2] {
        [self.name, self.name]
    }

    /// Makes the queue's series exist (at zero when new).
    fn open(&self) {
        self.with(|inner, state, _| {
            state.runs += 1;
            inner.adds.with_label_values(&self.labels());
            inner.retries.with_label_values(&self.labels());
            inner.latency.with_label_values(&self.labels());
            inner.work.with_label_values(&self.labels());
        });
    }

    /// Forgets every queued and running object (kube-runtime's queue is gone when its
    /// controller stops).
    pub fn reset(&self) {
        self.with(|_, state, _| *state = QueueState::default());
    }

    /// One controller on this queue stopped; the last one to stop empties it.
    fn leave(&self) {
        self.with(|_, state, _| {
            state.runs = state.runs.saturating_sub(1);
            if state.runs == 0 {
                *state = QueueState::default();
            }
        });
    }

    /// The error policy asked for a retry whose delay could not be read: count it.
    fn retried(&self) {
        self.with(|inner, _, _| inner.retries.with_label_values(&self.labels()).inc());
    }

    /// A trigger for the object `key` (`namespace/name`) arrived: it is due now.
    pub fn triggered(&self, key: String) {
        self.with(|inner, state, now| match state.pending.get_mut(&key) {
            Some(p) if p.at <= now => {}
            Some(p) => {
                *p = Pending {
                    at: now,
                    counted: true,
                };
                inner.adds.with_label_values(&self.labels()).inc();
            }
            None => {
                state.pending.insert(
                    key,
                    Pending {
                        at: now,
                        counted: true,
                    },
                );
                inner.adds.with_label_values(&self.labels()).inc();
            }
        });
    }

    /// The object `key` asked to run again after `after` (the earliest due time wins, as in
    /// kube-runtime's scheduler); `retry` when the error policy asked.
    pub fn requeued(&self, key: String, after: Duration, retry: bool) {
        self.with(|inner, state, now| {
            if retry {
                inner.retries.with_label_values(&self.labels()).inc();
            }
            let at = now.checked_add(after);
            match (state.pending.get(&key), at) {
                (_, None) => {}
                (Some(p), Some(at)) if p.at <= at => {}
                (_, Some(at)) => {
                    let due = at <= now;
                    if due {
                        inner.adds.with_label_values(&self.labels()).inc();
                    } else {
                        state.upcoming.push(Reverse((at, key.clone())));
                    }
                    state.pending.insert(key, Pending { at, counted: due });
                    // replaced entries wait in the heap until their time: with long
                    // intervals and frequent triggers, drop them rather than let them pile up
                    if state.upcoming.len() > 2 * state.pending.len() + 64 {
                        let pending = &state.pending;
                        state.upcoming.retain(|Reverse((at, k))| {
                            pending.get(k).is_some_and(|p| !p.counted && p.at == *at)
                        });
                    }
                }
            }
        });
    }

    /// The reconcile of `key` starts: it leaves the queue.
    pub fn started(&self, key: String) {
        self.with(|inner, state, now| {
            let waited = match state.pending.remove(&key) {
                Some(p) if p.at <= now => now.duration_since(p.at),
                // a trigger that was not seen: count its add now
                _ => {
                    inner.adds.with_label_values(&self.labels()).inc();
                    Duration::ZERO
                }
            };
            inner
                .latency
                .with_label_values(&self.labels())
                .observe(waited.as_secs_f64());
            state.running.insert(key, now);
        });
    }

    /// The reconcile of `key` ended.
    pub fn finished(&self, key: &str) {
        self.with(|inner, state, now| {
            if let Some(start) = state.running.remove(key) {
                inner
                    .work
                    .with_label_values(&self.labels())
                    .observe(now.duration_since(start).as_secs_f64());
            }
        });
    }

    /// The object `key` was due but is gone (kube-runtime dropped its request).
    pub fn dropped(&self, key: &str) {
        self.with(|_, state, _| {
            state.pending.remove(key);
        });
    }

    /// The objects queued now (what `workqueue_depth` reports).
    pub fn depth(&self) -> usize {
        self.with(|_, state, now| state.pending.values().filter(|p| p.at <= now).count())
    }

    /// A controller's trigger stream of `K` (`Controller::for_stream`), each object counted as
    /// triggered when kube-runtime takes it.
    pub fn triggers<K, E>(
        &self,
        stream: impl Stream<Item = Result<K, E>> + Send + 'static,
    ) -> impl Stream<Item = Result<K, E>> + Send + 'static
    where
        K: Resource + Send + 'static,
        E: Send + 'static,
    {
        let queue = self.clone();
        stream.inspect(move |item| {
            if let Ok(obj) = item {
                queue.triggered(key_of(obj));
            }
        })
    }

    /// A stream of objects owned by `Owner` (`Controller::owns_stream`), each owner reference
    /// of kind `Owner` counted as triggered.
    pub fn owner_triggers<Owner, Child, E>(
        &self,
        stream: impl Stream<Item = Result<Child, E>> + Send + 'static,
    ) -> impl Stream<Item = Result<Child, E>> + Send + 'static
    where
        Owner: Resource<DynamicType = ()>,
        Child: Resource + Send + 'static,
        E: Send + 'static,
    {
        let queue = self.clone();
        stream.inspect(move |item| {
            if let Ok(child) = item {
                let meta = child.meta();
                for owner in meta.owner_references.iter().flatten() {
                    if owner.api_version == Owner::api_version(&())
                        && owner.kind == Owner::kind(&())
                    {
                        queue.triggered(key(meta.namespace.as_deref(), &owner.name));
                    }
                }
            }
        })
    }

    /// A mapper for `Controller::watches_stream`, each reference it returns counted as
    /// triggered.
    pub fn mapper<T, K, I>(
        &self,
        mapper: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> impl Fn(T) -> Vec<ObjectRef<K>> + Send + Sync + 'static
    where
        K: Resource,
        K::DynamicType: Clone,
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let queue = self.clone();
        move |obj| {
            let refs: Vec<ObjectRef<K>> = mapper(obj).into_iter().collect();
            for r in &refs {
                queue.triggered(key(r.namespace.as_deref(), &r.name));
            }
            refs
        }
    }

    /// Runs `controller` with `reconcile` and `error_policy` (as `Controller::run` and a
    /// `for_each` would), recording each reconcile's start, end and requeue, until the
    /// controller stops; the queue is then emptied. Several controllers (one per namespace,
    /// say) may run on one queue.
    pub async fn run<K, Ctx, Fut, E>(
        &self,
        controller: Controller<K>,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        ctx: Arc<Ctx>,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        Ctx: Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + 'static,
    {
        self.run_gated(controller, reconcile, error_policy, ctx, None)
            .await;
    }

    /// [`WorkQueue::run`] with the reconciles behind `gate`: at most its slots run at once,
    /// urgent objects first (see [`crate::lanes`]). Give the `Controller` no concurrency limit
    /// of its own. An object waiting for a slot counts as queued; once `gate.stop` is
    /// cancelled, waiting objects end at once without reconciling.
    pub async fn run_in_lanes<K, Ctx, Fut, E>(
        &self,
        controller: Controller<K>,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        ctx: Arc<Ctx>,
        gate: LaneGate<K>,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        Ctx: Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + 'static,
    {
        self.run_gated(
            controller,
            reconcile,
            error_policy,
            ctx,
            Some(Arc::new(gate)),
        )
        .await;
    }

    async fn run_gated<K, Ctx, Fut, E>(
        &self,
        controller: Controller<K>,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        ctx: Arc<Ctx>,
        gate: Option<Arc<LaneGate<K>>>,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        Ctx: Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + 'static,
    {
        self.open();
        let (on_start, on_error, on_output) = (self.clone(), self.clone(), self.clone());
        let reconcile = Arc::new(reconcile);
        let reconcile =
            move |obj: Arc<K>, ctx: Arc<Ctx>| -> BoxFuture<'static, Result<Action, E>> {
                let key = key_of(obj.as_ref());
                let queue = on_start.clone();
                let (gate, reconcile) = (gate.clone(), reconcile.clone());
                async move {
                    // the reconcile's own future is built only once a slot is held
                    let _slot = match &gate {
                        Some(gate) => {
                            let lane = (gate.lane_of)(obj.as_ref());
                            tokio::select! {
                                slot = gate.lanes.acquire(lane) => Some(slot),
                                () = gate.stop.cancelled() => return Ok(Action::await_change()),
                            }
                        }
                        None => None,
                    };
                    queue.started(key.clone());
                    // boxed: inline, every waiting object's future would be as large as a
                    // running reconcile's
                    let result = Box::pin(reconcile(obj, ctx)).await;
                    queue.finished(&key);
                    if let Ok(action) = &result {
                        match requeue_after(action) {
                            Some(after) => queue.requeued(key, after, false),
                            None => unreadable(action),
                        }
                    }
                    result
                }
                .boxed()
            };
        let error_policy = move |obj: Arc<K>, err: &E, ctx: Arc<Ctx>| {
            let key = key_of(obj.as_ref());
            let action = error_policy(obj, err, ctx);
            match requeue_after(&action) {
                Some(after) => on_error.requeued(key, after, true),
                None if action != Action::await_change() => {
                    on_error.retried();
                    unreadable(&action);
                }
                None => {}
            }
            action
        };
        controller
            .run(reconcile, error_policy, ctx)
            .for_each(move |result| {
                if let Err(ControllerError::ObjectNotFound(gone)) = &result {
                    on_output.dropped(&key(gone.namespace.as_deref(), &gone.name));
                }
                async {}
            })
            .await;
        self.leave();
    }
}

/// The lanes a controller's reconciles wait in ([`WorkQueue::run_in_lanes`]).
pub struct LaneGate<K> {
    /// The shared slots.
    pub lanes: Lanes,
    /// Which lane an object waits in.
    pub lane_of: Box<dyn Fn(&K) -> Lane + Send + Sync>,
    /// Shutdown: objects still waiting end without reconciling.
    pub stop: CancellationToken,
}

/// Logs once that a requeue's delay could not be read from kube-runtime's `Action` (its
/// `Debug` form changed): the depth then misses requeued objects until they start.
fn unreadable(action: &Action) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if *action != Action::await_change() {
        ONCE.call_once(|| {
            tracing::warn!(
                ?action,
                "workqueue metrics cannot read this requeue's delay"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(registry: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap_or_default()
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    }

    #[test]
    fn requeue_delays_are_read_back_exactly() {
        for d in [
            Duration::from_nanos(7),
            Duration::from_micros(1500),
            Duration::from_millis(250),
            Duration::from_millis(1),
            Duration::from_secs(1),
            Duration::from_secs_f64(1.5),
            Duration::from_secs(3600),
            Duration::new(42, 1),
        ] {
            let back = requeue_after(&Action::requeue(d)).unwrap();
            let diff = back.abs_diff(d);
            assert!(diff <= Duration::from_nanos(1), "{d:?} read as {back:?}");
        }
        assert_eq!(requeue_after(&Action::await_change()), None);
    }

    #[test]
    fn depth_counts_due_objects_until_they_start() {
        let registry = Registry::new();
        let metrics = WorkQueueMetrics::register(&registry).unwrap();
        let q = metrics.queue("demo");
        assert!(
            !scrape(&registry).contains("workqueue_depth{"),
            "no series before the controller runs"
        );
        q.open();
        let text = scrape(&registry);
        assert_eq!(
            value(
                &text,
                r#"workqueue_depth{controller="demo",name="demo",priority=""}"#
            ),
            0.0
        );
        assert_eq!(
            value(
                &text,
                r#"workqueue_adds_total{controller="demo",name="demo"}"#
            ),
            0.0
        );
        // two objects due, one of them triggered twice: queued once
        q.triggered("ns/a".into());
        q.triggered("ns/b".into());
        q.triggered("ns/a".into());
        assert_eq!(q.depth(), 2);
        std::thread::sleep(Duration::from_millis(20));
        q.started("ns/a".into());
        assert_eq!(q.depth(), 1);
        // triggered while running: queued again, runs after
        q.triggered("ns/a".into());
        assert_eq!(q.depth(), 2);
        std::thread::sleep(Duration::from_millis(10));
        let text = scrape(&registry);
        assert_eq!(
            value(
                &text,
                r#"workqueue_depth{controller="demo",name="demo",priority=""}"#
            ),
            2.0
        );
        assert!(
            value(
                &text,
                r#"workqueue_longest_running_processor_seconds{controller="demo",name="demo"}"#
            ) >= 0.01
        );
        q.finished("ns/a");
        q.started("ns/a".into());
        q.finished("ns/a");
        q.started("ns/b".into());
        q.finished("ns/b");
        assert_eq!(q.depth(), 0);
        let text = scrape(&registry);
        assert_eq!(
            value(
                &text,
                r#"workqueue_adds_total{controller="demo",name="demo"}"#
            ),
            3.0
        );
        assert_eq!(
            value(
                &text,
                r#"workqueue_queue_duration_seconds_count{controller="demo",name="demo"}"#
            ),
            3.0
        );
        assert!(
            value(
                &text,
                r#"workqueue_queue_duration_seconds_sum{controller="demo",name="demo"}"#
            ) >= 0.02,
            "a waited at least 20 ms"
        );
        assert_eq!(
            value(
                &text,
                r#"workqueue_work_duration_seconds_count{controller="demo",name="demo"}"#
            ),
            3.0
        );
        assert_eq!(
            value(
                &text,
                r#"workqueue_unfinished_work_seconds{controller="demo",name="demo"}"#
            ),
            0.0
        );
    }

    #[test]
    fn requeues_count_when_due_and_error_retries_are_counted() {
        let registry = Registry::new();
        let metrics = WorkQueueMetrics::register(&registry).unwrap();
        let q = metrics.queue("demo");
        q.open();
        q.started("a".into());
        q.finished("a");
        // a refresh later: not queued before its time, one add once due
        q.requeued("a".into(), Duration::from_millis(30), false);
        // an error retry
        q.requeued("b".into(), Duration::from_millis(30), true);
        assert_eq!(q.depth(), 0);
        // an earlier trigger wins over the later requeue, a later requeue does not delay it
        q.triggered("c".into());
        q.requeued("c".into(), Duration::from_secs(60), false);
        assert_eq!(q.depth(), 1);
        std::thread::sleep(Duration::from_millis(40));
        let text = scrape(&registry);
        assert_eq!(
            value(
                &text,
                r#"workqueue_depth{controller="demo",name="demo",priority=""}"#
            ),
            3.0
        );
        // a (unseen trigger at its first start) + c + a's and b's requeues once due
        assert_eq!(
            value(
                &text,
                r#"workqueue_adds_total{controller="demo",name="demo"}"#
            ),
            4.0
        );
        assert_eq!(
            value(
                &text,
                r#"workqueue_retries_total{controller="demo",name="demo"}"#
            ),
            1.0
        );
        // a gone object's request is dropped; a new term starts empty
        q.dropped("b");
        assert_eq!(q.depth(), 2);
        q.reset();
        assert_eq!(q.depth(), 0);
    }
}

//! Upstream's metric names and labels, so existing dashboards and alerts keep working, with
//! upstream's counting bugs fixed (each reconcile counted once; `events_processed` carries the
//! real event type; one queue).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The reloader's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `reloader_reload_executed_total{success}`.
    pub reload_executed: IntCounterVec,
    /// `reloader_reload_executed_total_by_namespace{success,namespace}` (opt-in).
    pub reload_by_namespace: Option<IntCounterVec>,
    /// `reloader_reconcile_total{result}`.
    pub reconcile: IntCounterVec,
    /// `reloader_reconcile_duration_seconds{result}`.
    pub reconcile_duration: HistogramVec,
    /// `reloader_action_total{workload_kind,result}`.
    pub action: IntCounterVec,
    /// `reloader_action_latency_seconds{workload_kind}`: from the source change seen to the
    /// workload written.
    pub action_latency: HistogramVec,
    /// `reloader_skipped_total{reason}`.
    pub skipped: IntCounterVec,
    /// `reloader_workqueue_depth`.
    pub queue_depth: IntGauge,
    /// `reloader_workqueue_adds_total`.
    pub queue_adds: IntCounter,
    /// `reloader_workqueue_latency_seconds`.
    pub queue_latency: Histogram,
    /// `reloader_errors_total{type}`.
    pub errors: IntCounterVec,
    /// `reloader_retries_total`.
    pub retries: IntCounter,
    /// `reloader_events_received_total{event_type,resource_type}`.
    pub events_received: IntCounterVec,
    /// `reloader_events_processed_total{event_type,resource_type,result}`.
    pub events_processed: IntCounterVec,
    /// `reloader_workloads_scanned_total{kind}`.
    pub scanned: IntCounterVec,
    /// `reloader_workloads_matched_total{kind}`.
    pub matched: IntCounterVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Creates and registers every metric; `by_namespace` adds the per-namespace counter
    /// (`METRICS_COUNT_BY_NAMESPACE=enabled`).
    pub fn register(registry: &Registry, by_namespace: bool) -> prometheus::Result<Self> {
        let reload_executed = counter(
            registry,
            "reloader_reload_executed_total",
            "Counter of reloads executed by Reloader.",
            &["success"],
        )?;
        // both series exist from the start, as upstream
        reload_executed.with_label_values(&["true"]);
        reload_executed.with_label_values(&["false"]);
        let reload_by_namespace = if by_namespace {
            Some(counter(
                registry,
                "reloader_reload_executed_total_by_namespace",
                "Counter of reloads executed by Reloader, by namespace.",
                &["success", "namespace"],
            )?)
        } else {
            None
        };
        let queue_depth = IntGauge::new(
            "reloader_workqueue_depth",
            "Current depth of the workqueue.",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let queue_adds = IntCounter::new(
            "reloader_workqueue_adds_total",
            "Total number of adds to the workqueue.",
        )?;
        registry.register(Box::new(queue_adds.clone()))?;
        let queue_latency = Histogram::with_opts(
            HistogramOpts::new(
                "reloader_workqueue_latency_seconds",
                "Time an item waits in the workqueue before it is processed.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(queue_latency.clone()))?;
        let retries = IntCounter::new("reloader_retries_total", "Total number of retries.")?;
        registry.register(Box::new(retries.clone()))?;
        let metrics = Self {
            reload_executed,
            reload_by_namespace,
            reconcile: counter(
                registry,
                "reloader_reconcile_total",
                "Total number of reconciles by result.",
                &["result"],
            )?,
            reconcile_duration: histogram(
                registry,
                "reloader_reconcile_duration_seconds",
                "Duration of reconciles by result.",
                &["result"],
                vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
            )?,
            action: counter(
                registry,
                "reloader_action_total",
                "Total number of workload actions by kind and result.",
                &["workload_kind", "result"],
            )?,
            action_latency: histogram(
                registry,
                "reloader_action_latency_seconds",
                "Time from a source change seen to the workload written.",
                &["workload_kind"],
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
            )?,
            skipped: counter(
                registry,
                "reloader_skipped_total",
                "Total number of skipped reloads by reason.",
                &["reason"],
            )?,
            queue_depth,
            queue_adds,
            queue_latency,
            errors: counter(
                registry,
                "reloader_errors_total",
                "Total number of errors by type.",
                &["type"],
            )?,
            retries,
            events_received: counter(
                registry,
                "reloader_events_received_total",
                "Total number of events received.",
                &["event_type", "resource_type"],
            )?,
            events_processed: counter(
                registry,
                "reloader_events_processed_total",
                "Total number of events processed.",
                &["event_type", "resource_type", "result"],
            )?,
            scanned: counter(
                registry,
                "reloader_workloads_scanned_total",
                "Workloads looked at per event.",
                &["kind"],
            )?,
            matched: counter(
                registry,
                "reloader_workloads_matched_total",
                "Workloads that matched per event.",
                &["kind"],
            )?,
        };
        // the error series exists from the start (0), so rate() and alerts see it
        metrics.errors.with_label_values(&["handler_error"]);
        Ok(metrics)
    }

    /// Counts one workload write.
    pub fn reloaded(&self, namespace: &str, success: bool) {
        let s = if success { "true" } else { "false" };
        self.reload_executed.with_label_values(&[s]).inc();
        if let Some(by_ns) = &self.reload_by_namespace {
            by_ns.with_label_values(&[s, namespace]).inc();
        }
    }
}

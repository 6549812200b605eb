//! Prometheus metrics under upstream's names and labels, so dashboards and the
//! `SealedSecretsUnsealErrorHigh` alert keep working.

use kube::ResourceExt;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use strongroom_core::crd::sealed_secret::SealedSecret;

/// The controller's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `sealed_secrets_controller_unseal_requests_total`.
    pub unseal_requests: IntCounter,
    /// `sealed_secrets_controller_unseal_errors_total{reason,namespace}`.
    pub unseal_errors: IntCounterVec,
    /// `sealed_secrets_controller_condition_info{namespace,name,condition,ss_app_kubernetes_io_instance}`.
    pub condition_info: GaugeVec,
    /// `sealed_secrets_controller_http_requests_total{path,code,method}`.
    pub http_requests: IntCounterVec,
    /// `sealed_secrets_controller_http_request_duration_seconds{path,method}`.
    pub http_duration: HistogramVec,
}

const NS: &str = "sealed_secrets_controller";

/// The `ss_app_kubernetes_io_instance` label value of a SealedSecret.
fn instance(ss: &SealedSecret) -> String {
    ss.labels()
        .get("app.kubernetes.io/instance")
        .cloned()
        .unwrap_or_default()
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let build_info = GaugeVec::new(
            Opts::new("build_info", "Build information.")
                .namespace(NS)
                .const_label("revision", env!("CARGO_PKG_VERSION")),
            &[],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info.with_label_values::<&str>(&[]).set(0.0);
        let unseal_requests = IntCounter::with_opts(
            Opts::new(
                "unseal_requests_total",
                "Total number of sealed secret unseal requests",
            )
            .namespace(NS),
        )?;
        let unseal_errors = IntCounterVec::new(
            Opts::new(
                "unseal_errors_total",
                "Total number of sealed secret unseal errors by reason",
            )
            .namespace(NS),
            &["reason", "namespace"],
        )?;
        let condition_info = GaugeVec::new(
            Opts::new("condition_info", "Current SealedSecret condition status. Values are -1 (false), 0 (unknown or absent), 1 (true)").namespace(NS),
            &["namespace", "name", "condition", "ss_app_kubernetes_io_instance"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Total number of HTTP requests by path, code and method",
            )
            .namespace(NS),
            &["path", "code", "method"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request duration by path and method",
            )
            .namespace(NS),
            &["path", "method"],
        )?;
        registry.register(Box::new(unseal_requests.clone()))?;
        registry.register(Box::new(unseal_errors.clone()))?;
        registry.register(Box::new(condition_info.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        Ok(Self {
            unseal_requests,
            unseal_errors,
            condition_info,
            http_requests,
            http_duration,
        })
    }

    /// Sets `condition_info{condition="Synced"}` of `ss`: 1 synced, -1 failed.
    pub fn set_synced(&self, ss: &SealedSecret, ok: bool) {
        let (ns, name, instance) = (
            ss.namespace().unwrap_or_default(),
            ss.name_any(),
            instance(ss),
        );
        self.condition_info
            .with_label_values(&[ns.as_str(), name.as_str(), "Synced", instance.as_str()])
            .set(if ok { 1.0 } else { -1.0 });
    }

    /// Removes the `condition_info` series of a deleted SealedSecret.
    pub fn forget(&self, ss: &SealedSecret) {
        let (ns, name, instance) = (
            ss.namespace().unwrap_or_default(),
            ss.name_any(),
            instance(ss),
        );
        let _ = self.condition_info.remove_label_values(&[
            ns.as_str(),
            name.as_str(),
            "Synced",
            instance.as_str(),
        ]);
    }
}

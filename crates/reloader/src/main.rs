//! `reloader`: rolls workloads when the ConfigMaps and Secrets they use change. Flags, env vars
//! and annotations are Stakater Reloader's; see `docs/reloader.md` for what goes beyond.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube::Client;
use strongroom_controller_kit::flags::go_bool;
use strongroom_controller_kit::http::parse_listen_addr;
use strongroom_controller_kit::logging::{LogArgs, LogFormat};
use strongroom_controller_kit::readiness::Readiness;
use strongroom_controller_kit::{admin, leader, logging, pod, shutdown};
use strongroom_core::duration::parse_go_duration;
use strongroom_reloader::LEASE_NAME;
use strongroom_reloader::annotations::Keys;
use strongroom_reloader::engine::{Config, Engine};
use strongroom_reloader::hash::{HashVersion, SourceKind};
use strongroom_reloader::metrics::Metrics;
use strongroom_reloader::plan::{PlanOptions, Strategy};
use strongroom_reloader::workloads::WorkloadKind;

/// The reloader.
#[derive(Debug, Clone, Parser)]
#[command(name = "reloader", version, args_override_self = true)]
struct Args {
    /// Reload every workload that references a changed ConfigMap or Secret, unless it says
    /// `reloader.stakater.com/auto: "false"`.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    auto_reload_all: bool,
    /// `env-vars` (a `STAKATER_*` variable) or `annotations` (a pod-template annotation).
    #[arg(long, value_enum, default_value = "env-vars")]
    reload_strategy: Strategy,
    /// Reload when a referenced ConfigMap or Secret is created.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    reload_on_create: bool,
    /// Reload when a referenced ConfigMap or Secret is deleted.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    reload_on_delete: bool,
    /// With --reload-on-create: treat what exists at start as created. Rarely needed: a
    /// restart compares the hashes workloads carry with the current data anyway.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    sync_after_restart: bool,
    /// Also roll Argo Rollouts (`argoproj.io/v1alpha1`).
    #[arg(long = "is-Argo-Rollouts", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    is_argo_rollouts: bool,
    /// Hold the Lease `stakater-reloader-lock`, so several replicas are safe.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_ha: bool,
    /// Leader election: Lease duration (Go duration).
    #[arg(long, default_value = "15s")]
    leader_election_lease_duration: String,
    /// Leader election: renew deadline (Go duration).
    #[arg(long, default_value = "10s")]
    leader_election_renew_deadline: String,
    /// Leader election: retry period (Go duration).
    #[arg(long, default_value = "2s")]
    leader_election_retry_period: String,
    /// `configmaps` or `secrets`: not watched (at most one).
    #[arg(long, value_delimiter = ',')]
    resources_to_ignore: Vec<String>,
    /// Beyond upstream: how a CronJob is reloaded. `patch` (default): its job template is
    /// patched, so the next scheduled run uses it and `suspend` is honoured. `run-now`:
    /// upstream's way, a Job is created from the template at once.
    #[arg(long, value_enum, default_value = "patch")]
    cronjob_reload: CronJobReload,
    /// `jobs`, `cronjobs`: kinds never rolled.
    #[arg(long, value_delimiter = ',')]
    ignored_workload_types: Vec<String>,
    /// Watch only these namespaces (no ClusterRole needed).
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Namespaces whose changes are ignored (all-namespace mode).
    #[arg(long, value_delimiter = ',')]
    namespaces_to_ignore: Vec<String>,
    /// Label selector of the ConfigMaps and Secrets watched (`k=v`; legacy `k:v` accepted).
    #[arg(long, value_delimiter = ',')]
    resource_label_selector: Vec<String>,
    /// Label selector of the namespaces watched (all-namespace mode).
    #[arg(long, value_delimiter = ',')]
    namespace_selector: Vec<String>,
    /// POST here instead of reloading.
    #[arg(long, default_value = "")]
    webhook_url: String,
    /// `json`, or empty for text.
    #[arg(long, default_value = "")]
    log_format: String,
    /// trace, debug, info, warning, error, fatal or panic.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Watch SecretProviderClassPodStatuses (CSI driver).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_csi_integration: bool,
    /// Accepted for compatibility; no profiler is served.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_pprof: bool,
    /// Accepted for compatibility.
    #[arg(long, default_value = ":6060")]
    pprof_addr: String,
    /// Renames `reloader.stakater.com/auto`.
    #[arg(long, default_value = "reloader.stakater.com/auto")]
    auto_annotation: String,
    /// Renames `secret.reloader.stakater.com/auto`.
    #[arg(long, default_value = "secret.reloader.stakater.com/auto")]
    secret_auto_annotation: String,
    /// Renames `configmap.reloader.stakater.com/auto`.
    #[arg(long, default_value = "configmap.reloader.stakater.com/auto")]
    configmap_auto_annotation: String,
    /// Renames `reloader.stakater.com/search`.
    #[arg(long, default_value = "reloader.stakater.com/search")]
    auto_search_annotation: String,
    /// Renames `reloader.stakater.com/match`.
    #[arg(long, default_value = "reloader.stakater.com/match")]
    search_match_annotation: String,
    /// Renames `secret.reloader.stakater.com/reload`.
    #[arg(long, default_value = "secret.reloader.stakater.com/reload")]
    secret_annotation: String,
    /// Renames `configmap.reloader.stakater.com/reload`.
    #[arg(long, default_value = "configmap.reloader.stakater.com/reload")]
    configmap_annotation: String,
    /// Renames `reloader.stakater.com/ignore`.
    #[arg(long, default_value = "reloader.stakater.com/ignore")]
    ignore_annotation: String,
    /// Renames `deployment.reloader.stakater.com/pause-period`.
    #[arg(long, default_value = "deployment.reloader.stakater.com/pause-period")]
    pause_deployment_annotation: String,
    /// Renames `deployment.reloader.stakater.com/paused-at`.
    #[arg(long, default_value = "deployment.reloader.stakater.com/paused-at")]
    pause_deployment_time_annotation: String,
    /// Beyond upstream: `upstream` (SHA-1, what upstream's workloads carry) or `v2`
    /// (SHA-256, unambiguous).
    #[arg(long, value_enum, default_value = "upstream")]
    hash_version: HashVersion,
    /// Beyond upstream: changes within this window roll a workload once (Go duration).
    #[arg(long, default_value = "500ms")]
    coalesce_window: String,
    /// Beyond upstream: at most this many workload writes per second, cluster-wide (0: no
    /// limit).
    #[arg(long, default_value_t = 20.0)]
    max_rollouts_per_second: f64,
    /// Address of `/metrics`, `/live`, `/healthz`, `/readyz`.
    #[arg(long, default_value = ":9090")]
    listen_addr: String,
}

/// How a CronJob is reloaded (`--cronjob-reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CronJobReload {
    /// Patch the job template; the next run uses it.
    Patch,
    /// Create a Job now (upstream).
    RunNow,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_go_duration(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

/// Upstream's legacy selector forms: `k:v` → `k=v`, `k:*` and `k=*` → `k`.
fn selector(parts: &[String]) -> Option<String> {
    let fixed: Vec<String> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some(k) = p.strip_suffix(":*").or_else(|| p.strip_suffix("=*")) {
                k.to_string()
            } else if !p.contains('=') && !p.contains('!') {
                p.replacen(':', "=", 1)
            } else {
                p.to_string()
            }
        })
        .collect();
    (!fixed.is_empty()).then(|| fixed.join(","))
}

fn config(args: &Args) -> anyhow::Result<Config> {
    let mut ignored = BTreeSet::new();
    for r in &args.resources_to_ignore {
        match r.to_ascii_lowercase().as_str() {
            "configmaps" => ignored.insert(SourceKind::ConfigMap),
            "secrets" => ignored.insert(SourceKind::Secret),
            other => {
                anyhow::bail!("--resources-to-ignore: {other:?} is neither configmaps nor secrets")
            }
        };
    }
    anyhow::ensure!(
        ignored.len() < 2,
        "--resources-to-ignore: ignoring both configmaps and secrets leaves nothing to do"
    );
    if !args.enable_csi_integration {
        ignored.insert(SourceKind::SecretProviderClass);
    }
    let mut kinds = vec![
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
    ];
    for t in &args.ignored_workload_types {
        match t.to_ascii_lowercase().as_str() {
            "cronjobs" => kinds.retain(|k| *k != WorkloadKind::CronJob),
            "jobs" => kinds.retain(|k| *k != WorkloadKind::Job),
            other => {
                anyhow::bail!("--ignored-workload-types: {other:?} is neither jobs nor cronjobs")
            }
        }
    }
    if args.is_argo_rollouts {
        kinds.push(WorkloadKind::Rollout);
    }
    let namespace_selector = selector(&args.namespace_selector);
    let scopes: Vec<Option<String>> = if !args.namespaces.is_empty() {
        args.namespaces
            .iter()
            .map(|n| Some(n.trim().to_string()))
            .collect()
    } else if let Some(ns) = std::env::var("KUBERNETES_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
    {
        vec![Some(ns)]
    } else {
        vec![None]
    };
    let keys = Keys {
        auto: args.auto_annotation.clone(),
        configmap_auto: args.configmap_auto_annotation.clone(),
        secret_auto: args.secret_auto_annotation.clone(),
        configmap_reload: args.configmap_annotation.clone(),
        secret_reload: args.secret_annotation.clone(),
        search: args.auto_search_annotation.clone(),
        match_: args.search_match_annotation.clone(),
        ignore: args.ignore_annotation.clone(),
        pause_period: args.pause_deployment_annotation.clone(),
        paused_at: args.pause_deployment_time_annotation.clone(),
    };
    // upstream honours the namespace selector in the all-namespace mode only
    let global = scopes == [None];
    Ok(Config {
        plan: PlanOptions {
            keys,
            strategy: args.reload_strategy,
            auto_reload_all: args.auto_reload_all,
            ignored,
            run_jobs_now: args.cronjob_reload == CronJobReload::RunNow,
        },
        kinds,
        scopes,
        namespaces_to_ignore: args
            .namespaces_to_ignore
            .iter()
            .map(|n| n.trim().to_string())
            .collect(),
        resource_label_selector: selector(&args.resource_label_selector),
        namespace_selector: namespace_selector.filter(|_| global),
        reload_on_create: args.reload_on_create,
        reload_on_delete: args.reload_on_delete,
        sync_after_restart: args.sync_after_restart,
        hash_version: args.hash_version,
        window: duration("coalesce-window", &args.coalesce_window)?,
        max_rollouts_per_second: args.max_rollouts_per_second,
        webhook_url: (!args.webhook_url.is_empty()).then(|| args.webhook_url.clone()),
        alerts: strongroom_reloader::notify::Alerts::from_env(),
    })
}

/// The `reloaderOptions` document of the meta-info ConfigMap, upstream's field names.
fn options_document(args: &Args) -> serde_json::Value {
    let list = |v: &[String]| v.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "autoReloadAll": args.auto_reload_all,
        "configmapUpdateOnChangeAnnotation": args.configmap_annotation,
        "secretUpdateOnChangeAnnotation": args.secret_annotation,
        "reloaderAutoAnnotation": args.auto_annotation,
        "ignoreResourceAnnotation": args.ignore_annotation,
        "configmapReloaderAutoAnnotation": args.configmap_auto_annotation,
        "secretReloaderAutoAnnotation": args.secret_auto_annotation,
        "configmapExcludeReloaderAnnotation": strongroom_reloader::annotations::CONFIGMAPS_EXCLUDE,
        "secretExcludeReloaderAnnotation": strongroom_reloader::annotations::SECRETS_EXCLUDE,
        "autoSearchAnnotation": args.auto_search_annotation,
        "searchMatchAnnotation": args.search_match_annotation,
        "rolloutStrategyAnnotation": strongroom_reloader::annotations::ROLLOUT_STRATEGY,
        "pauseDeploymentAnnotation": args.pause_deployment_annotation,
        "pauseDeploymentTimeAnnotation": args.pause_deployment_time_annotation,
        "logFormat": args.log_format,
        "logLevel": args.log_level,
        "isArgoRollouts": args.is_argo_rollouts,
        "reloadStrategy": match args.reload_strategy {
            Strategy::EnvVars => "env-vars",
            Strategy::Annotations => "annotations",
        },
        "reloadOnCreate": args.reload_on_create,
        "reloadOnDelete": args.reload_on_delete,
        "syncAfterRestart": args.sync_after_restart,
        "enableHA": args.enable_ha,
        "webhookUrl": args.webhook_url,
        "resourcesToIgnore": list(&args.resources_to_ignore),
        "namespaceSelectors": list(&args.namespace_selector),
        "resourceSelectors": list(&args.resource_label_selector),
        "namespacesToIgnore": list(&args.namespaces_to_ignore),
    })
}

fn main() -> ExitCode {
    shutdown::run_main(run)
}

async fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let level = match args.log_level.as_str() {
        "warning" => "warn",
        "fatal" | "panic" => "error",
        other => other,
    };
    logging::init(&LogArgs {
        log_level: level.to_string(),
        log_format: if args.log_format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
    });
    let shutdown = shutdown::on_signal()?;
    let cfg = config(&args)?;
    let namespace = pod::namespace();
    let lease = leader::LeaseConfig {
        lease_duration: duration(
            "leader-election-lease-duration",
            &args.leader_election_lease_duration,
        )?,
        renew_deadline: duration(
            "leader-election-renew-deadline",
            &args.leader_election_renew_deadline,
        )?,
        retry_period: duration(
            "leader-election-retry-period",
            &args.leader_election_retry_period,
        )?,
        ..leader::LeaseConfig::new(&namespace, LEASE_NAME, &pod::identity("reloader"))
    };
    lease.validate().map_err(anyhow::Error::msg)?;
    let registry = prometheus::Registry::new();
    let by_namespace = std::env::var("METRICS_COUNT_BY_NAMESPACE").is_ok_and(|v| v == "enabled");
    let metrics = Metrics::register(&registry, by_namespace)?;
    let readiness = Readiness::default();
    readiness.stop_on(shutdown.clone());
    if args.enable_ha {
        // a standby is ready to take over; without HA, readiness waits for the watches (the
        // engine registers them before anything reads /readyz as ready: none registered is
        // not ready)
        readiness.component("standby").ready();
    }
    let servers = shutdown::CancellationToken::new();
    let _stop_servers = servers.clone().drop_guard();
    let addr = admin::serve(
        parse_listen_addr(&args.listen_addr)?,
        registry,
        readiness.clone(),
        servers.clone(),
    )
    .await?;
    tracing::info!(%addr, strategy = ?cfg.plan.strategy, "reloader starting");
    let client = Client::try_default().await?;
    if let Some(ns) = std::env::var("RELOADER_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
    {
        let deployment = std::env::var("RELOADER_DEPLOYMENT_NAME").unwrap_or_default();
        strongroom_reloader::meta_info::publish(
            &client,
            &ns,
            &deployment,
            &options_document(&args),
        )
        .await;
    }
    let election = args.enable_ha.then(|| leader::Election {
        client: client.clone(),
        lease,
    });
    let ended = leader::run_while_leading(election, &shutdown, Duration::from_secs(2), |stop| {
        let engine = Engine::new(client, cfg, metrics, stop);
        async move {
            engine.run(&readiness).await;
            Ok(())
        }
    })
    .await?;
    Ok(match ended {
        leader::Ended::LostLease => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_selectors_are_translated() {
        assert_eq!(selector(&["app:web".into()]).as_deref(), Some("app=web"));
        assert_eq!(
            selector(&["team:*".into(), "tier=*".into()]).as_deref(),
            Some("team,tier")
        );
        assert_eq!(
            selector(&["a=b".into(), "c!=d".into()]).as_deref(),
            Some("a=b,c!=d")
        );
        assert_eq!(selector(&[]), None);
    }

    #[test]
    fn upstream_command_lines_parse() {
        let args = Args::try_parse_from([
            "reloader",
            "--reload-strategy=annotations",
            "--reload-on-create=true",
            "--is-Argo-Rollouts=true",
            "--enable-ha",
            "--namespaces-to-ignore=kube-system,monitoring",
            "--resources-to-ignore=configmaps",
            "--auto-reload-all",
        ])
        .unwrap();
        let cfg = config(&args).unwrap();
        assert_eq!(cfg.plan.strategy, Strategy::Annotations);
        assert!(cfg.reload_on_create && cfg.plan.auto_reload_all && args.enable_ha);
        assert!(cfg.kinds.contains(&WorkloadKind::Rollout));
        assert_eq!(cfg.namespaces_to_ignore.len(), 2);
        assert!(cfg.plan.ignored.contains(&SourceKind::ConfigMap));
        let both =
            Args::try_parse_from(["reloader", "--resources-to-ignore=configmaps,secrets"]).unwrap();
        assert!(config(&both).is_err());
        assert!(Args::try_parse_from(["reloader", "--reload-strategy=rolling"]).is_err());
    }
}

//! `external-secrets-controller`: upstream's flags (see `docs/external-secrets.md`), one process
//! running the SecretStore, ClusterSecretStore and ExternalSecret controllers.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use strongroom_controller_kit::flags::go_bool;
use strongroom_controller_kit::http::parse_listen_addr;
use strongroom_controller_kit::logging::{LogArgs, LogFormat};
use strongroom_controller_kit::readiness::Readiness;
use strongroom_controller_kit::reconcile::{ErrorPolicy, ReconcileMetrics};
use strongroom_controller_kit::workqueue::WorkQueueMetrics;
use strongroom_controller_kit::{admin, leader, logging, metrics_auth, metrics_tls, pod, shutdown};
use strongroom_core::duration::parse_go_duration;
use strongroom_external_secrets::context::Context;
use strongroom_external_secrets::metrics::Metrics;
use strongroom_external_secrets::run::{Options, run_controllers};
use strongroom_external_secrets::stores::StoreOptions;
use strongroom_external_secrets::{CONTROLLER_NAME, REPORTER};

/// The external-secrets controller.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "external-secrets-controller",
    version,
    args_override_self = true
)]
struct Args {
    /// Reconciles run in parallel, per controller.
    #[arg(long, default_value_t = 1)]
    concurrent: u16,
    /// Kubernetes client requests per second (accepted; the client is not rate limited).
    #[arg(long, default_value_t = 50.0)]
    client_qps: f32,
    /// Kubernetes client burst (accepted; the client is not rate limited).
    #[arg(long, default_value_t = 100)]
    client_burst: u32,
    /// Serve only stores whose `spec.controller` is empty or equal to this.
    #[arg(long, default_value = "default")]
    controller_class: String,
    /// Watch one namespace only (empty: all).
    #[arg(long, default_value = "")]
    namespace: String,
    /// Validate ClusterSecretStores (and let ExternalSecrets use them).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_cluster_store_reconciler: bool,
    /// Validate SecretStores.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_secret_store_reconciler: bool,
    /// Reconcile ClusterExternalSecrets.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_cluster_external_secret_reconciler: bool,
    /// Reconcile PushSecrets.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_push_secret_reconciler: bool,
    /// Reconcile ClusterPushSecrets.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_cluster_push_secret_reconciler: bool,
    /// How often stores are validated (Go duration).
    #[arg(long, default_value = "5m")]
    store_requeue_interval: String,
    /// ExternalSecrets wait for their store to be Ready.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_flood_gate: bool,
    /// Accepted for compatibility: Secrets are never cached whole.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_secrets_caching: bool,
    /// Accepted for compatibility: ConfigMaps are never cached.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_configmaps_caching: bool,
    /// Accepted for compatibility.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_managed_secrets_caching: bool,
    /// Accepted for compatibility: the target is always read from the API.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_secret_api_read_on_cache_mismatch: bool,
    /// Accepted for compatibility (generator state is always kept).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_generator_state: bool,
    /// How long a replaced GeneratorState (and its lease) lives on before it is cleaned up.
    #[arg(long, default_value = "2m")]
    generator_gc_grace_period: String,
    /// Add the object's `app.kubernetes.io/{name,instance,version,component,part-of,managed-by}`
    /// labels to the status-condition, reconcile-duration and sync-call metrics, as
    /// `app_kubernetes_io_*` labels.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_extended_metric_labels: bool,
    /// Allow generic targets (`spec.target.manifest`: ConfigMaps and namespaced custom
    /// resources). The controller's ServiceAccount needs RBAC on those kinds.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    unsafe_allow_generic_targets: bool,
    /// Hold a Lease so that only one replica works.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "external-secrets-controller")]
    leader_election_id: String,
    /// Leader election: Lease duration (Go duration).
    #[arg(long, default_value = "15s")]
    leader_election_lease_duration: String,
    /// Leader election: renew deadline (Go duration).
    #[arg(long, default_value = "10s")]
    leader_election_renew_deadline: String,
    /// Leader election: retry period (Go duration).
    #[arg(long, default_value = "2s")]
    leader_election_retry_period: String,
    /// Address of `/metrics`.
    #[arg(long, default_value = ":8080")]
    metrics_addr: String,
    /// Serve `/metrics` over HTTPS: with the certificate and key of `--metrics-cert-dir`, or a
    /// self-signed certificate made at start when no directory is given (as upstream).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    metrics_secure: bool,
    /// With `--metrics-secure`: answer only requests whose bearer token the API server accepts
    /// (TokenReview) for a user allowed `get` on the path (SubjectAccessReview), as
    /// controller-runtime's authentication and authorization filter.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    metrics_auth: bool,
    /// With `--metrics-secure`: the directory of the metrics certificate and key (empty: a
    /// self-signed certificate).
    #[arg(long, default_value = "")]
    metrics_cert_dir: String,
    /// The certificate chain's file (PEM) in `--metrics-cert-dir`.
    #[arg(long, default_value = "tls.crt")]
    metrics_cert_name: String,
    /// The private key's file (PEM) in `--metrics-cert-dir`.
    #[arg(long, default_value = "tls.key")]
    metrics_key_name: String,
    /// Accepted for compatibility.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_http2: bool,
    /// Address of `/healthz` and `/readyz`.
    #[arg(long, default_value = ":8082")]
    live_addr: String,
    /// debug, info, warn, error (dpanic, panic and fatal log as error).
    #[arg(long, default_value = "info")]
    loglevel: String,
    /// Accepted for compatibility.
    #[arg(long, default_value = "epoch")]
    zap_time_encoding: String,
    /// Accepted for compatibility: Vault clients are always kept per store
    /// (`--experimental-enable-vault-token-cache` is its deprecated name, as upstream).
    #[arg(long, alias = "experimental-enable-vault-token-cache", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    enable_vault_token_cache: bool,
    /// Accepted for compatibility (`--experimental-vault-token-cache-size` is its deprecated
    /// name).
    #[arg(
        long,
        alias = "experimental-vault-token-cache-size",
        default_value_t = 262144
    )]
    vault_token_cache_size: u64,
    /// Accepted for compatibility: a no-op upstream too (AWS credentials are kept per store).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    experimental_enable_aws_session_cache: bool,
    /// Left action delimiter of `target.template` and PushSecret templates (not of
    /// `rewrite[].transform`, as upstream).
    #[arg(long, default_value = "{{")]
    template_left_delimiter: String,
    /// Right action delimiter, see `--template-left-delimiter`.
    #[arg(long, default_value = "}}")]
    template_right_delimiter: String,
    /// Beyond upstream: how long one provider read is shared by every ExternalSecret asking
    /// for the same value (Go duration; 0 shares only concurrent reads).
    #[arg(long, default_value = "30s")]
    provider_read_cache_ttl: String,
    /// Beyond upstream: provider calls per second per store at most (0: unlimited). A burst
    /// of up to one second's worth goes at once; when the provider throttles, the store's rate
    /// halves and grows back to this over about 15 s.
    #[arg(long, default_value_t = 100.0, value_parser = rate_limit)]
    provider_rate_limit: f64,
    /// `text` or `json` logs.
    #[arg(long, default_value = "text")]
    log_format: String,
}

fn rate_limit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a number of calls per second (0 or more; 0: unlimited)"
        )),
    }
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_go_duration(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn main() -> ExitCode {
    shutdown::run_main(run)
}

async fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let level = match args.loglevel.as_str() {
        "dpanic" | "panic" | "fatal" => "error",
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
    if args.metrics_auth && !args.metrics_secure {
        anyhow::bail!(
            "--metrics-auth=true needs --metrics-secure=true: scrapers' bearer tokens must not \
             cross the network in clear"
        );
    }
    if args.unsafe_allow_generic_targets {
        tracing::warn!(
            "--unsafe-allow-generic-targets: ExternalSecrets may write ConfigMaps and custom resources, which are not encrypted at rest like Secrets"
        );
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shutdown = shutdown::on_signal()?;
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
        ..leader::LeaseConfig::new(
            &namespace,
            &args.leader_election_id,
            &pod::identity("external-secrets"),
        )
    };
    lease.validate().map_err(anyhow::Error::msg)?;
    let store_requeue = duration("store-requeue-interval", &args.store_requeue_interval)?;
    let read_ttl = duration("provider-read-cache-ttl", &args.provider_read_cache_ttl)?;
    let generator_gc_grace =
        duration("generator-gc-grace-period", &args.generator_gc_grace_period)?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry, args.enable_extended_metric_labels)?;
    let reconcile_metrics = ReconcileMetrics::register(&registry)?;
    let queues = WorkQueueMetrics::register(&registry)?;
    let readiness = Readiness::default();
    readiness.stop_on(shutdown.clone());
    if args.enable_leader_election {
        readiness.component("standby").ready();
    }
    let servers = shutdown::CancellationToken::new();
    let _stop_servers = servers.clone().drop_guard();
    let metrics_tls = if args.metrics_secure {
        Some(metrics_tls::server_config(
            &args.metrics_cert_dir,
            &args.metrics_cert_name,
            &args.metrics_key_name,
        )?)
    } else {
        None
    };
    let client = Client::try_default().await?;
    let metrics_auth = args
        .metrics_auth
        .then(|| Arc::new(metrics_auth::MetricsAuth::new(client.clone())));
    let metrics_addr = admin::serve_guarded(
        parse_listen_addr(&args.metrics_addr)?,
        (registry.clone(), readiness.clone()),
        servers.clone(),
        metrics_tls,
        metrics_auth,
    )
    .await?;
    let live_addr = admin::serve(
        parse_listen_addr(&args.live_addr)?,
        registry,
        readiness.clone(),
        servers.clone(),
    )
    .await?;
    tracing::info!(%metrics_addr, %live_addr, "external-secrets controller starting");
    let election = args.enable_leader_election.then(|| leader::Election {
        client: client.clone(),
        lease,
    });
    let options = Options {
        namespace: (!args.namespace.is_empty()).then(|| args.namespace.clone()),
        concurrency: args.concurrent,
        secret_stores: args.enable_secret_store_reconciler,
        cluster_stores: args.enable_cluster_store_reconciler,
        cluster_external_secrets: args.enable_cluster_external_secret_reconciler,
        push_secrets: args.enable_push_secret_reconciler,
        cluster_push_secrets: args.enable_cluster_push_secret_reconciler,
        stores: StoreOptions {
            controller_class: args.controller_class.clone(),
            flood_gate: args.enable_flood_gate,
            read_ttl,
            rate_limit: args.provider_rate_limit,
        },
        template_delimiters: (
            args.template_left_delimiter.clone(),
            args.template_right_delimiter.clone(),
        ),
        generator_gc_grace,
        generic_targets: args.unsafe_allow_generic_targets,
    };
    let ended = leader::run_while_leading(election, &shutdown, Duration::from_secs(2), |stop| {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        let fresh = {
            let client = client.clone();
            std::sync::Arc::new(move || Recorder::new(client.clone(), reporter.clone()))
        };
        let policy = ErrorPolicy::new(
            CONTROLLER_NAME,
            reconcile_metrics.clone(),
            recorder,
            stop.clone(),
        )
        .named_per_kind()
        .with_distinct_notes(fresh);
        let (client, metrics, readiness) = (client.clone(), metrics.clone(), readiness.clone());
        let queues = queues.clone();
        async move {
            let ctx = Context::new(client, metrics, policy, &options, store_requeue);
            run_controllers(ctx, options, &readiness, &queues, stop).await;
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
    fn upstream_command_lines_parse() {
        let args = Args::try_parse_from([
            "external-secrets-controller",
            "--concurrent=5",
            "--metrics-addr=:8080",
            "--loglevel=debug",
            "--zap-time-encoding=epoch",
            "--enable-leader-election=true",
            "--enable-flood-gate",
            "--enable-cluster-store-reconciler=false",
            "--store-requeue-interval=1m",
            "--controller-class=team-a",
            "--metrics-auth=false",
            "--experimental-enable-vault-token-cache=true",
            "--experimental-vault-token-cache-size=100",
            "--experimental-enable-aws-session-cache",
            "--metrics-secure=false",
            "--metrics-cert-dir=/certs",
            "--metrics-cert-name=tls.crt",
            "--metrics-key-name=tls.key",
        ]);
        let Ok(args) = args else {
            panic!("upstream flags must parse");
        };
        assert_eq!(args.concurrent, 5);
        assert!(args.enable_leader_election && args.enable_flood_gate);
        assert!(!args.enable_cluster_store_reconciler);
        assert_eq!(args.controller_class, "team-a");
        assert!(
            args.enable_vault_token_cache,
            "the deprecated name sets the flag"
        );
        assert_eq!(args.vault_token_cache_size, 100);
        assert!(Args::try_parse_from(["external-secrets-controller", "--no-such-flag"]).is_err());
        assert_eq!(args.provider_rate_limit, 100.0, "the default rate limit");
        let rate = |v: &str| {
            Args::try_parse_from([
                "external-secrets-controller",
                &format!("--provider-rate-limit={v}"),
            ])
            .map(|a| a.provider_rate_limit)
        };
        assert_eq!(rate("0").ok(), Some(0.0));
        assert_eq!(rate("2.5").ok(), Some(2.5));
        assert!(rate("-1").is_err() && rate("fast").is_err() && rate("inf").is_err());
    }
}

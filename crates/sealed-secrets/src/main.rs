//! `sealed-secrets-controller`: unseals SealedSecrets into Secrets. Flags and their
//! `SEALED_SECRETS_*` environment variables match upstream's.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use kube::Client;
use kube::runtime::events::Recorder;
use strongroom_controller_kit::flags::go_bool;
use strongroom_controller_kit::http::parse_listen_addr;
use strongroom_controller_kit::readiness::Readiness;
use strongroom_controller_kit::reconcile::{ErrorPolicy, ReconcileMetrics, RunConfig};
use strongroom_controller_kit::workqueue::WorkQueueMetrics;
use strongroom_controller_kit::{admin, leader, logging, pod, shutdown};
use strongroom_core::duration::parse_go_duration;
use strongroom_sealed_secrets::controller::{self, Context, Options};
use strongroom_sealed_secrets::http::{self, HttpApi, RateLimiter};
use strongroom_sealed_secrets::keys::{KeyOrder, parse_pairs};
use strongroom_sealed_secrets::keystore::{self, KeyConfig, KeyStore};
use strongroom_sealed_secrets::metrics::Metrics;
use strongroom_sealed_secrets::{CONTROLLER_NAME, LEASE_NAME};

/// The sealed-secrets controller.
#[derive(Debug, Clone, Parser)]
#[command(name = "sealed-secrets-controller", version, args_override_self = true)]
struct Args {
    /// Prefix (generateName) of key Secrets, also the legacy key Secret's name.
    #[arg(
        long,
        env = "SEALED_SECRETS_KEY_PREFIX",
        default_value = "sealed-secrets-key"
    )]
    key_prefix: String,
    /// RSA key size of new keys.
    #[arg(long, env = "SEALED_SECRETS_KEY_SIZE", default_value_t = 4096)]
    key_size: usize,
    /// Certificate validity (Go duration).
    #[arg(long, env = "SEALED_SECRETS_KEY_TTL", default_value = "87600h")]
    key_ttl: String,
    /// Common name of the certificate; empty gives an empty DN.
    #[arg(long, env = "SEALED_SECRETS_MY_CN", default_value = "")]
    my_cn: String,
    /// New key every period (Go duration; 0 disables).
    #[arg(
        long,
        visible_alias = "rotate-period",
        env = "SEALED_SECRETS_KEY_RENEW_PERIOD",
        default_value = "720h"
    )]
    key_renew_period: String,
    /// CertNotBefore or SecretCreationTimestamp.
    #[arg(
        long,
        env = "SEALED_SECRETS_KEY_ORDER_PRIORITY",
        default_value = "CertNotBefore"
    )]
    key_order_priority: KeyOrder,
    /// Generate a key at start if the newest is older than this RFC1123Z time.
    #[arg(long, env = "SEALED_SECRETS_KEY_CUTOFF_TIME", default_value = "")]
    key_cutoff_time: String,
    /// Unseal the deprecated v1 `spec.data` format.
    #[arg(long, env = "SEALED_SECRETS_ACCEPT_DEPRECATED_V1_DATA", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    accept_deprecated_v1_data: bool,
    /// Watch every namespace (false: only the controller's).
    #[arg(long, env = "SEALED_SECRETS_ALL_NAMESPACES", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    all_namespaces: bool,
    /// Only SealedSecrets with these labels.
    #[arg(long, env = "SEALED_SECRETS_LABEL_SELECTOR", default_value = "")]
    label_selector: String,
    /// `/v1/verify` requests per second.
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT", default_value_t = 2.0)]
    rate_limit: f64,
    /// `/v1/verify` burst.
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT_BURST", default_value_t = 2.0)]
    rate_limit_burst: f64,
    /// `k=v,...` labels of new key Secrets.
    #[arg(long, env = "SEALED_SECRETS_PRIVATEKEY_LABELS", default_value = "")]
    privatekey_labels: String,
    /// `k=v,...` annotations of new key Secrets.
    #[arg(
        long,
        env = "SEALED_SECRETS_PRIVATEKEY_ANNOTATIONS",
        default_value = ""
    )]
    privatekey_annotations: String,
    /// Write `.status` (conditions, observedGeneration).
    #[arg(long, env = "SEALED_SECRETS_UPDATE_STATUS", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    update_status: bool,
    /// API address (`/healthz`, `/v1/...`).
    #[arg(
        long,
        env = "SEALED_SECRETS_LISTEN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    listen_addr: String,
    /// Metrics address.
    #[arg(
        long,
        env = "SEALED_SECRETS_LISTEN_METRICS_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    listen_metrics_addr: String,
    /// SealedSecrets unsealed in parallel.
    #[arg(long, env = "SEALED_SECRETS_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Re-check every SealedSecret this often (drift repair; Go duration).
    #[arg(long, env = "SEALED_SECRETS_RESYNC_PERIOD", default_value = "10m")]
    resync_period: String,
    /// Hold a coordination.k8s.io Lease so several replicas are safe.
    #[arg(long, env = "SEALED_SECRETS_LEADER_ELECT", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Also watch these namespaces (comma list); the primary watch then covers only the
    /// controller's namespace.
    #[arg(long, env = "SEALED_SECRETS_ADDITIONAL_NAMESPACES", default_value = "")]
    additional_namespaces: String,
    /// Also delete the Secret of the same name when its SealedSecret is deleted (for Secrets
    /// without an ownerReference); only Secrets the SealedSecret may replace are deleted.
    #[arg(long, env = "SEALED_SECRETS_OLD_GC_BEHAVIOR", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    old_gc_behavior: bool,
    /// Accepted for compatibility: key Secrets are always watched (adds, relabels and deletes).
    #[arg(long, env = "SEALED_SECRETS_WATCH_FOR_SECRETS", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    watch_for_secrets: bool,
    /// Do not watch Secrets, so a deleted Secret is recreated only at the next resync.
    #[arg(long, env = "SEALED_SECRETS_SKIP_RECREATE", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    skip_recreate: bool,
    /// Accepted for compatibility: failures retry with per-object exponential backoff, without a cap on attempts.
    #[arg(long, env = "SEALED_SECRETS_MAX_UNSEAL_RETRIES", default_value_t = 5)]
    max_unseal_retries: u32,
    /// Accepted for compatibility (client-go rate limit); the Rust client is not rate limited.
    #[arg(
        long,
        env = "SEALED_SECRETS_KUBECLIENT_QPS",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    kubeclient_qps: f64,
    /// Accepted for compatibility (client-go burst).
    #[arg(long, env = "SEALED_SECRETS_KUBECLIENT_BURST", default_value_t = 10)]
    kubeclient_burst: i64,
    /// Accepted for compatibility: every log line goes to stderr.
    #[arg(long, env = "SEALED_SECRETS_LOG_INFO_STDOUT", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
    log_info_stdout: bool,
    /// Accepted for compatibility (HTTP read timeout, Go duration).
    #[arg(long, env = "SEALED_SECRETS_READ_TIMEOUT", default_value = "2m")]
    read_timeout: String,
    /// Accepted for compatibility (HTTP write timeout, Go duration).
    #[arg(long, env = "SEALED_SECRETS_WRITE_TIMEOUT", default_value = "2m")]
    write_timeout: String,
    /// Leader election: how long a Lease stays valid without renewal (Go duration).
    #[arg(
        long,
        env = "SEALED_SECRETS_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s"
    )]
    leader_election_lease_duration: String,
    /// Leader election: a leader that has not renewed for this long stops (Go duration).
    #[arg(
        long,
        env = "SEALED_SECRETS_LEADER_ELECTION_RENEW_DEADLINE",
        default_value = "10s"
    )]
    leader_election_renew_deadline: String,
    /// Leader election: how often the leader renews and followers retry (Go duration).
    #[arg(
        long,
        env = "SEALED_SECRETS_LEADER_ELECTION_RETRY_PERIOD",
        default_value = "2s"
    )]
    leader_election_retry_period: String,
    /// Minimum level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(long, env = "SEALED_SECRETS_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Output format.
    #[arg(
        long,
        env = "SEALED_SECRETS_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: logging::LogFormat,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_go_duration(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

/// The namespaces to watch: none (meaning all), the controller's own, or the controller's plus
/// `--additional-namespaces` (then the primary watch shrinks to the controller namespace, as
/// upstream). Listed namespaces that do not exist are logged and skipped, as upstream.
async fn watched_namespaces(client: &Client, args: &Args, own: &str) -> Vec<String> {
    let extra: Vec<&str> = args
        .additional_namespaces
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if extra.is_empty() {
        return if args.all_namespaces {
            Vec::new()
        } else {
            vec![own.to_string()]
        };
    }
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let mut out = vec![own.to_string()];
    for ns in extra {
        if out.iter().any(|n| n == ns) {
            continue;
        }
        match api.get_opt(ns).await {
            Ok(Some(_)) => out.push(ns.to_string()),
            Ok(None) => tracing::warn!(
                namespace = ns,
                "additional namespace does not exist: skipped"
            ),
            // without the right to read Namespaces (a namespaced RBAC setup) watch it anyway
            Err(e) => {
                tracing::warn!(namespace = ns, error = %e, "cannot check additional namespace: watching it anyway");
                out.push(ns.to_string());
            }
        }
    }
    out
}

/// Everything parsed from the flags before anything starts.
struct Settings {
    keys: KeyConfig,
    lease: leader::LeaseConfig,
    resync: Duration,
}

fn settings(args: &Args, namespace: &str) -> anyhow::Result<Settings> {
    duration("read-timeout", &args.read_timeout)?;
    duration("write-timeout", &args.write_timeout)?;
    let cutoff = if args.key_cutoff_time.is_empty() {
        None
    } else {
        Some(
            DateTime::parse_from_rfc2822(&args.key_cutoff_time)
                .map_err(|e| anyhow::anyhow!("--key-cutoff-time: {e}"))?
                .with_timezone(&Utc),
        )
    };
    let keys = KeyConfig {
        namespace: namespace.to_string(),
        prefix: args.key_prefix.clone(),
        bits: args.key_size,
        ttl: chrono::Duration::from_std(duration("key-ttl", &args.key_ttl)?)?,
        common_name: args.my_cn.clone(),
        renew_period: chrono::Duration::from_std(duration(
            "key-renew-period",
            &args.key_renew_period,
        )?)?,
        order: args.key_order_priority,
        cutoff,
        labels: parse_pairs("--privatekey-labels", &args.privatekey_labels)
            .map_err(anyhow::Error::msg)?,
        annotations: parse_pairs("--privatekey-annotations", &args.privatekey_annotations)
            .map_err(anyhow::Error::msg)?,
    };
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
        ..leader::LeaseConfig::new(namespace, LEASE_NAME, &pod::identity("sealed-secrets"))
    };
    lease.validate().map_err(anyhow::Error::msg)?;
    Ok(Settings {
        keys,
        lease,
        resync: duration("resync-period", &args.resync_period)?,
    })
}

fn main() -> ExitCode {
    shutdown::run_main(run)
}

async fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    logging::init(&logging::LogArgs {
        log_level: args.log_level.clone(),
        log_format: args.log_format,
    });
    let shutdown = shutdown::on_signal()?;
    let namespace = pod::namespace();
    let settings = settings(&args, &namespace)?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry)?;
    let reconcile_metrics = ReconcileMetrics::register(&registry)?;
    let queues = WorkQueueMetrics::register(&registry)?;
    let keys = Arc::new(KeyStore::default());
    let readiness = Readiness::default();
    readiness.stop_on(shutdown.clone());
    // the servers answer until the process exits (in-flight kubeseal requests during the
    // grace period); /readyz turns 503 at the signal so the Service stops routing here
    let servers = shutdown::CancellationToken::new();
    let _stop_servers = servers.clone().drop_guard();

    // serve /healthz and the API before anything slow; readiness waits for the keys
    let api = Arc::new(HttpApi {
        keys: keys.clone(),
        metrics: metrics.clone(),
        limiter: RateLimiter::new(args.rate_limit, args.rate_limit_burst),
        accept_v1_data: args.accept_deprecated_v1_data,
    });
    let listen = http::serve(parse_listen_addr(&args.listen_addr)?, api, servers.clone()).await?;
    let metrics_addr = admin::serve(
        parse_listen_addr(&args.listen_metrics_addr)?,
        registry,
        readiness.clone(),
        servers.clone(),
    )
    .await?;
    tracing::info!(%listen, %metrics_addr, %namespace, "sealed-secrets controller starting");

    let client = Client::try_default().await?;
    // every replica holds the keys (followers serve the certificate and /v1/verify too)
    tokio::spawn(keystore::follow(
        client.clone(),
        settings.keys.clone(),
        keys.clone(),
        readiness.component("sealing keys"),
        shutdown.clone(),
    ));

    let election = args.leader_elect.then(|| leader::Election {
        client: client.clone(),
        lease: settings.lease.clone(),
    });
    let run_cfg = RunConfig {
        controller: CONTROLLER_NAME,
        namespaces: Vec::new(),
        label_selector: (!args.label_selector.is_empty()).then(|| args.label_selector.clone()),
        concurrency: args.concurrency,
        resync: settings.resync,
        shutdown_grace: Duration::from_secs(2),
    };
    let grace = run_cfg.shutdown_grace;
    let ended = leader::run_while_leading(election, &shutdown, grace, |stop| {
        lead(
            client,
            args,
            settings,
            keys,
            metrics,
            reconcile_metrics,
            queues,
            readiness,
            run_cfg,
            stop,
        )
    })
    .await?;
    Ok(match ended {
        leader::Ended::LostLease => ExitCode::FAILURE,
        leader::Ended::Shutdown | leader::Ended::Finished => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
    })
}

/// What only the leader does: make sure a key exists, renew keys, and run the controllers.
#[allow(clippy::too_many_arguments)]
async fn lead(
    client: Client,
    args: Args,
    settings: Settings,
    keys: Arc<KeyStore>,
    metrics: Metrics,
    reconcile_metrics: ReconcileMetrics,
    queues: WorkQueueMetrics,
    readiness: Readiness,
    mut run_cfg: RunConfig,
    stop: shutdown::CancellationToken,
) -> anyhow::Result<()> {
    keystore::ensure_key(&client, &settings.keys, &keys).await?;
    tokio::spawn(keystore::renew(
        client.clone(),
        settings.keys.clone(),
        keys.clone(),
        stop.clone(),
    ));
    let recorder = Recorder::new(client.clone(), controller::reporter());
    let ctx = Arc::new(Context {
        client: client.clone(),
        keys,
        metrics,
        policy: ErrorPolicy::new(CONTROLLER_NAME, reconcile_metrics, recorder, stop)
            .with_action("Unseal"),
        queue: queues.queue(CONTROLLER_NAME),
        accept_v1_data: args.accept_deprecated_v1_data,
        update_status: args.update_status,
        last_key: Default::default(),
        resync: settings.resync,
        secret_index: Default::default(),
        status_written: Default::default(),
    });
    run_cfg.namespaces = watched_namespaces(&client, &args, &settings.keys.namespace).await;
    let options = Options {
        watch_secrets: !args.skip_recreate,
        old_gc: args.old_gc_behavior,
    };
    controller::run(ctx, &run_cfg, options, &readiness).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every boolean flag, with its default.
    const BOOLS: &[(&str, bool)] = &[
        ("accept-deprecated-v1-data", true),
        ("all-namespaces", true),
        ("update-status", true),
        ("leader-elect", true),
        ("old-gc-behavior", false),
        ("watch-for-secrets", false),
        ("skip-recreate", false),
        ("log-info-stdout", true),
    ];

    fn value(args: &Args, flag: &str) -> bool {
        match flag {
            "accept-deprecated-v1-data" => args.accept_deprecated_v1_data,
            "all-namespaces" => args.all_namespaces,
            "update-status" => args.update_status,
            "leader-elect" => args.leader_elect,
            "old-gc-behavior" => args.old_gc_behavior,
            "watch-for-secrets" => args.watch_for_secrets,
            "skip-recreate" => args.skip_recreate,
            "log-info-stdout" => args.log_info_stdout,
            other => panic!("unknown flag {other}"),
        }
    }

    fn parse(argv: &[&str]) -> Args {
        Args::try_parse_from(
            std::iter::once("sealed-secrets-controller").chain(argv.iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn boolean_flags_take_go_forms() {
        for (flag, default) in BOOLS {
            assert_eq!(value(&parse(&[]), flag), *default, "default of --{flag}");
            assert!(
                value(&parse(&[&format!("--{flag}")]), flag),
                "bare --{flag}"
            );
            for (text, want) in [("true", true), ("false", false), ("1", true), ("F", false)] {
                assert_eq!(
                    value(&parse(&[&format!("--{flag}={text}")]), flag),
                    want,
                    "--{flag}={text}"
                );
            }
            // as in Go, a separate word is not the flag's value
            let err =
                Args::try_parse_from(["sealed-secrets-controller", &format!("--{flag}"), "false"])
                    .err()
                    .unwrap_or_else(|| panic!("--{flag} false must not parse as a value"));
            assert!(err.to_string().contains("false"), "{err}");
            assert!(Args::try_parse_from(["x", &format!("--{flag}=maybe")]).is_err());
        }
    }

    #[test]
    fn a_flag_given_twice_takes_the_last_value() {
        let args = parse(&[
            "--key-size",
            "2048",
            "--key-size",
            "3072",
            "--update-status=false",
            "--update-status",
        ]);
        assert_eq!(args.key_size, 3072);
        assert!(args.update_status);
        let args = parse(&["--label-selector", "a=b", "--label-selector=c=d"]);
        assert_eq!(args.label_selector, "c=d");
    }
}

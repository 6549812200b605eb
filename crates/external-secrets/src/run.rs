//! Wiring: the caches, the three controllers and the watches that trigger them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::reflector;
use kube::runtime::reflector::{self, ObjectRef, Store};

use kube::runtime::{WatchStreamExt, watcher as watcher_mod};
use kube::{Client, ResourceExt};
use strongroom_controller_kit::lanes::Lanes;
use strongroom_controller_kit::readiness::Readiness;
use strongroom_controller_kit::reconcile::ErrorPolicy;
use strongroom_controller_kit::shutdown::CancellationToken;
use strongroom_controller_kit::watch::{
    backed_off_watch, guarded_watch, report_synced, scoped_api, slim,
};
use strongroom_controller_kit::workqueue::{LaneGate, WorkQueueMetrics};
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, MANAGED_LABEL,
    PushSecret, SecretStore, StoreKind,
};
use strongroom_core::template::Engine;
use strongroom_provider_api::ProviderRegistry;

use crate::context::Context;
use crate::metrics::{Kind, Metrics, Subject};
use crate::stores::{StoreOptions, Stores};
use crate::{externalsecret, store};

/// What the controllers are told at start.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--namespace`: one namespace, or all.
    pub namespace: Option<String>,
    /// `--concurrent`.
    pub concurrency: u16,
    /// `--enable-secret-store-reconciler`.
    pub secret_stores: bool,
    /// `--enable-cluster-store-reconciler`.
    pub cluster_stores: bool,
    /// `--enable-cluster-external-secret-reconciler` (off when `--namespace` is set).
    pub cluster_external_secrets: bool,
    /// `--enable-push-secret-reconciler`.
    pub push_secrets: bool,
    /// `--enable-cluster-push-secret-reconciler` (off when `--namespace` is set).
    pub cluster_push_secrets: bool,
    /// Store access options.
    pub stores: StoreOptions,
    /// `--template-left-delimiter` and `--template-right-delimiter`.
    pub template_delimiters: (String, String),
    /// `--generator-gc-grace-period`.
    pub generator_gc_grace: Duration,
    /// `--unsafe-allow-generic-targets`.
    pub generic_targets: bool,
}

/// The providers compiled into this build, one line per cargo feature.
pub fn providers() -> ProviderRegistry {
    #[allow(unused_mut)]
    let mut builder = ProviderRegistry::builder();
    #[cfg(feature = "aws")]
    {
        builder = builder.with(strongroom_provider_aws::AwsProvider::default());
    }
    #[cfg(feature = "azure")]
    {
        builder = builder.with(strongroom_provider_azure::AzureProvider::default());
    }
    #[cfg(feature = "fake")]
    {
        builder = builder.with(strongroom_provider_fake::FakeProvider);
    }
    #[cfg(feature = "gcp")]
    {
        builder = builder.with(strongroom_provider_gcp::GcpProvider::from_env());
    }
    #[cfg(feature = "kubernetes")]
    {
        builder = builder.with(strongroom_provider_kubernetes::KubernetesProvider);
    }
    #[cfg(feature = "vault")]
    {
        builder = builder.with(strongroom_provider_vault::VaultProvider);
    }
    #[cfg(feature = "webhook")]
    {
        builder = builder.with(strongroom_provider_webhook::WebhookProvider);
    }
    builder.build()
}

/// The reflector-backed store caches the ExternalSecret controller reads stores from; they
/// are filled by the watches [`run_controllers`] starts.
struct Caches {
    /// Generic targets touched (namespace, name), from their watches.
    generic_touched: tokio::sync::mpsc::UnboundedReceiver<crate::generic_watch::Touched>,
    secret_stores: (Store<SecretStore>, reflector::store::Writer<SecretStore>),
    cluster_stores: (
        Store<ClusterSecretStore>,
        reflector::store::Writer<ClusterSecretStore>,
    ),
    /// The PushSecret cache's writer, when the PushSecret reconciler runs.
    pushes: Option<reflector::store::Writer<PushSecret>>,
}

impl Context {
    /// The shared context, with empty store caches (filled once the controllers run).
    pub fn new(
        client: Client,
        metrics: Metrics,
        policy: ErrorPolicy,
        options: &Options,
        store_requeue: Duration,
    ) -> (Arc<Self>, CachesHandle) {
        let (ss_reader, ss_writer) = reflector::store();
        let (css_reader, css_writer) = reflector::store();
        let (ps_reader, ps_writer) = match options.push_secrets {
            true => {
                let (reader, writer) = reflector::store();
                (Some(reader), Some(writer))
            }
            false => (None, None),
        };
        let stores = Stores::new(
            client.clone(),
            ss_reader.clone(),
            css_reader.clone(),
            providers(),
            Arc::new(metrics.clone()),
            options.stores.clone(),
        )
        .with_rate_limit_metrics(metrics.clone());
        let (generic, generic_touched) = crate::generic_watch::GenericTargets::new(
            options.generic_targets,
            options.namespace.clone(),
        );
        let ctx = Arc::new(Self {
            generic,
            client,
            stores: Arc::new(stores),
            engine: Engine::external_secrets().with_delimiters(
                &options.template_delimiters.0,
                &options.template_delimiters.1,
            ),
            rewrite_engine: Engine::external_secrets(),
            metrics,
            policy,
            cluster_stores: options.cluster_stores,
            pushes: ps_reader,
            store_requeue,
            read_max_age: options.stores.read_ttl,
            generator_gc_grace: options.generator_gc_grace,
            synced: Default::default(),
            own_writes: Default::default(),
        });
        (
            ctx,
            CachesHandle(Caches {
                generic_touched,
                secret_stores: (ss_reader, ss_writer),
                cluster_stores: (css_reader, css_writer),
                pushes: ps_writer,
            }),
        )
    }
}

/// The store caches' writers, handed from [`Context::new`] to [`run_controllers`].
pub struct CachesHandle(Caches);

/// What triggers an ExternalSecret's reconcile besides itself: its target Secret (by
/// namespace and name) and its stores.
#[derive(Default)]
struct Index {
    by_target: HashMap<(String, String), BTreeSet<String>>,
}

fn target_of(es: &ExternalSecret) -> (String, String) {
    let ns = es.namespace().unwrap_or_default();
    let name = es
        .spec
        .target
        .as_ref()
        .and_then(|t| t.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| es.name_any());
    (ns, name)
}

fn reads_store(es: &ExternalSecret, kind: StoreKind, name: &str) -> bool {
    let is = |r: Option<&strongroom_core::crd::external_secrets::SecretStoreRef>| {
        r.is_some_and(|r| r.kind_or_default() == kind && r.name.as_deref() == Some(name))
    };
    is(es.spec.secret_store_ref.as_ref())
        || es
            .spec
            .data
            .iter()
            .flatten()
            .any(|d| is(d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
        || es
            .spec
            .data_from
            .iter()
            .flatten()
            .any(|d| is(d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
}

/// The predicate of ExternalSecret events: status-only changes (our own status writes) and our
/// own finalizer coming or going do not trigger a reconcile; spec, labels, annotations, other
/// finalizers and deletion do.
fn es_change_key(es: &ExternalSecret) -> Option<u64> {
    let mut parts = serde_json::to_vec(&es.metadata.generation).unwrap_or_default();
    parts.extend(serde_json::to_vec(&es.metadata.labels).unwrap_or_default());
    parts.extend(serde_json::to_vec(&es.metadata.annotations).unwrap_or_default());
    let others: Vec<&String> = es
        .finalizers()
        .iter()
        .filter(|f| *f != strongroom_core::crd::external_secrets::EXTERNAL_SECRET_FINALIZER)
        .collect();
    parts.extend(serde_json::to_vec(&others).unwrap_or_default());
    parts.extend(serde_json::to_vec(&es.metadata.deletion_timestamp).unwrap_or_default());
    Some(crate::refresh::source_seed(&parts))
}

/// Runs the controllers until `stop`, each measured by a queue of `queues` named as
/// upstream's controller of the kind.
pub async fn run_controllers(
    (ctx, caches): (Arc<Context>, CachesHandle),
    options: Options,
    readiness: &Readiness,
    queues: &WorkQueueMetrics,
    stop: CancellationToken,
) {
    let Caches {
        generic_touched,
        secret_stores: (ss_reader, ss_writer),
        cluster_stores: (css_reader, css_writer),
        pushes: ps_writer,
    } = caches.0;
    let client = ctx.client.clone();
    let ns = options.namespace.as_deref();
    let scope = ns.unwrap_or("all namespaces").to_string();
    let config = Config::default().concurrency(options.concurrency);
    let config_ces = config.clone();
    let config_ps = config.clone();
    let config_cps = config.clone();
    let config_gs = config.clone();

    // stores: one cached watch each, shared by the store controllers (through the stream) and
    // by the ExternalSecret controller (through the cache)
    let ss_stream = reflector(
        ss_writer,
        report_synced(
            backed_off_watch(
                scoped_api::<SecretStore>(client.clone(), ns),
                watcher_mod::Config::default(),
            ),
            readiness.component(&format!("secretstores in {scope}")),
        )
        .modify(slim),
    )
    .inspect(forget_deleted(ctx.metrics.clone(), Kind::SecretStore))
    .applied_objects();
    let css_stream = reflector(
        css_writer,
        report_synced(
            backed_off_watch(
                Api::<ClusterSecretStore>::all(client.clone()),
                watcher_mod::Config::default(),
            ),
            readiness.component("clustersecretstores"),
        )
        .modify(slim),
    )
    .inspect(forget_deleted(
        ctx.metrics.clone(),
        Kind::ClusterSecretStore,
    ))
    .applied_objects();
    let (ss_for_es, ss_for_store) = fan_out(ss_stream);
    let (css_for_es, css_for_store) = fan_out(css_stream);

    // PushSecrets: one cached watch, for the PushSecret controller and for the stores'
    // finalizer (a store is checked again when a PushSecret using it changes or goes)
    type PushEvents = futures::stream::BoxStream<
        'static,
        Result<watcher_mod::Event<PushSecret>, watcher_mod::Error>,
    >;
    let (ps_for_push, ps_for_ss, ps_for_css): (Option<PushEvents>, PushEvents, PushEvents) =
        match ps_writer {
            Some(writer) => {
                let events = reflector(
                    writer,
                    backed_off_watch(
                        scoped_api::<PushSecret>(client.clone(), ns),
                        watcher_mod::Config::default(),
                    ),
                )
                .inspect(forget_deleted(ctx.metrics.clone(), Kind::PushSecret));
                let (for_push, for_stores) = fan_out(events);
                // the stores see PushSecrets only: a failing PushSecret watch (no CRD, say) is
                // the PushSecret controller's to report, and an error in a trigger stream
                // would back off all of a store controller's triggers
                let for_stores = for_stores.filter(|e| futures::future::ready(e.is_ok()));
                let (for_ss, for_css) = fan_out(for_stores);
                (Some(for_push.boxed()), for_ss.boxed(), for_css.boxed())
            }
            None => (
                None,
                futures::stream::empty().boxed(),
                futures::stream::empty().boxed(),
            ),
        };

    let (es_reader, es_writer) = reflector::store();
    let index = Arc::new(Mutex::new(Index::default()));
    let es_stream = reflector(
        es_writer,
        report_synced(
            guarded_watch::<ExternalSecret>(
                client.clone(),
                ns,
                watcher_mod::Config::default(),
                invalid_reporter(),
                es_reader.clone(),
            ),
            readiness.component(&format!("externalsecrets in {scope}")),
        )
        .modify(slim),
    )
    .inspect({
        // a deleted ExternalSecret leaves the index (and its metrics), so both follow the
        // live set
        let (index, metrics, forget) = (index.clone(), ctx.metrics.clone(), ctx.clone());
        move |event| {
            if let Ok(watcher_mod::Event::Delete(es)) = event {
                let (ns, target) = target_of(es);
                let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(names) = index.by_target.get_mut(&(ns.clone(), target.clone())) {
                    names.remove(&es.name_any());
                    if names.is_empty() {
                        index.by_target.remove(&(ns.clone(), target));
                    }
                }
                metrics.forget(Kind::ExternalSecret, Subject::of(es));
                forget.forget_synced(&es.uid().unwrap_or_default());
                let (ns, target) = target_of(es);
                forget.wrote("ExternalSecret", &ns, &es.name_any(), None);
                forget.wrote("Secret", &ns, &target, None);
                forget.generic.release(&(ns, es.name_any()));
            }
        }
    })
    .applied_objects()
    .inspect({
        let index = index.clone();
        move |event| {
            if let Ok(es) = event {
                let (ns, target) = target_of(es);
                index
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .by_target
                    .entry((ns, target))
                    .or_default()
                    .insert(es.name_any());
            }
        }
    })
    .predicate_filter(es_change_key, Default::default())
    .filter({
        // our own finalizer patch needs no second reconcile
        let ctx = ctx.clone();
        move |event| {
            let own = matches!(event, Ok(es) if ctx.is_own_write(
                "ExternalSecret",
                &es.namespace().unwrap_or_default(),
                &es.name_any(),
                es.metadata.resource_version.as_deref(),
            ));
            futures::future::ready(!own)
        }
    });

    // managed Secrets, metadata only: an edited or deleted target is repaired at once
    let secret_stream = report_synced(
        backed_off_watch(
            scoped_api::<PartialObjectMeta<Secret>>(client.clone(), ns),
            watcher_mod::Config::default().labels(&format!("{MANAGED_LABEL}=true")),
        ),
        readiness.component(&format!("managed secrets in {scope}")),
    )
    .touched_objects();

    let es_queue = queues.queue(Kind::ExternalSecret.controller_name());
    // no limit here: every due ExternalSecret waits in the lanes below, new and changed ones
    // ahead of refreshes
    let es_controller = Controller::for_stream(es_queue.triggers(es_stream), es_reader.clone())
        .with_config(Config::default().concurrency(0))
        .watches_stream(
            secret_stream,
            es_queue.mapper({
                let (index, ctx) = (index.clone(), ctx.clone());
                move |secret: PartialObjectMeta<Secret>| {
                    let ns = secret.namespace().unwrap_or_default();
                    let names = index
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .by_target
                        .get(&(ns.clone(), secret.name_any()))
                        .cloned()
                        .unwrap_or_default();
                    // the Secret as its one ExternalSecret just wrote it: nothing to repair
                    // (a Secret several ExternalSecrets merge into still triggers them all)
                    if names.len() == 1
                        && ctx.is_own_write(
                            "Secret",
                            &ns,
                            &secret.name_any(),
                            secret.metadata.resource_version.as_deref(),
                        )
                    {
                        return Vec::new();
                    }
                    names
                        .into_iter()
                        .map(move |n| ObjectRef::new(&n).within(&ns))
                        .collect::<Vec<_>>()
                }
            }),
        )
        .watches_stream(
            ss_for_es,
            es_queue.mapper({
                let reader = es_reader.clone();
                move |s: SecretStore| {
                    dependants(
                        &reader,
                        StoreKind::SecretStore,
                        s.namespace(),
                        &s.name_any(),
                    )
                }
            }),
        )
        .watches_stream(
            css_for_es,
            es_queue.mapper({
                let reader = es_reader.clone();
                move |s: ClusterSecretStore| {
                    dependants(&reader, StoreKind::ClusterSecretStore, None, &s.name_any())
                }
            }),
        )
        // generic targets: one watch per kind, started by the first ExternalSecret that reads it
        .reconcile_on({
            let index = index.clone();
            let refs = es_queue.mapper(move |(ns, name): (String, String)| {
                index
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .by_target
                    .get(&(ns.clone(), name))
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |n| ObjectRef::new(&n).within(&ns))
                    .collect::<Vec<_>>()
            });
            tokio_stream_of(generic_touched)
                .flat_map(move |touched| futures::stream::iter(refs(touched)))
        })
        .graceful_shutdown_on(stop.clone().cancelled_owned());
    let es_controller = es_queue.run_in_lanes(
        es_controller,
        externalsecret::reconcile,
        externalsecret::error_policy,
        ctx.clone(),
        LaneGate {
            lanes: Lanes::new(usize::from(options.concurrency)),
            lane_of: Box::new(externalsecret::lane),
            stop: stop.clone(),
        },
    );

    let ss_queue = queues.queue(Kind::SecretStore.controller_name());
    let ss_controller = ss_queue.run(
        Controller::for_stream(ss_queue.triggers(ss_for_store), ss_reader.clone())
            .with_config(config.clone())
            .watches_stream(
                ps_for_ss.touched_objects(),
                ss_queue.mapper(move |ps: PushSecret| stores_of(&ps, &ss_reader)),
            )
            .graceful_shutdown_on(stop.clone().cancelled_owned()),
        store::reconcile::<SecretStore>,
        store::error_policy::<SecretStore>,
        ctx.clone(),
    );
    let css_queue = queues.queue(Kind::ClusterSecretStore.controller_name());
    let css_controller = css_queue.run(
        Controller::for_stream(css_queue.triggers(css_for_store), css_reader.clone())
            .with_config(config)
            .watches_stream(
                ps_for_css.touched_objects(),
                css_queue.mapper(move |ps: PushSecret| stores_of(&ps, &css_reader)),
            )
            .graceful_shutdown_on(stop.clone().cancelled_owned()),
        store::reconcile::<ClusterSecretStore>,
        store::error_policy::<ClusterSecretStore>,
        ctx.clone(),
    );
    tracing::info!(namespace = %scope, "watching ExternalSecrets, SecretStores and ClusterSecretStores");
    let secret_stores = async {
        if options.secret_stores {
            ss_controller.await
        } else {
            drain(ss_controller, &stop).await
        }
    };
    let cluster_stores = async {
        if options.cluster_stores {
            css_controller.await
        } else {
            drain(css_controller, &stop).await
        }
    };
    let ces = async {
        if options.cluster_external_secrets && options.namespace.is_none() {
            fan_out_controller::<ClusterExternalSecret>(
                ctx.clone(),
                config_ces,
                queues,
                stop.clone(),
            )
            .await
        }
    };
    let pushes = async {
        if let (Some(events), Some(reader)) = (ps_for_push, ctx.pushes.clone()) {
            push_secrets(
                ctx.clone(),
                (events, reader),
                config_ps,
                options.namespace.clone(),
                queues,
                stop.clone(),
            )
            .await
        }
    };
    let cluster_pushes = async {
        if options.cluster_push_secrets && options.namespace.is_none() {
            fan_out_controller::<ClusterPushSecret>(ctx.clone(), config_cps, queues, stop.clone())
                .await
        }
    };
    let states = generator_states(
        ctx.clone(),
        config_gs,
        options.namespace.clone(),
        queues,
        stop.clone(),
    );
    let clients = tend_clients(&ctx, &stop);
    tokio::join!(
        states,
        es_controller,
        secret_stores,
        cluster_stores,
        ces,
        pushes,
        cluster_pushes,
        clients
    );
}

/// How often clients of deleted or changed stores are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How long shutdown waits for provider clients to close (token revocation), within the
/// leader runner's 2 s grace.
const CLOSE_CLIENTS_WITHIN: Duration = Duration::from_millis(1800);

/// How long a client still used by an in-flight read at shutdown is left to finish first.
const CLOSE_WAIT: Duration = Duration::from_millis(1000);

/// Closes the clients of deleted and changed stores every [`SWEEP_EVERY`], and every client
/// at `stop`: the sessions the controller opened (Vault tokens, cloud logins) end with it, not
/// at their TTL. The closing starts at the signal, in its own branch, so no controller that
/// is slow to wind down can keep it from running within the shutdown grace.
async fn tend_clients(ctx: &Context, stop: &CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                if tokio::time::timeout(CLOSE_CLIENTS_WITHIN, ctx.stores.close_all(CLOSE_WAIT))
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "closing provider clients took longer than {CLOSE_CLIENTS_WITHIN:?}; exiting anyway"
                    );
                }
                return;
            }
            _ = tick.tick() => {
                let closed = ctx.stores.sweep().await;
                if closed > 0 {
                    tracing::debug!(closed, "closed the clients of deleted or changed stores");
                }
            }
        }
    }
}

/// A fan-out controller (ClusterExternalSecret or ClusterPushSecret): its own objects, and
/// every namespace change (a namespace that starts or stops matching).
async fn fan_out_controller<P: crate::fanout::Parent>(
    ctx: Arc<Context>,
    config: Config,
    queues: &WorkQueueMetrics,
    stop: CancellationToken,
) {
    let queue = queues.queue(P::METRICS.controller_name());
    let client = ctx.client.clone();
    let (reader, writer) = reflector::store();
    let parents = reflector(
        writer,
        backed_off_watch(
            Api::<P>::all(client.clone()),
            watcher_mod::Config::default(),
        ),
    )
    .inspect(forget_deleted(ctx.metrics.clone(), P::METRICS))
    .applied_objects();
    let controller = Controller::for_stream(queue.triggers(parents), reader.clone())
        .with_config(config)
        .watches(
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client),
            watcher_mod::Config::default(),
            queue.mapper(move |_: k8s_openapi::api::core::v1::Namespace| {
                reader
                    .state()
                    .iter()
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            }),
        )
        .graceful_shutdown_on(stop.cancelled_owned());
    queue
        .run(
            controller,
            crate::fanout::reconcile::<P>,
            crate::fanout::error_policy::<P>,
            ctx,
        )
        .await;
}

/// The PushSecret controller: its own objects, and every Secret change in its scope (metadata
/// only, not cached), so a changed source Secret (by name or by labels) is pushed at once.
async fn push_secrets(
    ctx: Arc<Context>,
    (events, reader): (
        impl futures::Stream<Item = Result<watcher_mod::Event<PushSecret>, watcher_mod::Error>>
        + Send
        + 'static,
        Store<PushSecret>,
    ),
    config: Config,
    namespace: Option<String>,
    queues: &WorkQueueMetrics,
    stop: CancellationToken,
) {
    let queue = queues.queue(Kind::PushSecret.controller_name());
    let client = ctx.client.clone();
    let pushes = events.applied_objects();
    let controller = Controller::for_stream(queue.triggers(pushes), reader.clone());
    let secrets = backed_off_watch(
        scoped_api::<PartialObjectMeta<Secret>>(client, namespace.as_deref()),
        watcher_mod::Config::default(),
    )
    .touched_objects();
    let controller = controller
        .with_config(config)
        .watches_stream(
            secrets,
            queue.mapper(move |secret: PartialObjectMeta<Secret>| {
                let (ns, name) = (secret.namespace(), secret.name_any());
                reader
                    .state()
                    .iter()
                    .filter(|ps| ps.namespace() == ns)
                    .filter(|ps| {
                        // the source by name, or by labels (a generator source reads no Secret)
                        match crate::push_source::SourceSpec::of(&ps.spec.selector) {
                            Ok(crate::push_source::SourceSpec::Named(n)) => n == name,
                            Ok(crate::push_source::SourceSpec::Selected(labels)) => {
                                crate::stores::selector_matches(labels, secret.labels())
                            }
                            _ => false,
                        }
                    })
                    .map(|ps| ObjectRef::from_obj(ps.as_ref()))
                    .collect::<Vec<_>>()
            }),
        )
        .graceful_shutdown_on(stop.cancelled_owned());
    queue
        .run(
            controller,
            crate::push_secret::reconcile,
            crate::push_secret::error_policy,
            ctx,
        )
        .await;
}

/// The GeneratorState controller: cleanup of deleted states, deletion at their deadline.
async fn generator_states(
    ctx: Arc<Context>,
    config: Config,
    namespace: Option<String>,
    queues: &WorkQueueMetrics,
    stop: CancellationToken,
) {
    use strongroom_core::crd::generators::GeneratorState;
    let queue = queues.queue(GENERATOR_STATE_CONTROLLER);
    let (reader, writer) = reflector::store();
    let states = reflector(
        writer,
        backed_off_watch(
            scoped_api::<GeneratorState>(ctx.client.clone(), namespace.as_deref()),
            watcher_mod::Config::default(),
        ),
    )
    .applied_objects();
    let controller = Controller::for_stream(queue.triggers(states), reader)
        .with_config(config)
        .graceful_shutdown_on(stop.cancelled_owned());
    queue
        .run(
            controller,
            crate::generator_state::reconcile,
            crate::generator_state::error_policy,
            ctx,
        )
        .await;
}

/// The GeneratorState controller's name, as upstream's controller-runtime names it.
const GENERATOR_STATE_CONTROLLER: &str = "generatorstate";

/// A disabled store controller reconciles nothing; the watch still runs (the ExternalSecret
/// controller reads the cache it fills).
async fn drain(controller: impl std::future::Future<Output = ()>, stop: &CancellationToken) {
    // dropping the controller drops its copy of the stream, so nothing buffers for it
    drop(controller);
    stop.cancelled().await
}

/// The stores in `reader` a PushSecret refers to (for the stores' finalizer).
fn stores_of<K: store::StoreObject>(ps: &PushSecret, reader: &Store<K>) -> Vec<ObjectRef<K>> {
    reader
        .state()
        .iter()
        .filter(|s| {
            let (namespace, name) = (s.namespace(), s.name_any());
            crate::store_finalizer::refers_to(
                ps,
                crate::store_finalizer::StoreIdentity {
                    kind: K::KIND,
                    namespace: namespace.as_deref(),
                    name: &name,
                    labels: s.labels(),
                },
            )
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn dependants(
    reader: &Store<ExternalSecret>,
    kind: StoreKind,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<ExternalSecret>> {
    reader
        .state()
        .iter()
        .filter(|es| namespace.is_none() || es.namespace() == namespace)
        .filter(|es| reads_store(es, kind, name))
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

/// One stream of objects into two (each item cloned), so the same watch drives two consumers.
fn fan_out<K: Clone + Send + 'static>(
    stream: impl futures::Stream<Item = Result<K, watcher_mod::Error>> + Send + 'static,
) -> (
    impl futures::Stream<Item = Result<K, watcher_mod::Error>> + Send + 'static,
    impl futures::Stream<Item = Result<K, watcher_mod::Error>> + Send + 'static,
) {
    let (tx_a, rx_a) = tokio::sync::mpsc::unbounded_channel();
    let (tx_b, rx_b) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            let copy = match &item {
                Ok(k) => Ok(k.clone()),
                Err(e) => Err(watcher_mod::Error::WatchStartFailed(kube::Error::Service(
                    e.to_string().into(),
                ))),
            };
            let a = tx_a.send(item).is_ok();
            let b = tx_b.send(copy).is_ok();
            if !a && !b {
                break;
            }
        }
    });
    (tokio_stream_of(rx_a), tokio_stream_of(rx_b))
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn invalid_reporter() -> strongroom_controller_kit::watch::OnInvalid {
    Arc::new(|obj, reason| {
        tracing::warn!(
            externalsecret = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
            error = %reason,
            "ExternalSecret that does not read as one skipped"
        );
    })
}

/// A deleted object's status and duration series leave `/metrics` with it.
fn forget_deleted<K: kube::Resource>(
    metrics: Metrics,
    kind: Kind,
) -> impl Fn(&Result<watcher_mod::Event<K>, watcher_mod::Error>) {
    move |event| {
        if let Ok(watcher_mod::Event::Delete(obj)) = event {
            metrics.forget(kind, Subject::of(obj));
        }
    }
}

//! The running reloader: watches that keep hashes (never Secret data) and slim workloads, a
//! reverse index from each ConfigMap and Secret to the workloads that use it, a queue that
//! coalesces changes per workload over a short window, a cluster-wide limit on rollouts per
//! second, and the writes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference, Secret};
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::json;
use strongroom_controller_kit::readiness::{Component, Readiness};
use strongroom_controller_kit::shutdown::{CancellationToken, unless_cancelled};
use strongroom_controller_kit::watch::{backed_off_watch, scoped_api};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::hash::{Data, HashVersion, SourceKind};
use crate::metrics::Metrics;
use crate::patch::strategic_patch;
use crate::plan::{PlanOptions, SourceInfo, Trigger, Update, plan};
use crate::workloads::{Workload, WorkloadKey, WorkloadKind};

/// The field manager of every write, as upstream.
pub const FIELD_MANAGER: &str = "Reloader";

/// How the reloader runs (from the flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Annotation keys, strategy, auto-reload-all, ignored source kinds.
    pub plan: PlanOptions,
    /// Workload kinds to roll.
    pub kinds: Vec<WorkloadKind>,
    /// Watch scopes: `None` for all namespaces, else one per namespace.
    pub scopes: Vec<Option<String>>,
    /// Namespaces whose changes are ignored (all-namespace mode).
    pub namespaces_to_ignore: BTreeSet<String>,
    /// Label selector of the ConfigMap and Secret watches.
    pub resource_label_selector: Option<String>,
    /// `--namespace-selector` (all-namespace mode): only changes in namespaces whose labels
    /// match it reload anything.
    pub namespace_selector: Option<String>,
    /// `--reload-on-create`.
    pub reload_on_create: bool,
    /// `--reload-on-delete`.
    pub reload_on_delete: bool,
    /// `--sync-after-restart`.
    pub sync_after_restart: bool,
    /// Which hash workloads carry.
    pub hash_version: HashVersion,
    /// Changes to one workload's sources within this window roll it once.
    pub window: Duration,
    /// Cluster-wide limit on workload writes per second.
    pub max_rollouts_per_second: f64,
    /// `--webhook-url`: POST here instead of reloading.
    pub webhook_url: Option<String>,
    /// `ALERT_*`: a message after each reload.
    pub alerts: Option<crate::notify::Alerts>,
}

type SourceId = (String, SourceKind, String);

#[derive(Default)]
struct State {
    sources: HashMap<SourceId, SourceInfo>,
    names: HashMap<(String, SourceKind), BTreeSet<String>>,
    workloads: HashMap<WorkloadKey, Arc<Workload>>,
    by_source: HashMap<SourceId, BTreeSet<WorkloadKey>>,
    named: HashMap<(String, SourceKind), BTreeSet<WorkloadKey>>,
}

impl State {
    fn index(&mut self, w: &Workload, add: bool) {
        let ns = w.key.namespace.clone();
        for (kind, name) in &w.uses {
            let id = (ns.clone(), *kind, name.clone());
            let set = self.by_source.entry(id.clone()).or_default();
            if add {
                set.insert(w.key.clone());
            } else {
                set.remove(&w.key);
                if set.is_empty() {
                    self.by_source.remove(&id);
                }
            }
        }
        for kind in SourceKind::ALL {
            if !w.settings(kind).reload.is_empty() {
                let set = self.named.entry((ns.clone(), kind)).or_default();
                if add {
                    set.insert(w.key.clone());
                } else {
                    set.remove(&w.key);
                }
            }
        }
    }
}

struct Pending {
    due: Instant,
    since: Instant,
    changes: BTreeMap<(SourceKind, String), Trigger>,
    attempts: u32,
}

/// The reloader's state and its loops.
pub struct Engine {
    client: Client,
    cfg: Config,
    state: Mutex<State>,
    queue: Mutex<BTreeMap<WorkloadKey, Pending>>,
    wake: Notify,
    metrics: Metrics,
    recorders: [Recorder; 3],
    stop: CancellationToken,
    bucket: Mutex<(f64, Instant)>,
    /// Deployments with a resume scheduled, by the `paused-at` value it is for.
    resumes: Mutex<HashMap<WorkloadKey, String>>,
    /// The client of the webhook and the alerts, when either is set.
    http: Option<reqwest::Client>,
    /// The namespaces `--namespace-selector` selects (empty without a selector).
    selected: Mutex<HashSet<String>>,
    /// The annotations of each SecretProviderClass, by namespace and name (CSI integration).
    class_annotations: Mutex<HashMap<(String, String), BTreeMap<String, String>>>,
    /// The hash of each SecretProviderClassPodStatus, by namespace and name.
    status_hashes: Mutex<HashMap<(String, String), String>>,
}

/// The Secrets Store CSI driver's API group.
const CSI_GROUP: &str = "secrets-store.csi.x-k8s.io";

/// A SecretProviderClassPodStatus's namespace, class and hash input; `None` when it names no
/// class.
pub fn pod_status_data(status: &DynamicObject) -> Option<(String, String, Data)> {
    let namespace = status.metadata.namespace.clone()?;
    let class = status
        .data
        .pointer("/status/secretProviderClassName")?
        .as_str()?
        .to_string();
    let mut data = Data::default();
    for o in status
        .data
        .pointer("/status/objects")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = o
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let version = o
            .get("version")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        data.data
            .insert(id.to_string(), version.as_bytes().to_vec());
    }
    data.data
        .insert("SecretProviderClassName".into(), class.as_bytes().to_vec());
    Some((namespace, class, data))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// A reloader that stops when `stop` is cancelled.
    pub fn new(
        client: Client,
        cfg: Config,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let recorder = |resource: &str| {
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: format!("reloader-{resource}"),
                    instance: std::env::var("POD_NAME").ok(),
                },
            )
        };
        let burst = cfg.max_rollouts_per_second.max(1.0);
        let http = (cfg.webhook_url.is_some() || cfg.alerts.is_some())
            .then(crate::notify::client)
            .and_then(|c| {
                c.map_err(
                    |e| tracing::error!(error = %e, "no HTTP client for the webhook and alerts"),
                )
                .ok()
            });
        Arc::new(Self {
            http,
            recorders: [
                recorder("configmaps"),
                recorder("secrets"),
                recorder("secretproviderclasspodstatuses"),
            ],
            client,
            cfg,
            state: Mutex::default(),
            queue: Mutex::default(),
            wake: Notify::new(),
            metrics,
            stop,
            bucket: Mutex::new((burst, Instant::now())),
            resumes: Mutex::default(),
            selected: Mutex::default(),
            class_annotations: Mutex::default(),
            status_hashes: Mutex::default(),
        })
    }

    /// Runs the watches and the worker until stopped. Each watch reports into `readiness`;
    /// once all have listed, every workload is checked once (catch-up after downtime).
    pub async fn run(self: Arc<Self>, readiness: &Readiness) {
        let mut synced = Vec::new();
        if !self
            .cfg
            .plan
            .ignored
            .contains(&SourceKind::SecretProviderClass)
        {
            for scope in self.cfg.scopes.clone() {
                let component = readiness.component(&format!(
                    "secretproviderclasspodstatuses in {}",
                    scope.as_deref().unwrap_or("all namespaces")
                ));
                let (tx, rx) = tokio::sync::oneshot::channel();
                synced.push(rx);
                let me = self.clone();
                tokio::spawn(async move {
                    let stop = me.stop.clone();
                    unless_cancelled(&stop, me.watch_provider_classes(scope, component, tx)).await;
                });
            }
        }
        for kind in [SourceKind::ConfigMap, SourceKind::Secret] {
            if self.cfg.plan.ignored.contains(&kind) {
                continue;
            }
            for scope in self.cfg.scopes.clone() {
                let component = readiness.component(&format!(
                    "{} in {}",
                    kind.resource(),
                    scope.as_deref().unwrap_or("all namespaces")
                ));
                let (tx, rx) = tokio::sync::oneshot::channel();
                synced.push(rx);
                let me = self.clone();
                tokio::spawn(async move {
                    let stop = me.stop.clone();
                    unless_cancelled(&stop, me.watch_sources(kind, scope, component, tx)).await;
                });
            }
        }
        if let Some(selector) = self.cfg.namespace_selector.clone() {
            let component = readiness.component("namespaces");
            let (tx, rx) = tokio::sync::oneshot::channel();
            synced.push(rx);
            let me = self.clone();
            tokio::spawn(async move {
                let stop = me.stop.clone();
                unless_cancelled(&stop, me.watch_namespaces(selector, component, tx)).await;
            });
        }
        for kind in self.cfg.kinds.clone() {
            for scope in self.cfg.scopes.clone() {
                let component = readiness.component(&format!(
                    "{} in {}",
                    kind.api_resource().plural,
                    scope.as_deref().unwrap_or("all namespaces")
                ));
                let (tx, rx) = tokio::sync::oneshot::channel();
                synced.push(rx);
                let me = self.clone();
                tokio::spawn(async move {
                    let stop = me.stop.clone();
                    unless_cancelled(&stop, me.watch_workloads(kind, scope, component, tx)).await;
                });
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let stop = me.stop.clone();
            unless_cancelled(&stop, async {
                for rx in synced {
                    let _ = rx.await;
                }
                me.catch_up();
            })
            .await;
        });
        unless_cancelled(&self.stop.clone(), self.work()).await;
    }

    /// Queues every workload that reloads on anything, with no change seen: only sources
    /// whose applied hash is known and differs roll it.
    fn catch_up(&self) {
        let keys: Vec<WorkloadKey> = lock(&self.state)
            .workloads
            .values()
            .filter(|w| self.namespace_watched(&w.key.namespace))
            .filter(|w| {
                SourceKind::ALL
                    .iter()
                    .any(|k| w.settings(*k).interested(self.cfg.plan.auto_reload_all))
            })
            .map(|w| w.key.clone())
            .collect();
        tracing::info!(
            workloads = keys.len(),
            "every watch listed: checking workloads for changes made while down"
        );
        for key in keys {
            self.enqueue(key, None);
        }
    }

    async fn watch_sources(
        self: Arc<Self>,
        kind: SourceKind,
        scope: Option<String>,
        ready: Component,
        synced: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut config = watcher::Config::default();
        if let Some(sel) = &self.cfg.resource_label_selector {
            config = config.labels(sel);
        }
        let mut synced = Some(synced);
        let mut first_list = true;
        let mut seen: HashSet<String> = HashSet::new();
        let events = match kind {
            SourceKind::Secret => {
                // Helm release records and ServiceAccount tokens never feed a workload
                let config = config
                    .fields("type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token");
                let api: Api<Secret> = scoped_api(self.client.clone(), scope.as_deref());
                backed_off_watch(api, config)
                    .map(|e| e.map(|e| map_event(e, |s| (s.metadata.clone(), secret_data(&s)))))
                    .boxed()
            }
            SourceKind::ConfigMap => {
                let api: Api<ConfigMap> = scoped_api(self.client.clone(), scope.as_deref());
                backed_off_watch(api, config)
                    .map(|e| e.map(|e| map_event(e, |c| (c.metadata.clone(), config_map_data(&c)))))
                    .boxed()
            }
            // watched by `watch_provider_classes`
            SourceKind::SecretProviderClass => return,
        };
        let mut events = events;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply((meta, data))) => {
                    if let Some(name) = meta.name.clone() {
                        seen.insert(format!(
                            "{}/{name}",
                            meta.namespace.clone().unwrap_or_default()
                        ));
                    }
                    let create =
                        !first_list || (self.cfg.sync_after_restart && self.cfg.reload_on_create);
                    self.on_source(kind, &meta, data, create, "add");
                }
                Ok(watcher::Event::InitDone) => {
                    if !first_list {
                        self.forget_unseen(kind, scope.as_deref(), &seen);
                    }
                    first_list = false;
                    ready.ready();
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply((meta, data))) => {
                    self.on_source(kind, &meta, data, self.cfg.reload_on_create, "update")
                }
                Ok(watcher::Event::Delete((meta, _))) => self.on_source_deleted(kind, &meta),
                Err(e) => {
                    self.metrics
                        .errors
                        .with_label_values(&["handler_error"])
                        .inc();
                    tracing::warn!(resource = kind.resource(), error = %e, "watch failed; retrying");
                }
            }
        }
    }

    /// `--enable-csi-integration`: SecretProviderClassPodStatuses (the object versions the
    /// Secrets Store CSI driver mounted) as the "data" of their SecretProviderClass, whose
    /// annotations (`ignore`, `match`) come from a watch of the classes. As upstream, a new or
    /// deleted status reloads nothing; a changed one does. Without the CSI CRDs the watch is
    /// skipped with a warning.
    async fn watch_provider_classes(
        self: Arc<Self>,
        scope: Option<String>,
        ready: Component,
        synced: tokio::sync::oneshot::Sender<()>,
    ) {
        let api = |plural: &str, kind: &str| -> Api<DynamicObject> {
            let resource = kube::api::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(CSI_GROUP, "v1", kind),
                plural,
            );
            match &scope {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            }
        };
        let statuses = api(
            "secretproviderclasspodstatuses",
            "SecretProviderClassPodStatus",
        );
        let classes = api("secretproviderclasses", "SecretProviderClass");
        if let Err(e) = statuses
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await
        {
            tracing::warn!(error = %e, "--enable-csi-integration: the Secrets Store CSI driver's API does not answer; SecretProviderClasses are not watched");
            ready.ready();
            let _ = synced.send(());
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut events = backed_off_watch(classes, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitApply(c) | watcher::Event::Apply(c)) => {
                        let key = (
                            c.metadata.namespace.clone().unwrap_or_default(),
                            c.metadata.name.clone().unwrap_or_default(),
                        );
                        let annotations = c.metadata.annotations.clone().unwrap_or_default();
                        lock(&me.class_annotations).insert(key, annotations);
                    }
                    Ok(watcher::Event::Delete(c)) => {
                        let key = (
                            c.metadata.namespace.clone().unwrap_or_default(),
                            c.metadata.name.clone().unwrap_or_default(),
                        );
                        lock(&me.class_annotations).remove(&key);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(resource = "secretproviderclasses", error = %e, "watch failed; retrying")
                    }
                }
            }
        });
        let mut synced = Some(synced);
        let mut events = backed_off_watch(statuses, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitApply(o)) => self.on_pod_status(&o, "add"),
                Ok(watcher::Event::Apply(o)) => self.on_pod_status(&o, "update"),
                Ok(watcher::Event::InitDone) => {
                    ready.ready();
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    let key = (
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default(),
                    );
                    lock(&self.status_hashes).remove(&key);
                    self.metrics
                        .events_received
                        .with_label_values(&["delete", SourceKind::SecretProviderClass.resource()])
                        .inc();
                }
                Ok(watcher::Event::Init) => {}
                Err(e) => {
                    self.metrics
                        .errors
                        .with_label_values(&["handler_error"])
                        .inc();
                    tracing::warn!(resource = "secretproviderclasspodstatuses", error = %e, "watch failed; retrying");
                }
            }
        }
    }

    /// One SecretProviderClassPodStatus: its class's "data" is `<id>=<version>` per mounted
    /// object plus `SecretProviderClassName=<class>`, upstream's hash input.
    ///
    /// Pods of one class may mount different versions (rotation off, or not yet run), so a
    /// status is compared with its own previous self, as upstream compares old and new of one
    /// object: a status seen for the first time (a new pod, a relist) only records the class
    /// when the class is not known yet, and rolls nothing; a known status whose versions
    /// changed updates the class and rolls (unless another pod's status already did).
    fn on_pod_status(&self, status: &DynamicObject, event: &str) {
        let Some((namespace, class, data)) = pod_status_data(status) else {
            return;
        };
        let hash = data.hash(self.cfg.hash_version);
        let status_key = (
            namespace.clone(),
            status.metadata.name.clone().unwrap_or_default(),
        );
        let previous = lock(&self.status_hashes).insert(status_key, hash.clone());
        let class_known = lock(&self.state).sources.contains_key(&(
            namespace.clone(),
            SourceKind::SecretProviderClass,
            class.clone(),
        ));
        let changed = previous.is_some_and(|p| p != hash);
        if !changed && class_known {
            self.metrics
                .events_received
                .with_label_values(&[event, SourceKind::SecretProviderClass.resource()])
                .inc();
            return;
        }
        let annotations = lock(&self.class_annotations)
            .get(&(namespace.clone(), class.clone()))
            .cloned();
        let meta = ObjectMeta {
            name: Some(class),
            namespace: Some(namespace),
            annotations,
            ..ObjectMeta::default()
        };
        // an unknown class is recorded without a trigger; a changed status triggers when the
        // class's hash moves
        self.on_source(SourceKind::SecretProviderClass, &meta, data, false, event);
    }

    /// Keeps the set of namespaces `selector` selects (metadata only).
    async fn watch_namespaces(
        self: Arc<Self>,
        selector: String,
        ready: Component,
        synced: tokio::sync::oneshot::Sender<()>,
    ) {
        let api: Api<kube::core::PartialObjectMeta<Namespace>> = Api::all(self.client.clone());
        let mut events =
            backed_off_watch(api, watcher::Config::default().labels(&selector)).boxed();
        let mut synced = Some(synced);
        let mut listing: HashSet<String> = HashSet::new();
        while let Some(event) = events.next().await {
            let name = |m: &kube::core::PartialObjectMeta<Namespace>| m.metadata.name.clone();
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(m)) => {
                    self.count_namespace_event("add");
                    listing.extend(name(&m));
                }
                Ok(watcher::Event::InitDone) => {
                    *lock(&self.selected) = std::mem::take(&mut listing);
                    ready.ready();
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(m)) => {
                    self.count_namespace_event("update");
                    lock(&self.selected).extend(name(&m));
                }
                Ok(watcher::Event::Delete(m)) => {
                    self.count_namespace_event("delete");
                    if let Some(n) = name(&m) {
                        lock(&self.selected).remove(&n);
                    }
                }
                Err(e) => {
                    self.metrics
                        .errors
                        .with_label_values(&["handler_error"])
                        .inc();
                    tracing::warn!(resource = "namespaces", error = %e, "watch failed; retrying");
                }
            }
        }
    }

    fn count_namespace_event(&self, event: &str) {
        self.metrics
            .events_received
            .with_label_values(&[event, "namespaces"])
            .inc();
    }

    /// Whether changes in `ns` may reload anything: not ignored, and selected when
    /// `--namespace-selector` is set.
    fn namespace_watched(&self, ns: &str) -> bool {
        !self.cfg.namespaces_to_ignore.contains(ns)
            && (self.cfg.namespace_selector.is_none() || lock(&self.selected).contains(ns))
    }

    /// A source added or updated: record its hash; trigger when its data changed (or when it
    /// is new and `create` says new ones count).
    fn on_source(
        &self,
        kind: SourceKind,
        meta: &ObjectMeta,
        data: Data,
        create: bool,
        event: &str,
    ) {
        let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return;
        };
        self.metrics
            .events_received
            .with_label_values(&[event, kind.resource()])
            .inc();
        let mut annotations = meta.annotations.clone().unwrap_or_default();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        let info = SourceInfo {
            annotations,
            hash: data.hash(self.cfg.hash_version),
            key_hashes: data.key_hashes(),
        };
        let id = (ns.clone(), kind, name.clone());
        let previous = {
            let mut st = lock(&self.state);
            st.names
                .entry((ns.clone(), kind))
                .or_default()
                .insert(name.clone());
            st.sources.insert(id, info.clone())
        };
        let changed = match &previous {
            Some(p) => p.hash != info.hash,
            None => create,
        };
        if !changed {
            if previous.is_some() {
                self.metrics
                    .skipped
                    .with_label_values(&["no_data_change"])
                    .inc();
            }
            return;
        }
        self.trigger(kind, &ns, &name, Trigger::Changed, event);
    }

    fn on_source_deleted(&self, kind: SourceKind, meta: &ObjectMeta) {
        let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return;
        };
        self.metrics
            .events_received
            .with_label_values(&["delete", kind.resource()])
            .inc();
        let removed = {
            let mut st = lock(&self.state);
            if let Some(names) = st.names.get_mut(&(ns.clone(), kind)) {
                names.remove(&name);
            }
            st.sources.remove(&(ns.clone(), kind, name.clone()))
        };
        if self.cfg.reload_on_delete {
            let annotations = removed.map(|s| s.annotations).unwrap_or_default();
            self.trigger(kind, &ns, &name, Trigger::Deleted(annotations), "delete");
        }
    }

    /// After a re-list, sources that were not listed again were deleted meanwhile.
    fn forget_unseen(&self, kind: SourceKind, scope: Option<&str>, seen: &HashSet<String>) {
        let gone: Vec<(String, String)> = lock(&self.state)
            .sources
            .keys()
            .filter(|(ns, k, name)| {
                *k == kind
                    && scope.is_none_or(|s| s == ns)
                    && !seen.contains(&format!("{ns}/{name}"))
            })
            .map(|(ns, _, name)| (ns.clone(), name.clone()))
            .collect();
        for (ns, name) in gone {
            let meta = ObjectMeta {
                namespace: Some(ns),
                name: Some(name),
                ..Default::default()
            };
            self.on_source_deleted(kind, &meta);
        }
    }

    /// Queues the workloads a change of `ns/name` may reload: those that use it and those
    /// whose `…/reload` patterns may name it. No API call.
    fn trigger(&self, kind: SourceKind, ns: &str, name: &str, trigger: Trigger, event: &str) {
        if !self.namespace_watched(ns) {
            self.metrics
                .skipped
                .with_label_values(&["ignored_or_not_selected"])
                .inc();
            self.metrics
                .events_processed
                .with_label_values(&[event, kind.resource(), "dropped"])
                .inc();
            return;
        }
        if let (Some(url), Some(http)) = (&self.cfg.webhook_url, &self.http) {
            // upstream's webhook mode: tell the receiver, roll nothing
            let body = crate::notify::webhook_body(kind.upper(), ns, name);
            crate::notify::post(http, url, body, None, "webhook");
            self.metrics
                .events_processed
                .with_label_values(&[event, kind.resource(), "success"])
                .inc();
            return;
        }
        let candidates: BTreeSet<WorkloadKey> = {
            let st = lock(&self.state);
            let id = (ns.to_string(), kind, name.to_string());
            st.by_source
                .get(&id)
                .into_iter()
                .flatten()
                .chain(st.named.get(&(ns.to_string(), kind)).into_iter().flatten())
                .cloned()
                .collect()
        };
        tracing::debug!(source = %format!("{}/{ns}/{name}", kind.resource()), candidates = candidates.len(), "source changed");
        for key in candidates {
            self.metrics
                .scanned
                .with_label_values(&[key.kind.name()])
                .inc();
            self.enqueue(key, Some(((kind, name.to_string()), trigger.clone())));
        }
        self.metrics
            .events_processed
            .with_label_values(&[event, kind.resource(), "success"])
            .inc();
    }

    fn enqueue(&self, key: WorkloadKey, change: Option<((SourceKind, String), Trigger)>) {
        let now = Instant::now();
        let mut q = lock(&self.queue);
        let pending = q.entry(key).or_insert_with(|| {
            self.metrics.queue_adds.inc();
            Pending {
                due: now + self.cfg.window,
                since: now,
                changes: BTreeMap::new(),
                attempts: 0,
            }
        });
        if let Some((id, t)) = change {
            pending.changes.insert(id, t);
        }
        self.metrics.queue_depth.set(q.len() as i64);
        drop(q);
        self.wake.notify_one();
    }

    async fn watch_workloads(
        self: Arc<Self>,
        kind: WorkloadKind,
        scope: Option<String>,
        ready: Component,
        synced: tokio::sync::oneshot::Sender<()>,
    ) {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let mut synced = Some(synced);
        let mut seen: HashSet<WorkloadKey> = HashSet::new();
        let mut events = backed_off_watch(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply(obj) | watcher::Event::Apply(obj)) => {
                    if let Some(key) = self.put_workload(kind, &obj) {
                        seen.insert(key);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => self.drop_workload(kind, &obj),
                Ok(watcher::Event::InitDone) => {
                    let mut st = lock(&self.state);
                    let gone: Vec<Arc<Workload>> = st
                        .workloads
                        .values()
                        .filter(|w| {
                            w.key.kind == kind
                                && scope.as_deref().is_none_or(|s| s == w.key.namespace)
                                && !seen.contains(&w.key)
                        })
                        .cloned()
                        .collect();
                    for w in gone {
                        st.index(&w, false);
                        st.workloads.remove(&w.key);
                    }
                    drop(st);
                    ready.ready();
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = kind.name(), error = %e, "workload watch failed; retrying")
                }
            }
        }
    }

    fn put_workload(
        self: &Arc<Self>,
        kind: WorkloadKind,
        obj: &DynamicObject,
    ) -> Option<WorkloadKey> {
        let w = Arc::new(Workload::from_object(kind, obj, &self.cfg.plan.keys)?);
        let key = w.key.clone();
        self.schedule_resume(&w);
        let mut st = lock(&self.state);
        if let Some(old) = st.workloads.insert(key.clone(), w.clone()) {
            st.index(&old, false);
        }
        st.index(&w, true);
        Some(key)
    }

    fn drop_workload(&self, kind: WorkloadKind, obj: &DynamicObject) {
        let key = WorkloadKey {
            kind,
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        };
        let mut st = lock(&self.state);
        if let Some(old) = st.workloads.remove(&key) {
            st.index(&old, false);
        }
    }

    /// A Deployment that Reloader paused (`paused-at` set, `pause-period` given) is resumed
    /// when the period is over, counted from `paused-at`: the schedule is read from the
    /// Deployment, so it survives a restart of the reloader (upstream's timer does not).
    fn schedule_resume(self: &Arc<Self>, w: &Workload) {
        let keys = &self.cfg.plan.keys;
        if w.key.kind != WorkloadKind::Deployment || !w.paused {
            return;
        }
        let (Some(at), Some(period)) = (
            w.annotations.get(&keys.paused_at),
            w.annotations.get(&keys.pause_period),
        ) else {
            return;
        };
        let Ok(period) = strongroom_core::duration::parse_go_duration(period) else {
            return;
        };
        let Ok(paused_at) = chrono::DateTime::parse_from_rfc3339(at) else {
            return;
        };
        {
            let mut resumes = lock(&self.resumes);
            if resumes.get(&w.key) == Some(at) {
                return;
            }
            resumes.insert(w.key.clone(), at.clone());
        }
        let due = paused_at.with_timezone(&chrono::Utc)
            + chrono::Duration::from_std(period).unwrap_or_default();
        let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
        let (me, key, at) = (self.clone(), w.key.clone(), at.clone());
        tokio::spawn(async move {
            let stop = me.stop.clone();
            unless_cancelled(&stop, async {
                tokio::time::sleep(wait).await;
                me.resume(&key, &at).await;
            })
            .await;
        });
    }

    async fn resume(&self, key: &WorkloadKey, paused_at: &str) {
        let still = lock(&self.state).workloads.get(key).is_some_and(|w| {
            w.paused
                && w.annotations
                    .get(&self.cfg.plan.keys.paused_at)
                    .map(String::as_str)
                    == Some(paused_at)
        });
        lock(&self.resumes).remove(key);
        if !still {
            return;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &key.namespace,
            &key.kind.api_resource(),
        );
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let patch = crate::patch::resume_patch(&self.cfg.plan.keys.paused_at);
        match api
            .patch(&key.name, &params, &Patch::Strategic(patch))
            .await
        {
            Ok(_) => tracing::info!(workload = %key, "pause period over: resumed"),
            Err(e) => {
                tracing::warn!(workload = %key, error = %e, "could not resume after the pause period")
            }
        }
    }

    /// Processes due workloads, one write at a time under the rollout rate limit.
    async fn work(self: Arc<Self>) {
        loop {
            let next = lock(&self.queue).values().map(|p| p.due).min();
            let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = self.wake.notified() => continue,
            }
            let now = Instant::now();
            let due: Vec<(WorkloadKey, Pending)> = {
                let mut q = lock(&self.queue);
                let keys: Vec<WorkloadKey> = q
                    .iter()
                    .filter(|(_, p)| p.due <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                let out = keys
                    .into_iter()
                    .filter_map(|k| q.remove(&k).map(|p| (k, p)))
                    .collect();
                self.metrics.queue_depth.set(q.len() as i64);
                out
            };
            for (key, pending) in due {
                self.metrics
                    .queue_latency
                    .observe(pending.since.elapsed().as_secs_f64());
                self.process(key, pending).await;
            }
        }
    }

    /// Waits for a token of the cluster-wide rollout budget.
    async fn take_token(&self) {
        let rate = self.cfg.max_rollouts_per_second;
        if rate <= 0.0 {
            return;
        }
        let wait = {
            let mut b = lock(&self.bucket);
            let now = Instant::now();
            let burst = rate.max(1.0);
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(burst);
            b.1 = now;
            b.0 -= 1.0;
            if b.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.0 / rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn process(&self, key: WorkloadKey, pending: Pending) {
        let start = std::time::Instant::now();
        let Some(w) = lock(&self.state).workloads.get(&key).cloned() else {
            return;
        };
        let updates = {
            let st = lock(&self.state);
            let ns = key.namespace.clone();
            plan(
                &w,
                |kind, name| st.sources.get(&(ns.clone(), kind, name.to_string())),
                |kind| {
                    st.names
                        .get(&(ns.clone(), kind))
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default()
                },
                &pending.changes,
                &self.cfg.plan,
            )
        };
        if updates.is_empty() {
            if !pending.changes.is_empty() {
                self.metrics
                    .skipped
                    .with_label_values(&["strategy_not_updated"])
                    .inc();
            }
            self.observe("skipped", start);
            return;
        }
        self.metrics
            .matched
            .with_label_values(&[key.kind.name()])
            .inc();
        self.take_token().await;
        let result = self.write(&w, &updates).await;
        let kind = key.kind.name();
        match result {
            Ok(()) => {
                self.metrics.reloaded(&key.namespace, true);
                self.metrics
                    .action
                    .with_label_values(&[kind, "success"])
                    .inc();
                self.metrics
                    .action_latency
                    .with_label_values(&[kind])
                    .observe(pending.since.elapsed().as_secs_f64());
                for u in &updates {
                    let note = format!(
                        "Changes detected in '{}' of type '{}' in namespace '{}'; updated '{}' of type '{}' in namespace '{}'",
                        u.name,
                        u.kind.upper(),
                        key.namespace,
                        key.name,
                        kind,
                        key.namespace
                    );
                    tracing::info!("{note}");
                    self.event(&w, u, EventType::Normal, "Reloaded", note);
                    if let (Some(alerts), Some(http)) = (&self.cfg.alerts, &self.http) {
                        let message = crate::notify::alert_message(
                            &u.name,
                            u.kind.upper(),
                            &key.namespace,
                            &key.name,
                            kind,
                        );
                        let (json, text) = alerts.body(&message);
                        crate::notify::post(http, &alerts.url, json, text, "alert");
                    }
                }
                self.observe("success", start);
            }
            Err(e) => {
                self.metrics.reloaded(&key.namespace, false);
                self.metrics
                    .action
                    .with_label_values(&[kind, "error"])
                    .inc();
                self.metrics
                    .errors
                    .with_label_values(&["handler_error"])
                    .inc();
                let note = format!("Reloading {kind} '{}' failed: {e}", key.name);
                tracing::warn!(workload = %key, error = %e, "reload failed");
                if let Some(u) = updates.first() {
                    self.event(&w, u, EventType::Warning, "ReloadFail", note);
                }
                self.observe("error", start);
                self.retry(key, pending, &e);
            }
        }
    }

    fn observe(&self, result: &str, start: std::time::Instant) {
        self.metrics.reconcile.with_label_values(&[result]).inc();
        self.metrics
            .reconcile_duration
            .with_label_values(&[result])
            .observe(start.elapsed().as_secs_f64());
    }

    /// Requeues a failed write with backoff (up to 10 attempts; a workload that is gone is
    /// not retried).
    fn retry(&self, key: WorkloadKey, mut pending: Pending, e: &kube::Error) {
        if matches!(e, kube::Error::Api(s) if s.code == 404) || pending.attempts >= 10 {
            return;
        }
        pending.attempts += 1;
        self.metrics.retries.inc();
        let delay = Duration::from_millis(200u64.saturating_mul(1 << pending.attempts.min(8)));
        pending.due = Instant::now() + delay;
        let mut q = lock(&self.queue);
        match q.get_mut(&key) {
            Some(newer) => newer.changes.extend(pending.changes),
            None => {
                q.insert(key, pending);
            }
        }
        drop(q);
        self.wake.notify_one();
    }

    async fn write(&self, w: &Workload, updates: &[Update]) -> Result<(), kube::Error> {
        let key = &w.key;
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &key.namespace,
            &key.kind.api_resource(),
        );
        let now = chrono::Utc::now().timestamp();
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let strategy = self.cfg.plan.strategy;
        if w.restart_only {
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let patch = crate::patch::restart_patch(w, updates, &at);
            api.patch(&key.name, &params, &Patch::Merge(patch)).await?;
            return Ok(());
        }
        if key.kind == WorkloadKind::CronJob && self.cfg.plan.run_jobs_now {
            return self.run_job_now(w, updates, &api, &params, now).await;
        }
        if key.kind == WorkloadKind::Job {
            return self.recreate_job(w, updates, &api, now).await;
        }
        if key.kind.strategic_merge() {
            let mut patch = strategic_patch(w, updates, strategy, now);
            let keys = &self.cfg.plan.keys;
            if key.kind == WorkloadKind::Deployment
                && w.annotations.contains_key(&keys.pause_period)
            {
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                crate::patch::add_pause(&mut patch, w, &keys.paused_at, &at);
            }
            api.patch(&key.name, &params, &Patch::Strategic(patch))
                .await?;
        } else {
            // custom resources take no strategic merge patch: a merge patch with the whole
            // container list
            let patch = crate::patch::merge_patch(w, updates, strategy, now);
            api.patch(&key.name, &params, &Patch::Merge(patch)).await?;
        }
        Ok(())
    }

    /// Upstream's CronJob reload (`--cronjob-reload=run-now`): a Job created now from the job
    /// template, then the applied hashes recorded on the CronJob (its template untouched), so a
    /// restart of the reloader creates no second Job.
    async fn run_job_now(
        &self,
        w: &Workload,
        updates: &[Update],
        api: &Api<DynamicObject>,
        params: &PatchParams,
        now: i64,
    ) -> Result<(), kube::Error> {
        let key = &w.key;
        let cron = serde_json::to_value(api.get(&key.name).await?).unwrap_or_default();
        let Some(job) =
            crate::patch::job_from_cronjob(&cron, w, updates, self.cfg.plan.strategy, now)
        else {
            return Ok(());
        };
        let jobs = self.jobs_api(&key.namespace);
        let job: DynamicObject = serde_json::from_value(job).map_err(kube::Error::SerdeError)?;
        jobs.create(&PostParams::default(), &job).await?;
        let record = json!({"metadata": {"annotations": {
            crate::annotations::APPLIED_HASHES: crate::patch::applied_record(w, updates)
        }}});
        api.patch(&key.name, params, &Patch::Merge(record)).await?;
        Ok(())
    }

    /// Upstream's Job reload: its template is immutable, so the Job is deleted (background
    /// propagation) and created again under the same name with the update applied.
    async fn recreate_job(
        &self,
        w: &Workload,
        updates: &[Update],
        api: &Api<DynamicObject>,
        now: i64,
    ) -> Result<(), kube::Error> {
        let key = &w.key;
        let current = serde_json::to_value(api.get(&key.name).await?).unwrap_or_default();
        let again = crate::patch::recreated_job(&current, w, updates, self.cfg.plan.strategy, now);
        let again: DynamicObject =
            serde_json::from_value(again).map_err(kube::Error::SerdeError)?;
        api.delete(
            &key.name,
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            },
        )
        .await?;
        // the old Job may take a while to go (finalizers): the new one waits for its name in
        // a task of its own (the workload left the cache with the old Job, so the queue could
        // not retry it), until it is created, the server refuses it, or the reloader stops
        match api.create(&PostParams::default(), &again).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            other => return other.map(|_| ()),
        }
        let api = api.clone();
        let name = key.to_string();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let create = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match api.create(&PostParams::default(), &again).await {
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Ok(_) => return tracing::info!(workload = %name, "Job created again"),
                        Err(e) => {
                            return tracing::error!(workload = %name, error = %e, "the deleted Job could not be created again");
                        }
                    }
                }
            };
            if unless_cancelled(&stop, create).await.is_none() {
                tracing::error!(workload = %name, "stopped before the deleted Job could be created again");
            }
        });
        Ok(())
    }

    fn jobs_api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            namespace,
            &WorkloadKind::Job.api_resource(),
        )
    }

    fn event(&self, w: &Workload, u: &Update, type_: EventType, reason: &str, note: String) {
        let resource = w.key.kind.api_resource();
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: Some(w.key.name.clone()),
            namespace: Some(w.key.namespace.clone()),
            ..Default::default()
        };
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: "Reload".into(),
            secondary: None,
        };
        let recorder = self.recorders[u.kind.index()].clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            if let Some(Err(e)) =
                unless_cancelled(&stop, recorder.publish(&event, &reference)).await
            {
                tracing::warn!(error = %e, "could not publish event");
            }
        });
    }
}

/// The event with its object turned into what the reloader keeps (the data is dropped here).
fn map_event<A, B>(e: watcher::Event<A>, f: impl Fn(A) -> B) -> watcher::Event<B> {
    use watcher::Event as E;
    match e {
        E::Init => E::Init,
        E::InitDone => E::InitDone,
        E::InitApply(a) => E::InitApply(f(a)),
        E::Apply(a) => E::Apply(f(a)),
        E::Delete(a) => E::Delete(f(a)),
    }
}

fn secret_data(s: &Secret) -> Data {
    Data {
        data: s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        binary: BTreeMap::new(),
    }
}

fn config_map_data(c: &ConfigMap) -> Data {
    Data {
        data: c
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect(),
        binary: c
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_status_hashes_as_upstream() {
        let Ok(status) = serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClassPodStatus",
            "metadata": {"name": "web-1-default-db", "namespace": "default"},
            "status": {"secretProviderClassName": "db", "objects": [
                {"id": "secret/b", "version": "7"}, {"id": "secret/a", "version": "3"}]}
        })) else {
            panic!("a valid object")
        };
        let Some((ns, class, data)) = pod_status_data(&status) else {
            panic!("it names a class")
        };
        assert_eq!((ns.as_str(), class.as_str()), ("default", "db"));
        // upstream: `<id>=<version>` per object and `SecretProviderClassName=<class>`, sorted
        // byte-wise, joined with `;`, SHA-1
        assert_eq!(
            data.hash(HashVersion::Upstream),
            crate::hash::sha1_hex(b"SecretProviderClassName=db;secret/a=3;secret/b=7")
        );
    }
}

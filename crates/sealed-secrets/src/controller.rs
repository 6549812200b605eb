//! The reconcile loop: SealedSecret → Secret by server-side apply, status `Synced`, events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use strongroom_controller_kit::backoff::Backoff;
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::Fingerprint;

use crate::desired::{UnsealFailure, desired_secret};
use crate::keystore::KeyStore;
use crate::metrics::Metrics;
use crate::ownership::{Ownership, ownership};
use crate::secret_index::{Lookup, SecretIndex};
use crate::tolerant_watch::sealed_secret_events;
use crate::write::write_secret;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "sealed-secrets-controller";
/// Annotation on the Secret: fingerprint of the key that unsealed it.
pub const KEY_ANNOTATION: &str = "sealedsecrets.strongroom.dev/sealing-key";
/// Annotation on the Secret: hash of the SealedSecret it was produced from, so a restart can
/// skip decrypting what is already in place.
pub const SOURCE_HASH_ANNOTATION: &str = "sealedsecrets.strongroom.dev/source-hash";

/// Key of `Context::last_key` for the key that opened anything last.
const ANY_OBJECT: &str = "";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unsealing failed.
    #[error("{0}")]
    Unseal(#[from] UnsealFailure),
    /// The Secret exists and is someone else's.
    #[error("Resource \"{0}\" already exists and is not managed by SealedSecret")]
    Unmanaged(String),
    /// The Secret is immutable and differs from what the SealedSecret now holds.
    #[error(
        "the Secret \"{0}\" is immutable and cannot be updated: delete it and the controller creates it again"
    )]
    Immutable(String),
    /// Reading or writing the Secret failed.
    #[error("{0}")]
    Update(kube::Error),
    /// Writing the status failed.
    #[error("status update failed: {0}")]
    Status(kube::Error),
}

impl Error {
    /// The `reason` label of `unseal_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unseal(_) => "unseal",
            Self::Unmanaged(_) => "unmanaged",
            Self::Immutable(_) => "update",
            Self::Update(_) => "update",
            Self::Status(_) => "status",
        }
    }
}

/// Everything a reconcile needs, built once.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The keys.
    pub keys: Arc<KeyStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Per-object backoff.
    pub backoff: Backoff,
    /// `--accept-deprecated-v1-data`.
    pub accept_v1_data: bool,
    /// `--update-status`.
    pub update_status: bool,
    /// Which key opened each SealedSecret last (uid → fingerprint), tried first next time.
    pub last_key: Mutex<HashMap<String, Fingerprint>>,
    /// How often everything is re-checked (drift repair).
    pub resync: Duration,
    /// Secret metadata caches and the Secret versions known to be in place.
    pub secret_index: SecretIndex,
    /// uid → (SealedSecret resourceVersion, Synced status, message) of the last status this
    /// process wrote, so a reconcile that still sees the pre-write object does not write again.
    pub status_written: Mutex<HashMap<String, (String, bool, String)>>,
}

/// Drops what no reconcile reads from a cached object: managedFields and kubectl's
/// last-applied copy of the whole object.
fn slim<K: Resource>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// kubectl's client-side apply record.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A digest of everything the Secret is computed from (the last-applied record is not part of
/// it: re-applying an unchanged manifest must not cause work).
fn source_hash(ss: &SealedSecret) -> String {
    let mut h = Sha256::new();
    h.update(ss.uid().unwrap_or_default());
    h.update(serde_json::to_vec(&ss.spec).unwrap_or_default());
    let mut annotations = ss.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED_ANNOTATION);
    h.update(serde_json::to_vec(&annotations).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn publish(ctx: &Context, ss: &SealedSecret, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Unseal".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ss.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

async fn set_status(
    ctx: &Context,
    ss: &SealedSecret,
    ok: bool,
    message: &str,
) -> Result<(), Error> {
    let ns = ss.namespace().unwrap_or_default();
    let instance = ss
        .labels()
        .get("app.kubernetes.io/instance")
        .cloned()
        .unwrap_or_default();
    ctx.metrics
        .condition_info
        .with_label_values(&[
            ns.as_str(),
            ss.name_any().as_str(),
            "Synced",
            instance.as_str(),
        ])
        .set(if ok { 1.0 } else { -1.0 });
    if !ctx.update_status {
        return Ok(());
    }
    let status = if ok { "True" } else { "False" };
    let current = ss.status.as_ref();
    let same = current.is_some_and(|s| {
        s.observed_generation == ss.metadata.generation
            && s.conditions.as_ref().is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "Synced"
                        && c.status == status
                        && c.message.as_deref().unwrap_or("") == message
                })
            })
    });
    let uid = ss.uid().unwrap_or_default();
    let version = ss.resource_version().unwrap_or_default();
    let already_written = ctx
        .status_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .is_some_and(|w| *w == (version.clone(), ok, message.to_string()));
    if same || already_written {
        return Ok(());
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let flipped = current
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Synced"))
        .is_none_or(|c| c.status != status);
    let transition = if flipped {
        now.clone()
    } else {
        current
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Synced"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| now.clone())
    };
    let mut condition = json!({"type": "Synced", "status": status, "lastUpdateTime": now, "lastTransitionTime": transition});
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    let patch = json!({"status": {"observedGeneration": ss.metadata.generation, "conditions": [condition]}});
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch_status(
        &ss.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(Error::Status)?;
    ctx.status_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(uid, (version, ok, message.to_string()));
    Ok(())
}

/// Brings the Secret of one SealedSecret in line.
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.unseal_requests.inc();
    let ns = ss.namespace().unwrap_or_default();
    let name = ss.name_any();
    let uid = ss.uid().unwrap_or_default();
    let hash = source_hash(&ss);
    let cached = ctx.secret_index.lookup(&ns, &name).await;
    // the common case costs no API call: the cached Secret is ours and unchanged
    if let Lookup::Present(meta) = &cached
        && ctx.secret_index.in_place(&uid, &meta.metadata, &hash)
    {
        ctx.secret_index
            .remember(&uid, meta.metadata.resource_version.clone());
        return synced(&ctx, &ss).await;
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // absent from the cache but written by this process: the cache is behind our own write
    let known_absent = matches!(cached, Lookup::Absent) && !ctx.secret_index.knows(&uid);
    let existing = if known_absent {
        None
    } else {
        secrets.get_opt(&name).await.map_err(Error::Update)?
    };
    if ownership(existing.as_ref().map(|s| &s.metadata), &uid) == Ownership::Foreign {
        return Err(Error::Unmanaged(name));
    }
    if let Some(s) = &existing
        && ctx.secret_index.in_place(&uid, &s.metadata, &hash)
    {
        ctx.secret_index
            .remember(&uid, s.metadata.resource_version.clone());
        return synced(&ctx, &ss).await;
    }
    // the key that opened this object last time, else the key that opened anything last
    // (usually the newest): with 13 keys this saves up to 12 RSA operations per item
    let hint = {
        let last = ctx.last_key.lock().unwrap_or_else(|p| p.into_inner());
        last.get(&uid).or_else(|| last.get(ANY_OBJECT)).cloned()
    };
    let keys = ctx.keys.clone();
    let accept = ctx.accept_v1_data;
    let owned = (*ss).clone();
    // RSA private operations are CPU-bound: keep them off the async workers
    let desired = tokio::task::spawn_blocking(move || {
        keys.with_ring(|ring| desired_secret(&owned, ring, hint.as_ref(), accept))
    })
    .await
    .map_err(|e| Error::Update(kube::Error::Service(Box::new(e))))??;
    let mut secret = desired.secret;
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(SOURCE_HASH_ANNOTATION.into(), hash);
    let fingerprints: Vec<String> = desired.keys.iter().map(ToString::to_string).collect();
    annotations.insert(KEY_ANNOTATION.into(), fingerprints.join(","));
    if let Some(first) = desired.keys.first() {
        let mut last = ctx.last_key.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(uid.clone(), first.clone());
        last.insert(ANY_OBJECT.to_string(), first.clone());
    }
    let version = write_secret(&secrets, existing, secret, &uid, known_absent).await?;
    ctx.secret_index.remember(&uid, version);
    publish(
        &ctx,
        &ss,
        EventType::Normal,
        "Unsealed",
        "SealedSecret unsealed successfully".into(),
    )
    .await;
    synced(&ctx, &ss).await
}

/// Success: `Synced=True`, backoff reset, next check at the resync period.
async fn synced(ctx: &Context, ss: &SealedSecret) -> Result<Action, Error> {
    set_status(ctx, ss, true, "").await?;
    ctx.backoff.succeeded(&format!(
        "{}/{}",
        ss.namespace().unwrap_or_default(),
        ss.name_any()
    ));
    Ok(Action::requeue(ctx.resync))
}

/// Counts, reports and backs off a failed reconcile.
pub fn error_policy(ss: Arc<SealedSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    let ns = ss.namespace().unwrap_or_default();
    ctx.metrics
        .unseal_errors
        .with_label_values(&[err.reason(), ns.as_str()])
        .inc();
    tracing::warn!(sealedsecret = %format!("{ns}/{}", ss.name_any()), reason = err.reason(), error = %err, "reconcile failed");
    // an immutable Secret does not change by retrying: wait for the SealedSecret to change
    let action = match err {
        Error::Immutable(_) => Action::await_change(),
        _ => Action::requeue(ctx.backoff.failed(&format!("{ns}/{}", ss.name_any()))),
    };
    let message = err.to_string();
    let (reason, note) = match err {
        Error::Unseal(_) => ("ErrUnsealFailed", format!("Failed to unseal: {message}")),
        _ => ("ErrUpdateFailed", message.clone()),
    };
    let status_message = message.clone();
    tokio::spawn(async move {
        publish(&ctx, &ss, EventType::Warning, reason, note).await;
        if let Err(e) = set_status(&ctx, &ss, false, &status_message).await {
            tracing::warn!(error = %e, "could not write the failure status");
        }
    });
    action
}

/// Runs the controllers until shutdown: one per namespace in `namespaces`, or a single
/// cluster-wide one when it is empty.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    label_selector: Option<String>,
    concurrency: u16,
    watch_secrets: bool,
    old_gc: bool,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    if old_gc {
        for scope in &scopes {
            tokio::spawn(crate::gc::delete_with_sealed_secrets(
                ctx.client.clone(),
                scope.clone(),
            ));
        }
    }
    let controllers: Vec<Controller<SealedSecret>> = scopes
        .into_iter()
        .map(|ns| scope_controller(&ctx, ns, label_selector.as_deref(), watch_secrets))
        .collect();
    let stores: Vec<Store<SealedSecret>> = controllers.iter().map(Controller::store).collect();
    let pruning = tokio::spawn(forget_deleted(ctx.clone(), stores));
    let runs = controllers.into_iter().map(|controller| {
        controller
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {})
    });
    futures::future::join_all(runs).await;
    pruning.abort();
}

/// Every resync period, drops what is remembered per SealedSecret (known Secret versions, last
/// status written, last key) for objects that no longer exist, so memory follows the live set.
async fn forget_deleted(ctx: Arc<Context>, stores: Vec<Store<SealedSecret>>) {
    for store in &stores {
        if store.wait_until_ready().await.is_err() {
            return;
        }
    }
    loop {
        tokio::time::sleep(ctx.resync).await;
        let live: HashSet<String> = stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|ss| ss.uid())
            .collect();
        ctx.secret_index.retain(&live);
        ctx.status_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| live.contains(uid));
        ctx.last_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| uid == ANY_OBJECT || live.contains(uid));
    }
}

fn scope_controller(
    ctx: &Arc<Context>,
    namespace: Option<String>,
    label_selector: Option<&str>,
    watch_secrets: bool,
) -> Controller<SealedSecret> {
    let client = ctx.client.clone();
    // owned Secrets are watched for their metadata only: the controller never needs their data
    // from the watch, and a cache of every Secret in the cluster would dominate its memory
    let secrets: Api<PartialObjectMeta<Secret>> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut cfg = watcher::Config::default();
    if let Some(sel) = label_selector {
        cfg = cfg.labels(sel);
    }
    // the cache keeps what reconciling needs: managedFields and kubectl's copy of the whole
    // object in last-applied-configuration are dropped (a third of a SealedSecret's size)
    let (sealed_reader, sealed_writer) = reflector::store();
    let sealed_stream = reflector(
        sealed_writer,
        sealed_secret_events(ctx.clone(), namespace.as_deref(), cfg).modify(slim),
    )
    .applied_objects();
    let mut controller = Controller::for_stream(sealed_stream, sealed_reader);
    if watch_secrets {
        // a deleted or edited Secret is repaired at once, not at the next resync; the metadata
        // cache lets reconciles skip reading Secrets that are already in place
        let (reader, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(secrets, watcher::Config::default())
                .default_backoff()
                .modify(slim),
        )
        .touched_objects();
        controller = controller.owns_stream(stream);
        ctx.secret_index.add_store(namespace.clone(), reader);
    }
    tracing::info!(
        namespace = namespace.as_deref().unwrap_or("*"),
        "watching SealedSecrets"
    );
    controller
}

/// The event reporter name upstream uses.
pub fn reporter() -> Reporter {
    Reporter {
        controller: "sealed-secrets".into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

//! The reconcile loop: SealedSecret → Secret by server-side apply, status `Synced`, events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strongroom_controller_kit::readiness::Readiness;
use strongroom_controller_kit::reconcile::{RunConfig, object_key};
use strongroom_controller_kit::shutdown::unless_cancelled;
use strongroom_controller_kit::status::{self, DesiredCondition, Stamps};
use strongroom_controller_kit::watch::{
    LAST_APPLIED_ANNOTATION, guarded_watch, owned_metadata_cache, report_synced, slim,
};
use strongroom_core::crd::sealed_secret::SealedSecret;

pub use crate::context::Context;
use crate::desired::desired_secret;
use crate::error::Error;
use crate::ownership::{Ownership, ownership};
use crate::secret_index::Lookup;
use crate::write::write_secret;
use crate::{FIELD_MANAGER, KEY_ANNOTATION, SOURCE_HASH_ANNOTATION};

/// Key of `Context::last_key` for the key that opened anything last.
const ANY_OBJECT: &str = "";

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

async fn set_status(
    ctx: &Context,
    ss: &SealedSecret,
    ok: bool,
    message: &str,
) -> Result<(), Error> {
    // as upstream, the condition metric follows the status: none without --update-status
    if !ctx.update_status {
        return Ok(());
    }
    ctx.metrics.set_synced(ss, ok);
    let ns = ss.namespace().unwrap_or_default();
    let uid = ss.uid().unwrap_or_default();
    let version = ss.resource_version().unwrap_or_default();
    let already_written = ctx
        .status_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .is_some_and(|w| *w == (version.clone(), ok, message.to_string()));
    if already_written {
        return Ok(());
    }
    let current = serde_json::to_value(&ss.status).unwrap_or(Value::Null);
    let extra: Map<String, Value> = [(
        "observedGeneration".to_string(),
        json!(ss.metadata.generation),
    )]
    .into_iter()
    .collect();
    let desired = DesiredCondition::new("Synced", ok).message(message);
    let Some(next) = status::next_status(
        &current,
        std::slice::from_ref(&desired),
        extra,
        &status::now(),
        Stamps::TransitionAndUpdate,
    ) else {
        return Ok(());
    };
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &ns);
    status::apply_status(&api, &ss.name_any(), FIELD_MANAGER, next)
        .await
        .map_err(Error::Status)?;
    ctx.status_written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(uid, (version, ok, message.to_string()));
    Ok(())
}

/// Brings the Secret of one SealedSecret in line (timed, counted and traced by the kit).
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.policy
        .observe(ss.as_ref(), unseal(ss.clone(), ctx.clone()))
        .await
}

async fn unseal(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
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
    ctx.policy.event(
        ss.as_ref(),
        EventType::Normal,
        "Unsealed",
        "SealedSecret unsealed successfully".into(),
    );
    synced(&ctx, &ss).await
}

/// Success: `Synced=True`, next check at the resync period (the kit resets the backoff).
async fn synced(ctx: &Context, ss: &SealedSecret) -> Result<Action, Error> {
    set_status(ctx, ss, true, "").await?;
    Ok(Action::requeue(ctx.resync))
}

/// Counts (upstream's `unseal_errors_total` and the kit's metrics), reports (log, Warning
/// event, `Synced=False`) and backs off a failed reconcile.
pub fn error_policy(ss: Arc<SealedSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    let ns = ss.namespace().unwrap_or_default();
    ctx.metrics
        .unseal_errors
        .with_label_values(&[err.reason(), ns.as_str()])
        .inc();
    let action = ctx.policy.on_error(ss.as_ref(), err);
    let message = err.to_string();
    tokio::spawn(async move {
        let stop = ctx.policy.stop_token().clone();
        if let Some(Err(e)) = unless_cancelled(&stop, set_status(&ctx, &ss, false, &message)).await
        {
            tracing::warn!(sealedsecret = %object_key(ss.as_ref()), error = %e, "could not write the failure status");
        }
    });
    action
}

/// What the SealedSecret controllers do beyond the common [`RunConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Watch owned Secrets, so a deleted or edited Secret is repaired at once (not
    /// `--skip-recreate`).
    pub watch_secrets: bool,
    /// `--old-gc-behavior`.
    pub old_gc: bool,
}

/// Runs the controllers until the policy's stop token is cancelled: one per namespace of
/// `cfg`, or a single cluster-wide one. Each cache reports into `readiness`.
pub async fn run(ctx: Arc<Context>, cfg: &RunConfig, options: Options, readiness: &Readiness) {
    let stop = ctx.policy.stop_token().clone();
    let scopes = cfg.scopes();
    if options.old_gc {
        for scope in &scopes {
            let (client, scope, stop) = (ctx.client.clone(), scope.clone(), stop.clone());
            tokio::spawn(async move {
                unless_cancelled(&stop, crate::gc::delete_with_sealed_secrets(client, scope)).await;
            });
        }
    }
    let controllers: Vec<Controller<SealedSecret>> = scopes
        .into_iter()
        .map(|ns| {
            scope_controller(
                &ctx,
                ns,
                cfg.label_selector.as_deref(),
                options.watch_secrets,
                readiness,
            )
        })
        .collect();
    let stores: Vec<Store<SealedSecret>> = controllers.iter().map(Controller::store).collect();
    tokio::spawn({
        let (ctx, stop) = (ctx.clone(), stop.clone());
        async move { unless_cancelled(&stop, forget_deleted(ctx, stores)).await }
    });
    let runs = controllers.into_iter().map(|controller| {
        let controller = controller
            .with_config(kube::runtime::controller::Config::default().concurrency(cfg.concurrency))
            .graceful_shutdown_on(stop.clone().cancelled_owned());
        ctx.queue
            .run(controller, reconcile, error_policy, ctx.clone())
    });
    futures::future::join_all(runs).await;
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
        let objects: Vec<Arc<SealedSecret>> = stores.iter().flat_map(|s| s.state()).collect();
        ctx.policy.retain(objects.iter().map(Arc::as_ref));
        let live: HashSet<String> = objects.iter().filter_map(|ss| ss.uid()).collect();
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
    readiness: &Readiness,
) -> Controller<SealedSecret> {
    let scope = namespace.as_deref().unwrap_or("all namespaces").to_string();
    let mut cfg = watcher::Config::default();
    if let Some(sel) = label_selector {
        cfg = cfg.labels(sel);
    }
    // the cache keeps what reconciling needs: managedFields and kubectl's copy of the whole
    // object in last-applied-configuration are dropped (a third of a SealedSecret's size)
    let (sealed_reader, sealed_writer) = reflector::store();
    let sealed_stream = reflector(
        sealed_writer,
        report_synced(
            guarded_watch::<SealedSecret>(
                ctx.client.clone(),
                namespace.as_deref(),
                cfg,
                crate::invalid::reporter(ctx.clone()),
                sealed_reader.clone(),
            ),
            readiness.component(&format!("sealedsecrets in {scope}")),
        )
        .inspect({
            let metrics = ctx.metrics.clone();
            move |event| {
                if let Ok(watcher::Event::Delete(gone)) = event {
                    metrics.forget(gone);
                }
            }
        })
        .modify(slim),
    )
    .applied_objects();
    let mut controller = Controller::for_stream(ctx.queue.triggers(sealed_stream), sealed_reader);
    if watch_secrets {
        // owned Secrets are watched for their metadata only: the controller never needs their
        // data from the watch, and a cache of every Secret in the cluster would dominate its
        // memory. A deleted or edited Secret is repaired at once, not at the next resync, and
        // the cache lets reconciles skip reading Secrets that are already in place.
        let (reader, stream) = owned_metadata_cache::<Secret>(
            ctx.client.clone(),
            namespace.as_deref(),
            watcher::Config::default(),
            readiness.component(&format!("secrets in {scope}")),
        );
        controller = controller.owns_stream(ctx.queue.owner_triggers::<SealedSecret, _, _>(stream));
        ctx.secret_index.add_store(namespace.clone(), reader);
    }
    tracing::info!(namespace = %scope, "watching SealedSecrets");
    controller
}

/// The event reporter name upstream uses.
pub fn reporter() -> Reporter {
    Reporter {
        controller: "sealed-secrets".into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

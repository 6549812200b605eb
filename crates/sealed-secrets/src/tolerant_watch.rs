//! The SealedSecret watch, tolerant of objects that do not read as a SealedSecret.
//!
//! `spec.template.metadata` keeps unknown fields, so the API server accepts, say, a label whose
//! value is a number. A typed watch would fail to decode the whole list on such an object and
//! stall every SealedSecret behind it. This watch reads each object on its own: one that does not
//! read is reported (log line, Warning event, `Synced=False`) and skipped, and the rest flow on.

use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use strongroom_core::crd::sealed_secret::SealedSecret;

use crate::controller::Context;

/// Watches SealedSecrets in `namespace` (or all) as raw objects and yields the ones that read.
pub fn sealed_secret_events(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    cfg: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<SealedSecret>, watcher::Error>> + Send + 'static {
    let resource = ApiResource::erase::<SealedSecret>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    watcher(api, cfg)
        .default_backoff()
        .filter_map(move |event| future::ready(event.map(|e| typed(e, &ctx)).transpose()))
}

fn typed(
    event: watcher::Event<DynamicObject>,
    ctx: &Arc<Context>,
) -> Option<watcher::Event<SealedSecret>> {
    use watcher::Event as E;
    Some(match event {
        E::Init => E::Init,
        E::InitDone => E::InitDone,
        E::InitApply(obj) => E::InitApply(read(obj, ctx)?),
        E::Apply(obj) => E::Apply(read(obj, ctx)?),
        E::Delete(obj) => E::Delete(read(obj, ctx)?),
    })
}

/// The object as a SealedSecret, or `None` after reporting why it is not one.
fn read(obj: DynamicObject, ctx: &Arc<Context>) -> Option<SealedSecret> {
    let parsed = serde_json::to_value(&obj)
        .and_then(serde_json::from_value::<SealedSecret>)
        .map_err(|e| e.to_string());
    match parsed {
        Ok(ss) => Some(ss),
        Err(reason) => {
            tokio::spawn(report(ctx.clone(), obj, reason));
            None
        }
    }
}

/// Log line, Warning event and `Synced=False` for an object that does not read.
async fn report(ctx: Arc<Context>, obj: DynamicObject, reason: String) {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let message = format!("the SealedSecret cannot be read: {reason}");
    tracing::warn!(sealedsecret = %format!("{ns}/{name}"), error = %reason, "invalid SealedSecret skipped");
    ctx.metrics
        .unseal_errors
        .with_label_values(&["unseal", ns.as_str()])
        .inc();
    let current = obj
        .data
        .pointer("/status/conditions/0/message")
        .and_then(|m| m.as_str());
    if current == Some(message.as_str()) {
        return;
    }
    let resource = ApiResource::erase::<SealedSecret>(&());
    let event = Event {
        type_: EventType::Warning,
        reason: "ErrUnsealFailed".into(),
        note: Some(message.clone()),
        action: "Unseal".into(),
        secondary: None,
    };
    if let Err(e) = ctx
        .recorder
        .publish(&event, &obj.object_ref(&resource))
        .await
    {
        tracing::warn!(error = %e, "could not publish event");
    }
    if !ctx.update_status {
        return;
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"observedGeneration": obj.metadata.generation, "conditions": [{
        "type": "Synced", "status": "False", "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now}]}});
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource);
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        tracing::warn!(error = %e, "could not write the failure status");
    }
}

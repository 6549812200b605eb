//! SealedSecrets that do not read as one.
//!
//! `spec.template.metadata` keeps unknown fields, so the API server accepts, say, a label whose
//! value is a number. The kit's guarded watch skips such an object instead of stalling every
//! SealedSecret behind it; this reports it: a log line, a Warning event and `Synced=False`.

use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_controller_kit::shutdown::unless_cancelled;
use strongroom_controller_kit::status::{self, DesiredCondition, Stamps};
use strongroom_controller_kit::watch::OnInvalid;
use strongroom_core::crd::sealed_secret::SealedSecret;

use crate::FIELD_MANAGER;
use crate::context::Context;

/// The callback the guarded SealedSecret watch calls for an object that does not read.
pub fn reporter(ctx: Arc<Context>) -> OnInvalid {
    Arc::new(move |obj, reason| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let stop = ctx.policy.stop_token().clone();
            unless_cancelled(&stop, report(ctx, obj, reason)).await;
        });
    })
}

async fn report(ctx: Arc<Context>, obj: DynamicObject, reason: String) {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let message = format!("the SealedSecret cannot be read: {reason}");
    tracing::warn!(sealedsecret = %format!("{ns}/{name}"), error = %reason, "invalid SealedSecret skipped");
    // upstream's `fetch` reason: the object could not be read from the cache
    ctx.metrics
        .unseal_errors
        .with_label_values(&["fetch", ns.as_str()])
        .inc();
    let desired = DesiredCondition::new("Synced", false).message(&message);
    let current = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let extra: Map<String, Value> = [(
        "observedGeneration".to_string(),
        json!(obj.metadata.generation),
    )]
    .into_iter()
    .collect();
    let Some(next) = status::next_status(
        &current,
        std::slice::from_ref(&desired),
        extra,
        &status::now(),
        Stamps::TransitionAndUpdate,
    ) else {
        return; // reported already
    };
    let resource = ApiResource::erase::<SealedSecret>(&());
    ctx.policy.publish(
        obj.object_ref(&resource),
        kube::runtime::events::EventType::Warning,
        "ErrUnsealFailed",
        message,
    );
    if !ctx.update_status {
        return;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource);
    if let Err(e) = status::apply_status_as(
        &api,
        &SealedSecret::api_version(&()),
        &SealedSecret::kind(&()),
        &name,
        FIELD_MANAGER,
        next,
    )
    .await
    {
        tracing::warn!(error = %e, "could not write the failure status");
    }
}

//! The PushSecret reconcile: values of a source Secret pushed to every referenced store, with
//! upstream's update and deletion policies and status. Beyond upstream, a change of the source
//! Secret is pushed at once (the controller watches it), not at the next interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_controller_kit::status;
use strongroom_core::crd::external_secrets::{
    PushSecret, PushSecretData, SecretStoreRef, StoreKind,
};
use strongroom_provider_api::{PushRef, SecretBytes};

use crate::context::Context;
use crate::desired::{TemplateSources, desired};
use crate::error::Error;
use crate::hash::synced_resource_version;
use crate::ready::{self, ReadyStatus};
use crate::refresh::interval;

/// The finalizer on PushSecrets with `deletionPolicy: Delete`.
pub const FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";

/// `<Kind>/<name>` → `<remoteKey>[/<property>]` → the entry pushed there.
type Synced = BTreeMap<String, BTreeMap<String, PushSecretData>>;

fn status_key(data: &PushSecretData) -> String {
    let r = &data.match_.remote_ref;
    match r.property.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{}/{p}", r.remote_key),
        None => r.remote_key.clone(),
    }
}

fn push_ref(data: &PushSecretData) -> PushRef {
    PushRef {
        remote_key: data.match_.remote_ref.remote_key.clone(),
        property: data
            .match_
            .remote_ref
            .property
            .clone()
            .filter(|p| !p.is_empty()),
        metadata: data
            .metadata
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
    }
}

fn deletes(ps: &PushSecret) -> bool {
    ps.spec.deletion_policy.as_deref() == Some("Delete")
}

/// The reconcile kube-runtime calls.
pub async fn reconcile(ps: Arc<PushSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = ctx.policy.observe(ps.as_ref(), sync(&ps, &ctx)).await;
    if let Err(e) = &result
        && ps.meta().deletion_timestamp.is_none()
    {
        let _ = write_status(&ctx, &ps, false, "Errored", &e.to_string(), None).await;
    }
    result
}

/// The error policy kube-runtime calls.
pub fn error_policy(ps: Arc<PushSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.policy.on_error(ps.as_ref(), err)
}

async fn set_finalizers(
    ctx: &Context,
    ps: &PushSecret,
    finalizers: Vec<String>,
) -> kube::Result<()> {
    let patch = json!({"metadata": {"finalizers": finalizers}});
    Api::<PushSecret>::namespaced(ctx.client.clone(), &ps.namespace().unwrap_or_default())
        .patch(
            &ps.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
}

fn synced_of(ps: &PushSecret) -> Synced {
    ps.status
        .as_ref()
        .and_then(|s| s.synced_push_secrets.clone())
        .unwrap_or_default()
}

/// The store a `<Kind>/<name>` status key names.
fn store_ref_of(key: &str) -> Option<SecretStoreRef> {
    let (kind, name) = key.split_once('/')?;
    let kind = match kind {
        "SecretStore" => StoreKind::SecretStore,
        "ClusterSecretStore" => StoreKind::ClusterSecretStore,
        _ => return None,
    };
    Some(SecretStoreRef {
        name: Some(name.to_string()),
        kind: Some(kind),
    })
}

/// Deletes what `synced` lists and `keep` does not.
async fn delete_remotes(
    ctx: &Context,
    ns: &str,
    synced: &Synced,
    keep: &Synced,
) -> Result<(), Error> {
    for (store_key, entries) in synced {
        let Some(store_ref) = store_ref_of(store_key) else {
            continue;
        };
        let stale: Vec<&PushSecretData> = entries
            .iter()
            .filter(|(k, _)| {
                keep.get(store_key)
                    .is_none_or(|kept| !kept.contains_key(*k))
            })
            .map(|(_, d)| d)
            .collect();
        if stale.is_empty() {
            continue;
        }
        let Some(store) = ctx.stores.resolve(&store_ref, ns).await? else {
            continue;
        };
        let client = ctx
            .stores
            .client(&store)
            .await
            .map_err(Error::StoreProvider)?;
        for data in stale {
            client
                .delete(&push_ref(data))
                .await
                .map_err(|source| Error::Fetch {
                    at: format!("deleting {} from {store_key}", status_key(data)),
                    source,
                })?;
        }
    }
    Ok(())
}

async fn sync(ps: &PushSecret, ctx: &Context) -> Result<Action, Error> {
    let ns = ps.namespace().unwrap_or_default();
    if ps.meta().deletion_timestamp.is_some() {
        if !ps.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        delete_remotes(ctx, &ns, &synced_of(ps), &Synced::new()).await?;
        let rest = ps
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        return match set_finalizers(ctx, ps, rest).await {
            Ok(()) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(Error::kube("remove the finalizer")(e)),
        };
    }
    if deletes(ps) && !ps.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = ps.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        set_finalizers(ctx, ps, finalizers)
            .await
            .map_err(Error::kube("add the finalizer"))?;
    }
    let every = interval(ps.spec.refresh_interval.as_deref()).map_err(Error::InvalidSpec)?;
    if ps.spec.data_to.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(Error::InvalidSpec(
            "spec.dataTo is not supported by this controller yet".into(),
        ));
    }
    if ps.spec.selector.generator_ref.is_some() {
        return Err(Error::InvalidSpec(
            "spec.selector.generatorRef is not supported by this controller yet".into(),
        ));
    }
    let source_name = ps
        .spec
        .selector
        .secret
        .as_ref()
        .and_then(|s| s.name.clone())
        .ok_or_else(|| {
            Error::InvalidSpec(
                "spec.selector.secret.name is required (label selectors are not supported yet)"
                    .into(),
            )
        })?;
    let source = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&source_name)
        .await
        .map_err(Error::kube("read the source Secret"))?
        .ok_or_else(|| Error::Store(format!("source Secret {source_name:?} not found")))?;
    let mut values: BTreeMap<String, SecretBytes> = source
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::new(v.0)))
        .collect();
    if let Some(template) = &ps.spec.template {
        let want = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(template),
            &values,
            &TemplateSources::default(),
            &ctx.engine,
        )
        .map_err(Error::template)?;
        values = want
            .data
            .into_iter()
            .map(|(k, v)| (k, SecretBytes::new(v)))
            .collect();
    }
    // the stores: by name, or every store whose labels match
    let mut stores: Vec<SecretStoreRef> = Vec::new();
    for r in &ps.spec.secret_store_refs {
        let kind = r.kind.unwrap_or_default();
        match (&r.name, &r.label_selector) {
            (Some(name), _) if !name.is_empty() => stores.push(SecretStoreRef {
                name: Some(name.clone()),
                kind: Some(kind),
            }),
            (_, Some(selector)) => stores.extend(
                ctx.stores
                    .matching(kind, &ns, selector)
                    .into_iter()
                    .map(|name| SecretStoreRef {
                        name: Some(name),
                        kind: Some(kind),
                    }),
            ),
            _ => {
                return Err(Error::InvalidSpec(
                    "spec.secretStoreRefs[] needs a name or a labelSelector".into(),
                ));
            }
        }
    }
    let only_if_missing = ps.spec.update_policy.as_deref() == Some("IfNotExists");
    let mut synced = Synced::new();
    for store_ref in &stores {
        let Some(store) = ctx.stores.resolve(store_ref, &ns).await? else {
            continue;
        };
        let store_key = format!(
            "{:?}/{}",
            store_ref.kind_or_default(),
            store_ref.name.clone().unwrap_or_default()
        );
        let client = ctx
            .stores
            .client(&store)
            .await
            .map_err(Error::StoreProvider)?;
        for (i, data) in ps.spec.data.iter().flatten().enumerate() {
            let at = format!("spec.data[{i}] to {store_key}");
            let value = match data.match_.secret_key.as_deref().filter(|k| !k.is_empty()) {
                Some(key) => values.get(key).cloned().ok_or_else(|| Error::Value {
                    at: at.clone(),
                    message: format!("source Secret has no key {key:?}"),
                })?,
                // no secretKey: the whole Secret, as a JSON object of its values
                None => {
                    let object: Map<String, Value> = values
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v.expose()))))
                        .collect();
                    SecretBytes::new(Value::Object(object).to_string().into_bytes())
                }
            };
            let target = push_ref(data);
            if only_if_missing
                && client
                    .exists(&target)
                    .await
                    .map_err(|source| Error::Fetch {
                        at: at.clone(),
                        source,
                    })?
            {
                synced
                    .entry(store_key.clone())
                    .or_default()
                    .insert(status_key(data), data.clone());
                continue;
            }
            if ctx.policy.stop_token().is_cancelled() {
                return Ok(Action::await_change());
            }
            client
                .push(&value, &target)
                .await
                .map_err(|source| Error::Fetch { at, source })?;
            synced
                .entry(store_key.clone())
                .or_default()
                .insert(status_key(data), data.clone());
        }
    }
    if deletes(ps) {
        delete_remotes(ctx, &ns, &synced_of(ps), &synced).await?;
    }
    let version = synced_resource_version(
        ps.meta().generation.unwrap_or_default(),
        ps.meta().labels.as_ref(),
        ps.meta().annotations.as_ref(),
    );
    write_status(
        ctx,
        ps,
        true,
        "Synced",
        "PushSecret synced successfully",
        Some((&version, &synced)),
    )
    .await?;
    Ok(if every.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(every.max(Duration::from_secs(1)))
    })
}

async fn write_status(
    ctx: &Context,
    ps: &PushSecret,
    ok: bool,
    reason: &str,
    message: &str,
    synced: Option<(&str, &Synced)>,
) -> Result<(), Error> {
    let mut set = Map::new();
    if let Some((version, pushed)) = synced {
        set.insert("refreshTime".into(), json!(status::now()));
        set.insert("syncedResourceVersion".into(), json!(version));
        set.insert(
            "syncedPushSecrets".into(),
            serde_json::to_value(pushed).unwrap_or(Value::Null),
        );
    }
    let api: Api<PushSecret> =
        Api::namespaced(ctx.client.clone(), &ps.namespace().unwrap_or_default());
    let status = ReadyStatus {
        current: serde_json::to_value(&ps.status).unwrap_or(Value::Null),
        kept: &["refreshTime", "syncedResourceVersion", "syncedPushSecrets"],
        set,
        ok,
        reason: Some(reason),
        message,
    };
    ready::write(ctx, &api, &ps.name_any(), status).await
}

//! The PushSecret reconcile: values of a source Secret (by name or labels) or of a generator
//! pushed to every referenced store, explicit `data[]` entries and bulk `dataTo[]` entries, with
//! upstream's update and deletion policies and status. Beyond upstream, a change of a source
//! Secret is pushed at once (the controller watches it), not at the next interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_controller_kit::status;
use strongroom_core::crd::external_secrets::{
    ExternalSecretTemplate, PushSecret, PushSecretData, SecretStoreRef, StoreKind,
};
use strongroom_provider_api::{PushRef, SecretBytes, SecretsClient};

use crate::context::Context;
use crate::desired::{TemplateSources, desired};
use crate::error::Error;
use crate::hash::synced_resource_version;
use crate::metrics::{Kind, Subject};
use crate::push_plan;
use crate::push_source::{self, Source, SourceSpec};
use crate::ready::{self, ReadyStatus};
use crate::refresh::{LastSync, interval, refresh_reason};
use crate::stores::StoreId;

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
    let start = Instant::now();
    let result = ctx.policy.observe(ps.as_ref(), sync(&ps, &ctx)).await;
    let nanos = start.elapsed().as_nanos() as f64;
    ctx.metrics.reconciled(
        Kind::PushSecret,
        Subject::of(ps.as_ref()),
        result.is_ok(),
        nanos,
    );
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
            let target = push_ref(data);
            ctx.stores
                .limited(&store.id, || client.delete(&target))
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
        ctx.forget_synced(&ps.uid().unwrap_or_default());
        ctx.metrics.forget(Kind::PushSecret, Subject::of(ps));
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
    let rules = push_plan::compile(
        ps.spec.data_to.as_deref().unwrap_or_default(),
        &ps.spec.secret_store_refs,
    )
    .map_err(Error::InvalidSpec)?;
    let source_spec = SourceSpec::of(&ps.spec.selector)?;
    let version = synced_resource_version(
        ps.meta().generation.unwrap_or_default(),
        ps.meta().labels.as_ref(),
        ps.meta().annotations.as_ref(),
    );
    let generated = matches!(source_spec, SourceSpec::Generator(_));
    if generated && let Some(wait) = generator_not_due(ctx, ps, every, &version) {
        return Ok(wait);
    }
    let store_refs = selected_stores(ps, ctx, &ns)?;
    let mut sources = push_source::resolve(ctx, &ns, &ps.name_any(), source_spec).await?;
    if sources.is_empty() {
        // a label selector that matches nothing: nothing pushed, nothing deleted, and what
        // was pushed before stays recorded (so deleting the PushSecret still cleans it up)
        write_status(
            ctx,
            ps,
            true,
            "Synced",
            "no Secret matches spec.selector.secret.selector: nothing pushed",
            Some((&version, &synced_of(ps))),
        )
        .await?;
        return Ok(requeue(every));
    }
    if let Some(template) = &ps.spec.template {
        for source in &mut sources {
            apply_template(ctx, template, source)?;
        }
    }
    let plans = plan(ctx, ps, &ns, &rules, &store_refs, &sources).await?;
    let only_if_missing = ps.spec.update_policy.as_deref() == Some("IfNotExists");
    let mut synced = Synced::new();
    for (store_key, store, client, pushes) in plans {
        for (at, data, value) in pushes {
            let target = push_ref(&data);
            let skip = only_if_missing
                && ctx
                    .stores
                    .limited(&store, || client.exists(&target))
                    .await
                    .map_err(|source| Error::Fetch {
                        at: at.clone(),
                        source,
                    })?;
            if !skip {
                if ctx.policy.stop_token().is_cancelled() {
                    return Ok(Action::await_change());
                }
                ctx.stores
                    .limited(&store, || client.push(&value, &target))
                    .await
                    .map_err(|source| Error::Fetch { at, source })?;
            }
            synced
                .entry(store_key.clone())
                .or_default()
                .insert(status_key(&data), data);
        }
    }
    if deletes(ps) {
        delete_remotes(ctx, &ns, &synced_of(ps), &synced).await?;
    }
    write_status(
        ctx,
        ps,
        true,
        "Synced",
        "PushSecret synced successfully",
        Some((&version, &synced)),
    )
    .await?;
    if generated {
        ctx.remember_synced(&ps.uid().unwrap_or_default(), &version, now_secs());
    }
    Ok(requeue(every))
}

/// One store's pushes: its `<Kind>/<name>`, its identity (for its rate limit), its client, and
/// per entry the spec entry it comes from (for messages), what is pushed where, and the value.
type StorePlan = (
    String,
    StoreId,
    Arc<dyn SecretsClient>,
    Vec<(String, PushSecretData, SecretBytes)>,
);

/// A source's values through `spec.template`.
fn apply_template(
    ctx: &Context,
    template: &ExternalSecretTemplate,
    source: &mut Source,
) -> Result<(), Error> {
    let want = desired(
        &BTreeMap::new(),
        &BTreeMap::new(),
        Some(template),
        &source.values,
        &TemplateSources::default(),
        &ctx.engine,
    )
    .map_err(Error::template)?;
    source.values = want
        .data
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::new(v)))
        .collect();
    Ok(())
}

/// What goes to each store from every source, with the values, worked out before anything
/// is pushed (so bad input pushes nothing).
async fn plan(
    ctx: &Context,
    ps: &PushSecret,
    ns: &str,
    rules: &[push_plan::DataToRule],
    store_refs: &[SecretStoreRef],
    sources: &[Source],
) -> Result<Vec<StorePlan>, Error> {
    let explicit = push_plan::explicit(ps.spec.data.as_deref().unwrap_or_default());
    let mut plans = Vec::new();
    for store_ref in store_refs {
        let Some(store) = ctx.stores.resolve(store_ref, ns).await? else {
            continue;
        };
        let kind = store_ref.kind_or_default();
        let name = store_ref.name.clone().unwrap_or_default();
        let targeting: Vec<&push_plan::DataToRule> = rules
            .iter()
            .filter(|r| {
                r.targets(kind, &name, |selector| {
                    ctx.stores.matching(kind, ns, selector).contains(&name)
                })
            })
            .collect();
        let store_key = format!("{kind:?}/{name}");
        let mut pushes = Vec::new();
        for source in sources {
            let entries = push_plan::expand(&targeting, &source.values, &ctx.engine)
                .and_then(|bulk| push_plan::merge(bulk, explicit.clone()))
                .map_err(|message| Error::Value {
                    at: format!("{} for {store_key}", source.label),
                    message,
                })?;
            for planned in entries {
                let at = if sources.len() > 1 {
                    format!("{} of {} to {store_key}", planned.origin, source.label)
                } else {
                    format!("{} to {store_key}", planned.origin)
                };
                let value =
                    value_of(&planned.data, &source.values).map_err(|message| Error::Value {
                        at: at.clone(),
                        message,
                    })?;
                pushes.push((at, planned.data, value));
            }
        }
        let client = ctx
            .stores
            .client(&store)
            .await
            .map_err(Error::StoreProvider)?;
        plans.push((store_key, store.id, client, pushes));
    }
    Ok(plans)
}

/// The value `data` pushes from a source: its key (after the entry's key conversion), or
/// without `secretKey` the whole source as a JSON object of its values.
fn value_of(
    data: &PushSecretData,
    values: &BTreeMap<String, SecretBytes>,
) -> Result<SecretBytes, String> {
    let values = push_plan::convert_keys(data.conversion_strategy.as_deref(), values)?;
    match data.match_.secret_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => values
            .get(key)
            .cloned()
            .ok_or_else(|| format!("source Secret has no key {key:?}")),
        None => {
            let object: Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v.expose()))))
                .collect();
            Ok(SecretBytes::new(
                Value::Object(object).to_string().into_bytes(),
            ))
        }
    }
}

fn requeue(every: Duration) -> Action {
    if every.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(every.max(Duration::from_secs(1)))
    }
}

/// For a generator source: when the last push is recent enough (the spec unchanged, the refresh
/// interval not yet over), the action that waits for the rest of it. A generator is run only
/// when a push is due, as upstream, not at every event (a status write is one).
fn generator_not_due(
    ctx: &Context,
    ps: &PushSecret,
    every: Duration,
    version: &str,
) -> Option<Action> {
    let status = ps.status.clone().unwrap_or_default();
    let (synced_version, synced_at) = ctx.latest_sync(
        &ps.uid().unwrap_or_default(),
        status.synced_resource_version,
        status.refresh_time.map(|t| t.0.as_second()),
    );
    let age = synced_at.map(|t| now_secs() - t);
    let last = LastSync {
        synced_version: synced_version.as_deref(),
        age_secs: age,
    };
    if refresh_reason(None, every, last, version).is_some() {
        return None;
    }
    Some(if every.is_zero() {
        Action::await_change()
    } else {
        let left = every.as_secs() as i64 - age.unwrap_or_default();
        Action::requeue(Duration::from_secs(left.max(1) as u64))
    })
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The stores `secretStoreRefs` selects: by name, or every store whose labels match.
fn selected_stores(ps: &PushSecret, ctx: &Context, ns: &str) -> Result<Vec<SecretStoreRef>, Error> {
    let mut stores: Vec<SecretStoreRef> = Vec::new();
    for r in &ps.spec.secret_store_refs {
        let kind = r.kind.unwrap_or_default();
        let names = match (&r.name, &r.label_selector) {
            (Some(name), _) if !name.is_empty() => vec![name.clone()],
            (_, Some(selector)) => ctx.stores.matching(kind, ns, selector),
            _ => {
                return Err(Error::InvalidSpec(
                    "spec.secretStoreRefs[] needs a name or a labelSelector".into(),
                ));
            }
        };
        for name in names {
            let store = SecretStoreRef {
                name: Some(name),
                kind: Some(kind),
            };
            // a store both named and selected is pushed to once
            if !stores.contains(&store) {
                stores.push(store);
            }
        }
    }
    Ok(stores)
}

async fn write_status(
    ctx: &Context,
    ps: &PushSecret,
    ok: bool,
    reason: &str,
    message: &str,
    synced: Option<(&str, &Synced)>,
) -> Result<(), Error> {
    ctx.metrics.ready(Kind::PushSecret, Subject::of(ps), ok);
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

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{PushSecretMatch, PushSecretRemoteRef};

    fn entry(key: Option<&str>, conversion: Option<&str>) -> PushSecretData {
        PushSecretData {
            match_: PushSecretMatch {
                secret_key: key.map(str::to_string),
                remote_ref: PushSecretRemoteRef {
                    remote_key: "r".into(),
                    property: None,
                },
            },
            metadata: None,
            conversion_strategy: conversion.map(str::to_string),
        }
    }

    #[test]
    fn values_pushed() {
        let values: BTreeMap<String, SecretBytes> = [("a_U002f_b", "1"), ("c", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(v)))
            .collect();
        let text = |r: Result<SecretBytes, String>| {
            r.map(|v| String::from_utf8_lossy(v.expose()).into_owned())
        };
        assert_eq!(
            text(value_of(&entry(Some("c"), None), &values)),
            Ok("2".into())
        );
        // ReverseUnicode: the key is looked up as the escape decodes
        assert_eq!(
            text(value_of(
                &entry(Some("a/b"), Some("ReverseUnicode")),
                &values
            )),
            Ok("1".into())
        );
        assert_eq!(
            text(value_of(&entry(Some("a/b"), None), &values)),
            Err("source Secret has no key \"a/b\"".into())
        );
        assert_eq!(
            text(value_of(&entry(None, Some("ReverseUnicode")), &values)),
            Ok(r#"{"a/b":"1","c":"2"}"#.into())
        );
    }
}

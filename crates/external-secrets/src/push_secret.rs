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
    ExternalSecretTemplate, PushSecret, PushSecretData, SecretStoreRef,
};
use strongroom_provider_api::{PushRef, SecretBytes, SecretsClient};

use crate::context::Context;
use crate::desired::{TemplateSources, desired};
use crate::error::Error;
use crate::hash::synced_resource_version;
use crate::metrics::{Kind, Subject};
use crate::push_cleanup::{self, Synced, delete_remotes, deletes, synced_of};
use crate::push_plan;
use crate::push_source::{self, Source, SourceSpec};
use crate::ready::{self, ReadyStatus};
use crate::refresh::{LastSync, interval, refresh_reason};
use crate::stores::StoreId;

/// The finalizer on PushSecrets with `deletionPolicy: Delete`.
pub const FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";

/// `<remoteKey>[/<property>]`: where `data` is recorded in `status.syncedPushSecrets`.
pub(crate) fn status_key(data: &PushSecretData) -> String {
    let r = &data.match_.remote_ref;
    match r.property.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{}/{p}", r.remote_key),
        None => r.remote_key.clone(),
    }
}

/// Where `data` pushes to, for the provider.
pub(crate) fn push_ref(data: &PushSecretData) -> PushRef {
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

/// The reconcile kube-runtime calls.
pub async fn reconcile(ps: Arc<PushSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    // what the status records after a failed or partial cleanup (`None`: as it was)
    let mut left = None;
    let result = ctx
        .policy
        .observe(ps.as_ref(), sync(&ps, &ctx, &mut left))
        .await;
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
        let recorded = match &left {
            Some(left) => Recorded::Left(left),
            None => Recorded::Kept,
        };
        let _ = write_status(&ctx, &ps, false, "Errored", &e.to_string(), recorded).await;
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

fn has_finalizer(ps: &PushSecret) -> bool {
    ps.finalizers().iter().any(|f| f == FINALIZER)
}

/// `ps`'s finalizers without ours.
fn without_finalizer(ps: &PushSecret) -> Vec<String> {
    ps.finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect()
}

async fn sync(ps: &PushSecret, ctx: &Context, left: &mut Option<Synced>) -> Result<Action, Error> {
    let ns = ps.namespace().unwrap_or_default();
    if ps.meta().deletion_timestamp.is_some() {
        ctx.forget_synced(&ps.uid().unwrap_or_default());
        ctx.metrics.forget(Kind::PushSecret, Subject::of(ps));
        if !has_finalizer(ps) {
            return Ok(Action::await_change());
        }
        // a finalizer left from when the policy was Delete deletes nothing (as upstream)
        if deletes(ps) {
            let synced = synced_of(ps);
            let mut remaining = synced.clone();
            let result = delete_remotes(ctx, &ns, &synced, &Synced::new(), &mut remaining).await;
            if let Err(e) = result {
                let recorded = Recorded::Left(&remaining);
                let _ = write_status(ctx, ps, false, "Errored", &e.to_string(), recorded).await;
                return Err(e);
            }
        }
        return match set_finalizers(ctx, ps, without_finalizer(ps)).await {
            Ok(()) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(Error::kube("remove the finalizer")(e)),
        };
    }
    if deletes(ps) != has_finalizer(ps) {
        // added with deletionPolicy Delete, removed when the policy changes (as upstream)
        let finalizers = if deletes(ps) {
            let mut all = ps.finalizers().to_vec();
            all.push(FINALIZER.into());
            all
        } else {
            without_finalizer(ps)
        };
        set_finalizers(ctx, ps, finalizers)
            .await
            .map_err(Error::kube("update the finalizers"))?;
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
    let Some(mut sources) = push_source::resolve(ctx, &ns, &ps.name_any(), source_spec).await?
    else {
        let SourceSpec::Named(name) = source_spec else {
            return Err(Error::InvalidSpec("spec.selector names no Secret".into()));
        };
        return match push_cleanup::source_missing(ctx, ps, name, left).await {
            Some(e) => Err(e),
            None => Ok(Action::await_change()),
        };
    };
    if sources.is_empty() {
        // a label selector that matches nothing: nothing pushed, nothing deleted, and what
        // was pushed before stays recorded (so deleting the PushSecret still cleans it up)
        write_status(
            ctx,
            ps,
            true,
            "Synced",
            "no Secret matches spec.selector.secret.selector: nothing pushed",
            Recorded::Synced(&version, &synced_of(ps)),
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
        let old = synced_of(ps);
        let mut remaining = old.clone();
        if let Err(e) = delete_remotes(ctx, &ns, &old, &synced, &mut remaining).await {
            // what is pushed now, and what could not be deleted yet
            for (store, entries) in remaining {
                let now = synced.entry(store).or_default();
                for (key, data) in entries {
                    now.entry(key).or_insert(data);
                }
            }
            *left = Some(synced);
            return Err(e);
        }
    }
    write_status(
        ctx,
        ps,
        true,
        "Synced",
        "PushSecret synced successfully",
        Recorded::Synced(&version, &synced),
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

/// What a status write records of what was pushed.
enum Recorded<'a> {
    /// The last sync's fields as they are.
    Kept,
    /// A sync now: the spec version it pushed and what it pushed.
    Synced(&'a str, &'a Synced),
    /// The last sync's time and version, and what is left pushed after a cleanup.
    Left(&'a Synced),
}

async fn write_status(
    ctx: &Context,
    ps: &PushSecret,
    ok: bool,
    reason: &str,
    message: &str,
    recorded: Recorded<'_>,
) -> Result<(), Error> {
    ctx.metrics.ready(Kind::PushSecret, Subject::of(ps), ok);
    let mut set = Map::new();
    let pushed = match recorded {
        Recorded::Kept => None,
        Recorded::Synced(version, pushed) => {
            set.insert("refreshTime".into(), json!(status::now()));
            set.insert("syncedResourceVersion".into(), json!(version));
            Some(pushed)
        }
        Recorded::Left(pushed) => Some(pushed),
    };
    // an empty map is left out (as upstream's omitempty), which removes the field
    if let Some(pushed) = pushed.filter(|p| !p.is_empty()) {
        set.insert(
            "syncedPushSecrets".into(),
            serde_json::to_value(pushed).unwrap_or(Value::Null),
        );
    }
    let kept: &[&str] = match pushed {
        None => &["refreshTime", "syncedResourceVersion", "syncedPushSecrets"],
        Some(_) => &["refreshTime", "syncedResourceVersion"],
    };
    let api: Api<PushSecret> =
        Api::namespaced(ctx.client.clone(), &ps.namespace().unwrap_or_default());
    let status = ReadyStatus {
        current: serde_json::to_value(&ps.status).unwrap_or(Value::Null),
        kept,
        set,
        ok,
        reason: Some(reason),
        message,
    };
    ready::write(ctx, &api, &ps.name_any(), status).await?;
    // entries no longer recorded go explicitly (a field an apply stops sending is only
    // removed where the server tracks its owner)
    if let Some(gone) = pushed.and_then(|p| stale_entries(&synced_of(ps), p))
        && !ctx.policy.stop_token().is_cancelled()
    {
        let patch = json!({"status": {"syncedPushSecrets": gone}});
        match api
            .patch_status(
                &ps.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("update the status")(e)),
        }
    }
    Ok(())
}

/// A merge patch of `syncedPushSecrets` that removes what `was` records and `now` does not
/// (`None`: nothing to remove).
fn stale_entries(was: &Synced, now: &Synced) -> Option<Value> {
    let mut gone = Map::new();
    for (store, entries) in was {
        match now.get(store) {
            None => {
                gone.insert(store.clone(), Value::Null);
            }
            Some(kept) => {
                let keys: Map<String, Value> = entries
                    .keys()
                    .filter(|k| !kept.contains_key(*k))
                    .map(|k| (k.clone(), Value::Null))
                    .collect();
                if !keys.is_empty() {
                    gone.insert(store.clone(), Value::Object(keys));
                }
            }
        }
    }
    if gone.is_empty() {
        return None;
    }
    // everything goes: the field itself
    if now.is_empty() {
        return Some(Value::Null);
    }
    Some(Value::Object(gone))
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
    fn stale_entries_are_patched_away() {
        let map = |entries: &[(&str, &str)]| -> Synced {
            let mut m = Synced::new();
            for (store, key) in entries {
                m.entry(store.to_string())
                    .or_default()
                    .insert(key.to_string(), entry(Some("k"), None));
            }
            m
        };
        let was = map(&[
            ("SecretStore/a", "x"),
            ("SecretStore/a", "y"),
            ("SecretStore/b", "z"),
        ]);
        assert_eq!(stale_entries(&was, &was), None);
        assert_eq!(
            stale_entries(&was, &map(&[("SecretStore/a", "x")])),
            Some(json!({"SecretStore/a": {"y": null}, "SecretStore/b": null}))
        );
        assert_eq!(stale_entries(&was, &Synced::new()), Some(Value::Null));
        assert_eq!(stale_entries(&Synced::new(), &Synced::new()), None);
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

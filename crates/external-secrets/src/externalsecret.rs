//! The ExternalSecret reconcile: decide whether to read, read, render, write the target Secret
//! by server-side apply under upstream's field manager, and report in status, events and
//! metrics. A failure never empties or deletes the target.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_controller_kit::lanes::Lane;
use strongroom_controller_kit::status;
use strongroom_core::crd::external_secrets::{
    CREATED_BY_LABEL, CreationPolicy, DATA_HASH_ANNOTATION, DeletionPolicy,
    EXTERNAL_SECRET_FINALIZER, ExternalSecret, ExternalSecretSpec, MANAGED_LABEL,
    ManifestReference, StoreKind,
};

use crate::context::Context;
use crate::desired::{TemplateSources, desired, sources_needed};
use crate::error::Error;
use crate::fetch::{Outcome, fetch};
use crate::hash::{created_by, data_hash, field_manager, synced_resource_version};
use crate::metrics::{Kind, Subject};
use crate::ready::{self, ReadyStatus};
use crate::refresh::{LastSync, Reason, interval, next_refresh_in, refresh_reason, source_seed};
use crate::windows;

/// Upstream's static checks (its admission webhook, here the CRD's validation rules), for
/// objects that bypassed them.
pub fn validate_spec(spec: &ExternalSecretSpec) -> Result<(), String> {
    strongroom_core::crd::external_secrets::validate(spec)
        .map_err(|problems| problems.join("; "))?;
    interval(spec.refresh_interval.as_deref())?;
    Ok(())
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn target_name(es: &ExternalSecret) -> String {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| es.name_any())
}

/// The grid seed of an ExternalSecret: what it reads, so readers of the same keys refresh
/// together.
fn seed(es: &ExternalSecret) -> u64 {
    let mut parts = serde_json::to_vec(&es.spec.secret_store_ref).unwrap_or_default();
    parts.extend(serde_json::to_vec(&es.spec.data).unwrap_or_default());
    parts.extend(serde_json::to_vec(&es.spec.data_from).unwrap_or_default());
    source_seed(&parts)
}

/// Whether the existing target is what this ExternalSecret last wrote (upstream's validity:
/// managed label and a data hash that matches the data).
fn target_valid(es: &ExternalSecret, existing: Option<&Secret>) -> bool {
    let creation = creation_policy(es);
    if matches!(creation, CreationPolicy::Orphan | CreationPolicy::None) {
        return true;
    }
    let Some(secret) = existing else {
        return false;
    };
    let managed = secret
        .labels()
        .get(MANAGED_LABEL)
        .is_some_and(|v| v == "true");
    let hash = data_hash(
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k, v.0.as_slice())),
    );
    managed && secret.annotations().get(DATA_HASH_ANNOTATION) == Some(&hash)
}

pub(crate) fn creation_policy(es: &ExternalSecret) -> CreationPolicy {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.creation_policy)
        .unwrap_or_default()
}

pub(crate) fn deletion_policy(es: &ExternalSecret) -> DeletionPolicy {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.deletion_policy)
        .unwrap_or_default()
}

/// The lane an ExternalSecret waits in for a reconcile slot: urgent when it was never synced
/// or changed since its last sync (spec, labels or annotations, so a force-sync too), routine
/// for a periodic refresh of one in sync.
pub fn lane(es: &ExternalSecret) -> Lane {
    let version = synced_resource_version(
        es.metadata.generation.unwrap_or_default(),
        es.metadata.labels.as_ref(),
        es.metadata.annotations.as_ref(),
    );
    let synced = es
        .status
        .as_ref()
        .and_then(|s| s.synced_resource_version.as_deref());
    if synced == Some(version.as_str()) {
        Lane::Routine
    } else {
        Lane::Urgent
    }
}

/// The reconcile kube-runtime calls.
pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let (name, ns) = (es.name_any(), es.namespace().unwrap_or_default());
    let mut created = Vec::new();
    let result = ctx
        .policy
        .observe(es.as_ref(), sync(&es, &ctx, &mut created))
        .await;
    crate::generator_state::settle(&ctx, &es, &created, result.is_ok()).await;
    let nanos = start.elapsed().as_nanos() as f64;
    ctx.metrics.reconciled(
        Kind::ExternalSecret,
        Subject::of(es.as_ref()),
        result.is_ok(),
        nanos,
    );
    if let Err(e) = &result
        && es.metadata.deletion_timestamp.is_none()
    {
        ctx.metrics
            .ready(Kind::ExternalSecret, Subject::of(es.as_ref()), false);
        if let Err(write) = write_status(
            &ctx,
            &es,
            false,
            e.es_reason(generic_manifest(&es).is_some()),
            &e.to_string(),
            None,
        )
        .await
        {
            tracing::warn!(object = %format!("{ns}/{name}"), error = %write, "could not write status");
        }
    }
    result
}

/// The error policy kube-runtime calls.
pub fn error_policy(es: Arc<ExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.policy.on_error(es.as_ref(), err)
}

/// What a successful sync records in status.
pub(crate) struct Synced<'a> {
    /// The `syncedResourceVersion`.
    pub version: &'a str,
    /// The target's name (`binding.name`).
    pub target: &'a str,
    /// The target's kind (`targetManifest`).
    pub kind: &'a ManifestReference,
}

pub(crate) async fn write_status(
    ctx: &Context,
    es: &ExternalSecret,
    ok: bool,
    reason: &str,
    message: &str,
    synced: Option<Synced<'_>>,
) -> Result<(), Error> {
    let mut set = Map::new();
    if let Some(s) = &synced {
        ctx.remember_synced(&es.uid().unwrap_or_default(), s.version, now_secs());
        set.insert("refreshTime".into(), json!(status::now()));
        set.insert("syncedResourceVersion".into(), json!(s.version));
        set.insert("binding".into(), json!({"name": s.target}));
        set.insert("targetManifest".into(), json!(s.kind));
    }
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let status = ReadyStatus {
        current: serde_json::to_value(&es.status).unwrap_or(Value::Null),
        kept: &[
            "refreshTime",
            "syncedResourceVersion",
            "binding",
            "targetManifest",
        ],
        set,
        ok,
        reason: Some(reason),
        message,
    };
    ready::write(ctx, &api, &es.name_any(), status).await
}

/// Sets the finalizer list by merge patch.
async fn set_finalizers(
    ctx: &Context,
    es: &ExternalSecret,
    finalizers: Vec<String>,
) -> kube::Result<()> {
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    // as upstream: the whole list by merge patch, without a resourceVersion precondition (our
    // own status writes move it all the time; a precondition would only cause conflicts)
    let patch = json!({"metadata": {"finalizers": finalizers}});
    let patched = api
        .patch(
            &es.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.wrote(
        "ExternalSecret",
        &es.namespace().unwrap_or_default(),
        &es.name_any(),
        patched.metadata.resource_version,
    );
    Ok(())
}

async fn ensure_finalizer(ctx: &Context, es: &ExternalSecret) -> Result<(), Error> {
    if es
        .finalizers()
        .iter()
        .any(|f| f == EXTERNAL_SECRET_FINALIZER)
    {
        return Ok(());
    }
    let mut finalizers = es.finalizers().to_vec();
    finalizers.push(EXTERNAL_SECRET_FINALIZER.into());
    set_finalizers(ctx, es, finalizers)
        .await
        .map_err(Error::kube("add the finalizer"))
}

async fn finalize(ctx: &Context, es: &ExternalSecret) -> Result<Action, Error> {
    let ns = es.namespace().unwrap_or_default();
    ctx.generic.release(&user_of(es));
    ctx.metrics.forget(Kind::ExternalSecret, Subject::of(es));
    if !es
        .finalizers()
        .iter()
        .any(|f| f == EXTERNAL_SECRET_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    // every generator state of this ExternalSecret goes: each one's lease is revoked
    crate::generator_state::delete_owned(ctx, es)
        .await
        .map_err(Error::kube("delete the generator states"))?;
    if deletion_policy(es) == DeletionPolicy::Delete
        && creation_policy(es) == CreationPolicy::Owner
        && generic_manifest(es).is_some()
    {
        crate::generic_sync::delete_target(ctx, es).await?;
    } else if deletion_policy(es) == DeletionPolicy::Delete
        && creation_policy(es) == CreationPolicy::Owner
    {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let target = target_name(es);
        if let Some(secret) = secrets
            .get_opt(&target)
            .await
            .map_err(Error::kube("read the target Secret"))?
            && owned_by(&secret, es)
        {
            match secrets.delete(&target, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::kube("delete the target Secret")(e)),
            }
        }
    }
    let finalizers: Vec<String> = es
        .finalizers()
        .iter()
        .filter(|f| *f != EXTERNAL_SECRET_FINALIZER)
        .cloned()
        .collect();
    match set_finalizers(ctx, es, finalizers).await {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::kube("remove the finalizer")(e)),
    }
}

/// Whether `target` is controlled by `es` (its controller owner reference).
pub(crate) fn owned_by<R: Resource>(target: &R, es: &ExternalSecret) -> bool {
    let uid = es.uid().unwrap_or_default();
    target
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// When to look again for a `creationPolicy: Merge` target that does not exist yet: the
/// creation of an unlabelled target triggers nothing (only managed targets are watched), so
/// soon (30 s), or at the refresh interval when that is sooner.
pub(crate) fn merge_wait(every: std::time::Duration) -> Action {
    let soon = std::time::Duration::from_secs(30);
    Action::requeue(if every.is_zero() {
        soon
    } else {
        every.min(soon)
    })
}

/// Whether `target` is controlled by something other than `es`.
pub(crate) fn foreign_controller<R: Resource>(target: &R, es: &ExternalSecret) -> bool {
    let uid = es.uid().unwrap_or_default();
    target
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid != uid)
}

fn uses_cluster_store(spec: &ExternalSecretSpec) -> bool {
    let kind = |r: Option<&strongroom_core::crd::external_secrets::SecretStoreRef>| {
        r.is_some_and(|r| r.kind_or_default() == StoreKind::ClusterSecretStore)
    };
    kind(spec.secret_store_ref.as_ref())
        || spec
            .data
            .iter()
            .flatten()
            .any(|d| kind(d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
        || spec
            .data_from
            .iter()
            .flatten()
            .any(|d| kind(d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
}

async fn sync(
    es: &ExternalSecret,
    ctx: &Context,
    created: &mut Vec<crate::generator_state::Recorded>,
) -> Result<Action, Error> {
    if es.metadata.deletion_timestamp.is_some() {
        return finalize(ctx, es).await;
    }
    if !ctx.cluster_stores && uses_cluster_store(&es.spec) {
        return Ok(Action::await_change());
    }
    validate_spec(&es.spec).map_err(Error::InvalidSpec)?;
    if let Some(manifest) = generic_manifest(es) {
        // nothing is written (not even the finalizer) while generic targets are off
        if !ctx.generic.allowed {
            return Err(Error::GenericTargetsDisabled);
        }
        let ar = match ctx.generic.resolve(&ctx.client, manifest).await {
            Ok(ar) => ar,
            Err(e) => {
                ctx.generic.release(&user_of(es));
                return Err(e);
            }
        };
        ensure_finalizer(ctx, es).await?;
        return crate::generic_sync::sync(es, ctx, created, &ar).await;
    }
    ensure_finalizer(ctx, es).await?;
    ctx.generic.release(&user_of(es));
    sync_secret(es, ctx, created).await
}

/// The ExternalSecret as a user of a generic kind's watch.
fn user_of(es: &ExternalSecret) -> crate::generic_watch::User {
    (es.namespace().unwrap_or_default(), es.name_any())
}

/// `spec.target.manifest` when it names a kind other than a core Secret (a `v1` `Secret`
/// manifest is written as any Secret target, flag or not).
pub fn generic_manifest(
    es: &ExternalSecret,
) -> Option<&strongroom_core::crd::external_secrets::ManifestReference> {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.manifest.as_ref())
        .filter(|m| !(m.api_version == "v1" && m.kind == "Secret"))
}

/// One reconcile's refresh decision, shared by Secret and generic targets.
pub(crate) struct Round {
    /// The refresh interval (zero: never periodically).
    pub every: std::time::Duration,
    /// The `syncedResourceVersion` this reconcile records.
    pub version: String,
    /// Seconds since the last sync.
    pub age: Option<i64>,
    /// Why a read is due (`None`: not due).
    pub reason: Option<Reason>,
}

impl Round {
    /// The refresh decision for `es`.
    pub(crate) fn of(es: &ExternalSecret, ctx: &Context) -> Result<Self, Error> {
        let every = interval(es.spec.refresh_interval.as_deref()).map_err(Error::InvalidSpec)?;
        let version = synced_resource_version(
            es.metadata.generation.unwrap_or_default(),
            es.metadata.labels.as_ref(),
            es.metadata.annotations.as_ref(),
        );
        let status = es.status.clone().unwrap_or_default();
        // the finalizer's own event can trigger the next reconcile before the cache shows the
        // status written by the last one
        let (synced_version, synced_at) = ctx.latest_sync(
            &es.uid().unwrap_or_default(),
            status.synced_resource_version,
            status.refresh_time.map(|t| t.0.as_second()),
        );
        let age = synced_at.map(|t| now_secs() - t);
        let last = LastSync {
            synced_version: synced_version.as_deref(),
            age_secs: age,
        };
        let reason = refresh_reason(es.spec.refresh_policy, every, last, &version);
        Ok(Self {
            every,
            version,
            age,
            reason,
        })
    }

    /// The next reconcile, `age` seconds after the last sync.
    pub(crate) fn requeue(&self, es: &ExternalSecret, age: i64) -> Action {
        if self.every.is_zero() {
            Action::await_change()
        } else {
            Action::requeue(next_refresh_in(self.every, age, now_secs(), seed(es)))
        }
    }

    /// When no read is due (or a sync window is closed) and the target is `valid`: the action
    /// that ends this reconcile.
    pub(crate) fn skip(&self, es: &ExternalSecret, ctx: &Context, valid: bool) -> Option<Action> {
        match self.reason {
            None if valid => {
                ctx.metrics
                    .ready(Kind::ExternalSecret, Subject::of(es), true);
                Some(self.requeue(es, self.age.unwrap_or_default()))
            }
            Some(Reason::Interval) if valid => {
                // sync windows gate periodic refreshes only
                let reopens =
                    windows::allows(es.spec.sync_windows.as_ref(), chrono::Utc::now()).err()?;
                ctx.metrics
                    .ready(Kind::ExternalSecret, Subject::of(es), true);
                Some(Action::requeue(
                    reopens
                        .unwrap_or(self.every)
                        .max(std::time::Duration::from_secs(1)),
                ))
            }
            _ => None,
        }
    }

    /// Reads the values (and records generator states, and reports missing remote keys).
    /// `None`: a store belongs to another controller class.
    pub(crate) async fn read(
        &self,
        es: &ExternalSecret,
        ctx: &Context,
        created: &mut Vec<crate::generator_state::Recorded>,
    ) -> Result<Option<crate::fetch::Fetched>, Error> {
        let tolerate_missing = matches!(
            deletion_policy(es),
            DeletionPolicy::Delete | DeletionPolicy::Merge
        );
        // a force-sync (or any change of the ExternalSecret) reads fresh values; otherwise a
        // read shared with other ExternalSecrets may be up to half an interval old (and at most
        // the read-cache TTL), so values are never staler than upstream's
        let max_age = if self.reason == Some(Reason::Changed) {
            std::time::Duration::ZERO
        } else if self.every.is_zero() {
            ctx.read_max_age
        } else {
            self.every / 2
        };
        let ns = es.namespace().unwrap_or_default();
        let fetched = match fetch(
            &es.spec,
            &ns,
            &es.name_any(),
            &ctx.stores,
            &ctx.rewrite_engine,
            tolerate_missing,
            max_age,
        )
        .await?
        {
            Outcome::Fetched(f) => f,
            Outcome::OtherClass => return Ok(None),
        };
        crate::generator_state::record(ctx, es, &fetched.states, created)
            .await
            .map_err(|e| Error::Store(e.to_string()))?;
        for at in &fetched.missing {
            ctx.policy.event(
                es,
                EventType::Normal,
                "MissingProviderSecret",
                format!("{at}: remote key not found"),
            );
        }
        Ok(Some(fetched))
    }
}

async fn sync_secret(
    es: &ExternalSecret,
    ctx: &Context,
    created: &mut Vec<crate::generator_state::Recorded>,
) -> Result<Action, Error> {
    let (name, ns) = (es.name_any(), es.namespace().unwrap_or_default());
    let round = Round::of(es, ctx)?;
    let every = round.every;
    let version = round.version.clone();
    let target = target_name(es);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets
        .get_opt(&target)
        .await
        .map_err(Error::kube("read the target Secret"))?;
    let requeue = |age: i64| round.requeue(es, age);
    let valid = target_valid(es, existing.as_ref());
    if let Some(action) = round.skip(es, ctx, valid) {
        return Ok(action);
    }
    let creation = creation_policy(es);
    let deletion = deletion_policy(es);
    if creation == CreationPolicy::Merge && existing.is_none() {
        ctx.metrics
            .ready(Kind::ExternalSecret, Subject::of(es), true);
        write_status(
            ctx,
            es,
            true,
            "SecretMissing",
            "secret will not be created (creationPolicy: Merge) until it exists",
            None,
        )
        .await?;
        return Ok(merge_wait(every));
    }
    if creation == CreationPolicy::Owner
        && let Some(secret) = &existing
        && foreign_controller(secret, es)
    {
        return Err(Error::Ownership(
            "target is owned by another ExternalSecret".into(),
        ));
    }
    let Some(fetched) = round.read(es, ctx, created).await? else {
        return Ok(Action::await_change());
    };
    let kind = crate::previous_kind::secret_kind();
    let synced = Synced {
        version: &version,
        target: &target,
        kind: &kind,
    };
    if fetched.data.is_empty() {
        match deletion {
            DeletionPolicy::Delete => {
                if let Some(secret) = &existing
                    && owned_by(secret, es)
                    && !ctx.policy.stop_token().is_cancelled()
                {
                    secrets
                        .delete(&target, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("delete the target Secret"))?;
                    ctx.policy.event(
                        es,
                        EventType::Normal,
                        "Deleted",
                        "secret deleted because the provider has no data (deletionPolicy: Delete)"
                            .into(),
                    );
                }
                ctx.metrics
                    .ready(Kind::ExternalSecret, Subject::of(es), true);
                write_status(
                    ctx,
                    es,
                    true,
                    "SecretDeleted",
                    "secret deleted due to DeletionPolicy",
                    Some(synced),
                )
                .await?;
                return Ok(requeue(0));
            }
            DeletionPolicy::Retain => {
                ctx.metrics
                    .ready(Kind::ExternalSecret, Subject::of(es), true);
                write_status(
                    ctx,
                    es,
                    true,
                    "SecretSynced",
                    "secret retained due to DeletionPolicy=Retain",
                    Some(synced),
                )
                .await?;
                return Ok(requeue(0));
            }
            // Merge: write with no keys of ours, which removes the keys this manager set
            DeletionPolicy::Merge => {}
        }
    }
    if creation == CreationPolicy::None {
        ctx.metrics
            .ready(Kind::ExternalSecret, Subject::of(es), true);
        write_status(ctx, es, true, "SecretSynced", "secret synced", Some(synced)).await?;
        return Ok(requeue(0));
    }
    let template = es.spec.target.as_ref().and_then(|t| t.template.as_ref());
    let sources = template_sources(ctx, &ns, template).await?;
    let want = desired(
        es.labels(),
        es.annotations(),
        template,
        &fetched.data,
        &sources,
        &ctx.engine,
    )
    .map_err(Error::template)?;
    let merging = matches!(
        creation,
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge
    ) && existing.is_some();
    let mut final_data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if merging && let Some(secret) = &existing {
        final_data.extend(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone())),
        );
    }
    final_data.extend(want.data.clone());
    if let Some(secret) = &existing
        && secret.immutable == Some(true)
    {
        let current: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        if current != final_data {
            return Err(Error::Immutable);
        }
    }
    let hash = data_hash(final_data.iter().map(|(k, v)| (k, v.as_slice())));
    let mut labels = want.labels.clone();
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let mut owner_refs = Vec::new();
    if creation == CreationPolicy::Owner {
        labels.insert(CREATED_BY_LABEL.into(), created_by(&ns, &name));
        owner_refs.push(OwnerReference {
            api_version: ExternalSecret::api_version(&()).into_owned(),
            kind: ExternalSecret::kind(&()).into_owned(),
            name: name.clone(),
            uid: es.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
    }
    let mut annotations = want.annotations.clone();
    annotations.insert(DATA_HASH_ANNOTATION.into(), hash);
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": target,
            "namespace": ns,
            "labels": labels,
            "annotations": annotations,
        },
        "data": want.data.iter().map(|(k, v)| (k.clone(), json!(base64_of(v)))).collect::<Map<String, Value>>(),
    });
    if !owner_refs.is_empty() {
        secret["metadata"]["ownerReferences"] = json!(owner_refs);
    }
    if let Some(t) = &want.type_ {
        secret["type"] = json!(t);
    }
    if es.spec.target.as_ref().and_then(|t| t.immutable) == Some(true) {
        secret["immutable"] = json!(true);
    }
    if ctx.policy.stop_token().is_cancelled() {
        return Ok(Action::await_change());
    }
    // fields upstream wrote under our manager name (an `Update` entry) become ours first, so
    // that this apply removes the ones it no longer sends
    if let Some(current) = &existing {
        crate::field_takeover::take_over(
            &secrets,
            &target,
            &crate::field_takeover::Takeover::same_manager(&field_manager(&name)),
            current,
        )
        .await
        .map_err(Error::kube("take over the fields of the target Secret"))?;
    }
    let written = secrets
        .patch(
            &target,
            &PatchParams::apply(&field_manager(&name)).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(Error::kube_write("update secret"))?;
    // keys other managers keep in the Secret are part of its data: the hash must be of what the
    // Secret holds, or it would never match and every event would read the provider again
    let held = data_hash(
        written
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k, v.0.as_slice())),
    );
    let mut last_version = written.metadata.resource_version.clone();
    if written.annotations().get(DATA_HASH_ANNOTATION) != Some(&held) {
        secret["metadata"]["annotations"][DATA_HASH_ANNOTATION] = json!(held);
        let rewritten = secrets
            .patch(
                &target,
                &PatchParams::apply(&field_manager(&name)).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(Error::kube_write("update secret"))?;
        last_version = rewritten.metadata.resource_version;
    }
    ctx.wrote(
        "Secret",
        &es.namespace().unwrap_or_default(),
        &target,
        last_version,
    );
    let changed =
        existing.as_ref().map(|s| s.resource_version()) != Some(written.resource_version());
    if changed {
        let (reason, note) = if existing.is_none() {
            ("Created", "secret created")
        } else {
            ("Updated", "secret updated")
        };
        ctx.policy.event(es, EventType::Normal, reason, note.into());
    }
    if creation == CreationPolicy::Owner {
        crate::previous_kind::delete_previous(ctx, es, &secrets, &target, &kind).await?;
    }
    ctx.metrics
        .ready(Kind::ExternalSecret, Subject::of(es), true);
    write_status(ctx, es, true, "SecretSynced", "secret synced", Some(synced)).await?;
    Ok(requeue(0))
}

/// After `target.name` changed, deletes the object the ExternalSecret wrote before (the one
/// `status.binding` names, of the target's kind `kind`, read through `api`) if this
/// ExternalSecret controls it, as upstream deletes orphaned targets; an object of that name
/// it does not control is left alone. Costs nothing while the name stays.
pub(crate) async fn delete_previous_target<K>(
    ctx: &Context,
    es: &ExternalSecret,
    api: &Api<K>,
    target: &str,
    kind: &str,
) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(previous) = previous_target_name(es).filter(|p| p != target) else {
        return Ok(());
    };
    delete_controlled(
        ctx,
        es,
        api,
        &previous,
        kind,
        "after the target was renamed",
    )
    .await
}

/// The name of the target the last successful sync wrote (`status.binding.name`).
pub(crate) fn previous_target_name(es: &ExternalSecret) -> Option<String> {
    es.status
        .as_ref()
        .and_then(|s| s.binding.as_ref())
        .and_then(|b| b.name.clone())
        .filter(|p| !p.is_empty())
}

/// Deletes the object `name` (of kind `kind`, through `api`) when this ExternalSecret controls
/// it (controller owner reference with its uid), and only the object read (uid precondition);
/// `why` ends the event's note. One it does not control, or already gone, is left alone.
pub(crate) async fn delete_controlled<K>(
    ctx: &Context,
    es: &ExternalSecret,
    api: &Api<K>,
    name: &str,
    kind: &str,
    why: &str,
) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(old) = api
        .get_opt(name)
        .await
        .map_err(Error::kube("read the previous target"))?
    else {
        return Ok(());
    };
    if !owned_by(&old, es) || ctx.policy.stop_token().is_cancelled() {
        return Ok(());
    }
    // only the object read above: one recreated in between (another uid) stays
    let only_that = DeleteParams {
        preconditions: old.meta().uid.clone().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &only_that).await {
        Ok(_) => {
            ctx.policy.event(
                es,
                EventType::Normal,
                "Deleted",
                format!("previous target {kind} {name:?} deleted {why}"),
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube("delete the previous target")(e)),
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) async fn template_sources(
    ctx: &Context,
    ns: &str,
    template: Option<&strongroom_core::crd::external_secrets::ExternalSecretTemplate>,
) -> Result<TemplateSources, Error> {
    let (cms, secrets) = sources_needed(template);
    let mut out = TemplateSources::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for name in cms {
        match cm_api
            .get_opt(&name)
            .await
            .map_err(Error::kube("read a templateFrom ConfigMap"))?
        {
            Some(cm) => {
                out.config_maps.insert(name, cm.data.unwrap_or_default());
            }
            None => {
                return Err(Error::Template(format!(
                    "templateFrom ConfigMap {name:?} not found"
                )));
            }
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for name in secrets {
        match secret_api
            .get_opt(&name)
            .await
            .map_err(Error::kube("read a templateFrom Secret"))?
        {
            Some(s) => {
                out.secrets.insert(
                    name,
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                );
            }
            None => {
                return Err(Error::Template(format!(
                    "templateFrom Secret {name:?} not found"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{ExternalSecretData, ExternalSecretTarget};

    fn spec_with(creation: CreationPolicy, deletion: DeletionPolicy) -> ExternalSecretSpec {
        ExternalSecretSpec {
            data: Some(vec![ExternalSecretData {
                secret_key: "a".into(),
                ..Default::default()
            }]),
            target: Some(ExternalSecretTarget {
                creation_policy: Some(creation),
                deletion_policy: Some(deletion),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn webhook_rules() {
        assert!(validate_spec(&ExternalSecretSpec::default()).is_err());
        assert!(validate_spec(&spec_with(CreationPolicy::Owner, DeletionPolicy::Delete)).is_ok());
        assert!(validate_spec(&spec_with(CreationPolicy::Merge, DeletionPolicy::Delete)).is_err());
        assert!(validate_spec(&spec_with(CreationPolicy::None, DeletionPolicy::Merge)).is_err());
        let mut dup = spec_with(CreationPolicy::Owner, DeletionPolicy::Retain);
        dup.data = Some(vec![
            ExternalSecretData {
                secret_key: "a".into(),
                ..Default::default()
            },
            ExternalSecretData {
                secret_key: "a".into(),
                ..Default::default()
            },
        ]);
        assert!(validate_spec(&dup).is_err_and(|e| e.contains("duplicate")));
        let mut bad_interval = spec_with(CreationPolicy::Owner, DeletionPolicy::Retain);
        bad_interval.refresh_interval = Some("often".into());
        assert!(validate_spec(&bad_interval).is_err());
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    #[test]
    fn new_and_changed_external_secrets_are_urgent_refreshes_routine() {
        let mut es: ExternalSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "a", "namespace": "n", "generation": 2,
                         "annotations": {"force-sync": "1"}},
            "spec": {"secretStoreRef": {"name": "s"}}
        }))
        .unwrap();
        assert_eq!(lane(&es), Lane::Urgent, "never synced");
        let synced = synced_resource_version(
            2,
            es.metadata.labels.as_ref(),
            es.metadata.annotations.as_ref(),
        );
        es.status = serde_json::from_value(json!({"syncedResourceVersion": synced})).unwrap();
        assert_eq!(lane(&es), Lane::Routine, "in sync: a refresh");
        es.metadata
            .annotations
            .get_or_insert_default()
            .insert("force-sync".into(), "2".into());
        assert_eq!(lane(&es), Lane::Urgent, "a force-sync");
        es.metadata.annotations = None;
        es.metadata.generation = Some(3);
        assert_eq!(lane(&es), Lane::Urgent, "spec changed");
    }
}

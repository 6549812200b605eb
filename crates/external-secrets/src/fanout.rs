//! ClusterExternalSecret and ClusterPushSecret: one child (an ExternalSecret or a PushSecret)
//! per selected namespace, owned by the parent; namespaces that stop matching lose theirs; a
//! namespace that already has a child of that name the parent does not own is reported, never
//! taken over. A ClusterExternalSecret also holds each Namespace it provisions with upstream's
//! finalizer `externalsecrets.external-secrets.io/ces-<name>`, released when the Namespace
//! terminates or stops matching, or when the ClusterExternalSecret goes.
//!
//! Children upstream wrote carry its ownership in an `Update` entry of `managedFields` (see
//! [`UPSTREAM_CHILD_WRITER`]); before a child the parent controls is applied, the fields of
//! that entry upstream's fan-out writes are folded into ours (see [`crate::field_takeover`]),
//! so a field later removed from the parent's spec or metadata leaves the child.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ClusterPushSecret, ExternalSecret, FORCE_SYNC_ANNOTATION,
    ObjectMetadata, PushSecret,
};
use strongroom_core::duration::parse_go_duration;

use crate::context::Context;
use crate::error::Error;
use crate::field_takeover::{Takeover, take_over};
use crate::metrics::{Kind, Subject};
use crate::ready::{self, ReadyStatus};
use crate::stores::selector_matches;

/// The field manager the API server records for upstream's writes of children: its
/// ClusterExternalSecret and ClusterPushSecret controllers create and update them
/// (controller-runtime's `CreateOrUpdate`) without a field manager, so the server names the
/// `Update` entry after the request's User-Agent up to its first `/`; controller-runtime's
/// default User-Agent starts with the binary's name, `external-secrets` in upstream's image.
pub const UPSTREAM_CHILD_WRITER: &str = "external-secrets";

/// The fields of a child upstream's fan-out writes, as ours does: labels, annotations, the
/// owner reference and the spec. The same manager name also holds what upstream's controller
/// of the child itself wrote (its finalizer), which is left alone.
const CHILD_FIELDS: &[&[&str]] = &[
    &["f:metadata", "f:labels"],
    &["f:metadata", "f:annotations"],
    &["f:metadata", "f:ownerReferences"],
    &["f:spec"],
];

/// The message of a namespace whose child of that name belongs to someone else.
const NOT_OWNED: &str = "external secret already exists in namespace";

/// A cluster-scoped kind that stamps a namespaced child into namespaces.
pub trait Parent:
    Resource<DynamicType = (), Scope = ClusterResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The child kind.
    type Child: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// The parent's finalizer.
    const FINALIZER: &'static str;
    /// The prefix of the finalizer each selected Namespace carries while the parent
    /// provisions it (`<prefix><parent name>`), when the kind sets one.
    const NAMESPACE_FINALIZER_PREFIX: Option<&'static str>;
    /// The parent's upstream metric family.
    const METRICS: Kind;
    /// The status field naming the children (`externalSecretName`, `pushSecretName`).
    const NAME_FIELD: &'static str;
    /// The children's name, when the spec names none.
    fn child_name_spec(&self) -> Option<String>;
    /// The children's labels and annotations.
    fn child_metadata(&self) -> ObjectMetadata;
    /// The children's spec.
    fn child_spec(&self) -> Value;
    /// Namespaces named outright.
    fn namespace_names(&self) -> Vec<String>;
    /// Label selectors of namespaces (any matching selects).
    fn selectors(&self) -> Vec<LabelSelector>;
    /// `spec.refreshTime`.
    fn refresh_time(&self) -> Option<String>;
    /// `status.provisionedNamespaces`.
    fn provisioned(&self) -> Vec<String>;
    /// The status as JSON.
    fn status_json(&self) -> Value;
}

impl Parent for ClusterExternalSecret {
    type Child = ExternalSecret;
    const FINALIZER: &'static str =
        "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
    const NAMESPACE_FINALIZER_PREFIX: Option<&'static str> =
        Some("externalsecrets.external-secrets.io/ces-");
    const METRICS: Kind = Kind::ClusterExternalSecret;
    const NAME_FIELD: &'static str = "externalSecretName";
    fn child_name_spec(&self) -> Option<String> {
        self.spec.external_secret_name.clone()
    }
    fn child_metadata(&self) -> ObjectMetadata {
        self.spec
            .external_secret_metadata
            .clone()
            .unwrap_or_default()
    }
    fn child_spec(&self) -> Value {
        serde_json::to_value(&self.spec.external_secret_spec).unwrap_or(Value::Null)
    }
    fn namespace_names(&self) -> Vec<String> {
        self.spec.namespaces.clone().unwrap_or_default()
    }
    fn selectors(&self) -> Vec<LabelSelector> {
        self.spec
            .namespace_selectors
            .iter()
            .flatten()
            .chain(self.spec.namespace_selector.as_ref())
            .cloned()
            .collect()
    }
    fn refresh_time(&self) -> Option<String> {
        self.spec.refresh_time.clone()
    }
    fn provisioned(&self) -> Vec<String> {
        self.status
            .as_ref()
            .and_then(|s| s.provisioned_namespaces.clone())
            .unwrap_or_default()
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

impl Parent for ClusterPushSecret {
    type Child = PushSecret;
    const FINALIZER: &'static str = "pushsecrets.externalsecrets.io/clusterpushsecret-cleanup";
    const NAMESPACE_FINALIZER_PREFIX: Option<&'static str> = None;
    const METRICS: Kind = Kind::ClusterPushSecret;
    const NAME_FIELD: &'static str = "pushSecretName";
    fn child_name_spec(&self) -> Option<String> {
        self.spec.push_secret_name.clone()
    }
    fn child_metadata(&self) -> ObjectMetadata {
        self.spec.push_secret_metadata.clone().unwrap_or_default()
    }
    fn child_spec(&self) -> Value {
        serde_json::to_value(&self.spec.push_secret_spec).unwrap_or(Value::Null)
    }
    fn namespace_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn selectors(&self) -> Vec<LabelSelector> {
        self.spec.namespace_selectors.clone().unwrap_or_default()
    }
    fn refresh_time(&self) -> Option<String> {
        self.spec.refresh_time.clone()
    }
    fn provisioned(&self) -> Vec<String> {
        self.status
            .as_ref()
            .and_then(|s| s.provisioned_namespaces.clone())
            .unwrap_or_default()
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

fn child_name<P: Parent>(parent: &P) -> String {
    parent
        .child_name_spec()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| parent.name_any())
}

fn field_manager<P: Parent>(parent: &P) -> String {
    format!(
        "{}.external-secrets.io/{}",
        P::plural(&()),
        parent.name_any()
    )
}

/// Whether a namespace is selected: by name, or by any of the label selectors (an empty
/// selector selects every namespace).
pub fn selected<P: Parent>(parent: &P, ns: &Namespace) -> bool {
    let name = ns.name_any();
    parent.namespace_names().contains(&name)
        || parent
            .selectors()
            .iter()
            .any(|s| selector_matches(s, ns.labels()))
}

/// The reconcile kube-runtime calls, for either parent kind.
pub async fn reconcile<P: Parent>(parent: Arc<P>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = ctx
        .policy
        .observe(parent.as_ref(), sync(parent.as_ref(), &ctx))
        .await;
    let nanos = start.elapsed().as_nanos() as f64;
    ctx.metrics.reconciled(
        P::METRICS,
        Subject::of(parent.as_ref()),
        result.is_ok(),
        nanos,
    );
    result
}

/// The error policy kube-runtime calls.
pub fn error_policy<P: Parent>(parent: Arc<P>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.policy.on_error(parent.as_ref(), err)
}

fn owned<P: Parent>(child: &P::Child, parent: &P) -> bool {
    let uid = parent.uid().unwrap_or_default();
    child
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

async fn set_finalizers<P: Parent>(
    ctx: &Context,
    parent: &P,
    finalizers: Vec<String>,
) -> kube::Result<()> {
    let patch = json!({"metadata": {"finalizers": finalizers}});
    Api::<P>::all(ctx.client.clone())
        .patch(
            &parent.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
}

/// The finalizer the parent sets on the Namespaces it provisions, if its kind sets one.
fn namespace_finalizer<P: Parent>(parent: &P) -> Option<String> {
    P::NAMESPACE_FINALIZER_PREFIX.map(|prefix| format!("{prefix}{}", parent.name_any()))
}

/// Adds (`hold`) or removes `finalizer` on the Namespace `ns`, compare-and-swap on its
/// resourceVersion so no other finalizer is lost. A Namespace already gone is fine.
async fn hold_namespace(
    ctx: &Context,
    ns: &Namespace,
    finalizer: &str,
    hold: bool,
) -> Result<(), Error> {
    if ns.finalizers().iter().any(|f| f == finalizer) == hold {
        return Ok(());
    }
    let mut list: Vec<String> = ns
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if hold {
        list.push(finalizer.to_string());
    }
    let patch = json!({
        "metadata": {"finalizers": list, "resourceVersion": ns.resource_version()}
    });
    match Api::<Namespace>::all(ctx.client.clone())
        .patch(
            &ns.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("update the finalizers of a namespace")(e)),
    }
}

/// Releases every Namespace in `namespaces` that carries the parent's Namespace finalizer
/// and is not in `keep`.
async fn release_namespaces<P: Parent>(
    ctx: &Context,
    parent: &P,
    namespaces: &[Namespace],
    keep: &BTreeSet<String>,
) -> Result<(), Error> {
    let Some(finalizer) = namespace_finalizer(parent) else {
        return Ok(());
    };
    for ns in namespaces {
        if !keep.contains(&ns.name_any()) {
            hold_namespace(ctx, ns, &finalizer, false).await?;
        }
    }
    Ok(())
}

async fn list_namespaces(ctx: &Context) -> Result<Vec<Namespace>, Error> {
    Ok(Api::<Namespace>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list namespaces"))?
        .items)
}

async fn delete_child<P: Parent>(ctx: &Context, parent: &P, ns: &str) -> Result<(), Error> {
    let api: Api<P::Child> = Api::namespaced(ctx.client.clone(), ns);
    let name = child_name(parent);
    if let Some(child) = api
        .get_opt(&name)
        .await
        .map_err(Error::kube("read a child object"))?
        && owned(&child, parent)
    {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("delete a child object")(e)),
        }
    }
    Ok(())
}

async fn sync<P: Parent>(ces: &P, ctx: &Context) -> Result<Action, Error> {
    let provisioned: BTreeSet<String> = ces.provisioned().into_iter().collect();
    if ces.meta().deletion_timestamp.is_some() {
        ctx.metrics.forget(P::METRICS, Subject::of(ces));
        if !ces.finalizers().iter().any(|f| f == P::FINALIZER) {
            return Ok(Action::await_change());
        }
        for ns in &provisioned {
            delete_child(ctx, ces, ns).await?;
        }
        if P::NAMESPACE_FINALIZER_PREFIX.is_some() {
            let namespaces = list_namespaces(ctx).await?;
            release_namespaces(ctx, ces, &namespaces, &BTreeSet::new()).await?;
        }
        let rest: Vec<String> = ces
            .finalizers()
            .iter()
            .filter(|f| *f != P::FINALIZER)
            .cloned()
            .collect();
        return match set_finalizers(ctx, ces, rest).await {
            Ok(()) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(Error::kube("remove the finalizer")(e)),
        };
    }
    if !ces.finalizers().iter().any(|f| f == P::FINALIZER) {
        let mut finalizers = ces.finalizers().to_vec();
        finalizers.push(P::FINALIZER.into());
        set_finalizers(ctx, ces, finalizers)
            .await
            .map_err(Error::kube("add the finalizer"))?;
    }
    let every = ces
        .refresh_time()
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(parse_go_duration)
        .transpose()
        .map_err(|e| Error::InvalidSpec(format!("spec.refreshTime: {e}")))?
        .unwrap_or(Duration::from_secs(60));
    let namespaces = list_namespaces(ctx).await?;
    let targets: BTreeSet<String> = namespaces
        .iter()
        .filter(|ns| ns.meta().deletion_timestamp.is_none() && selected(ces, ns))
        .map(|ns| ns.name_any())
        .collect();
    let name = child_name(ces);
    let mut metadata = ces.child_metadata();
    if let Some(force) = ces.annotations().get(FORCE_SYNC_ANNOTATION) {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(FORCE_SYNC_ANNOTATION.into(), force.clone());
    }
    let mut failed: Vec<Value> = Vec::new();
    let mut done: Vec<String> = Vec::new();
    for ns in &targets {
        if ctx.policy.stop_token().is_cancelled() {
            return Ok(Action::await_change());
        }
        let api: Api<P::Child> = Api::namespaced(ctx.client.clone(), ns);
        let existing = api
            .get_opt(&name)
            .await
            .map_err(Error::kube("read a child object"))?;
        if existing.as_ref().is_some_and(|child| !owned(child, ces)) {
            failed.push(json!({"namespace": ns, "reason": NOT_OWNED}));
            continue;
        }
        // the Namespace is held first, so it cannot go while its child is being written
        if let (Some(finalizer), Some(namespace)) = (
            namespace_finalizer(ces),
            namespaces.iter().find(|n| n.name_any() == *ns),
        ) && let Err(e) = hold_namespace(ctx, namespace, &finalizer, true).await
        {
            failed.push(json!({"namespace": ns, "reason": e.to_string()}));
            continue;
        }
        let child = json!({
            "apiVersion": P::Child::api_version(&()),
            "kind": P::Child::kind(&()),
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": metadata.labels.clone().unwrap_or_default(),
                "annotations": metadata.annotations.clone().unwrap_or_default(),
                "ownerReferences": [{
                    "apiVersion": P::api_version(&()),
                    "kind": P::kind(&()),
                    "name": ces.name_any(),
                    "uid": ces.uid().unwrap_or_default(),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": ces.child_spec(),
        });
        // a child upstream wrote (and this parent controls, checked above): the fields its
        // fan-out set become ours first, so this apply removes the ones it no longer sends
        let manager = field_manager(ces);
        if let Some(current) = &existing {
            let how = Takeover {
                from: UPSTREAM_CHILD_WRITER,
                into: &manager,
                only: CHILD_FIELDS,
            };
            if let Err(e) = take_over(&api, &name, &how, current).await {
                failed.push(json!({"namespace": ns, "reason": format!("could not take over the fields upstream wrote: {e}")}));
                continue;
            }
        }
        match api
            .patch(&name, &PatchParams::apply(&manager).force(), &Patch::Apply(&child))
            .await
        {
            Ok(_) => done.push(ns.clone()),
            Err(e) => failed.push(json!({"namespace": ns, "reason": format!("could not write the {}: {e}", P::Child::kind(&()))})),
        }
    }
    for ns in provisioned.difference(&targets) {
        delete_child(ctx, ces, ns).await?;
    }
    // deselected and terminating Namespaces are released (upstream releases only
    // terminating ones, so a deselected Namespace kept the finalizer until the parent went)
    release_namespaces(ctx, ces, &namespaces, &targets).await?;
    let ok = failed.is_empty();
    ctx.metrics.ready(P::METRICS, Subject::of(ces), ok);
    let message = if ok {
        String::new()
    } else {
        "one or more namespaces failed".to_string()
    };
    let mut set = Map::new();
    set.insert(P::NAME_FIELD.into(), json!(name));
    set.insert("provisionedNamespaces".into(), json!(done));
    if !failed.is_empty() {
        set.insert("failedNamespaces".into(), Value::Array(failed));
    }
    let status = ReadyStatus {
        current: ces.status_json(),
        kept: &[],
        set,
        ok,
        reason: None,
        message: &message,
    };
    ready::write(
        ctx,
        &Api::<P>::all(ctx.client.clone()),
        &ces.name_any(),
        status,
    )
    .await?;
    Ok(Action::requeue(every))
}

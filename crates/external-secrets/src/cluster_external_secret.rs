//! The ClusterExternalSecret reconcile: one ExternalSecret per selected namespace, owned by
//! the ClusterExternalSecret; namespaces that stop matching lose theirs; a namespace that
//! already has an ExternalSecret of that name it does not own is reported, never taken over.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_controller_kit::status::{self, DesiredCondition, Stamps};
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ExternalSecret, FORCE_SYNC_ANNOTATION,
};
use strongroom_core::duration::parse_go_duration;

use crate::context::Context;
use crate::error::Error;
use crate::stores::selector_matches;
use crate::{FIELD_MANAGER, READY};

/// The finalizer on ClusterExternalSecrets.
pub const FINALIZER: &str = "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
/// The message of a namespace whose ExternalSecret of that name belongs to someone else.
const NOT_OWNED: &str = "external secret already exists in namespace";

fn child_name(ces: &ClusterExternalSecret) -> String {
    ces.spec
        .external_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ces.name_any())
}

fn field_manager(ces: &ClusterExternalSecret) -> String {
    format!(
        "clusterexternalsecrets.external-secrets.io/{}",
        ces.name_any()
    )
}

/// Whether a namespace is selected: by name, or by any of the label selectors (an empty
/// selector selects every namespace).
pub fn selected(ces: &ClusterExternalSecret, ns: &Namespace) -> bool {
    let name = ns.name_any();
    if ces.spec.namespaces.iter().flatten().any(|n| *n == name) {
        return true;
    }
    let selectors: Vec<&LabelSelector> = ces
        .spec
        .namespace_selectors
        .iter()
        .flatten()
        .chain(ces.spec.namespace_selector.as_ref())
        .collect();
    selectors.iter().any(|s| selector_matches(s, ns.labels()))
}

/// The reconcile kube-runtime calls.
pub async fn reconcile(
    ces: Arc<ClusterExternalSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.policy.observe(ces.as_ref(), sync(&ces, &ctx)).await
}

/// The error policy kube-runtime calls.
pub fn error_policy(ces: Arc<ClusterExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.policy.on_error(ces.as_ref(), err)
}

fn owned(es: &ExternalSecret, ces: &ClusterExternalSecret) -> bool {
    let uid = ces.uid().unwrap_or_default();
    es.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

async fn set_finalizers(
    ctx: &Context,
    ces: &ClusterExternalSecret,
    finalizers: Vec<String>,
) -> kube::Result<()> {
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": ces.resource_version()}});
    Api::<ClusterExternalSecret>::all(ctx.client.clone())
        .patch(
            &ces.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
}

async fn delete_child(ctx: &Context, ces: &ClusterExternalSecret, ns: &str) -> Result<(), Error> {
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
    let name = child_name(ces);
    if let Some(es) = api
        .get_opt(&name)
        .await
        .map_err(Error::kube("read an ExternalSecret"))?
        && owned(&es, ces)
    {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("delete an ExternalSecret")(e)),
        }
    }
    Ok(())
}

async fn sync(ces: &ClusterExternalSecret, ctx: &Context) -> Result<Action, Error> {
    let provisioned: BTreeSet<String> = ces
        .status
        .as_ref()
        .and_then(|s| s.provisioned_namespaces.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    if ces.meta().deletion_timestamp.is_some() {
        if !ces.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        for ns in &provisioned {
            delete_child(ctx, ces, ns).await?;
        }
        let rest: Vec<String> = ces
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        return match set_finalizers(ctx, ces, rest).await {
            Ok(()) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(Error::kube("remove the finalizer")(e)),
        };
    }
    if !ces.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = ces.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        set_finalizers(ctx, ces, finalizers)
            .await
            .map_err(Error::kube("add the finalizer"))?;
    }
    let every = ces
        .spec
        .refresh_time
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(parse_go_duration)
        .transpose()
        .map_err(|e| Error::InvalidSpec(format!("spec.refreshTime: {e}")))?
        .unwrap_or(Duration::from_secs(60));
    let namespaces = Api::<Namespace>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list namespaces"))?;
    let targets: BTreeSet<String> = namespaces
        .items
        .iter()
        .filter(|ns| ns.meta().deletion_timestamp.is_none() && selected(ces, ns))
        .map(|ns| ns.name_any())
        .collect();
    let name = child_name(ces);
    let mut metadata = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
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
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
        match api
            .get_opt(&name)
            .await
            .map_err(Error::kube("read an ExternalSecret"))?
        {
            Some(es) if !owned(&es, ces) => {
                failed.push(json!({"namespace": ns, "reason": NOT_OWNED}));
                continue;
            }
            _ => {}
        }
        let child = json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": metadata.labels.clone().unwrap_or_default(),
                "annotations": metadata.annotations.clone().unwrap_or_default(),
                "ownerReferences": [{
                    "apiVersion": ClusterExternalSecret::api_version(&()),
                    "kind": ClusterExternalSecret::kind(&()),
                    "name": ces.name_any(),
                    "uid": ces.uid().unwrap_or_default(),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": ces.spec.external_secret_spec,
        });
        match api
            .patch(&name, &PatchParams::apply(&field_manager(ces)).force(), &Patch::Apply(&child))
            .await
        {
            Ok(_) => done.push(ns.clone()),
            Err(e) => failed.push(json!({"namespace": ns, "reason": format!("could not write the ExternalSecret: {e}")})),
        }
    }
    for ns in provisioned.difference(&targets) {
        delete_child(ctx, ces, ns).await?;
    }
    let ok = failed.is_empty();
    let message = if ok {
        String::new()
    } else {
        "one or more namespaces failed".to_string()
    };
    let current = serde_json::to_value(&ces.status).unwrap_or(Value::Null);
    let mut extra = Map::new();
    extra.insert("externalSecretName".into(), json!(name));
    extra.insert("provisionedNamespaces".into(), json!(done));
    if !failed.is_empty() {
        extra.insert("failedNamespaces".into(), Value::Array(failed));
    }
    let condition = DesiredCondition::new(READY, ok).message(&message);
    if let Some(next) = status::next_status(
        &current,
        &[condition],
        extra,
        &status::now(),
        Stamps::Transition,
    ) && !ctx.policy.stop_token().is_cancelled()
    {
        status::apply_status(
            &Api::<ClusterExternalSecret>::all(ctx.client.clone()),
            &ces.name_any(),
            FIELD_MANAGER,
            next,
        )
        .await
        .map_err(Error::kube("update the ClusterExternalSecret status"))?;
    }
    Ok(Action::requeue(every))
}

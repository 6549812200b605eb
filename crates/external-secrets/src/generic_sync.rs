//! The ExternalSecret reconcile for a generic target (`spec.target.manifest`): the same
//! refresh decision, read and policies as for a Secret, the object written by server-side
//! apply under the same field manager through the dynamic API, and upstream's `Resource*`
//! Ready reasons. A failure never empties or deletes the target.

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{
    CREATED_BY_LABEL, CreationPolicy, DATA_HASH_ANNOTATION, DeletionPolicy, ExternalSecret,
    MANAGED_LABEL, ManifestReference,
};

use crate::context::Context;
use crate::error::Error;
use crate::externalsecret::{
    Round, Synced, creation_policy, deletion_policy, foreign_controller, merge_wait, owned_by,
    target_name, template_sources, write_status,
};
use crate::generic_body::{content_hash, content_of, generic_body};
use crate::hash::{created_by, field_manager};
use crate::metrics::{Kind, Subject};

/// Whether the existing target is what this ExternalSecret last wrote: managed label and a
/// content hash that matches the content.
fn target_valid(es: &ExternalSecret, existing: Option<&DynamicObject>) -> bool {
    if matches!(
        creation_policy(es),
        CreationPolicy::Orphan | CreationPolicy::None
    ) {
        return true;
    }
    let Some(obj) = existing else {
        return false;
    };
    let managed = obj.labels().get(MANAGED_LABEL).is_some_and(|v| v == "true");
    let content = content_of(&serde_json::to_value(obj).unwrap_or(Value::Null));
    managed && obj.annotations().get(DATA_HASH_ANNOTATION) == Some(&content_hash(&content))
}

async fn ready(
    ctx: &Context,
    es: &ExternalSecret,
    reason: &str,
    message: &str,
    synced: Option<Synced<'_>>,
) -> Result<(), Error> {
    ctx.metrics
        .ready(Kind::ExternalSecret, Subject::of(es), true);
    write_status(ctx, es, true, reason, message, synced).await
}

/// Syncs `es` into its generic target of kind `ar`.
pub async fn sync(
    es: &ExternalSecret,
    ctx: &Context,
    created: &mut Vec<crate::generator_state::Recorded>,
    ar: &ApiResource,
) -> Result<Action, Error> {
    let (name, ns) = (es.name_any(), es.namespace().unwrap_or_default());
    let round = Round::of(es, ctx)?;
    let target = target_name(es);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, ar);
    let existing = api
        .get_opt(&target)
        .await
        .map_err(Error::kube("read the target resource"))?;
    // the kind's watch starts once the controller may read it
    ctx.generic.watch(
        &ctx.client,
        ar,
        ctx.policy.stop_token(),
        (ns.clone(), name.clone()),
    );
    if let Some(action) = round.skip(es, ctx, target_valid(es, existing.as_ref())) {
        return Ok(action);
    }
    let creation = creation_policy(es);
    if creation == CreationPolicy::Merge && existing.is_none() {
        ready(
            ctx,
            es,
            "ResourceMissing",
            "resource will not be created (creationPolicy: Merge) until it exists",
            None,
        )
        .await?;
        return Ok(merge_wait(round.every));
    }
    if creation == CreationPolicy::Owner
        && let Some(obj) = &existing
        && foreign_controller(obj, es)
    {
        return Err(Error::Ownership(
            "target is owned by another ExternalSecret".into(),
        ));
    }
    let Some(fetched) = round.read(es, ctx, created).await? else {
        return Ok(Action::await_change());
    };
    let kind = ManifestReference {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    };
    let synced = Synced {
        version: &round.version,
        target: &target,
        kind: &kind,
    };
    if fetched.data.is_empty() {
        match deletion_policy(es) {
            DeletionPolicy::Delete => {
                if let Some(obj) = &existing
                    && owned_by(obj, es)
                    && !ctx.policy.stop_token().is_cancelled()
                {
                    api.delete(&target, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("delete the target resource"))?;
                    ctx.policy.event(
                        es,
                        EventType::Normal,
                        "Deleted",
                        format!(
                            "{} deleted because the provider has no data (deletionPolicy: Delete)",
                            ar.kind
                        ),
                    );
                }
                ready(
                    ctx,
                    es,
                    "ResourceDeleted",
                    "resource deleted due to DeletionPolicy",
                    Some(synced),
                )
                .await?;
                return Ok(round.requeue(es, 0));
            }
            DeletionPolicy::Retain => {
                ready(
                    ctx,
                    es,
                    "ResourceSynced",
                    "resource retained due to DeletionPolicy=Retain",
                    Some(synced),
                )
                .await?;
                return Ok(round.requeue(es, 0));
            }
            // Merge: write with no values, which removes the fields this manager set
            DeletionPolicy::Merge => {}
        }
    }
    if creation == CreationPolicy::None {
        ready(ctx, es, "ResourceSynced", "resource synced", Some(synced)).await?;
        return Ok(round.requeue(es, 0));
    }
    let template = es.spec.target.as_ref().and_then(|t| t.template.as_ref());
    let sources = template_sources(ctx, &ns, template).await?;
    let body = generic_body(
        &ar.kind,
        es.labels(),
        es.annotations(),
        template,
        &fetched.data,
        &sources,
        &ctx.engine,
    )
    .map_err(Error::template)?;
    let mut object = manifest(es, ar, &target, &ns, creation, body);
    if ctx.policy.stop_token().is_cancelled() {
        return Ok(Action::await_change());
    }
    let params = PatchParams::apply(&field_manager(&name)).force();
    // fields upstream wrote under our manager name become ours first (see field_takeover)
    if let Some(current) = &existing {
        crate::field_takeover::take_over(
            &api,
            &target,
            &crate::field_takeover::Takeover::same_manager(&field_manager(&name)),
            current,
        )
        .await
        .map_err(Error::kube("take over the fields of the target resource"))?;
    }
    let written = api
        .patch(&target, &params, &Patch::Apply(&object))
        .await
        .map_err(Error::kube_write("write the target resource"))?;
    // the server may prune or default fields, and other managers' fields are part of the
    // object: the hash must be of what it holds, or it would never match
    let held = content_hash(&content_of(
        &serde_json::to_value(&written).unwrap_or(Value::Null),
    ));
    if written.annotations().get(DATA_HASH_ANNOTATION) != Some(&held) {
        object["metadata"]["annotations"][DATA_HASH_ANNOTATION] = json!(held);
        api.patch(&target, &params, &Patch::Apply(&object))
            .await
            .map_err(Error::kube_write("write the target resource"))?;
    }
    let changed =
        existing.as_ref().map(|o| o.resource_version()) != Some(written.resource_version());
    if changed {
        let (reason, note) = if existing.is_none() {
            ("Created", format!("{} created", ar.kind))
        } else {
            ("Updated", format!("{} updated", ar.kind))
        };
        ctx.policy.event(es, EventType::Normal, reason, note);
    }
    if creation == CreationPolicy::Owner {
        crate::previous_kind::delete_previous(ctx, es, &api, &target, &kind).await?;
    }
    ready(ctx, es, "ResourceSynced", "resource synced", Some(synced)).await?;
    Ok(round.requeue(es, 0))
}

/// The applied object: identity, the controller's labels, annotations and owner reference,
/// and the body.
fn manifest(
    es: &ExternalSecret,
    ar: &ApiResource,
    target: &str,
    ns: &str,
    creation: CreationPolicy,
    body: crate::generic_body::GenericBody,
) -> Value {
    let name = es.name_any();
    let mut labels = body.labels;
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let mut annotations = body.annotations;
    annotations.insert(DATA_HASH_ANNOTATION.into(), content_hash(&body.content));
    let mut object = json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "metadata": {
            "name": target,
            "namespace": ns,
            "labels": labels,
            "annotations": annotations,
        },
    });
    if creation == CreationPolicy::Owner {
        object["metadata"]["labels"][CREATED_BY_LABEL] = json!(created_by(ns, &name));
        object["metadata"]["ownerReferences"] = json!([{
            "apiVersion": ExternalSecret::api_version(&()),
            "kind": ExternalSecret::kind(&()),
            "name": name,
            "uid": es.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    if let Some(map) = object.as_object_mut() {
        map.extend(body.content);
    }
    object
}

/// With the ExternalSecret's deletion (deletionPolicy Delete, creationPolicy Owner): deletes
/// the generic target when this ExternalSecret controls it. A kind that is no longer served
/// (or generic targets switched off) leaves nothing to delete.
pub async fn delete_target(ctx: &Context, es: &ExternalSecret) -> Result<(), Error> {
    let Some(manifest) = crate::externalsecret::generic_manifest(es) else {
        return Ok(());
    };
    if !ctx.generic.allowed {
        return Ok(());
    }
    let ar = match ctx.generic.resolve(&ctx.client, manifest).await {
        Ok(ar) => ar,
        Err(Error::Target(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &es.namespace().unwrap_or_default(), &ar);
    let target = target_name(es);
    let Some(obj) = api
        .get_opt(&target)
        .await
        .map_err(Error::kube("read the target resource"))?
    else {
        return Ok(());
    };
    if !owned_by(&obj, es) {
        return Ok(());
    }
    match api.delete(&target, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.policy.event(
                es,
                EventType::Normal,
                "Deleted",
                format!(
                    "{} deleted with the ExternalSecret (deletionPolicy: Delete)",
                    ar.kind
                ),
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete the target resource")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn es(creation: CreationPolicy) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "app", "namespace": "team", "uid": "u-1"},
            "spec": {"target": {"creationPolicy": creation,
                "manifest": {"apiVersion": "example.com/v1", "kind": "AppConfig"}}}
        }))
        .unwrap()
    }

    fn ar() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("example.com", "v1", "AppConfig"),
            "appconfigs",
        )
    }

    fn body() -> crate::generic_body::GenericBody {
        crate::generic_body::GenericBody {
            content: serde_json::from_value(json!({"spec": {"data": {"k": "v"}}})).unwrap(),
            labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn owner_gets_reference_label_and_hash() {
        let obj = manifest(
            &es(CreationPolicy::Owner),
            &ar(),
            "cfg",
            "team",
            CreationPolicy::Owner,
            body(),
        );
        assert_eq!(obj["apiVersion"], "example.com/v1");
        assert_eq!(obj["kind"], "AppConfig");
        assert_eq!(obj["metadata"]["name"], "cfg");
        assert_eq!(obj["metadata"]["labels"][MANAGED_LABEL], "true");
        assert_eq!(obj["metadata"]["labels"]["team"], "a");
        assert_eq!(
            obj["metadata"]["labels"][CREATED_BY_LABEL],
            json!(created_by("team", "app"))
        );
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(obj["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(obj["spec"]["data"]["k"], "v");
        let parsed: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
        assert!(target_valid(&es(CreationPolicy::Owner), Some(&parsed)));
        let mut drifted = parsed.clone();
        drifted.data["spec"]["data"]["k"] = json!("changed");
        assert!(!target_valid(&es(CreationPolicy::Owner), Some(&drifted)));
        assert!(!target_valid(&es(CreationPolicy::Owner), None));
    }

    #[test]
    fn orphan_and_merge_have_no_owner() {
        for creation in [CreationPolicy::Orphan, CreationPolicy::Merge] {
            let obj = manifest(&es(creation), &ar(), "cfg", "team", creation, body());
            assert!(obj["metadata"].get("ownerReferences").is_none());
            assert!(obj["metadata"]["labels"].get(CREATED_BY_LABEL).is_none());
        }
    }
}

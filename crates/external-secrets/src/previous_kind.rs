//! A target whose kind changed (`spec.target.manifest` to another kind, or to or from a
//! Secret): the object of the previous kind, named by `status.binding` with its kind in
//! `status.targetManifest`, is deleted when this ExternalSecret controls it (controller owner
//! reference with its uid), as a renamed target's previous object is; never otherwise. A new
//! version of the same kind is the same object, not a change of kind. Without permission for
//! the previous kind (its grant may go with the move) the object is left with a Warning event
//! rather than failing every sync.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use strongroom_core::crd::external_secrets::{ExternalSecret, ManifestReference};

use crate::context::Context;
use crate::error::Error;
use crate::externalsecret::{delete_controlled, delete_previous_target, previous_target_name};

/// The kind of a Secret target.
pub(crate) fn secret_kind() -> ManifestReference {
    ManifestReference {
        api_version: "v1".into(),
        kind: "Secret".into(),
    }
}

/// The API group of an apiVersion (`""` for the core group).
fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Whether `a` and `b` name the same kind (group and kind; the version does not matter).
fn same_kind(a: &ManifestReference, b: &ManifestReference) -> bool {
    group(&a.api_version) == group(&b.api_version) && a.kind == b.kind
}

/// The kind the last sync wrote, when it is another than `current` (`None` too when no
/// status recorded it).
fn changed_from(es: &ExternalSecret, current: &ManifestReference) -> Option<ManifestReference> {
    es.status
        .as_ref()
        .and_then(|s| s.target_manifest.clone())
        .filter(|previous| !previous.kind.is_empty() && !same_kind(previous, current))
}

/// After the target `target` of kind `current` was written (creationPolicy Owner): deletes the
/// object written before when it is another one this ExternalSecret controls, of the previous
/// kind when the kind changed, else of `current`'s kind (through `api`) when the name changed.
pub(crate) async fn delete_previous<K>(
    ctx: &Context,
    es: &ExternalSecret,
    api: &Api<K>,
    target: &str,
    current: &ManifestReference,
) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(previous) = changed_from(es, current) else {
        return delete_previous_target(ctx, es, api, target, &current.kind).await;
    };
    let Some(name) = previous_target_name(es) else {
        return Ok(());
    };
    let ar = if same_kind(&previous, &secret_kind()) {
        ApiResource::erase::<Secret>(&())
    } else {
        // generic kinds are not touched while generic targets are off
        if !ctx.generic.allowed {
            return Ok(());
        }
        match ctx.generic.resolve(&ctx.client, &previous).await {
            Ok(ar) => ar,
            // a kind no longer served holds no object
            Err(Error::Target(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    let old: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &es.namespace().unwrap_or_default(), &ar);
    let deleted = delete_controlled(
        ctx,
        es,
        &old,
        &name,
        &previous.kind,
        "after the target's kind changed",
    )
    .await;
    match deleted {
        // the grant for the previous kind may be gone with the move: said, not retried forever
        Err(Error::Kube {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 403 => {
            ctx.policy.event(
                es,
                EventType::Warning,
                "UpdateFailed",
                format!(
                    "previous target {} {name:?} left: no permission to read or delete it",
                    previous.kind
                ),
            );
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(api_version: &str, kind: &str) -> ManifestReference {
        ManifestReference {
            api_version: api_version.into(),
            kind: kind.into(),
        }
    }

    fn es_with(status: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {}, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_kind_is_its_group_and_name_not_its_version() {
        assert!(same_kind(
            &kind("example.com/v1", "AppConfig"),
            &kind("example.com/v2", "AppConfig")
        ));
        assert!(!same_kind(
            &kind("example.com/v1", "AppConfig"),
            &kind("other.com/v1", "AppConfig")
        ));
        assert!(!same_kind(&kind("v1", "ConfigMap"), &secret_kind()));
        assert!(same_kind(&kind("v1", "Secret"), &secret_kind()));
    }

    #[test]
    fn the_previous_kind_is_the_recorded_one_when_it_differs() {
        let es = es_with(json!({"binding": {"name": "cfg"},
            "targetManifest": {"apiVersion": "v1", "kind": "ConfigMap"}}));
        assert_eq!(
            changed_from(&es, &kind("example.com/v1", "AppConfig")),
            Some(kind("v1", "ConfigMap"))
        );
        assert_eq!(changed_from(&es, &kind("v1", "ConfigMap")), None);
        let unrecorded = es_with(json!({"binding": {"name": "cfg"}}));
        assert_eq!(changed_from(&unrecorded, &secret_kind()), None);
    }
}

//! Whether the controller may write an existing Secret, and how (upstream's rules).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strongroom_core::crd::sealed_secret::{MANAGED_ANNOTATION, PATCH_ANNOTATION};

/// How an existing Secret may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No Secret yet: create it.
    Absent,
    /// Controlled by this SealedSecret, or annotated `managed: "true"`: replace it.
    Replace,
    /// Annotated `patch: "true"`: merge data, labels and annotations key by key.
    Patch,
    /// Someone else's Secret: refuse (never overwrite what we do not manage).
    Foreign,
}

/// Decides for the SealedSecret with `owner_uid` and the metadata of the Secret currently at
/// its name.
pub fn ownership(existing: Option<&ObjectMeta>, owner_uid: &str) -> Ownership {
    let Some(meta) = existing else {
        return Ownership::Absent;
    };
    let annotated = |key: &str| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    };
    let controlled = meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid && r.kind == "SealedSecret");
    if annotated(PATCH_ANNOTATION) {
        Ownership::Patch
    } else if controlled || annotated(MANAGED_ANNOTATION) {
        Ownership::Replace
    } else {
        Ownership::Foreign
    }
}

/// How the desired Secret reaches the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Server-side apply: the Secret holds nothing the desired one does not.
    Apply(Secret),
    /// Update (PUT) of the existing object, carrying its resourceVersion: replace mode over
    /// fields someone else added, or patch mode's key-by-key merge.
    Update(Secret),
}

/// Plans the write of `desired` over `existing` in `mode`, as upstream does: replace mode
/// replaces data, labels, annotations and ownerReferences; patch mode merges data, labels and
/// annotations key by key and replaces ownerReferences only when `managed` is also set. `type`
/// follows the template when it names one. `None`: the Secret already matches.
pub fn plan_write(existing: Option<&Secret>, desired: Secret, mode: Ownership) -> Option<Write> {
    let Some(existing) = existing else {
        return Some(Write::Apply(desired));
    };
    match mode {
        Ownership::Absent => Some(Write::Apply(desired)),
        Ownership::Foreign => None,
        Ownership::Replace => {
            if !has_extras(existing, &desired) {
                return Some(Write::Apply(desired));
            }
            let mut updated = existing.clone();
            updated.data = desired.data;
            updated.metadata.labels = desired.metadata.labels;
            updated.metadata.annotations = desired.metadata.annotations;
            updated.metadata.owner_references = desired.metadata.owner_references;
            if desired.type_.is_some() {
                updated.type_ = desired.type_;
            }
            if desired.immutable.is_some() {
                updated.immutable = desired.immutable;
            }
            Some(Write::Update(updated))
        }
        Ownership::Patch => {
            let mut updated = existing.clone();
            merge(&mut updated.data, desired.data);
            merge(&mut updated.metadata.labels, desired.metadata.labels);
            merge(
                &mut updated.metadata.annotations,
                desired.metadata.annotations,
            );
            let managed = updated
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MANAGED_ANNOTATION))
                .is_some_and(|v| v == "true");
            if managed {
                updated.metadata.owner_references = desired.metadata.owner_references;
            }
            if desired.type_.is_some() {
                updated.type_ = desired.type_;
            }
            (updated != *existing).then_some(Write::Update(updated))
        }
    }
}

fn merge<V>(into: &mut Option<BTreeMap<String, V>>, from: Option<BTreeMap<String, V>>) {
    if let Some(from) = from {
        into.get_or_insert_with(BTreeMap::new).extend(from);
    }
}

/// Whether `existing` holds a data key, label, annotation or ownerReference that `desired`
/// does not: server-side apply would leave those in place, replace mode must drop them.
fn has_extras(existing: &Secret, desired: &Secret) -> bool {
    fn extra<V>(have: &Option<BTreeMap<String, V>>, want: &Option<BTreeMap<String, V>>) -> bool {
        have.iter()
            .flatten()
            .any(|(k, _)| !want.as_ref().is_some_and(|w| w.contains_key(k)))
    }
    let owners = |s: &Secret| {
        s.metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect::<Vec<_>>()
    };
    extra(&existing.data, &desired.data)
        || extra(&existing.metadata.labels, &desired.metadata.labels)
        || extra(
            &existing.metadata.annotations,
            &desired.metadata.annotations,
        )
        || owners(existing)
            .iter()
            .any(|u| !owners(desired).contains(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Secret {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn upstream_ownership_rules() {
        assert_eq!(ownership(None, "u"), Ownership::Absent);
        let owned = secret(
            serde_json::json!({"metadata": {"name": "s", "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "s", "uid": "u", "controller": true}]}}),
        );
        assert_eq!(ownership(Some(&owned.metadata), "u"), Ownership::Replace);
        assert_eq!(
            ownership(Some(&owned.metadata), "other"),
            Ownership::Foreign
        );
        let managed = secret(
            serde_json::json!({"metadata": {"name": "s", "annotations": {MANAGED_ANNOTATION: "true"}}}),
        );
        assert_eq!(ownership(Some(&managed.metadata), "u"), Ownership::Replace);
        let patch = secret(
            serde_json::json!({"metadata": {"name": "s", "annotations": {PATCH_ANNOTATION: "true"}}}),
        );
        assert_eq!(ownership(Some(&patch.metadata), "u"), Ownership::Patch);
        let foreign = secret(serde_json::json!({"metadata": {"name": "s"}}));
        assert_eq!(ownership(Some(&foreign.metadata), "u"), Ownership::Foreign);
    }

    fn desired() -> Secret {
        secret(
            serde_json::json!({"metadata": {"name": "s", "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "s", "uid": "u", "controller": true}]},
            "type": "Opaque", "data": {"a": "MQ=="}}),
        )
    }

    #[test]
    fn replace_mode_applies_unless_someone_else_added_fields() {
        let d = desired();
        assert_eq!(
            plan_write(None, d.clone(), Ownership::Absent),
            Some(Write::Apply(d.clone()))
        );
        // only our own fields: server-side apply
        assert_eq!(
            plan_write(Some(&d), d.clone(), Ownership::Replace),
            Some(Write::Apply(d.clone()))
        );
        // a key and a label added by hand: replaced away, as upstream
        let mut edited = d.clone();
        edited.metadata.resource_version = Some("9".into());
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), k8s_openapi::ByteString(b"x".to_vec()));
        edited
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("hand".into(), "made".into());
        let Some(Write::Update(out)) = plan_write(Some(&edited), d.clone(), Ownership::Replace)
        else {
            panic!("expected an update");
        };
        assert_eq!(out.data, d.data);
        assert_eq!(out.metadata.labels, d.metadata.labels);
        assert_eq!(out.metadata.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn patch_mode_merges_key_by_key() {
        let existing = secret(
            serde_json::json!({"metadata": {"name": "s", "annotations": {PATCH_ANNOTATION: "true"}, "labels": {"keep": "me"}},
            "type": "Opaque", "data": {"keep": "MQ==", "a": "MA=="}}),
        );
        let Some(Write::Update(out)) = plan_write(Some(&existing), desired(), Ownership::Patch)
        else {
            panic!("expected an update");
        };
        let data = out.data.unwrap();
        assert_eq!(
            (data["keep"].0.as_slice(), data["a"].0.as_slice()),
            (&b"1"[..], &b"1"[..])
        );
        assert_eq!(out.metadata.labels.unwrap().len(), 2);
        assert!(
            out.metadata
                .annotations
                .unwrap()
                .contains_key(PATCH_ANNOTATION)
        );
        // not managed: the ownerReference is not added
        assert!(out.metadata.owner_references.is_none());
        // already merged: nothing to write
        let mut merged = existing.clone();
        merged
            .data
            .as_mut()
            .unwrap()
            .insert("a".into(), k8s_openapi::ByteString(b"1".to_vec()));
        merged
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app".into(), "web".into());
        assert_eq!(plan_write(Some(&merged), desired(), Ownership::Patch), None);
    }
}

//! Taking over the fields upstream's controller owns in a target it wrote.
//!
//! Upstream writes targets by create and update under the same field manager name as ours
//! (`externalsecrets.external-secrets.io/<name>`), which the API server records as an `Update`
//! entry in `managedFields`, next to the `Apply` entry of our server-side apply. A field only
//! that `Update` entry owns is never released by our apply, so a key later dropped from the
//! provider would stay in the Secret. Before applying, the `Update` entries of our manager are
//! folded into its `Apply` entry (as kubectl's client-side to server-side apply upgrade does):
//! one JSON patch of `metadata.managedFields` that first tests `metadata.resourceVersion`, so a
//! write in between is never lost, read again and retried when it fails. Once folded, there is
//! nothing left to do: no request at all for targets without such an entry.
//!
//! The `Update` entry may also be another manager's: upstream's ClusterExternalSecret and
//! ClusterPushSecret controllers write their children without a field manager, so the API
//! server names that entry after their User-Agent (see [`crate::fanout`]). A [`Takeover`] then
//! names both managers and the fields taken, so that what the other writer set for other
//! reasons (a finalizer) stays its own.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// How many times a fold is tried when the object changes underneath it.
const ATTEMPTS: usize = 4;

/// Which `Update` entries are folded into which `Apply` entry, and which of their fields.
#[derive(Clone, Copy, Debug)]
pub struct Takeover<'a> {
    /// The manager of the `Update` entries taken over.
    pub from: &'a str,
    /// The manager whose `Apply` entry receives their fields (ours).
    pub into: &'a str,
    /// The fields taken, as `FieldsV1` paths (`["f:metadata", "f:labels"]`); every field when
    /// empty. The rest stays in the `Update` entry.
    pub only: &'a [&'a [&'a str]],
}

impl<'a> Takeover<'a> {
    /// Every field of `manager`'s `Update` entries into its own `Apply` entry.
    pub fn same_manager(manager: &'a str) -> Self {
        Self {
            from: manager,
            into: manager,
            only: &[],
        }
    }
}

fn is_main(e: &ManagedFieldsEntry) -> bool {
    e.subresource.as_deref().unwrap_or_default().is_empty()
}

fn is_update_of(e: &ManagedFieldsEntry, manager: &str) -> bool {
    e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Update") && is_main(e)
}

fn is_apply_of(e: &ManagedFieldsEntry, manager: &str) -> bool {
    e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply") && is_main(e)
}

/// Adds every field of the `FieldsV1` tree `from` to `into` (a union of the two sets).
fn union(into: &mut Value, from: &Value) {
    let Value::Object(from) = from else { return };
    if !into.is_object() {
        *into = Value::Object(Map::new());
    }
    if let Value::Object(into) = into {
        for (key, child) in from {
            union(
                into.entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new())),
                child,
            );
        }
    }
}

fn fields_of(e: &ManagedFieldsEntry) -> Value {
    e.fields_v1
        .as_ref()
        .map_or_else(|| Value::Object(Map::new()), |f| f.0.clone())
}

fn is_empty(tree: &Value) -> bool {
    tree.as_object().is_none_or(Map::is_empty)
}

/// Removes the subtree at `path` from `tree` (and the parents it leaves empty); returns it.
fn cut(tree: &mut Value, path: &[&str]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    let map = tree.as_object_mut()?;
    if rest.is_empty() {
        return map.remove(*first);
    }
    let child = map.get_mut(*first)?;
    let taken = cut(child, rest);
    if taken.is_some() && is_empty(child) {
        map.remove(*first);
    }
    taken
}

/// Splits the fields of an `Update` entry into those `only` takes (nested at their paths;
/// `None` when there are none) and the rest.
fn split(fields: Value, only: &[&[&str]]) -> (Option<Value>, Value) {
    if only.is_empty() {
        return (Some(fields), Value::Object(Map::new()));
    }
    let mut rest = fields;
    let mut taken: Option<Value> = None;
    for path in only {
        if let Some(subtree) = cut(&mut rest, path) {
            let nested = path.iter().rev().fold(subtree, |inner, key| {
                Value::Object(Map::from_iter([((*key).to_string(), inner)]))
            });
            union(taken.get_or_insert_with(|| json!({})), &nested);
        }
    }
    (taken, rest)
}

/// `entries` with the fields `how` takes from the `Update` entries of `how.from` (main
/// resource) folded into the `Apply` entry of `how.into`, or into a new one when there is none;
/// an `Update` entry left without fields goes. `None` when there is nothing to take.
pub fn folded(
    entries: &[ManagedFieldsEntry],
    how: &Takeover<'_>,
) -> Option<Vec<ManagedFieldsEntry>> {
    let mut taken: Option<Value> = None;
    let mut template: Option<&ManagedFieldsEntry> = None;
    let mut out: Vec<ManagedFieldsEntry> = Vec::with_capacity(entries.len() + 1);
    for e in entries {
        if !is_update_of(e, how.from) {
            out.push(e.clone());
            continue;
        }
        let (took, rest) = split(fields_of(e), how.only);
        let Some(took) = took else {
            out.push(e.clone());
            continue;
        };
        template.get_or_insert(e);
        union(taken.get_or_insert_with(|| json!({})), &took);
        if !is_empty(&rest) {
            out.push(ManagedFieldsEntry {
                fields_v1: Some(FieldsV1(rest)),
                ..e.clone()
            });
        }
    }
    let (mut fields, template) = (taken?, template?);
    match out.iter_mut().find(|e| is_apply_of(e, how.into)) {
        Some(apply) => {
            union(&mut fields, &fields_of(apply));
            apply.fields_v1 = Some(FieldsV1(fields));
            apply.fields_type = Some("FieldsV1".into());
        }
        None => out.push(ManagedFieldsEntry {
            manager: Some(how.into.to_string()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: None,
            ..template.clone()
        }),
    }
    Some(out)
}

/// Folds the fields `how` names of the object `name` (see the module), starting from
/// `current` (the object as last read; read again after a conflict). Does nothing when there
/// is nothing to fold or the object is gone.
pub async fn take_over<K>(
    api: &Api<K>,
    name: &str,
    how: &Takeover<'_>,
    current: &K,
) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    // the object as the caller read it first (no copy: most syncs find nothing to fold), then
    // as read again after a conflict
    let mut reread: Option<K> = None;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            match api.get_opt(name).await? {
                Some(o) => reread = Some(o),
                None => return Ok(()),
            }
        }
        let object = reread.as_ref().unwrap_or(current);
        let meta = object.meta();
        let Some(entries) = meta.managed_fields.as_deref().and_then(|m| folded(m, how)) else {
            return Ok(());
        };
        let version = meta.resource_version.clone().unwrap_or_default();
        let operations = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "replace", "path": "/metadata/managedFields", "value": entries},
        ]);
        let patch: json_patch::Patch =
            serde_json::from_value(operations).map_err(kube::Error::SerdeError)?;
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(%name, from = %how.from, into = %how.into, "took over the fields of the manager's Update entry");
                return Ok(());
            }
            // 422: the test failed (a write came in between); 409: a storage conflict
            Err(kube::Error::Api(s)) if (s.code == 422 || s.code == 409) && attempt < ATTEMPTS => {
                tracing::debug!(%name, attempt, "the object changed while folding managedFields; reading it again");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    const OURS: &str = "externalsecrets.external-secrets.io/app";

    #[test]
    fn update_fields_join_the_apply_entry() {
        let entries = vec![
            entry(
                OURS,
                "Update",
                json!({"f:data": {".": {}, "f:a": {}, "f:c": {}},
                       "f:metadata": {"f:labels": {"f:reconcile.external-secrets.io/managed": {}}}}),
            ),
            entry("kubectl-edit", "Update", json!({"f:data": {"f:d": {}}})),
            entry(OURS, "Apply", json!({"f:data": {"f:a": {}, "f:b": {}}})),
        ];
        let out = folded(&entries, &Takeover::same_manager(OURS)).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0].manager.as_deref(),
            Some("kubectl-edit"),
            "others kept"
        );
        assert_eq!(out[0].fields_v1, entries[1].fields_v1);
        assert_eq!(out[1].operation.as_deref(), Some("Apply"));
        assert_eq!(
            out[1].fields_v1.as_ref().unwrap().0,
            json!({"f:data": {".": {}, "f:a": {}, "f:b": {}, "f:c": {}},
                   "f:metadata": {"f:labels": {"f:reconcile.external-secrets.io/managed": {}}}})
        );
        assert!(
            folded(&out, &Takeover::same_manager(OURS)).is_none(),
            "nothing left to fold"
        );
    }

    #[test]
    fn without_an_apply_entry_the_update_entry_becomes_one() {
        let entries = vec![entry(OURS, "Update", json!({"f:data": {"f:c": {}}}))];
        let out = folded(&entries, &Takeover::same_manager(OURS)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].operation.as_deref(), Some("Apply"));
        assert_eq!(out[0].api_version.as_deref(), Some("v1"));
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:data": {"f:c": {}}})
        );
    }

    #[test]
    fn other_managers_and_subresources_are_left_alone() {
        let mut status = entry(OURS, "Update", json!({"f:status": {}}));
        status.subresource = Some("status".into());
        let entries = vec![
            entry(
                "externalsecrets.external-secrets.io/other",
                "Update",
                json!({"f:data": {}}),
            ),
            status,
            entry(OURS, "Apply", json!({"f:data": {"f:a": {}}})),
        ];
        assert!(folded(&entries, &Takeover::same_manager(OURS)).is_none());
    }

    const UPSTREAM: &str = "external-secrets";
    const FAN_OUT: &str = "clusterexternalsecrets.external-secrets.io/shared";
    const CHILD: &[&[&str]] = &[&["f:spec"], &["f:metadata", "f:labels"]];

    #[test]
    fn another_managers_fields_in_scope_join_ours_and_the_rest_stays_its_own() {
        let how = Takeover {
            from: UPSTREAM,
            into: FAN_OUT,
            only: CHILD,
        };
        let entries = vec![
            entry(
                UPSTREAM,
                "Update",
                json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"cleanup\"": {}},
                                      "f:labels": {".": {}, "f:old": {}}},
                       "f:spec": {"f:refreshInterval": {}}}),
            ),
            entry(FAN_OUT, "Apply", json!({"f:spec": {"f:data": {}}})),
        ];
        let out = folded(&entries, &how).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].manager.as_deref(), Some(UPSTREAM));
        assert_eq!(out[0].operation.as_deref(), Some("Update"));
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"cleanup\"": {}}}}),
            "the finalizer is not ours to take"
        );
        assert_eq!(out[1].manager.as_deref(), Some(FAN_OUT));
        assert_eq!(
            out[1].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:labels": {".": {}, "f:old": {}}},
                   "f:spec": {"f:data": {}, "f:refreshInterval": {}}})
        );
        assert!(folded(&out, &how).is_none(), "nothing in scope is left");
    }

    #[test]
    fn without_an_apply_entry_ours_is_made_under_our_name() {
        let how = Takeover {
            from: UPSTREAM,
            into: FAN_OUT,
            only: CHILD,
        };
        let entries = vec![entry(UPSTREAM, "Update", json!({"f:spec": {"f:a": {}}}))];
        let out = folded(&entries, &how).unwrap();
        assert_eq!(out.len(), 1, "an Update entry left empty goes");
        assert_eq!(out[0].manager.as_deref(), Some(FAN_OUT));
        assert_eq!(out[0].operation.as_deref(), Some("Apply"));
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:a": {}}})
        );
        let only_finalizers = vec![entry(
            UPSTREAM,
            "Update",
            json!({"f:metadata": {"f:finalizers": {}}}),
        )];
        assert!(folded(&only_finalizers, &how).is_none());
    }
}

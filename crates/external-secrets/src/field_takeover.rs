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

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// How many times a fold is tried when the object changes underneath it.
const ATTEMPTS: usize = 4;

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

/// `entries` with every `Update` entry of `manager` (main resource) folded into its `Apply`
/// entry, or turned into one when there is none; `None` when `manager` has no `Update` entry.
pub fn folded(entries: &[ManagedFieldsEntry], manager: &str) -> Option<Vec<ManagedFieldsEntry>> {
    let updates: Vec<&ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| is_update_of(e, manager))
        .collect();
    let first = updates.first()?;
    let mut fields = Value::Object(Map::new());
    for e in &updates {
        union(&mut fields, &fields_of(e));
    }
    let mut out: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !is_update_of(e, manager))
        .cloned()
        .collect();
    match out.iter_mut().find(|e| is_apply_of(e, manager)) {
        Some(apply) => {
            union(&mut fields, &fields_of(apply));
            apply.fields_v1 = Some(FieldsV1(fields));
            apply.fields_type = Some("FieldsV1".into());
        }
        None => out.push(ManagedFieldsEntry {
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..(*first).clone()
        }),
    }
    Some(out)
}

/// Folds `manager`'s `Update` entries of the object `name` into its `Apply` entry (see the
/// module), starting from `current` (the object as last read; read again after a conflict).
/// Does nothing when there is nothing to fold or the object is gone.
pub async fn take_over<K>(api: &Api<K>, name: &str, manager: &str, current: &K) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut seen = Some(current.clone());
    for attempt in 1..=ATTEMPTS {
        let object = match seen.take() {
            Some(o) => o,
            None => match api.get_opt(name).await? {
                Some(o) => o,
                None => return Ok(()),
            },
        };
        let meta = object.meta();
        let Some(entries) = meta
            .managed_fields
            .as_deref()
            .and_then(|m| folded(m, manager))
        else {
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
                tracing::info!(%name, %manager, "took over the fields of the manager's Update entry");
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
        let out = folded(&entries, OURS).unwrap();
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
        assert!(folded(&out, OURS).is_none(), "nothing left to fold");
    }

    #[test]
    fn without_an_apply_entry_the_update_entry_becomes_one() {
        let entries = vec![entry(OURS, "Update", json!({"f:data": {"f:c": {}}}))];
        let out = folded(&entries, OURS).unwrap();
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
        assert!(folded(&entries, OURS).is_none());
    }
}

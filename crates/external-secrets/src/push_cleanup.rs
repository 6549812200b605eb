//! Removing what a PushSecret pushed, under `deletionPolicy: Delete`: entries its status
//! records that it no longer pushes, everything when the PushSecret is deleted, and everything
//! when its source Secret is deleted (as upstream: only for a source named by `secret.name`).
//! Only what `status.syncedPushSecrets` records is ever deleted, and nothing when the source
//! goes under `updatePolicy: IfNotExists` (the status also records values that were already
//! there and that the PushSecret never wrote).

use std::collections::BTreeMap;

use kube::ResourceExt;
use strongroom_core::crd::external_secrets::{
    PushSecret, PushSecretData, SecretStoreRef, StoreKind,
};

use crate::context::Context;
use crate::error::Error;
use crate::push_secret::{push_ref, status_key};

/// `<Kind>/<name>` → `<remoteKey>[/<property>]` → the entry pushed there.
pub type Synced = BTreeMap<String, BTreeMap<String, PushSecretData>>;

/// What `status.syncedPushSecrets` of `ps` records.
pub fn synced_of(ps: &PushSecret) -> Synced {
    ps.status
        .as_ref()
        .and_then(|s| s.synced_push_secrets.clone())
        .unwrap_or_default()
}

/// Whether `ps` deletes what it pushed (`deletionPolicy: Delete`).
pub fn deletes(ps: &PushSecret) -> bool {
    ps.spec.deletion_policy.as_deref() == Some("Delete")
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

/// Number of entries in `synced`.
pub fn count(synced: &Synced) -> usize {
    synced.values().map(BTreeMap::len).sum()
}

/// Deletes what `synced` records and `keep` does not, and returns how many entries went.
/// Each deleted entry is taken out of `left` as soon as it is gone, so after an error `left`
/// still records exactly what remains.
pub async fn delete_remotes(
    ctx: &Context,
    ns: &str,
    synced: &Synced,
    keep: &Synced,
    left: &mut Synced,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for (store_key, entries) in synced {
        let Some(store_ref) = store_ref_of(store_key) else {
            continue;
        };
        let stale: Vec<(&String, &PushSecretData)> = entries
            .iter()
            .filter(|(k, _)| {
                keep.get(store_key)
                    .is_none_or(|kept| !kept.contains_key(*k))
            })
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
        for (key, data) in stale {
            let target = push_ref(data);
            ctx.stores
                .limited(&store.id, || client.delete(&target))
                .await
                .map_err(|source| Error::Fetch {
                    at: format!("deleting {} from {store_key}", status_key(data)),
                    source,
                })?;
            deleted += 1;
            if let Some(recorded) = left.get_mut(store_key) {
                recorded.remove(key);
                if recorded.is_empty() {
                    left.remove(store_key);
                }
            }
        }
    }
    Ok(deleted)
}

/// When the Secret `name` that `ps` pushes from is gone: under `deletionPolicy: Delete` (and
/// not `updatePolicy: IfNotExists`) every value its status records is deleted from its store.
/// Always ends in [`Error::SourceMissing`] saying what became of the pushed values (the
/// PushSecret is not synced), or in the failed deletion; `left` is set to what its status
/// records afterwards. `None` when there is nothing to do and the condition already says so.
pub async fn source_missing(
    ctx: &Context,
    ps: &PushSecret,
    name: &str,
    left: &mut Option<Synced>,
) -> Option<Error> {
    // what was pushed is read fresh: the watch cache may not show the status of a push made
    // a moment before the Secret went, and what this misses could never be deleted later
    let api = kube::Api::<PushSecret>::namespaced(
        ctx.client.clone(),
        ps.namespace().as_deref().unwrap_or_default(),
    );
    let fresh = match api.get(&ps.name_any()).await {
        Ok(fresh) => fresh,
        Err(e) => return Some(Error::kube("read the PushSecret")(e)),
    };
    let ps = &fresh;
    let synced = synced_of(ps);
    let n = count(&synced);
    let missing = |outcome: String| Error::SourceMissing {
        name: name.to_string(),
        outcome,
    };
    if n == 0 {
        // a later reconcile (the status write is an event) keeps the message that said what
        // happened to the values
        let said = format!("source Secret {name:?} not found");
        if ready_message(ps).is_some_and(|m| m.starts_with(&said)) {
            return None;
        }
        return Some(missing("nothing pushed from it is recorded".into()));
    }
    let (values, stay) = if n == 1 {
        ("value", "stays")
    } else {
        ("values", "stay")
    };
    if !deletes(ps) {
        return Some(missing(format!(
            "the {n} pushed {values} {stay} (deletionPolicy: None)"
        )));
    }
    if ps.spec.update_policy.as_deref() == Some("IfNotExists") {
        return Some(missing(format!(
            "the {n} recorded {values} {stay} (updatePolicy: IfNotExists records values that \
             were already there, and only what the PushSecret wrote may be deleted)"
        )));
    }
    let mut remaining = synced.clone();
    let result = delete_remotes(
        ctx,
        &ps.namespace().unwrap_or_default(),
        &synced,
        &Synced::new(),
        &mut remaining,
    )
    .await;
    *left = Some(remaining);
    Some(match result {
        Ok(deleted) => missing(format!(
            "deleted the {deleted} pushed {} (deletionPolicy: Delete)",
            if deleted == 1 { "value" } else { "values" }
        )),
        Err(Error::Fetch { at, source }) => Error::Fetch {
            at: format!("{at} (its source Secret {name:?} is gone)"),
            source,
        },
        Err(e) => e,
    })
}

/// The message of the Ready condition `ps` has now.
fn ready_message(ps: &PushSecret) -> Option<&str> {
    ps.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == crate::READY)?
        .message
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys() {
        let r = store_ref_of("ClusterSecretStore/a/b").unwrap();
        assert_eq!(r.kind, Some(StoreKind::ClusterSecretStore));
        assert_eq!(r.name.as_deref(), Some("a/b"));
        assert!(store_ref_of("Other/x").is_none());
        assert!(store_ref_of("nokind").is_none());
    }
}

//! `secretstore.externalsecrets.io/finalizer`, as upstream: a SecretStore or ClusterSecretStore
//! that PushSecrets with `deletionPolicy: Delete` use keeps this finalizer, so deleting the
//! store (or its namespace) waits until those PushSecrets are gone and could still delete what
//! they pushed through it. Managed only while the PushSecret reconciler runs.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use strongroom_core::crd::external_secrets::{PushSecret, StoreKind};

use crate::context::Context;
use crate::error::Error;
use crate::push_cleanup::{deletes, synced_of};
use crate::store::StoreObject;

/// The finalizer's name.
pub const FINALIZER: &str = "secretstore.externalsecrets.io/finalizer";

/// A store as the finalizer rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct StoreIdentity<'a> {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// The namespace of a SecretStore.
    pub namespace: Option<&'a str>,
    /// The name.
    pub name: &'a str,
    /// The labels (for `secretStoreRefs[].labelSelector`).
    pub labels: &'a BTreeMap<String, String>,
}

/// Whether `ps` refers to the store: by name or label selector in `secretStoreRefs` (a
/// SecretStore only from its own namespace), or through a push recorded in
/// `status.syncedPushSecrets`.
pub fn refers_to(ps: &PushSecret, store: StoreIdentity<'_>) -> bool {
    if store.kind == StoreKind::SecretStore && ps.namespace().as_deref() != store.namespace {
        return false;
    }
    let by_ref = ps.spec.secret_store_refs.iter().any(|r| {
        r.kind.unwrap_or_default() == store.kind
            && match (&r.name, &r.label_selector) {
                (Some(name), _) if !name.is_empty() => name == store.name,
                (_, Some(selector)) => crate::stores::selector_matches(selector, store.labels),
                _ => false,
            }
    });
    let key = format!("{}/{}", kind_name(store.kind), store.name);
    by_ref || synced_of(ps).contains_key(&key)
}

/// Whether `ps` holds the store: it refers to it and deletes what it pushed.
pub fn holds(ps: &PushSecret, store: StoreIdentity<'_>) -> bool {
    deletes(ps) && refers_to(ps, store)
}

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::SecretStore => "SecretStore",
        StoreKind::ClusterSecretStore => "ClusterSecretStore",
    }
}

/// What the store reconcile does after the finalizer step.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Validate the store as usual.
    Validate,
    /// The store is being deleted: nothing more to do for it.
    Done,
}

/// Adds or removes the finalizer as the PushSecrets in `pushes` require. A store being
/// deleted loses it once no PushSecret holds it. Until the PushSecret cache has filled
/// nothing changes, so an empty cache at start never releases a store (its first list
/// triggers the stores it names); nor does a cluster without the PushSecret CRD hold up
/// store validation.
pub async fn reconcile<K: StoreObject>(
    store: &K,
    pushes: &Store<PushSecret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let deleting = store.meta().deletion_timestamp.is_some();
    if futures::FutureExt::now_or_never(pushes.wait_until_ready()).is_none() {
        return Ok(if deleting { Next::Done } else { Next::Validate });
    }
    let (namespace, name, labels) = (store.namespace(), store.name_any(), store.labels().clone());
    let identity = StoreIdentity {
        kind: K::KIND,
        namespace: namespace.as_deref(),
        name: &name,
        labels: &labels,
    };
    let holders: Vec<String> = pushes
        .state()
        .iter()
        .filter(|ps| holds(ps, identity))
        .map(|ps| format!("{}/{}", ps.namespace().unwrap_or_default(), ps.name_any()))
        .collect();
    let finalizers = store.finalizers();
    let has = finalizers.iter().any(|f| f == FINALIZER);
    let wanted = !holders.is_empty();
    if wanted != has && !(deleting && wanted) {
        let mut list: Vec<String> = finalizers
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if wanted {
            list.push(FINALIZER.to_string());
        }
        // the resourceVersion makes this a compare-and-swap: a finalizer someone else added
        // meanwhile is never dropped
        let patch = json!({
            "metadata": {
                "finalizers": list,
                "resourceVersion": store.resource_version(),
            }
        });
        store
            .api(ctx.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("update the finalizers of a store"))?;
        tracing::info!(
            store = %describe(identity),
            pushsecrets = ?holders,
            "{} {FINALIZER}",
            if wanted { "added" } else { "removed" }
        );
    } else if deleting && has {
        tracing::info!(
            store = %describe(identity),
            pushsecrets = ?holders,
            "store deletion waits for PushSecrets with deletionPolicy=Delete that use it"
        );
    }
    Ok(if deleting { Next::Done } else { Next::Validate })
}

fn describe(store: StoreIdentity<'_>) -> String {
    match store.namespace {
        Some(ns) => format!("{} {ns}/{}", kind_name(store.kind), store.name),
        None => format!("{} {}", kind_name(store.kind), store.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(ns: &str, policy: &str, refs: serde_json::Value, synced: &[&str]) -> PushSecret {
        let synced: serde_json::Map<String, serde_json::Value> = synced
            .iter()
            .map(|k| ((*k).to_string(), json!({})))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": {"name": "p", "namespace": ns},
            "spec": {
                "deletionPolicy": policy,
                "secretStoreRefs": refs,
                "selector": {"secret": {"name": "src"}},
            },
            "status": {"syncedPushSecrets": synced},
        }))
        .unwrap()
    }

    fn store<'a>(
        kind: StoreKind,
        ns: Option<&'a str>,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> StoreIdentity<'a> {
        StoreIdentity {
            kind,
            namespace: ns,
            name,
            labels,
        }
    }

    #[test]
    fn a_delete_policy_push_holds_the_stores_it_names_selects_or_synced_to() {
        let none = BTreeMap::new();
        let team: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let ss = StoreKind::SecretStore;
        let css = StoreKind::ClusterSecretStore;
        let named = push("apps", "Delete", json!([{"name": "vault"}]), &[]);
        assert!(holds(&named, store(ss, Some("apps"), "vault", &none)));
        // another namespace's SecretStore of that name, another name, the other kind
        assert!(!holds(&named, store(ss, Some("ops"), "vault", &none)));
        assert!(!holds(&named, store(ss, Some("apps"), "aws", &none)));
        assert!(!holds(&named, store(css, None, "vault", &none)));
        let cluster = push(
            "apps",
            "Delete",
            json!([{"name": "shared", "kind": "ClusterSecretStore"}]),
            &[],
        );
        assert!(holds(&cluster, store(css, None, "shared", &none)));
        let selected = push(
            "apps",
            "Delete",
            json!([{"labelSelector": {"matchLabels": {"team": "a"}}}]),
            &[],
        );
        assert!(holds(&selected, store(ss, Some("apps"), "any", &team)));
        assert!(!holds(&selected, store(ss, Some("apps"), "any", &none)));
        // no longer named, but pushed through it: still held until that is deleted
        let synced = push(
            "apps",
            "Delete",
            json!([{"name": "new"}]),
            &["SecretStore/old"],
        );
        assert!(holds(&synced, store(ss, Some("apps"), "old", &none)));
        // deletionPolicy None holds nothing, though it refers to the store
        let keep = push(
            "apps",
            "None",
            json!([{"name": "vault"}]),
            &["SecretStore/vault"],
        );
        assert!(refers_to(&keep, store(ss, Some("apps"), "vault", &none)));
        assert!(!holds(&keep, store(ss, Some("apps"), "vault", &none)));
    }
}

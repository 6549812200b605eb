//! What the controller knows about Secrets without asking the API server: the metadata cache
//! fed by the owned-Secret watch, and the resourceVersion each SealedSecret's Secret had when
//! this process last wrote or checked it. Together they let a reconcile that finds its Secret
//! in place make no API call at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::SOURCE_HASH_ANNOTATION;
use crate::ownership::{Ownership, ownership};

/// What the cache says about one Secret.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No cache covers the namespace, or it has not finished its first list: ask the API server.
    Unknown,
    /// The synced cache has no such Secret.
    Absent,
    /// The Secret's metadata as last seen.
    Present(Arc<PartialObjectMeta<Secret>>),
}

/// How long a reconcile waits for a cache's first list before asking the API server instead.
const FIRST_LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The metadata cache of one watched scope.
type SecretMetaStore = Store<PartialObjectMeta<Secret>>;

/// A scope's cache and when it was added (its first list is waited for only so long after).
struct Scoped {
    namespace: Option<String>,
    store: SecretMetaStore,
    added: tokio::time::Instant,
}

/// Metadata caches per watched scope, and the Secret versions known to be in place.
#[derive(Default)]
pub struct SecretIndex {
    /// (namespace or all, cache) for each watched scope.
    stores: RwLock<Vec<Scoped>>,
    /// SealedSecret uid → resourceVersion of its Secret as this process last wrote or checked it.
    known: Mutex<HashMap<String, String>>,
}

impl SecretIndex {
    /// Adds the cache of one scope.
    pub fn add_store(&self, namespace: Option<String>, store: SecretMetaStore) {
        self.add_store_at(namespace, store, tokio::time::Instant::now());
    }

    /// Adds the cache of one scope as if it had been added at `added`.
    fn add_store_at(
        &self,
        namespace: Option<String>,
        store: SecretMetaStore,
        added: tokio::time::Instant,
    ) {
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Scoped {
                namespace,
                store,
                added,
            });
    }

    /// Looks up `namespace/name` in the cache of the scope that covers it. Reconciles start
    /// while the cache's first list is still running, so a lookup waits for it, but only within
    /// [`FIRST_LIST_WAIT`] of the cache's start: a list that never completes (no RBAC to list
    /// Secrets, say) does not slow every later reconcile.
    pub async fn lookup(&self, namespace: &str, name: &str) -> Lookup {
        let (store, wait) = {
            let stores = self.stores.read().unwrap_or_else(|p| p.into_inner());
            let Some(scoped) = stores
                .iter()
                .find(|s| s.namespace.as_deref().is_none_or(|n| n == namespace))
            else {
                return Lookup::Unknown;
            };
            let wait = FIRST_LIST_WAIT.saturating_sub(scoped.added.elapsed());
            (scoped.store.clone(), wait)
        };
        // a zero timeout still polls once, so a ready cache always answers
        if !matches!(
            tokio::time::timeout(wait, store.wait_until_ready()).await,
            Ok(Ok(()))
        ) {
            return Lookup::Unknown;
        }
        match store.get(&ObjectRef::new(name).within(namespace)) {
            Some(meta) => Lookup::Present(meta),
            None => Lookup::Absent,
        }
    }

    /// Whether the Secret with `meta` already holds what the SealedSecret (`uid`, source `hash`)
    /// unseals to: it is ours to manage, it records the same source, and nobody changed it since
    /// this process last wrote or checked it (after a restart the recorded source is trusted).
    pub fn in_place(&self, uid: &str, meta: &ObjectMeta, hash: &str) -> bool {
        let same_source = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_HASH_ANNOTATION))
            .is_some_and(|h| h == hash);
        if !same_source || ownership(Some(meta), uid) == Ownership::Foreign {
            return false;
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match known.get(uid) {
            None => true,
            Some(rv) => meta.resource_version.as_deref() == Some(rv.as_str()),
        }
    }

    /// Whether this process wrote or checked the Secret of `uid`.
    pub fn knows(&self, uid: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(uid)
    }

    /// Forgets the SealedSecrets whose uid is not in `live`.
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| live.contains(uid));
    }

    /// Records the resourceVersion the Secret of `uid` has after a write or a check.
    pub fn remember(&self, uid: &str, resource_version: Option<String>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match resource_version {
            Some(rv) => known.insert(uid.to_string(), rv),
            None => known.remove(uid),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    fn meta(rv: &str, hash: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": rv,
                "annotations": {SOURCE_HASH_ANNOTATION: hash},
                "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "s", "uid": "u", "controller": true}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn lookups_follow_the_scope_and_the_known_version() {
        let index = SecretIndex::default();
        assert!(matches!(index.lookup("ns", "s").await, Lookup::Unknown));
        let (reader, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(meta("5", "h")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        index.add_store(Some("ns".into()), reader);
        assert!(matches!(index.lookup("other", "s").await, Lookup::Unknown));
        assert!(matches!(
            index.lookup("ns", "missing").await,
            Lookup::Absent
        ));
        let Lookup::Present(found) = index.lookup("ns", "s").await else {
            panic!("expected the cached Secret");
        };
        // first sight after a start: the recorded source is trusted
        assert!(index.in_place("u", &found.metadata, "h"));
        assert!(!index.in_place("u", &found.metadata, "other-hash"));
        assert!(!index.in_place("someone-else", &found.metadata, "h"));
        // once a version is known, a change by anyone else means "not in place"
        index.remember("u", Some("4".into()));
        assert!(!index.in_place("u", &found.metadata, "h"));
        index.remember("u", Some("5".into()));
        assert!(index.in_place("u", &found.metadata, "h"));
        assert!(index.knows("u") && !index.knows("v"));
        index.retain(&["v".to_string()].into());
        assert!(!index.knows("u"));
    }

    #[tokio::test]
    async fn a_cache_that_never_lists_is_waited_for_only_at_start() {
        use std::time::Duration;
        let index = SecretIndex::default();
        let (reader, _writer) = reflector::store::<PartialObjectMeta<Secret>>();
        // added long enough ago that 300 ms of the first-list wait are left
        let left = Duration::from_millis(300);
        index.add_store_at(
            None,
            reader,
            tokio::time::Instant::now() - (FIRST_LIST_WAIT - left),
        );
        let start = tokio::time::Instant::now();
        assert!(matches!(index.lookup("ns", "s").await, Lookup::Unknown));
        let waited = start.elapsed();
        assert!(
            waited >= left - Duration::from_millis(20) && waited < Duration::from_secs(3),
            "waited {waited:?}"
        );
        let later = tokio::time::Instant::now();
        assert!(matches!(index.lookup("ns", "s").await, Lookup::Unknown));
        assert!(later.elapsed() < Duration::from_millis(100));
    }
}

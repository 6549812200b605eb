//! Watch helpers every controller needs:
//! - [`guarded_watch`]: the primary watch, read object by object, so one object that does not
//!   deserialize is reported through a callback and skipped instead of stalling the whole watch
//!   (a typed watch fails the entire list on one bad object);
//! - [`owned_metadata_cache`]: a metadata-only cache of owned objects (a controller that writes
//!   Secrets never needs their data from the watch);
//! - [`slim`]: drops `managedFields` and kubectl's last-applied copy from cached objects;
//! - [`scoped_api`]: one namespace or the whole cluster;
//! - [`backed_off_watch`]: a plain watch that waits after errors.

use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::readiness::Component;

/// kubectl's client-side apply record: a full copy of the object, never needed from a cache.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An `Api` for one namespace, or for all namespaces when `namespace` is `None`.
pub fn scoped_api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// A watch of `api` that waits after each error (0.8 s, doubling to 30 s), as every watch a
/// controller runs must: without the wait a missing CRD or a forbidden list is re-listed in a
/// tight loop (thousands of lists a second, errors queued without bound).
pub fn backed_off_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config).default_backoff()
}

/// Drops what no reconcile reads from a cached object: `managedFields` and kubectl's
/// last-applied copy of the whole object.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// Called with an object that does not read as the watched type, and why (with quoted values
/// redacted: the reason may go into events and status).
pub type OnInvalid = Arc<dyn Fn(DynamicObject, String) + Send + Sync>;

/// Watches `K` in `namespace` (or all) as raw objects and yields the ones that deserialize.
/// Each one that does not is handed to `on_invalid` (log it, emit a Warning event, write a
/// status) and skipped; the watch goes on with the rest. `cache` is the store this stream
/// feeds: an object deleted while it does not read is deleted from it as last cached, so a
/// valid copy cached before a bad edit does not outlive the object.
pub fn guarded_watch<K>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    on_invalid: OnInvalid,
    cache: Store<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            future::ready(event.map(|e| typed(e, &on_invalid, &cache)).transpose())
        })
}

fn typed<K>(
    event: watcher::Event<DynamicObject>,
    on_invalid: &OnInvalid,
    cache: &Store<K>,
) -> Option<watcher::Event<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone,
{
    use watcher::Event as E;
    Some(match event {
        E::Init => E::Init,
        E::InitDone => E::InitDone,
        E::InitApply(obj) => E::InitApply(read(obj, on_invalid)?),
        E::Apply(obj) => E::Apply(read(obj, on_invalid)?),
        E::Delete(obj) => {
            let mut key = ObjectRef::<K>::new(&obj.name_any());
            key.namespace = obj.namespace();
            let ignore: OnInvalid = Arc::new(|_, _| {});
            match read(obj, &ignore) {
                Some(k) => E::Delete(k),
                None => E::Delete(cache.get(&key)?.as_ref().clone()),
            }
        }
    })
}

/// `text` with every double-quoted part replaced by `"…"`: serde quotes the values it could not
/// read, and a value may be a secret.
pub fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            out.push('"');
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// The object as `K`, or `None` after handing it to `on_invalid`.
fn read<K: DeserializeOwned>(obj: DynamicObject, on_invalid: &OnInvalid) -> Option<K> {
    let parsed = serde_json::to_value(&obj)
        .and_then(serde_json::from_value::<K>)
        .map_err(|e| redact_quoted(&e.to_string()));
    match parsed {
        Ok(k) => Some(k),
        Err(reason) => {
            on_invalid(obj, reason);
            None
        }
    }
}

/// Marks `component` ready when the watch `stream` has delivered its first complete list
/// (`InitDone`), without waiting on a store: kube-runtime wakes only one waiter of a store's
/// readiness, and the `Controller` reading the same store takes that wake-up.
pub fn report_synced<S, K>(stream: S, component: Component) -> impl Stream<Item = S::Item> + Send
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    stream.inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            component.ready();
        }
    })
}

/// A slimmed, metadata-only cache of `K` in `namespace` (or all), and the stream of touched
/// objects that drives it (hand it to `Controller::owns_stream`, or poll it yourself).
pub fn owned_metadata_cache<K>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    synced: Component,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = scoped_api(client, namespace);
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        report_synced(backed_off_watch(api, config), synced).modify(slim),
    )
    .touched_objects();
    (reader, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;
    use std::sync::Mutex;

    #[test]
    fn slim_drops_managed_fields_and_last_applied_only() {
        let mut cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "x", "annotations": {LAST_APPLIED_ANNOTATION: "{...}", "keep": "1"},
                "managedFields": [{"manager": "kubectl"}]}
        }))
        .unwrap();
        slim(&mut cm);
        assert!(cm.metadata.managed_fields.unwrap_or_default().is_empty());
        let a = cm.metadata.annotations.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a["keep"], "1");
    }

    #[test]
    fn an_object_that_does_not_read_goes_to_the_callback() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let on_invalid: OnInvalid = Arc::new(move |obj: DynamicObject, why| {
            sink.lock()
                .unwrap()
                .push((obj.metadata.name.unwrap_or_default(), why));
        });
        let good: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good"}, "data": {"a": "b"}
        }))
        .unwrap();
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": 5}
        }))
        .unwrap();
        let (cache, mut writer) = reflector::store::<ConfigMap>();
        let ok: Option<watcher::Event<ConfigMap>> =
            typed(watcher::Event::Apply(good.clone()), &on_invalid, &cache);
        assert!(
            matches!(ok, Some(watcher::Event::Apply(cm)) if cm.metadata.name.as_deref() == Some("good"))
        );
        let skipped: Option<watcher::Event<ConfigMap>> =
            typed(watcher::Event::InitApply(bad.clone()), &on_invalid, &cache);
        assert!(skipped.is_none());
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0, "bad");
            assert!(seen[0].1.contains("invalid type"), "{}", seen[0].1);
        }
        // deleted while it does not read: nothing cached, nothing to delete
        let gone: Option<watcher::Event<ConfigMap>> =
            typed(watcher::Event::Delete(bad.clone()), &on_invalid, &cache);
        assert!(gone.is_none());
        // cached while valid, then edited into something unreadable and deleted: the cached
        // copy is deleted, so it cannot be reconciled after the object is gone
        let mut cached: ConfigMap =
            serde_json::from_value(serde_json::to_value(&good).unwrap()).unwrap();
        cached.metadata.name = Some("bad".into());
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
        let gone: Option<watcher::Event<ConfigMap>> =
            typed(watcher::Event::Delete(bad), &on_invalid, &cache);
        assert!(
            matches!(gone, Some(watcher::Event::Delete(cm)) if cm.metadata.name.as_deref() == Some("bad"))
        );
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "a deletion is not reported as invalid"
        );
    }

    #[test]
    fn quoted_values_are_redacted_from_reasons() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "hunter2", expected a map"#),
            r#"invalid type: string "…", expected a map"#
        );
        assert_eq!(
            redact_quoted("missing field `spec`"),
            "missing field `spec`"
        );
        assert_eq!(redact_quoted(r#"cut "open"#), r#"cut "…"#);
    }
}

//! The cluster state: every object, one resourceVersion sequence, and the watch history.
//!
//! All writes go through one lock, so the resourceVersion order is the commit order and a
//! watcher never misses or reorders events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::fields::{self, ManagedEntry};
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector, labels_of};
use crate::status::ApiError;
use crate::validation;
use crate::workloads;

mod aggregation;
mod apply;
mod delete;
mod hooks;
mod write;

use apply::{apply_manager, record_update_ownership};
use write::{merge_subresource, set_identity};

/// How many watch events are kept for watches that resume from an older version.
pub const DEFAULT_HISTORY: usize = 50_000;
/// Largest object the store accepts (etcd's limit).
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

/// Kind of watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage key of the resource (`group/plural`).
    pub storage_key: String,
    /// Namespace of the object (empty for cluster scope).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, for deletes, with the new version).
    pub object: Value,
    /// The object before a modification or deletion, so selector-filtered watches can turn a change that
    /// leaves (or enters) the selection into DELETED (or ADDED), as the real server does.
    pub previous: Option<Value>,
}

impl Event {
    /// How a watch with `sel` sees this event, if at all.
    pub fn seen_as(&self, sel: &Selection) -> Option<EventType> {
        let now = sel.matches(&self.namespace, &self.object);
        match self.kind {
            EventType::Modified => {
                let before = self
                    .previous
                    .as_ref()
                    .map_or(now, |p| sel.matches(&self.namespace, p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
            other => now.then_some(other),
        }
    }
}

/// What a list or watch selects.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Selection {
    /// Whether an object of the selected resource matches.
    pub fn matches(&self, namespace: &str, obj: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.labels.matches(&labels_of(obj))
            && self.fields.matches(obj)
    }
}

/// Who writes and how.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (server-side apply).
    pub force: bool,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldValidation` (custom resources).
    pub field_validation: crate::schema::FieldValidation,
    /// Warnings for the response.
    pub warnings: crate::schema::Warnings,
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    /// The uid the object must have.
    pub uid: Option<String>,
    /// The resourceVersion the object must have.
    pub resource_version: Option<String>,
}

impl Preconditions {
    /// 409 with the real server's text when `obj` does not match.
    pub fn check(&self, rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
        let conflict = |detail: String| {
            let mut e = ApiError::conflict(rt, name);
            e.message = format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                rt.qualified_plural()
            );
            e
        };
        if let Some(uid) = &self.uid {
            let have = meta_str(obj, "uid");
            if uid != have {
                return Err(conflict(format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({have}). The object might have been deleted and then recreated"
                )));
            }
        }
        if let Some(rv) = &self.resource_version {
            let have = meta_str(obj, "resourceVersion");
            if rv != have {
                return Err(conflict(format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({have}). The object might have been modified"
                )));
            }
        }
        Ok(())
    }
}

/// Deletion propagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete now, collect dependents afterwards.
    #[default]
    Background,
    /// Delete dependents first.
    Foreground,
    /// Leave dependents, removing their ownerReference.
    Orphan,
}

type ObjectKey = (String, String);

/// One page of a list: the items, the list's resourceVersion, and where the next page starts.
pub type ListPage = (Vec<Value>, u64, Option<(String, String)>);

struct State {
    rv: u64,
    registry: Vec<ResourceType>,
    objects: BTreeMap<String, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Events up to this version have been dropped from the history.
    compacted: u64,
    /// Set while aggregated ClusterRoles are being rewritten (no re-entry from their writes).
    aggregating: bool,
}

/// A check of a write run under the store's lock, on the state the write applies to:
/// `(reader of that state, old object, new object)`. An error refuses the write.
pub type Guard<'g> =
    &'g dyn Fn(&dyn crate::rbac::RbacSource, Option<&Value>, &Value) -> Result<(), ApiError>;

fn no_guard(_: &dyn crate::rbac::RbacSource, _: Option<&Value>, _: &Value) -> Result<(), ApiError> {
    Ok(())
}

impl crate::rbac::RbacSource for State {
    fn rbac_get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let rt = self.rbac_rt(plural)?;
        self.get(&rt, namespace, name)
            .map(|o| with_version(o.clone(), &rt))
    }

    fn rbac_list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = self.rbac_rt(plural) else {
            return Vec::new();
        };
        let sel = Selection {
            namespace: namespace.map(str::to_string),
            ..Selection::default()
        };
        self.objects
            .get(&rt.storage_key())
            .map(|objects| {
                objects
                    .iter()
                    .filter(|(key, obj)| sel.matches(&key.0, obj))
                    .map(|(_, obj)| with_version(obj.clone(), &rt))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl State {
    fn rbac_rt(&self, plural: &str) -> Option<ResourceType> {
        self.registry
            .iter()
            .find(|r| {
                r.group == "rbac.authorization.k8s.io" && r.version == "v1" && r.plural == plural
            })
            .cloned()
    }
}

/// The whole cluster.
pub struct Store {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<Event>>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    /// A store holding the namespaces a new cluster has.
    pub fn new(history_limit: usize) -> Self {
        let (live, _) = broadcast::channel(65_536);
        let store = Self {
            state: Mutex::new(State {
                rv: 0,
                registry: resources::builtins(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted: 0,
                aggregating: false,
            }),
            live,
        };
        if let Some(ns) = store.resource("", "v1", "namespaces") {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                // The built-in namespaces cannot fail to create in an empty store.
                let _ = store.create(&ns, "", obj, &WriteOptions::default());
            }
        }
        for (plural, obj) in crate::rbac::bootstrap_objects() {
            if let Some(rt) = store.resource("rbac.authorization.k8s.io", "v1", plural) {
                // The default roles cannot fail to create in an empty store.
                let _ = store.create(&rt, "", obj, &WriteOptions::default());
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The resource type serving `group/version/plural`.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .registry
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Every resource type currently served.
    pub fn registry(&self) -> Vec<ResourceType> {
        self.lock().registry.clone()
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored object and the current resourceVersion, for `--data-dir` snapshots.
    pub fn export(&self) -> Value {
        let st = self.lock();
        let objects: Vec<Value> = st
            .objects
            .iter()
            .flat_map(|(key, objs)| {
                objs.values()
                    .map(move |o| json!({"resource": key, "object": o}))
            })
            .collect();
        json!({"resourceVersion": st.rv, "objects": objects})
    }

    /// Replaces the state with a snapshot from [`Store::export`]. Watches cannot resume from
    /// before the snapshot: they get 410 Expired and relist, as after an etcd compaction.
    pub fn import(&self, snapshot: &Value) -> Result<(), ApiError> {
        let bad = |what: &str| ApiError::internal(format!("invalid snapshot: {what}"));
        let rv = snapshot["resourceVersion"]
            .as_u64()
            .ok_or_else(|| bad("no resourceVersion"))?;
        let entries = snapshot["objects"]
            .as_array()
            .ok_or_else(|| bad("no objects"))?;
        let mut st = self.lock();
        st.objects.clear();
        st.registry = resources::builtins();
        for e in entries {
            let key = e["resource"]
                .as_str()
                .ok_or_else(|| bad("object without resource"))?;
            let obj = e["object"].clone();
            if key == "apiextensions.k8s.io/customresourcedefinitions"
                && let Some(types) = resources::from_crd(&obj)
            {
                st.registry.extend(types);
            }
            let ns = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            st.objects
                .entry(key.to_string())
                .or_default()
                .insert((ns, name), obj);
        }
        st.rv = rv;
        st.history.clear();
        st.compacted = rv;
        Ok(())
    }

    /// Reads one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        st.get(rt, ns, name)
            .map(|o| with_version(o.clone(), rt))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// How many objects of a type match `sel` (cheap: nothing is copied).
    pub fn count(&self, rt: &ResourceType, sel: &Selection) -> usize {
        let st = self.lock();
        st.objects.get(&rt.storage_key()).map_or(0, |objects| {
            objects
                .iter()
                .filter(|(key, obj)| sel.matches(&key.0, obj))
                .count()
        })
    }

    /// Lists objects: `(items, resourceVersion, continue token)`.
    pub fn list(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        limit: Option<usize>,
        continue_after: Option<&(String, String)>,
    ) -> (Vec<Value>, u64, Option<(String, String)>) {
        let st = self.lock();
        let mut items = Vec::new();
        let mut next = None;
        if let Some(objects) = st.objects.get(&rt.storage_key()) {
            let range = match continue_after {
                Some(k) => objects.range((
                    std::ops::Bound::Excluded(k.clone()),
                    std::ops::Bound::Unbounded,
                )),
                None => objects.range::<ObjectKey, _>(..),
            };
            for (key, obj) in range {
                if !sel.matches(&key.0, obj) {
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    next = items.last().map(|o: &Value| {
                        (
                            meta_str(o, "namespace").to_string(),
                            meta_str(o, "name").to_string(),
                        )
                    });
                    break;
                }
                items.push(with_version(obj.clone(), rt));
            }
        }
        (items, st.rv, next)
    }

    /// Lists the objects as they were at resourceVersion `at` (`resourceVersionMatch=Exact`),
    /// rebuilt from the watch history: 410 Expired when the history no longer reaches back
    /// that far, 504 when `at` is in the future.
    pub fn list_at(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        at: u64,
        limit: Option<usize>,
        continue_after: Option<&(String, String)>,
    ) -> Result<ListPage, ApiError> {
        let st = self.lock();
        if at > st.rv {
            return Err(ApiError {
                code: 504,
                reason: "Timeout",
                message: format!("Too large resource version: {at}, current: {}", st.rv),
                details: Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                ),
            });
        }
        if at < st.compacted {
            return Err(ApiError::expired(at, st.compacted + 1));
        }
        let key = rt.storage_key();
        let mut objects: BTreeMap<ObjectKey, Value> =
            st.objects.get(&key).cloned().unwrap_or_default();
        for ev in st.history.iter().rev() {
            if ev.rv <= at {
                break;
            }
            if ev.storage_key != key {
                continue;
            }
            let k = (
                ev.namespace.clone(),
                meta_str(&ev.object, "name").to_string(),
            );
            match (ev.kind, &ev.previous) {
                (EventType::Added, _) => {
                    objects.remove(&k);
                }
                (_, Some(previous)) => {
                    objects.insert(k, previous.clone());
                }
                (_, None) => {}
            }
        }
        let mut items = Vec::new();
        let mut next = None;
        let range = match continue_after {
            Some(k) => objects.range((
                std::ops::Bound::Excluded(k.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => objects.range::<ObjectKey, _>(..),
        };
        for (k, obj) in range {
            if !sel.matches(&k.0, obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = items.last().map(|o: &Value| {
                    (
                        meta_str(o, "namespace").to_string(),
                        meta_str(o, "name").to_string(),
                    )
                });
                break;
            }
            items.push(with_version(obj.clone(), rt));
        }
        Ok((items, at, next))
    }

    /// Subscribes to changes after `from_rv`: the kept events since then, and a live feed.
    /// `None` starts at the current version after replaying every matching object as ADDED.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        from_rv: Option<u64>,
    ) -> Result<(Vec<Arc<Event>>, u64, broadcast::Receiver<Arc<Event>>), ApiError> {
        let st = self.lock();
        let rx = self.live.subscribe();
        let key = rt.storage_key();
        let backlog = match from_rv {
            None => st
                .objects
                .get(&key)
                .map(|objs| {
                    objs.iter()
                        .filter(|((ns, _), o)| sel.matches(ns, o))
                        .map(|((ns, _), o)| {
                            Arc::new(Event {
                                rv: o
                                    .pointer("/metadata/resourceVersion")
                                    .and_then(Value::as_str)
                                    .and_then(|s| s.parse().ok())
                                    .unwrap_or(st.rv),
                                storage_key: key.clone(),
                                namespace: ns.clone(),
                                kind: EventType::Added,
                                object: o.clone(),
                                previous: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::expired(rv, st.compacted + 1));
                }
                st.history
                    .iter()
                    .filter(|e| e.rv > rv && e.storage_key == key && e.seen_as(sel).is_some())
                    .cloned()
                    .collect()
            }
        };
        Ok((backlog, st.rv, rx))
    }

    /// Creates an object.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_guarded(rt, ns, obj, opts, &no_guard)
    }

    /// Creates an object if `guard` allows it, checked under the same lock as the write.
    pub fn create_guarded(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
        guard: Guard<'_>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        guard(&*st, None, &obj)?;
        st.create(rt, ns, obj, opts, "Update", &self.live)
    }

    /// Replaces an object (PUT), on the main resource or the `status` subresource.
    pub fn replace(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.replace_guarded(rt, ns, name, obj, subresource, opts, &no_guard)
    }

    /// Replaces an object if `guard` allows it, checked under the same lock as the write.
    #[allow(clippy::too_many_arguments)]
    pub fn replace_guarded(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
        guard: Guard<'_>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let Some(old) = st.get(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        guard(&*st, Some(&with_version(old.clone(), rt)), &obj)?;
        let body_rv = meta_str(&obj, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        let merged = merge_subresource(rt, &old, obj, subresource);
        st.update(
            rt,
            ns,
            name,
            old,
            merged,
            "Update",
            subresource,
            opts,
            &self.live,
        )
    }

    /// Patches an object; a server-side apply creates it when absent.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.patch_guarded(rt, ns, name, kind, body, subresource, opts, &no_guard)
    }

    /// Patches an object if `guard` allows the patched result, checked under the same lock as
    /// the write.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_guarded(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
        guard: Guard<'_>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let old = st.get(rt, ns, name).cloned();
        let Some(old) = old else {
            if kind == PatchType::Apply && subresource.is_none() {
                let manager = apply_manager(opts)?;
                let mut obj = body.clone();
                set_identity(&mut obj, rt, ns, name);
                let opts = WriteOptions {
                    field_manager: Some(manager),
                    ..opts.clone()
                };
                guard(&*st, None, &obj)?;
                return st.create(rt, ns, obj, &opts, "Apply", &self.live);
            }
            return Err(ApiError::not_found(rt, name));
        };
        let mut new = old.clone();
        let operation = match kind {
            PatchType::Merge => {
                patch::merge(&mut new, body);
                "Update"
            }
            PatchType::Strategic => {
                patch::strategic(&mut new, body);
                "Update"
            }
            PatchType::Json => {
                patch::json(&mut new, body)?;
                "Update"
            }
            PatchType::Apply => {
                new = st.apply(rt, &old, body, subresource, opts)?;
                "Apply"
            }
        };
        // the patched object's resourceVersion is a precondition, whatever the patch type
        let new_rv = meta_str(&new, "resourceVersion");
        if !new_rv.is_empty() && new_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        patch::check_depth(&new)?;
        if let Some(problem) = validation::check_types(rt, &new) {
            let patched = serde_json::to_string(&new).unwrap_or_default();
            return Err(ApiError {
                code: 422,
                reason: "Invalid",
                message: format!(" \"\" is invalid: patch: Invalid value: {patched:?}: {problem}"),
                details: Some(
                    json!({"causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {patched:?}: {problem}"), "field": "patch"}]}),
                ),
            });
        }
        if meta_str(&new, "name") != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name in the URL",
            ));
        }
        guard(
            &*st,
            Some(&with_version(old.clone(), rt)),
            &with_version(new.clone(), rt),
        )?;
        let merged = merge_subresource(rt, &old, new, subresource);
        st.update(
            rt,
            ns,
            name,
            old,
            merged,
            operation,
            subresource,
            opts,
            &self.live,
        )
    }

    /// Deletes an object (or marks it, when finalizers remain), after checking the
    /// `preconditions`; with `dry_run` nothing changes.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let Some(obj) = st.get(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        preconditions.check(rt, name, &obj)?;
        if dry_run {
            return Ok(with_version(obj, rt));
        }
        st.delete(rt, ns, name, propagation, &self.live)
    }

    /// Deletes every selected object.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        propagation: Propagation,
        dry_run: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let (items, _, _) = self.list(rt, sel, None, None);
        if dry_run {
            return Ok(items);
        }
        let mut st = self.lock();
        let mut deleted = Vec::new();
        for item in items {
            let (ns, name) = (
                meta_str(&item, "namespace").to_string(),
                meta_str(&item, "name").to_string(),
            );
            if let Ok(d) = st.delete(rt, &ns, &name, propagation, &self.live) {
                deleted.push(d);
            }
        }
        Ok(deleted)
    }
}

/// An object as it is served: in the requested version, with its schema's defaults.
fn with_version(mut obj: Value, rt: &ResourceType) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    crate::schema::default_on_read(rt, &mut obj);
    obj
}

impl State {}

#[cfg(test)]
mod guard_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::rbac::RbacSource;

    fn rv(v: &Value) -> u64 {
        meta_str(v, "resourceVersion").parse().unwrap()
    }

    /// The escalation check of a write runs under the store's lock: a concurrent change of the
    /// writer's own RoleBinding waits until the checked write has landed, so the check never
    /// approves a write against permissions that are gone when it commits.
    #[test]
    fn no_write_lands_between_a_guard_and_its_write() {
        let store = Arc::new(Store::new(100));
        let rt = |plural| {
            store
                .resource("rbac.authorization.k8s.io", "v1", plural)
                .unwrap()
        };
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "alice", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}]});
        store
            .create(
                &rt("rolebindings"),
                "default",
                binding,
                &WriteOptions::default(),
            )
            .unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let deleter = std::cell::RefCell::new(None);
        let guard = |src: &dyn RbacSource, old: Option<&Value>, _new: &Value| {
            assert!(old.is_none());
            assert!(src.rbac_get("rolebindings", "default", "alice").is_some());
            // another request revokes alice's binding while her write is being checked
            let (store, tx) = (Arc::clone(&store), done_tx.clone());
            *deleter.borrow_mut() = Some(std::thread::spawn(move || {
                let rt = store
                    .resource("rbac.authorization.k8s.io", "v1", "rolebindings")
                    .unwrap();
                let out = store
                    .delete(
                        &rt,
                        "default",
                        "alice",
                        Propagation::Background,
                        &Preconditions::default(),
                        false,
                    )
                    .unwrap();
                tx.send(()).unwrap();
                out
            }));
            assert!(
                done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
                "the binding was deleted while the write was being checked"
            );
            Ok(())
        };
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "default"}, "rules": []});
        let created = store
            .create_guarded(
                &rt("roles"),
                "default",
                role,
                &WriteOptions::default(),
                &guard,
            )
            .unwrap();
        deleter.borrow_mut().take().unwrap().join().unwrap();
        // the revocation is ordered after the write it could have invalidated
        let now = store.current_rv();
        assert!(rv(&created) < now, "{created}");
        assert!(store.get(&rt("rolebindings"), "default", "alice").is_err());
    }

    #[test]
    fn a_refusing_guard_writes_nothing() {
        let store = Store::new(100);
        let rt = store
            .resource("rbac.authorization.k8s.io", "v1", "roles")
            .unwrap();
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "default"}, "rules": []});
        let refuse =
            |_: &dyn RbacSource, _: Option<&Value>, _: &Value| Err(ApiError::bad_request("no"));
        assert!(
            store
                .create_guarded(
                    &rt,
                    "default",
                    role.clone(),
                    &WriteOptions::default(),
                    &refuse
                )
                .is_err()
        );
        assert!(store.get(&rt, "default", "r").is_err());
        store
            .create(&rt, "default", role.clone(), &WriteOptions::default())
            .unwrap();
        assert!(
            store
                .replace_guarded(
                    &rt,
                    "default",
                    "r",
                    role,
                    None,
                    &WriteOptions::default(),
                    &refuse
                )
                .is_err()
        );
        let patch =
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        assert!(
            store
                .patch_guarded(
                    &rt,
                    "default",
                    "r",
                    PatchType::Merge,
                    &patch,
                    None,
                    &WriteOptions::default(),
                    &refuse
                )
                .is_err()
        );
        assert_eq!(store.get(&rt, "default", "r").unwrap()["rules"], json!([]));
    }
}

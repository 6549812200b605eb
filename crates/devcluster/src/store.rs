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

struct State {
    rv: u64,
    registry: Vec<ResourceType>,
    objects: BTreeMap<String, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Events up to this version have been dropped from the history.
    compacted: u64,
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
                    .filter(|e| {
                        e.rv > rv && e.storage_key == key && sel.matches(&e.namespace, &e.object)
                    })
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
        let mut st = self.lock();
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
        let mut st = self.lock();
        let Some(old) = st.get(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
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
        let body_rv = meta_str(body, "resourceVersion");
        if kind != PatchType::Json
            && !body_rv.is_empty()
            && body_rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(rt, name));
        }
        if meta_str(&new, "name") != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name in the URL",
            ));
        }
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

    /// Deletes an object (or marks it, when finalizers remain).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
        precondition_uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let Some(obj) = st.get(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        if let Some(uid) = precondition_uid
            && uid != meta_str(&obj, "uid")
        {
            return Err(ApiError::conflict(rt, name));
        }
        st.delete(rt, ns, name, propagation, &self.live)
    }

    /// Deletes every selected object.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        propagation: Propagation,
    ) -> Result<Vec<Value>, ApiError> {
        let (items, _, _) = self.list(rt, sel, None, None);
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

fn apply_manager(opts: &WriteOptions) -> Result<String, ApiError> {
    opts.field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            )
        })
}

fn set_identity(obj: &mut Value, rt: &ResourceType, ns: &str, name: &str) {
    if !obj.is_object() {
        *obj = json!({});
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["name"] = json!(name);
    if rt.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
    }
}

fn with_version(mut obj: Value, rt: &ResourceType) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    obj
}

/// Status subresource isolation: main writes keep the old status, status writes keep the rest.
fn merge_subresource(
    rt: &ResourceType,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
) -> Value {
    if !rt.status_subresource {
        return new;
    }
    match subresource {
        Some("status") => {
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if out["status"].is_null()
                && let Some(m) = out.as_object_mut()
            {
                m.remove("status");
            }
            out
        }
        _ => {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new
        }
    }
}

/// Whether anything but metadata and status changed (bumps `generation`).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
            m.remove("apiVersion");
        }
        v
    };
    strip(old) != strip(new)
}

impl State {
    fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        let ns = if rt.namespaced { ns } else { "" };
        self.objects
            .get(&rt.storage_key())?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn namespace_phase(&self, ns: &str) -> Option<String> {
        let obj = self
            .objects
            .get("/namespaces")?
            .get(&(String::new(), ns.to_string()))?;
        Some(
            obj.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active")
                .to_string(),
        )
    }

    fn record(
        &mut self,
        live: &broadcast::Sender<Arc<Event>>,
        rt: &ResourceType,
        ns: &str,
        kind: EventType,
        object: Value,
    ) {
        let event = Arc::new(Event {
            rv: self.rv,
            storage_key: rt.storage_key(),
            namespace: if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            kind,
            object,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = live.send(event);
    }

    fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        operation: &str,
        live: &broadcast::Sender<Arc<Event>>,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be an object"));
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", random_suffix());
        }
        validation::check_kind(&obj, rt)?;
        validation::check_name(rt, &name)?;
        let body_ns = meta_str(&obj, "namespace").to_string();
        let ns = if rt.namespaced {
            if !body_ns.is_empty() && !ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if ns.is_empty() {
                body_ns
            } else {
                ns.to_string()
            }
        } else {
            String::new()
        };
        if rt.namespaced {
            match self.namespace_phase(&ns) {
                None => {
                    let ns_rt = ResourceType {
                        plural: "namespaces".into(),
                        group: String::new(),
                        ..rt.clone()
                    };
                    return Err(ApiError::not_found(&ns_rt, &ns));
                }
                Some(phase) if phase == "Terminating" => {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            rt.qualified_plural()
                        ),
                        details: None,
                    });
                }
                Some(_) => {}
            }
        }
        if self.get(rt, &ns, &name).is_some() {
            return Err(ApiError::already_exists(rt, &name));
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        for gone in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(gone);
        }
        if rt.tracks_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if rt.status_subresource
            && rt.plural != "namespaces"
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        validation::normalize(rt, None, &mut obj)?;
        if let Some(manager) = opts.field_manager.as_deref().filter(|m| !m.is_empty()) {
            let entry = ManagedEntry {
                manager: manager.to_string(),
                operation: operation.into(),
                api_version: rt.api_version(),
                time: now(),
                fields: fields::leaf_paths(&obj),
                subresource: String::new(),
            };
            fields::write_managed(&mut obj, &[entry]);
        }
        if opts.dry_run {
            return Ok(obj);
        }
        self.commit(rt, &ns, &name, obj, EventType::Added, live)
    }

    fn commit(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        kind: EventType,
        live: &broadcast::Sender<Arc<Event>>,
    ) -> Result<Value, ApiError> {
        let size = serde_json::to_vec(&obj).map(|v| v.len()).unwrap_or(0);
        if size > MAX_OBJECT_BYTES {
            return Err(ApiError::too_large(MAX_OBJECT_BYTES));
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let ns_key = if rt.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        self.objects
            .entry(rt.storage_key())
            .or_default()
            .insert((ns_key, name.to_string()), obj.clone());
        self.record(live, rt, ns, kind, obj.clone());
        self.after_write(rt, ns, name, &obj, live);
        Ok(with_version(obj, rt))
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: Value,
        mut new: Value,
        operation: &str,
        subresource: Option<&str>,
        opts: &WriteOptions,
        live: &broadcast::Sender<Arc<Event>>,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request("the request body must be an object"));
        }
        validation::check_kind(&new, rt)?;
        if meta_str(&new, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&new, "name")
            )));
        }
        // server-owned metadata is kept from the stored object
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        validation::normalize(rt, Some(&old), &mut new)?;
        if rt.tracks_generation && spec_changed(&old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if operation != "Apply" {
            record_update_ownership(rt, &old, &mut new, opts, subresource);
        }
        let mut comparable_old = old.clone();
        comparable_old["metadata"]["resourceVersion"] = Value::Null;
        let mut comparable_new = new.clone();
        comparable_new["metadata"]["resourceVersion"] = Value::Null;
        if let Some(m) = comparable_old["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if let Some(m) = comparable_new["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if comparable_old == comparable_new {
            // a no-op write: no new version, no event
            return Ok(with_version(old, rt));
        }
        if opts.dry_run {
            return Ok(new);
        }
        let finalizers_gone = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let deleting = new
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let committed = self.commit(rt, ns, name, new, EventType::Modified, live)?;
        if deleting && finalizers_gone {
            return self.remove_now(rt, ns, name, Propagation::Background, live);
        }
        Ok(committed)
    }

    fn apply(
        &self,
        rt: &ResourceType,
        old: &Value,
        body: &Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let manager = apply_manager(opts)?;
        let name = meta_str(old, "name");
        let mut config = body.clone();
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        let body_name = meta_str(&config, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name in the URL",
            ));
        }
        if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        let applied = fields::leaf_paths(&config);
        let mut entries = fields::read_managed(old);
        let sub = subresource.unwrap_or("").to_string();
        // conflicts: fields another manager owns, set to a different value
        let mut conflicts = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.manager != manager || e.operation != "Apply")
        {
            for p in e.fields.intersection(&applied) {
                if fields::get(old, p) != fields::get(&config, p) {
                    conflicts.push((e.manager.clone(), format!(".{}", p.join("."))));
                }
            }
        }
        if !conflicts.is_empty() && !opts.force {
            return Err(ApiError::apply_conflict(rt, name, &conflicts));
        }
        let previously: BTreeSet<_> = entries
            .iter()
            .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == sub)
            .flat_map(|e| e.fields.iter().cloned())
            .collect();
        let others: BTreeSet<_> = entries
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub))
            .flat_map(|e| e.fields.iter().cloned())
            .collect();
        let mut new = old.clone();
        for p in previously.difference(&applied) {
            if !others.contains(p) {
                fields::remove(&mut new, p);
            }
        }
        patch::merge(&mut new, &strip_nulls(&config));
        for e in &mut entries {
            if e.manager != manager || e.operation != "Apply" {
                e.fields.retain(|p| !applied.contains(p));
            }
        }
        entries
            .retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub));
        entries.push(ManagedEntry {
            manager,
            operation: "Apply".into(),
            api_version: rt.api_version(),
            time: now(),
            fields: applied,
            subresource: sub,
        });
        fields::write_managed(&mut new, &entries);
        Ok(new)
    }

    fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
        live: &broadcast::Sender<Arc<Event>>,
    ) -> Result<Value, ApiError> {
        let Some(mut obj) = self.get(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        let mut finalizers: Vec<Value> = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if propagation == Propagation::Foreground && self.has_dependents(&obj) {
            let f = json!("foregroundDeletion");
            if !finalizers.contains(&f) {
                finalizers.push(f);
            }
        }
        if rt.plural == "namespaces" {
            // content goes first, then the namespace itself
            obj["status"] = json!({"phase": "Terminating"});
            obj["metadata"]["deletionTimestamp"] = json!(now());
            self.commit(rt, ns, name, obj, EventType::Modified, live)?;
            self.delete_namespace_content(name, live);
            return self.remove_now(rt, ns, name, propagation, live);
        }
        if finalizers.is_empty() {
            return self.remove_now(rt, ns, name, propagation, live);
        }
        if obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Ok(with_version(obj, rt));
        }
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
        obj["metadata"]["deletionTimestamp"] = json!(now());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let marked = self.commit(rt, ns, name, obj.clone(), EventType::Modified, live)?;
        if propagation == Propagation::Foreground {
            let uid = meta_str(&obj, "uid").to_string();
            self.collect_dependents(&uid, Propagation::Foreground, live);
            // all dependents gone: drop our finalizer, which completes the delete when it was the last
            if let Some(mut current) = self.get(rt, ns, name).cloned()
                && let Some(list) = current
                    .pointer_mut("/metadata/finalizers")
                    .and_then(Value::as_array_mut)
            {
                list.retain(|f| f != "foregroundDeletion");
                let empty = list.is_empty();
                let committed = self.commit(rt, ns, name, current, EventType::Modified, live)?;
                if empty {
                    return self.remove_now(rt, ns, name, Propagation::Background, live);
                }
                return Ok(committed);
            }
        }
        Ok(marked)
    }

    fn remove_now(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
        live: &broadcast::Sender<Arc<Event>>,
    ) -> Result<Value, ApiError> {
        let ns_key = if rt.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        let Some(mut obj) = self
            .objects
            .get_mut(&rt.storage_key())
            .and_then(|o| o.remove(&(ns_key, name.to_string())))
        else {
            return Err(ApiError::not_found(rt, name));
        };
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(live, rt, ns, EventType::Deleted, obj.clone());
        let uid = meta_str(&obj, "uid").to_string();
        self.collect_dependents(&uid, propagation, live);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.unregister_crd(&obj, live);
        }
        Ok(with_version(obj, rt))
    }

    fn has_dependents(&self, owner: &Value) -> bool {
        let uid = meta_str(owner, "uid");
        self.objects
            .values()
            .flat_map(BTreeMap::values)
            .any(|o| owned_by(o, uid))
    }

    /// Garbage collection: dependents of a deleted owner are deleted, or orphaned.
    fn collect_dependents(
        &mut self,
        uid: &str,
        propagation: Propagation,
        live: &broadcast::Sender<Arc<Event>>,
    ) {
        if uid.is_empty() {
            return;
        }
        let mut dependents = Vec::new();
        for (key, objs) in &self.objects {
            for ((ns, name), o) in objs {
                if owned_by(o, uid) {
                    dependents.push((key.clone(), ns.clone(), name.clone()));
                }
            }
        }
        for (key, ns, name) in dependents {
            let Some(rt) = self
                .registry
                .iter()
                .find(|r| r.storage_key() == key)
                .cloned()
            else {
                continue;
            };
            let Some(mut obj) = self.get(&rt, &ns, &name).cloned() else {
                continue;
            };
            let remaining: Vec<Value> = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if propagation == Propagation::Orphan || !remaining.is_empty() {
                if remaining.is_empty() {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove("ownerReferences");
                    }
                } else {
                    obj["metadata"]["ownerReferences"] = Value::Array(remaining);
                }
                let _ = self.commit(&rt, &ns, &name, obj, EventType::Modified, live);
            } else {
                let _ = self.delete(&rt, &ns, &name, propagation, live);
            }
        }
    }

    fn delete_namespace_content(&mut self, ns: &str, live: &broadcast::Sender<Arc<Event>>) {
        let mut doomed = Vec::new();
        for (key, objs) in &self.objects {
            for (obj_ns, name) in objs.keys() {
                if obj_ns == ns {
                    doomed.push((key.clone(), name.clone()));
                }
            }
        }
        for (key, name) in doomed {
            if let Some(rt) = self
                .registry
                .iter()
                .find(|r| r.storage_key() == key)
                .cloned()
            {
                // finalizers are not waited for: the namespace controller's job is done at once
                let _ = self.remove_now(&rt, ns, &name, Propagation::Background, live);
            }
        }
    }

    fn after_write(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: &Value,
        live: &broadcast::Sender<Arc<Event>>,
    ) {
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.register_crd(name, obj, live);
        }
        if let Some(status) = workloads::simulated_status(rt, obj) {
            let mut updated = obj.clone();
            updated["status"] = status;
            if updated != *obj {
                let _ = self.commit(rt, ns, name, updated, EventType::Modified, live);
            }
        }
    }

    fn register_crd(&mut self, name: &str, crd: &Value, live: &broadcast::Sender<Arc<Event>>) {
        let Some(types) = resources::from_crd(crd) else {
            return;
        };
        let Some(first) = types.first() else { return };
        let key = first.storage_key();
        self.registry.retain(|r| r.storage_key() != key);
        self.registry.extend(types.iter().cloned());
        // report the CRD as established, as the real apiextensions controller does
        let established = crd
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Established"));
        if !established {
            let mut updated = crd.clone();
            let plural_names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
            updated["status"] = json!({
                "acceptedNames": plural_names,
                "storedVersions": types.iter().map(|t| t.version.clone()).collect::<Vec<_>>(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()}
                ]
            });
            if let Some(crd_rt) = self
                .registry
                .iter()
                .find(|r| r.plural == "customresourcedefinitions")
                .cloned()
            {
                let _ = self.commit(&crd_rt, "", name, updated, EventType::Modified, live);
            }
        }
    }

    fn unregister_crd(&mut self, crd: &Value, live: &broadcast::Sender<Arc<Event>>) {
        let Some(types) = resources::from_crd(crd) else {
            return;
        };
        let Some(first) = types.first().cloned() else {
            return;
        };
        let keys: Vec<ObjectKey> = self
            .objects
            .get(&first.storage_key())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            let _ = self.remove_now(&first, &ns, &name, Propagation::Background, live);
        }
        self.registry
            .retain(|r| r.storage_key() != first.storage_key());
    }
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

/// Update operations take ownership of the fields they change.
fn record_update_ownership(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    opts: &WriteOptions,
    subresource: Option<&str>,
) {
    let mut entries = fields::read_managed(old);
    let manager = opts
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let changed = fields::changed_paths(old, new);
    if changed.is_empty() {
        fields::write_managed(new, &entries);
        return;
    }
    for e in &mut entries {
        e.fields.retain(|p| !changed.contains(p));
    }
    let sub = subresource.unwrap_or("").to_string();
    let set_now: BTreeSet<_> = changed
        .into_iter()
        .filter(|p| fields::get(new, p).is_some())
        .collect();
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
    {
        Some(e) => {
            e.fields.extend(set_now);
            e.time = now();
        }
        None => entries.push(ManagedEntry {
            manager,
            operation: "Update".into(),
            api_version: rt.api_version(),
            time: now(),
            fields: set_now,
            subresource: sub,
        }),
    }
    fields::write_managed(new, &entries);
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

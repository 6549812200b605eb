//! Deletion: finalizers, propagation, garbage collection of dependents, namespaces.

use super::*;

impl State {
    pub(super) fn delete(
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
            // content goes first, then the namespace itself, once its metadata.finalizers
            // are gone (it stays Terminating until an update removes the last one)
            let terminating = obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null());
            if !terminating {
                obj["status"] = json!({"phase": "Terminating"});
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            let committed = self.commit(rt, ns, name, obj, EventType::Modified, live)?;
            self.delete_namespace_content(name, live);
            if finalizers.is_empty() {
                return self.remove_now(rt, ns, name, propagation, live);
            }
            return Ok(committed);
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

    pub(super) fn remove_now(
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
        let before = obj.clone();
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(live, rt, ns, EventType::Deleted, obj.clone(), Some(before));
        let uid = meta_str(&obj, "uid").to_string();
        self.collect_dependents(&uid, propagation, live);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.unregister_crd(&obj, live);
        }
        if rt.group == "rbac.authorization.k8s.io" && rt.plural == "clusterroles" {
            self.aggregate_cluster_roles(live);
        }
        Ok(with_version(obj, rt))
    }

    pub(super) fn has_dependents(&self, owner: &Value) -> bool {
        let uid = meta_str(owner, "uid");
        self.objects
            .values()
            .flat_map(BTreeMap::values)
            .any(|o| owned_by(o, uid))
    }

    /// Garbage collection: dependents of a deleted owner are deleted, or orphaned.
    pub(super) fn collect_dependents(
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

    pub(super) fn delete_namespace_content(
        &mut self,
        ns: &str,
        live: &broadcast::Sender<Arc<Event>>,
    ) {
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
}

pub(super) fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

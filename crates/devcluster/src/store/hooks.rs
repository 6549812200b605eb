//! What the built-in controllers do after a write: CRDs start serving, workloads roll out.

use super::*;

impl State {
    pub(super) fn after_write(
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
        if rt.group == "rbac.authorization.k8s.io" && rt.plural == "clusterroles" {
            self.aggregate_cluster_roles(live);
        }
        if let Some(status) = workloads::simulated_status(rt, obj) {
            let mut updated = obj.clone();
            updated["status"] = status;
            if updated != *obj {
                let _ = self.commit(rt, ns, name, updated, EventType::Modified, live);
            }
        }
    }

    pub(super) fn register_crd(
        &mut self,
        name: &str,
        crd: &Value,
        live: &broadcast::Sender<Arc<Event>>,
    ) {
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

    pub(super) fn unregister_crd(&mut self, crd: &Value, live: &broadcast::Sender<Arc<Event>>) {
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

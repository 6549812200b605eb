//! The write pipeline: validation, identity, generation, resourceVersion, and events.

use super::*;

impl State {
    pub(super) fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        let ns = if rt.namespaced { ns } else { "" };
        self.objects
            .get(&rt.storage_key())?
            .get(&(ns.to_string(), name.to_string()))
    }

    pub(super) fn namespace_phase(&self, ns: &str) -> Option<String> {
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

    pub(super) fn record(
        &mut self,
        live: &broadcast::Sender<Arc<Event>>,
        rt: &ResourceType,
        ns: &str,
        kind: EventType,
        object: Value,
        previous: Option<Value>,
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
            previous,
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

    pub(super) fn create(
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
        crate::schema::admit(rt, None, &mut obj, opts.field_validation, &opts.warnings)?;
        if let Some(manager) = opts.field_manager.as_deref().filter(|m| !m.is_empty()) {
            let entry = ManagedEntry {
                manager: manager.to_string(),
                operation: operation.into(),
                api_version: rt.api_version(),
                time: now(),
                fields: fields::leaf_paths_in(&obj, rt.schema.as_deref()),
                subresource: String::new(),
            };
            fields::write_managed(&mut obj, &[entry]);
        }
        if opts.dry_run {
            return Ok(obj);
        }
        self.commit(rt, &ns, &name, obj, EventType::Added, live)
    }

    pub(super) fn commit(
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
        let previous = self
            .objects
            .entry(rt.storage_key())
            .or_default()
            .insert((ns_key, name.to_string()), obj.clone());
        self.record(live, rt, ns, kind, obj.clone(), previous);
        self.after_write(rt, ns, name, &obj, live);
        Ok(with_version(obj, rt))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn update(
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
        let body_ns = meta_str(&new, "namespace");
        if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let body_uid = meta_str(&new, "uid");
        if !body_uid.is_empty() && body_uid != meta_str(&old, "uid") {
            return Err(crate::schema::invalid(
                rt,
                name,
                &[crate::schema::Cause::invalid(
                    &crate::schema::Path::default()
                        .child(crate::schema::Step::Field("metadata".into()))
                        .child(crate::schema::Step::Field("uid".into())),
                    &json!(body_uid),
                    "field is immutable",
                )],
            ));
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
        crate::schema::admit(
            rt,
            Some(&old),
            &mut new,
            opts.field_validation,
            &opts.warnings,
        )?;
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
        // a write that changes only who owns what (an apply sharing fields, rewritten
        // managedFields) is a real write on the real server too
        if comparable_old == comparable_new && fields::same_ownership(&old, &new) {
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
}

/// Status subresource isolation: main writes keep the old status, status writes keep the rest.
pub(super) fn merge_subresource(
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
pub(super) fn spec_changed(old: &Value, new: &Value) -> bool {
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

pub(super) fn set_identity(obj: &mut Value, rt: &ResourceType, ns: &str, name: &str) {
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

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

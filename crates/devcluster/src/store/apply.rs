//! Server-side apply and the field ownership of update operations.

use super::*;

impl State {
    pub(super) fn apply(
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
        let schema = rt.schema.as_deref();
        let applied = fields::leaf_paths_in(&config, schema);
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
            if others.contains(p) {
                continue;
            }
            // a list item nobody else keeps goes whole (its key fields with it)
            let kept = |prefix: &[String]| {
                applied
                    .iter()
                    .chain(others.iter())
                    .any(|q| q.starts_with(prefix))
            };
            let target = (0..p.len())
                .filter(|&i| fields::is_item(&p[i]))
                .map(|i| &p[..=i])
                .find(|prefix| !kept(prefix))
                .unwrap_or(p);
            fields::remove(&mut new, target);
        }
        if schema.is_some() {
            fields::merge_applied(&mut new, &config, schema);
        } else {
            patch::merge(&mut new, &strip_nulls(&config));
        }
        // as the real server: another manager keeps a field the applier sets to the value it
        // already has (the two share it), and loses one whose value changes (a forced
        // conflict) or that goes
        let changed = fields::changed_paths_in(old, &new, schema);
        for e in &mut entries {
            if !(e.manager == manager && e.operation == "Apply" && e.subresource == sub) {
                e.fields.retain(|p| !changed.contains(p));
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
}

pub(super) fn apply_manager(opts: &WriteOptions) -> Result<String, ApiError> {
    opts.field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            )
        })
}

/// Update operations take ownership of the fields they change. As on the real server, a
/// write of the main resource whose body carries a non-empty `metadata.managedFields` replaces
/// the recorded ownership with it (`[{}]` clears it); otherwise the stored one is kept.
pub(super) fn record_update_ownership(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    opts: &WriteOptions,
    subresource: Option<&str>,
) {
    let supplied = subresource.is_none()
        && new
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .is_some_and(|entries| !entries.is_empty());
    let mut entries = fields::read_managed(if supplied { new } else { old });
    entries.retain(|e| !e.fields.is_empty());
    let manager = opts
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let changed = fields::changed_paths_in(old, new, rt.schema.as_deref());
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

pub(super) fn strip_nulls(v: &Value) -> Value {
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

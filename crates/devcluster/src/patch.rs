//! Patch types: JSON merge (RFC 7386), JSON patch (RFC 6902), and strategic merge for the
//! built-in kinds, whose lists merge by their Kubernetes merge keys.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// The patch types the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Reads the patch type from a `Content-Type` header.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Applies a JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Most operations in one JSON patch (the real server's limit).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// Most bytes `copy` operations of one JSON patch may add (the request body limit).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;
/// Deepest nesting an object may reach: the JSON decoder's recursion limit, so every stored
/// object can be read back.
pub const MAX_DEPTH: usize = 128;

/// How deeply `v` nests (a scalar is 0), computed without recursion.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) => {
                deepest = deepest.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn unprocessable(message: String) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message,
        details: None,
    }
}

/// Checks that a patched object stays within [`MAX_DEPTH`].
pub fn check_depth(v: &Value) -> Result<(), ApiError> {
    if depth(v) > MAX_DEPTH {
        return Err(unprocessable(format!(
            "the server rejected our request due to an error in our request: the patched object nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// Applies an RFC 6902 JSON patch, within the real server's limits: at most
/// [`MAX_JSON_PATCH_OPERATIONS`] operations (413), `copy`s adding at most [`MAX_COPY_BYTES`]
/// (422), and (ours) no object deeper than [`MAX_DEPTH`].
pub fn json(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let raw_ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("invalid JSON patch: the patch must be a list of operations")
    })?;
    if raw_ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                raw_ops.len()
            ),
            details: None,
        });
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut copied = 0usize;
    for (raw, op) in raw_ops.iter().zip(ops.0) {
        let kind = raw.get("op").and_then(Value::as_str).unwrap_or("");
        let inserted = match kind {
            "add" | "replace" => raw.get("value"),
            "copy" | "move" => raw
                .get("from")
                .and_then(Value::as_str)
                .and_then(|from| target.pointer(from)),
            _ => None,
        };
        if let Some(v) = inserted {
            if kind == "copy" {
                copied += serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
                if copied > MAX_COPY_BYTES {
                    return Err(unprocessable(format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"
                    )));
                }
            }
            let at = raw
                .get("path")
                .and_then(Value::as_str)
                .map_or(0, |p| p.matches('/').count());
            if at + depth(v) > MAX_DEPTH {
                return Err(unprocessable(format!(
                    "the server rejected our request due to an error in our request: the patched object would nest deeper than {MAX_DEPTH} levels"
                )));
            }
        }
        json_patch::patch(target, &[op]).map_err(|e| {
            unprocessable(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })?;
    }
    Ok(())
}

/// The merge key of a list field in the built-in kinds, if it merges by key.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases" => Some(match field {
            "hostAliases" => "ip",
            _ => "name",
        }),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Applies a strategic merge patch: like a merge patch, but lists with a merge key merge
/// item by item, `$patch: delete` removes an item, and `$setElementOrder`/`$retainKeys`
/// directives are honoured or dropped.
pub fn strategic(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = strip_directives(patch.clone());
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        *target = strip_directives(Value::Object(replaced));
        return;
    }
    for (key, pv) in p {
        if key.starts_with("$setElementOrder/")
            || key.starts_with("$deleteFromPrimitiveList/")
            || key == "$retainKeys"
            || key == "$patch"
        {
            if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/")
                && let (Some(Value::Array(items)), Value::Array(remove)) = (t.get_mut(field), pv)
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if pv.is_null() {
            t.remove(key);
            continue;
        }
        match (t.get_mut(key), pv, merge_key(key)) {
            (Some(Value::Array(items)), Value::Array(patch_items), Some(mk)) => {
                merge_list(items, patch_items, mk);
            }
            (Some(tv @ Value::Object(_)), Value::Object(_), _) => strategic(tv, pv),
            _ => {
                t.insert(key.clone(), strip_directives(pv.clone()));
            }
        }
    }
}

fn merge_list(items: &mut Vec<Value>, patch_items: &[Value], key: &str) {
    for pi in patch_items {
        let Some(id) = pi.get(key).cloned() else {
            continue;
        };
        let pos = items.iter().position(|i| i.get(key) == Some(&id));
        let delete = pi.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                items.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut items[i], pi),
            (None, false) => items.push(strip_directives(pi.clone())),
        }
    }
}

fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_and_env_by_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "s:1"}
        ]}}}});
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [
            {"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}]}
        ]}}}});
        strategic(&mut d, &p);
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "a:1");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(c[1]["name"], "side");
    }

    #[test]
    fn strategic_null_deletes_and_plain_lists_replace() {
        let mut d = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}});
        strategic(
            &mut d,
            &json!({"metadata": {"annotations": {"a": null}}, "spec": {"args": ["z"]}}),
        );
        assert_eq!(
            d,
            json!({"metadata": {"annotations": {"b": "2"}}, "spec": {"args": ["z"]}})
        );
    }
}

//! Field ownership for server-side apply, recorded in `metadata.managedFields` as `FieldsV1`.
//!
//! Ownership is tracked per leaf path: object keys nest, and lists are atomic (owned whole).
//! That is coarser than the real server for lists with merge keys, but exact for maps such as
//! Secret `data`, labels and annotations, which is what the controllers apply.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A path of object keys from the root to an owned leaf.
pub type FieldPath = Vec<String>;

/// Fields no manager owns: identity and server-set metadata.
fn is_unowned(path: &[String]) -> bool {
    match path {
        [first] => first == "apiVersion" || first == "kind",
        [first, second, ..] if first == "metadata" => matches!(
            second.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Every owned leaf path of `value`.
pub fn leaf_paths(value: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn walk(value: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                walk(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() && !is_unowned(prefix) {
                out.insert(prefix.clone());
            }
        }
    }
}

/// Renders paths as `FieldsV1` (`{"f:data": {"f:key": {}}}`).
pub fn to_fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for part in path {
            let entry = node
                .entry(format!("f:{part}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else { break };
            node = next;
        }
    }
    Value::Object(root)
}

/// Reads `FieldsV1` back into leaf paths.
pub fn from_fields_v1(fields: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    read(fields, &mut Vec::new(), &mut out);
    out
}

fn read(node: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<FieldPath>) {
    let Value::Object(map) = node else { return };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, v) in children {
        prefix.push(k[2..].to_string());
        read(v, prefix, out);
        prefix.pop();
    }
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes the value at `path`, pruning objects left empty by the removal.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(map)) = get_mut(value, parents) {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() {
            remove(value, parents);
        }
    }
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| v.get_mut(k))
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version of the write.
    pub api_version: String,
    /// Time of the write.
    pub time: String,
    /// Owned paths.
    pub fields: BTreeSet<FieldPath>,
    /// Subresource (`status`) or empty.
    pub subresource: String,
}

/// Reads `metadata.managedFields`.
pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| ManagedEntry {
                    manager: e["manager"].as_str().unwrap_or("").to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                    time: e["time"].as_str().unwrap_or("").to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                    subresource: e["subresource"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields`, dropping entries that own nothing.
pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Leaf paths whose value differs between `old` and `new` (added, changed or removed).
pub fn changed_paths(old: &Value, new: &Value) -> BTreeSet<FieldPath> {
    let old_paths = leaf_paths(old);
    let new_paths = leaf_paths(new);
    old_paths
        .union(&new_paths)
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "b"}}, "data": {"k": "v", "l": "w"}});
        let paths = leaf_paths(&obj);
        assert_eq!(paths.len(), 3);
        let f = to_fields_v1(&paths);
        assert_eq!(f["f:data"]["f:k"], json!({}));
        assert_eq!(from_fields_v1(&f), paths);
    }

    #[test]
    fn remove_prunes_empty_parents() {
        let mut obj = json!({"data": {"k": "v"}, "x": 1});
        remove(&mut obj, &["data".to_string(), "k".to_string()]);
        assert_eq!(obj, json!({"x": 1}));
    }
}

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
    leaf_paths_in(value, None)
}

/// Every owned leaf path of `value`, with lists typed by `schema` (a CRD's structural
/// schema): items of `x-kubernetes-list-type: map` lists are owned one by one under
/// `k:{"key":"value"}`, values of `set` lists under `v:<value>`; other lists are atomic.
pub fn leaf_paths_in(value: &Value, schema: Option<&Value>) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(value, schema, &mut Vec::new(), &mut out);
    out
}

/// The schema of the child `key` of an object schema.
fn child_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

/// The list type of an array schema and its map keys.
fn list_type(schema: Option<&Value>) -> (&str, Vec<String>) {
    let Some(s) = schema else {
        return ("atomic", Vec::new());
    };
    let kind = s
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)
        .unwrap_or("atomic");
    let keys = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (kind, keys)
}

/// The `k:{...}` segment of a list-map item.
fn item_key(item: &Value, keys: &[String]) -> String {
    let m: Map<String, Value> = keys
        .iter()
        .map(|k| (k.clone(), item.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    format!("k:{}", Value::Object(m))
}

fn walk(
    value: &Value,
    schema: Option<&Value>,
    prefix: &mut Vec<String>,
    out: &mut BTreeSet<FieldPath>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                walk(v, child_schema(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() && list_type(schema).0 != "atomic" => {
            let (kind, keys) = list_type(schema);
            let item_schema = schema.and_then(|s| s.get("items"));
            for item in items {
                if kind == "map" {
                    prefix.push(item_key(item, &keys));
                    walk(item, item_schema, prefix, out);
                } else {
                    prefix.push(format!("v:{item}"));
                    out.insert(prefix.clone());
                }
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

/// Whether a path segment names a list item (`k:{...}`) or set value (`v:...`).
pub fn is_item(part: &str) -> bool {
    part.starts_with("k:{") || part.starts_with("v:")
}

/// The position of the item a `k:`/`v:` segment names in `items`.
fn find_item(items: &[Value], part: &str) -> Option<usize> {
    if let Some(key) = part.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        items.iter().position(|item| {
            key.iter()
                .all(|(k, v)| item.get(k).unwrap_or(&Value::Null) == v)
        })
    } else {
        let want: Value = serde_json::from_str(part.strip_prefix("v:")?).ok()?;
        items.iter().position(|item| *item == want)
    }
}

/// Merges an applied configuration into `target` as server-side apply does: objects merge
/// key by key (`null` removes), `map` lists merge item by item on their keys, `set` lists
/// gain the applied values, other lists are replaced.
pub fn merge_applied(target: &mut Value, config: &Value, schema: Option<&Value>) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let sub = child_schema(schema, k);
                match t.get_mut(k) {
                    Some(existing) => merge_applied(existing, v, sub),
                    None => {
                        let mut fresh = Value::Null;
                        merge_applied(&mut fresh, v, sub);
                        t.insert(k.clone(), fresh);
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(c)) if list_type(schema).0 != "atomic" => {
            let (kind, keys) = list_type(schema);
            let item_schema = schema.and_then(|s| s.get("items"));
            for item in c {
                let at = if kind == "map" {
                    find_item(t, &item_key(item, &keys))
                } else {
                    t.iter().position(|x| x == item)
                };
                match at {
                    Some(i) if kind == "map" => merge_applied(&mut t[i], item, item_schema),
                    Some(_) => {}
                    None => t.push(item.clone()),
                }
            }
        }
        (target, config) => *target = strip_nulls_deep(config),
    }
}

fn strip_nulls_deep(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls_deep(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Renders paths as `FieldsV1` (`{"f:data": {"f:key": {}}}`).
pub fn to_fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for part in path {
            let name = if is_item(part) {
                part.clone()
            } else {
                format!("f:{part}")
            };
            let entry = node
                .entry(name)
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
    let children: Vec<_> = map
        .iter()
        .filter(|(k, _)| k.starts_with("f:") || is_item(k))
        .collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, v) in children {
        prefix.push(if is_item(k) {
            k.clone()
        } else {
            k[2..].to_string()
        });
        read(v, prefix, out);
        prefix.pop();
    }
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| {
        if is_item(k) {
            let items = v.as_array()?;
            items.get(find_item(items, k)?)
        } else {
            v.get(k)
        }
    })
}

/// Removes the value at `path`, pruning objects (and list items) left empty by the removal.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let emptied = match get_mut(value, parents) {
        Some(Value::Object(map)) => {
            map.remove(last);
            map.is_empty()
        }
        Some(Value::Array(items)) if is_item(last) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
            items.is_empty()
        }
        _ => false,
    };
    if emptied && !parents.is_empty() {
        remove(value, parents);
    }
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| {
        if is_item(k) {
            let i = find_item(v.as_array()?, k)?;
            v.get_mut(i)
        } else {
            v.get_mut(k)
        }
    })
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
            // as the real server: what an entry written by a client lacks stays absent
            for (key, value) in [("apiVersion", &e.api_version), ("time", &e.time)] {
                if value.is_empty()
                    && let Some(m) = v.as_object_mut()
                {
                    m.remove(key);
                }
            }
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

/// Whether `a` and `b` record the same ownership: the same entries (manager, operation,
/// apiVersion, subresource, fields) whatever their times and order.
pub fn same_ownership(a: &Value, b: &Value) -> bool {
    let untimed = |v: &Value| {
        let mut entries = read_managed(v);
        entries.retain(|e| !e.fields.is_empty());
        for e in &mut entries {
            e.time.clear();
        }
        entries.sort_by(|x, y| {
            (&x.manager, &x.operation, &x.subresource, &x.api_version).cmp(&(
                &y.manager,
                &y.operation,
                &y.subresource,
                &y.api_version,
            ))
        });
        entries
    };
    untimed(a) == untimed(b)
}

/// Leaf paths whose value differs between `old` and `new` (added, changed or removed).
pub fn changed_paths(old: &Value, new: &Value) -> BTreeSet<FieldPath> {
    changed_paths_in(old, new, None)
}

/// [`changed_paths`] with lists typed by `schema`.
pub fn changed_paths_in(old: &Value, new: &Value, schema: Option<&Value>) -> BTreeSet<FieldPath> {
    let old_paths = leaf_paths_in(old, schema);
    let new_paths = leaf_paths_in(new, schema);
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

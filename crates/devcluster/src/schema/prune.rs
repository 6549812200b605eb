//! Pruning of fields the schema does not declare, and schema defaults.

use serde_json::{Map, Value};

use super::{Path, Step};

/// The fields of `ObjectMeta` a client may write (others are pruned from `metadata`).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Whether `apiVersion`, `kind` and `metadata` are implicit here (the root, or an embedded
/// resource).
fn is_resource(schema: &Value, root: bool) -> bool {
    root || flag(schema, "x-kubernetes-embedded-resource")
}

/// Removes the fields `schema` does not declare from `v`, recording their paths in `unknown`.
pub fn prune(schema: &Value, v: &mut Value, path: &Path, root: bool, unknown: &mut Vec<Path>) {
    match v {
        Value::Object(map) => {
            let resource = is_resource(schema, root);
            if resource && let Some(Value::Object(meta)) = map.get_mut("metadata") {
                let meta_path = path.child(Step::Field("metadata".into()));
                meta.retain(|k, _| {
                    let known = OBJECT_META.contains(&k.as_str());
                    if !known {
                        unknown.push(meta_path.child(Step::Field(k.clone())));
                    }
                    known
                });
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(sub) = props.and_then(|p| p.get(&k)) {
                    if let Some(child) = map.get_mut(&k) {
                        prune(
                            sub,
                            child,
                            &path.child(Step::Field(k.clone())),
                            false,
                            unknown,
                        );
                    }
                } else if let Some(sub) = additional.filter(|a| a.is_object()) {
                    if let Some(child) = map.get_mut(&k) {
                        prune(
                            sub,
                            child,
                            &path.child(Step::Key(k.clone())),
                            false,
                            unknown,
                        );
                    }
                } else if preserve || additional == Some(&Value::Bool(true)) {
                    // kept as it is
                } else {
                    map.remove(&k);
                    unknown.push(path.child(Step::Field(k)));
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(sub, item, &path.child(Step::Index(i)), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s where a field is absent, after dropping `null`s of fields that are not
/// `nullable` (as the real server does before defaulting).
pub fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if map.get(k).is_some_and(Value::is_null) && !flag(sub, "nullable") {
                        map.remove(k);
                    }
                    if !map.contains_key(k)
                        && let Some(d) = sub.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        default(sub, child);
                    }
                }
            }
            if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                default_map_values(sub, map);
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items.iter_mut() {
                    default(sub, item);
                }
            }
        }
        _ => {}
    }
}

fn default_map_values(sub: &Value, map: &mut Map<String, Value>) {
    for child in map.values_mut() {
        default(sub, child);
    }
}

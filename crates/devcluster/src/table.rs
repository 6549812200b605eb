//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for (`Accept:
//! application/json;as=Table;g=meta.k8s.io;v=v1`), with a CRD's `additionalPrinterColumns`
//! (Age by default) and the usual columns of the built-in kinds.

use serde_json::{Value, json};

use crate::partial;
use crate::resources::ResourceType;

/// Whether the Accept header asks for a Table: the first media range the server serves wins.
pub fn wanted(accept: &str) -> bool {
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        match params.iter().find_map(|p| p.strip_prefix("as=")) {
            Some("Table") if has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) => {
                return true;
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") => return false,
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

/// One column: header, type, format, priority (0 shown by default, 1 with `-o wide`), and
/// how its cell is computed.
struct Column {
    name: String,
    kind: &'static str,
    priority: u8,
    cell: Cell,
}

enum Cell {
    /// A JSONPath into the object (CRD columns), rendered by `type`.
    Path(String),
    /// A built-in printer.
    Builtin(fn(&Value) -> Value),
}

fn age(obj: &Value) -> Value {
    json!(human_age(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

/// `HumanDuration` of the time since `timestamp`, as kubectl prints ages.
pub fn human_age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    human_duration(chrono::Utc::now().timestamp() - t.timestamp())
}

/// Go's `duration.HumanDuration` for a number of seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn ptr<'a>(obj: &'a Value, p: &str) -> Option<&'a Value> {
    obj.pointer(p).filter(|v| !v.is_null())
}

fn int(obj: &Value, p: &str) -> i64 {
    ptr(obj, p).and_then(Value::as_i64).unwrap_or(0)
}

fn text(obj: &Value, p: &str, default: &str) -> Value {
    json!(ptr(obj, p).and_then(Value::as_str).unwrap_or(default))
}

fn count(obj: &Value, p: &str) -> Value {
    json!(ptr(obj, p).map_or(0, |v| match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }))
}

fn created_at(obj: &Value) -> Value {
    text(obj, "/metadata/creationTimestamp", "")
}

fn builtin_columns(rt: &ResourceType) -> Vec<Column> {
    let c = |name: &str, kind, priority, f: fn(&Value) -> Value| Column {
        name: name.to_string(),
        kind,
        priority,
        cell: Cell::Builtin(f),
    };
    let age_col = || c("Age", "string", 0, age);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![
            c("Status", "string", 0, |o| text(o, "/status/phase", "")),
            age_col(),
        ],
        ("", "secrets") => vec![
            c("Type", "string", 0, |o| text(o, "/type", "")),
            c("Data", "string", 0, |o| {
                let n = count(o, "/data").as_u64().unwrap_or(0);
                json!(n)
            }),
            age_col(),
        ],
        ("", "configmaps") => vec![
            c("Data", "string", 0, |o| {
                json!(
                    count(o, "/data").as_u64().unwrap_or(0)
                        + count(o, "/binaryData").as_u64().unwrap_or(0)
                )
            }),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![
            c("Secrets", "string", 0, |o| count(o, "/secrets")),
            age_col(),
        ],
        ("", "services") => vec![
            c("Type", "string", 0, |o| text(o, "/spec/type", "ClusterIP")),
            c("Cluster-IP", "string", 0, |o| {
                text(o, "/spec/clusterIP", "<none>")
            }),
            c("External-IP", "string", 0, |o| {
                json!(
                    ptr(o, "/spec/externalIPs")
                        .and_then(Value::as_array)
                        .filter(|a| !a.is_empty())
                        .map(|a| a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_else(|| "<none>".into())
                )
            }),
            c("Port(s)", "string", 0, |o| {
                let ports: Vec<String> = ptr(o, "/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                format!(
                                    "{}/{}",
                                    p.get("port").and_then(Value::as_i64).unwrap_or(0),
                                    p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                })
            }),
            age_col(),
        ],
        ("", "pods") => vec![
            c("Ready", "string", 0, |o| {
                let total = count(o, "/spec/containers").as_u64().unwrap_or(0);
                let ready = ptr(o, "/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map_or(0, |a| a.iter().filter(|s| s["ready"] == true).count());
                json!(format!("{ready}/{total}"))
            }),
            c("Status", "string", 0, |o| {
                text(o, "/status/phase", "Pending")
            }),
            c("Restarts", "string", 0, |o| {
                json!(
                    ptr(o, "/status/containerStatuses")
                        .and_then(Value::as_array)
                        .map_or(0, |a| a
                            .iter()
                            .filter_map(|s| s["restartCount"].as_i64())
                            .sum::<i64>())
                )
            }),
            age_col(),
        ],
        ("", "endpoints") => vec![
            c("Endpoints", "string", 0, |o| {
                let mut out = Vec::new();
                for s in ptr(o, "/subsets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for a in s["addresses"].as_array().into_iter().flatten() {
                        for p in s["ports"].as_array().into_iter().flatten() {
                            out.push(format!(
                                "{}:{}",
                                a["ip"].as_str().unwrap_or(""),
                                p["port"].as_i64().unwrap_or(0)
                            ));
                        }
                    }
                }
                json!(if out.is_empty() {
                    "<none>".to_string()
                } else {
                    out.join(",")
                })
            }),
            age_col(),
        ],
        ("apps", "deployments") => vec![
            c("Ready", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    ptr(o, "/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            c("Up-to-date", "integer", 0, |o| {
                json!(int(o, "/status/updatedReplicas"))
            }),
            c("Available", "integer", 0, |o| {
                json!(int(o, "/status/availableReplicas"))
            }),
            age_col(),
        ],
        ("apps", "statefulsets") => vec![
            c("Ready", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    ptr(o, "/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            age_col(),
        ],
        ("apps", "daemonsets") => vec![
            c("Desired", "integer", 0, |o| {
                json!(int(o, "/status/desiredNumberScheduled"))
            }),
            c("Current", "integer", 0, |o| {
                json!(int(o, "/status/currentNumberScheduled"))
            }),
            c("Ready", "integer", 0, |o| {
                json!(int(o, "/status/numberReady"))
            }),
            c("Up-to-date", "integer", 0, |o| {
                json!(int(o, "/status/updatedNumberScheduled"))
            }),
            c("Available", "integer", 0, |o| {
                json!(int(o, "/status/numberAvailable"))
            }),
            age_col(),
        ],
        ("apps", "replicasets") => vec![
            c("Desired", "integer", 0, |o| {
                json!(
                    ptr(o, "/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )
            }),
            c("Current", "integer", 0, |o| {
                json!(int(o, "/status/replicas"))
            }),
            c("Ready", "integer", 0, |o| {
                json!(int(o, "/status/readyReplicas"))
            }),
            age_col(),
        ],
        ("batch", "jobs") => vec![
            c("Completions", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    int(o, "/status/succeeded"),
                    ptr(o, "/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            age_col(),
        ],
        ("batch", "cronjobs") => vec![
            c("Schedule", "string", 0, |o| text(o, "/spec/schedule", "")),
            c("Suspend", "boolean", 0, |o| {
                json!(
                    ptr(o, "/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                )
            }),
            c("Active", "integer", 0, |o| count(o, "/status/active")),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![
            c("Holder", "string", 0, |o| {
                text(o, "/spec/holderIdentity", "")
            }),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            c("Role", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o.pointer("/roleRef/kind")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    o.pointer("/roleRef/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ))
            }),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", _) | ("apiextensions.k8s.io", _) => {
            vec![c("Created At", "date", 0, created_at)]
        }
        _ => vec![c("Created At", "date", 0, created_at)],
    }
}

fn crd_columns(columns: &Value) -> Vec<Column> {
    let defined: Vec<&Value> = columns
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if defined.is_empty() {
        return vec![Column {
            name: "Age".into(),
            kind: "date",
            priority: 0,
            cell: Cell::Path(".metadata.creationTimestamp".into()),
        }];
    }
    defined
        .into_iter()
        .map(|c| Column {
            name: c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kind: match c.get("type").and_then(Value::as_str).unwrap_or("string") {
                "integer" => "integer",
                "number" => "number",
                "boolean" => "boolean",
                "date" => "date",
                _ => "string",
            },
            priority: c
                .get("priority")
                .and_then(Value::as_u64)
                .map_or(0, |p| u8::try_from(p).unwrap_or(u8::MAX)),
            cell: Cell::Path(
                c.get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
        })
        .collect()
}

/// Evaluates a simple JSONPath (`.a.b`, `[0]`, `['k']`, `[?(@.type=="Ready")]`): the first
/// match.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut cur = obj;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if !key.is_empty() {
                cur = cur.get(key)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur.as_array()?.iter().find(|item| {
                    item.get(key.trim()).is_some_and(|v| match v {
                        Value::String(s) => s == want,
                        other => {
                            *other == serde_json::from_str::<Value>(want).unwrap_or(Value::Null)
                        }
                    })
                })?;
            } else if inner == "*" {
                cur = cur.as_array()?.first()?;
            } else if let Ok(i) = inner.parse::<usize>() {
                cur = cur.get(i)?;
            } else {
                cur = cur.get(inner.trim_matches(|c| c == '"' || c == '\''))?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

fn path_cell(kind: &str, v: Option<&Value>) -> Value {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match kind {
        "integer" => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => json!(human_age(Some(s))),
            Some(_) => json!("<invalid>"),
            None => Value::Null,
        },
        _ => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
    }
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    let mut out = vec![Column {
        name: "Name".into(),
        kind: "string",
        priority: 0,
        cell: Cell::Builtin(|o| text(o, "/metadata/name", "")),
    }];
    match &rt.printer_columns {
        Some(defined) => out.extend(crd_columns(defined)),
        None => out.extend(builtin_columns(rt)),
    }
    out
}

fn definitions(cols: &[Column]) -> Value {
    cols.iter()
        .map(|c| {
            let mut d = json!({"name": c.name, "type": if c.kind == "date" && matches!(c.cell, Cell::Path(_)) { "date" } else { c.kind }, "format": "", "description": "", "priority": c.priority});
            if c.name == "Name" {
                d["format"] = json!("name");
            }
            d
        })
        .collect()
}

fn row(cols: &[Column], obj: &Value) -> Value {
    let cells: Vec<Value> = cols
        .iter()
        .map(|c| match &c.cell {
            Cell::Builtin(f) => f(obj),
            Cell::Path(p) => path_cell(c.kind, json_path(obj, p)),
        })
        .collect();
    json!({"cells": cells, "object": partial::object(obj)})
}

/// A Table of `items` (a list answer), with the list's metadata.
pub fn list(rt: &ResourceType, items: &[Value], list_meta: &Value) -> Value {
    let cols = columns(rt);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions(&cols),
        "rows": items.iter().map(|o| row(&cols, o)).collect::<Vec<_>>(),
    })
}

/// A Table of one object (a get, or one watch event).
pub fn object(rt: &ResourceType, obj: &Value) -> Value {
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    list(
        rt,
        std::slice::from_ref(obj),
        &json!({"resourceVersion": rv}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_as_kubectl_prints_them() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn json_paths_with_filters() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"items": [{"n": 1}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&o, ".spec.items[0].n"), Some(&json!(1)));
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn accept_headers() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
        assert!(!wanted(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
    }
}

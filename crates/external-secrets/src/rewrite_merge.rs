//! `dataFrom[].rewrite[].merge`: every value of the map is read as a JSON object and their
//! members are merged into one object, as upstream does:
//!
//! - keys are merged in byte order, except the `priority` keys, which come last in the order
//!   listed (so a later one wins a conflict); a listed key that is missing fails the rewrite
//!   unless `priorityPolicy: IgnoreNotFound`;
//! - a member name seen in two values is a conflict, which fails the rewrite unless
//!   `conflictPolicy: Ignore` (then the later value wins);
//! - `strategy: Extract` (the default) replaces the map with the merged members (strings as
//!   they are, numbers as Go prints a float64, `true`/`false`, `null` empty, objects and arrays
//!   as Go's `json.Marshal`); `strategy: JSON` keeps the map and writes the merged object, as
//!   JSON, under `into` (which it requires).
//!
//! Errors name keys and member names, never values.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use strongroom_core::crd::external_secrets::RewriteMerge;
use strongroom_core::template::go_json;
use strongroom_provider_api::{SecretBytes, SecretMap};

/// What to do with a `priority` key the map lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PriorityPolicy {
    Strict,
    IgnoreNotFound,
}

/// What to do when two values have a member of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConflictPolicy {
    Error,
    Ignore,
}

/// What the merge produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Extract,
    Json,
}

/// The policies of `spec`, defaulted as upstream's CRD defaults them. Any value but
/// `IgnoreNotFound` is strict and any but `Ignore` fails on conflicts, as upstream compares
/// them; an unknown strategy (which the CRD refuses) is an error rather than an empty map.
fn policies(spec: &RewriteMerge) -> Result<(PriorityPolicy, ConflictPolicy, Strategy), String> {
    let priority = match spec.priority_policy.as_deref() {
        Some("IgnoreNotFound") => PriorityPolicy::IgnoreNotFound,
        _ => PriorityPolicy::Strict,
    };
    let conflict = match spec.conflict_policy.as_deref() {
        Some("Ignore") => ConflictPolicy::Ignore,
        _ => ConflictPolicy::Error,
    };
    let strategy = match spec.strategy.as_deref() {
        None | Some("") | Some("Extract") => Strategy::Extract,
        Some("JSON") => Strategy::Json,
        Some(other) => {
            return Err(format!(
                "merge failed with unknown strategy {other:?} (Extract or JSON)"
            ));
        }
    };
    Ok((priority, conflict, strategy))
}

/// The order keys are merged in: the keys not in `priority` in byte order, then `priority`
/// as listed (missing ones included, duplicates too, as upstream).
fn merge_order<'a>(map: &'a SecretMap, priority: &'a [String]) -> Vec<&'a str> {
    map.keys()
        .filter(|k| !priority.contains(k))
        .map(String::as_str)
        .chain(priority.iter().map(String::as_str))
        .collect()
}

/// The members of the value of `key`, which must be a JSON object (or `null`, which Go reads
/// as no members).
fn members(key: &str, value: &SecretBytes) -> Result<serde_json::Map<String, Json>, String> {
    let parsed: Json = serde_json::from_slice(value.expose()).map_err(|e| {
        format!("merge failed with failed to unmarshal JSON: value of key {key:?} is not valid JSON ({e})")
    })?;
    match parsed {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(serde_json::Map::new()),
        other => Err(format!(
            "merge failed with failed to unmarshal JSON: value of key {key:?} is {}, not a JSON object",
            kind(&other)
        )),
    }
}

/// What kind of JSON value this is, for messages.
fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A merged member as the bytes of a Secret key (upstream's `GetByteValue`).
fn member_bytes(name: &str, v: &Json) -> Result<SecretBytes, String> {
    Ok(match v {
        Json::String(s) => SecretBytes::from(s.as_str()),
        Json::Null => SecretBytes::new(Vec::new()),
        Json::Bool(b) => SecretBytes::from(if *b { "true" } else { "false" }),
        // a float64, printed as strconv.FormatFloat(f, 'f', -1, 64)
        Json::Number(n) => SecretBytes::new(format!("{}", n.as_f64().unwrap_or(0.0)).into_bytes()),
        Json::Array(_) | Json::Object(_) => SecretBytes::new(
            go_json(v, true)
                .ok_or_else(|| format!("merge failed: member {name:?} cannot be written as JSON"))?
                .into_bytes(),
        ),
    })
}

/// Applies one `merge` rewrite to `map`.
pub fn merge(map: SecretMap, spec: &RewriteMerge) -> Result<SecretMap, String> {
    let (priority_policy, conflict_policy, strategy) = policies(spec)?;
    let priority = spec.priority.clone().unwrap_or_default();
    let mut merged: BTreeMap<String, Json> = BTreeMap::new();
    let mut conflicts: Vec<String> = Vec::new();
    for key in merge_order(&map, &priority) {
        let Some(value) = map.get(key) else {
            if priority_policy == PriorityPolicy::IgnoreNotFound {
                continue;
            }
            return Err(format!(
                "merge failed with key {key:?} not found in input map"
            ));
        };
        let mut fields: Vec<(String, Json)> = members(key, value)?.into_iter().collect();
        // Go walks a map in random order; sorting makes the conflict list stable
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, member) in fields {
            if merged.insert(name.clone(), member).is_some() {
                conflicts.push(name);
            }
        }
    }
    if conflict_policy == ConflictPolicy::Error && !conflicts.is_empty() {
        return Err(format!(
            "merge failed with conflicts: {}",
            conflicts.join(", ")
        ));
    }
    match strategy {
        Strategy::Extract => merged
            .iter()
            .map(|(name, v)| Ok((name.clone(), member_bytes(name, v)?)))
            .collect(),
        Strategy::Json => {
            let into = spec.into.as_deref().unwrap_or_default();
            if into.is_empty() {
                return Err("merge failed with missing 'into' field".into());
            }
            let object = Json::Object(merged.into_iter().collect());
            let text = go_json(&object, false)
                .ok_or("merge failed: the merged object cannot be written as JSON")?;
            let mut out = map;
            out.insert(into.to_string(), SecretBytes::new(text.into_bytes()));
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pairs: &[(&str, &str)]) -> SecretMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
            .collect()
    }

    fn text(map: &SecretMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(f: impl FnOnce(&mut RewriteMerge)) -> RewriteMerge {
        let mut s = RewriteMerge::default();
        f(&mut s);
        s
    }

    #[test]
    fn extract_hoists_members_and_replaces_the_map() {
        let out = merge(
            input(&[
                ("mongo", r#"{"user":"m","password":"p"}"#),
                ("redis", r#"{"host":"r","port":"6379"}"#),
            ]),
            &RewriteMerge::default(),
        )
        .unwrap();
        assert_eq!(
            text(&out),
            pairs(&[
                ("host", "r"),
                ("password", "p"),
                ("port", "6379"),
                ("user", "m")
            ])
        );
    }

    #[test]
    fn extract_writes_members_as_go_does() {
        let out = merge(
            input(&[(
                "a",
                r#"{"n":6379,"f":1.50,"w":1.0,"e":1e21,"t":true,"z":null,"o":{"y":"<&>","x":2},"l":[1,"s"]}"#,
            )]),
            &RewriteMerge::default(),
        )
        .unwrap();
        assert_eq!(
            text(&out),
            pairs(&[
                ("e", "1000000000000000000000"),
                ("f", "1.5"),
                ("l", r#"[1,"s"]"#),
                ("n", "6379"),
                ("o", r#"{"x":2,"y":"\u003c\u0026\u003e"}"#),
                ("t", "true"),
                ("w", "1"),
                ("z", ""),
            ])
        );
    }

    #[test]
    fn into_is_ignored_by_extract() {
        let out = merge(
            input(&[("a", r#"{"k":"v"}"#)]),
            &spec(|s| s.into = Some("all".into())),
        )
        .unwrap();
        assert_eq!(text(&out), pairs(&[("k", "v")]));
    }

    #[test]
    fn conflicts_fail_by_default_and_name_every_member() {
        let err = merge(
            input(&[
                ("a", r#"{"host":"ha","port":"1","only":"x"}"#),
                ("b", r#"{"port":"2","host":"hb"}"#),
            ]),
            &RewriteMerge::default(),
        )
        .unwrap_err();
        assert_eq!(err, "merge failed with conflicts: host, port");
        let explicit = merge(
            input(&[("a", r#"{"k":"1"}"#), ("b", r#"{"k":"2"}"#)]),
            &spec(|s| s.conflict_policy = Some("Error".into())),
        );
        assert!(explicit.is_err());
    }

    #[test]
    fn ignored_conflicts_take_the_later_key() {
        let out = merge(
            input(&[("b", r#"{"k":"from-b"}"#), ("a", r#"{"k":"from-a"}"#)]),
            &spec(|s| s.conflict_policy = Some("Ignore".into())),
        )
        .unwrap();
        // byte order: a, then b
        assert_eq!(text(&out), pairs(&[("k", "from-b")]));
    }

    #[test]
    fn priority_keys_come_last_in_their_order() {
        let values = input(&[
            ("redis", r#"{"host":"redis"}"#),
            ("mongo", r#"{"host":"mongo"}"#),
            ("other", r#"{"host":"other","key":"v"}"#),
        ]);
        let out = merge(
            values.clone(),
            &spec(|s| {
                s.conflict_policy = Some("Ignore".into());
                s.priority = Some(vec!["redis".into(), "mongo".into()]);
            }),
        )
        .unwrap();
        assert_eq!(text(&out), pairs(&[("host", "mongo"), ("key", "v")]));
        let out = merge(
            values,
            &spec(|s| {
                s.conflict_policy = Some("Ignore".into());
                s.priority = Some(vec!["mongo".into(), "redis".into()]);
            }),
        )
        .unwrap();
        assert_eq!(text(&out), pairs(&[("host", "redis"), ("key", "v")]));
    }

    #[test]
    fn a_missing_priority_key_fails_unless_ignored() {
        let values = input(&[("a", r#"{"k":"v"}"#)]);
        let err = merge(
            values.clone(),
            &spec(|s| s.priority = Some(vec!["gone".into(), "a".into()])),
        )
        .unwrap_err();
        assert_eq!(
            err,
            r#"merge failed with key "gone" not found in input map"#
        );
        let strict = merge(
            values.clone(),
            &spec(|s| {
                s.priority = Some(vec!["gone".into()]);
                s.priority_policy = Some("Strict".into());
            }),
        );
        assert!(strict.is_err());
        let out = merge(
            values,
            &spec(|s| {
                s.priority = Some(vec!["gone".into(), "a".into()]);
                s.priority_policy = Some("IgnoreNotFound".into());
            }),
        )
        .unwrap();
        assert_eq!(text(&out), pairs(&[("k", "v")]));
    }

    #[test]
    fn json_strategy_keeps_the_map_and_writes_into() {
        let out = merge(
            input(&[
                ("a", r#"{"host": "dba.example.com"}"#),
                ("b", r#"{"host": "<dbb>", "pass": "yolo", "port": 5432.0}"#),
                ("merged", r#""old""#),
            ]),
            &spec(|s| {
                s.strategy = Some("JSON".into());
                s.conflict_policy = Some("Ignore".into());
                s.into = Some("merged".into());
                s.priority = Some(vec!["a".into()]);
                s.priority_policy = Some("IgnoreNotFound".into());
            }),
        );
        // "merged" holds no JSON object: it is read like every other key
        assert!(out.unwrap_err().contains(r#"key "merged" is a string"#));
        let out = merge(
            input(&[
                ("a", r#"{"host": "dba.example.com"}"#),
                ("b", r#"{"host": "<dbb>", "pass": "yolo", "port": 5432.0}"#),
            ]),
            &spec(|s| {
                s.strategy = Some("JSON".into());
                s.conflict_policy = Some("Ignore".into());
                s.into = Some("a".into());
                s.priority = Some(vec!["a".into()]);
            }),
        )
        .unwrap();
        assert_eq!(
            text(&out),
            pairs(&[
                (
                    "a",
                    r#"{"host":"dba.example.com","pass":"yolo","port":5432}"#
                ),
                ("b", r#"{"host": "<dbb>", "pass": "yolo", "port": 5432.0}"#),
            ])
        );
    }

    #[test]
    fn json_strategy_requires_into() {
        let err = merge(
            input(&[("a", r#"{"k":"v"}"#)]),
            &spec(|s| s.strategy = Some("JSON".into())),
        )
        .unwrap_err();
        assert_eq!(err, "merge failed with missing 'into' field");
        let err = merge(
            input(&[("a", r#"{"k":"v"}"#)]),
            &spec(|s| {
                s.strategy = Some("JSON".into());
                s.into = Some(String::new());
            }),
        );
        assert!(err.is_err());
        assert!(merge(input(&[]), &spec(|s| s.strategy = Some("Other".into()))).is_err());
    }

    #[test]
    fn values_must_be_json_objects_and_errors_keep_values_secret() {
        let canary = "s3cr3t-canary-value";
        for bad in [
            canary.to_string(),
            format!("\"{canary}\""),
            format!("[\"{canary}\"]"),
            format!("{{\"k\": \"{canary}\""),
            "42".into(),
        ] {
            let err = merge(input(&[("k", &bad)]), &RewriteMerge::default()).unwrap_err();
            assert!(
                err.starts_with("merge failed with failed to unmarshal JSON: value of key \"k\""),
                "{err}"
            );
            assert!(!err.contains(canary), "{err}");
        }
        // null is no members, as Go reads it
        let out = merge(
            input(&[("a", "null"), ("b", r#"{"k":"v"}"#)]),
            &RewriteMerge::default(),
        );
        assert_eq!(text(&out.unwrap()), pairs(&[("k", "v")]));
    }

    #[test]
    fn an_empty_map_merges_to_nothing() {
        assert!(
            merge(SecretMap::new(), &RewriteMerge::default())
                .unwrap()
                .is_empty()
        );
    }
}

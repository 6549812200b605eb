//! Every field path of upstream's CRDs (listed in `tests/fixtures/eso-upstream-paths.txt`) exists
//! in the schema Strongroom generates, so the API server keeps every field of an upstream
//! manifest instead of pruning it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::Value;

/// How a path is found in one of our schemas.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Every segment is a declared property.
    Modelled,
    /// A block above the path keeps unknown fields.
    Preserved,
    /// The API server would prune it.
    Missing,
}

/// Follows `path` (`a.b[].c`) through `schema`.
fn find(schema: &Value, path: &str) -> Found {
    let mut node = schema;
    for seg in path.split('.') {
        let (name, list) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        match node["properties"].get(name) {
            Some(next) => node = next,
            None if node["x-kubernetes-preserve-unknown-fields"] == true => {
                return Found::Preserved;
            }
            None => return Found::Missing,
        }
        if list {
            node = &node["items"];
        }
    }
    Found::Modelled
}

fn upstream_paths() -> Vec<(String, String, bool)> {
    let text = include_str!("fixtures/eso-upstream-paths.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next().unwrap().to_string();
            let path = parts.next().unwrap().to_string();
            let may_be_preserved = parts.next() == Some("*");
            (kind, path, may_be_preserved)
        })
        .collect()
}

fn served_schemas() -> BTreeMap<String, Value> {
    strongroom_core::crd::all()
        .into_iter()
        .map(|(_, crd)| {
            let v = crd.spec.versions.iter().find(|v| v.served).unwrap();
            let schema = serde_json::to_value(v.schema.as_ref().unwrap()).unwrap();
            (
                crd.spec.names.kind.clone(),
                schema["openAPIV3Schema"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_upstream_field_path_is_in_our_schemas() {
    let schemas = served_schemas();
    let mut missing = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let paths = upstream_paths();
    for (kind, path, may_be_preserved) in &paths {
        let Some(schema) = schemas.get(kind) else {
            missing.push(format!("{kind}: no CRD"));
            continue;
        };
        match find(schema, path) {
            Found::Modelled => *counts.entry("modelled").or_default() += 1,
            Found::Preserved if *may_be_preserved => *counts.entry("preserved").or_default() += 1,
            Found::Preserved => {
                missing.push(format!("{kind} {path} (only preserved, not modelled)"))
            }
            Found::Missing => missing.push(format!("{kind} {path}")),
        }
    }
    println!("{} upstream paths: {counts:?}", paths.len());
    assert!(paths.len() > 1000, "fixture looks truncated");
    assert!(
        missing.is_empty(),
        "{} missing:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn the_walk_notices_a_missing_path() {
    let schemas = served_schemas();
    let es = &schemas["ExternalSecret"];
    assert_eq!(find(es, "spec.data[].remoteRef.key"), Found::Modelled);
    assert_eq!(find(es, "spec.data[].remoteRef.bogus"), Found::Missing);
    let ss = &schemas["SecretStore"];
    assert_eq!(
        find(ss, "spec.provider.akeyless.akeylessGWApiURL"),
        Found::Preserved
    );
}

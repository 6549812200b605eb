//! What a PushSecret pushes to one store: its `dataTo[]` entries expanded into one entry per
//! matching key of the source (conversion, regexp match, key rewrites), merged with the
//! explicit `data[]` entries, as upstream does it: explicit data wins for the same source key,
//! and two entries never write the same remote location.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use regex::Regex;
use strongroom_core::crd::external_secrets::{
    PushSecretData, PushSecretDataTo, PushSecretMatch, PushSecretRemoteRef, PushSecretStoreRef,
    StoreKind,
};
use strongroom_core::crd::schema::Unmodelled;
use strongroom_core::template::{Engine, Value};
use strongroom_provider_api::SecretBytes;

/// One rewrite step of a `dataTo` entry, compiled.
#[derive(Debug)]
enum Rewrite {
    Regexp { pattern: Regex, target: String },
    Transform { template: String },
}

/// A `dataTo` entry, checked and compiled.
#[derive(Debug)]
pub struct DataToRule {
    /// Its index in `spec.dataTo`.
    pub index: usize,
    store_name: Option<String>,
    store_selector: Option<LabelSelector>,
    store_kind: StoreKind,
    pattern: Option<Regex>,
    rewrites: Vec<Rewrite>,
    metadata: Option<Unmodelled>,
    conversion_strategy: Option<String>,
}

/// One entry to push, with the spec entry it comes from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPush {
    /// `spec.data[0]` or `spec.dataTo[1] (key "db-host")`.
    pub origin: String,
    /// What to push where, as upstream records it in `status.syncedPushSecrets`.
    pub data: PushSecretData,
}

/// A regex error in one line (the crate's message spans several, with a caret diagram).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error: ").to_string())
        .unwrap_or(text)
}

fn compile_regex(what: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("{what} {pattern:?} is invalid: {}", regex_error(&e)))
}

/// Whether a `dataTo[].storeRef` naming a store by `name` is among `secretStoreRefs` (a
/// label-selector entry of the same kind might select it, as upstream assumes).
fn listed(name: &str, kind: StoreKind, refs: &[PushSecretStoreRef]) -> bool {
    refs.iter().any(|r| {
        r.kind.unwrap_or_default() == kind
            && (r.name.as_deref() == Some(name) || r.label_selector.is_some())
    })
}

/// Checks and compiles `spec.dataTo` (upstream's rules: a storeRef with a name or a label
/// selector, a named store listed in `secretStoreRefs`, valid regular expressions).
pub fn compile(
    data_to: &[PushSecretDataTo],
    store_refs: &[PushSecretStoreRef],
) -> Result<Vec<DataToRule>, String> {
    let mut rules = Vec::with_capacity(data_to.len());
    for (i, entry) in data_to.iter().enumerate() {
        let at = format!("spec.dataTo[{i}]");
        let store = entry
            .store_ref
            .as_ref()
            .ok_or_else(|| format!("{at}.storeRef is required"))?;
        let store_kind = store.kind.unwrap_or_default();
        let store_name = store.name.clone().filter(|n| !n.is_empty());
        if store_name.is_none() && store.label_selector.is_none() {
            return Err(format!("{at}.storeRef needs a name or a labelSelector"));
        }
        if let Some(name) = &store_name
            && !listed(name, store_kind, store_refs)
        {
            return Err(format!(
                "{at}.storeRef {name:?} is not among spec.secretStoreRefs"
            ));
        }
        let pattern = match entry
            .match_
            .as_ref()
            .and_then(|m| m.regexp.as_deref())
            .filter(|r| !r.is_empty())
        {
            Some(re) => Some(compile_regex(&format!("{at}.match.regexp"), re)?),
            None => None,
        };
        let mut rewrites = Vec::new();
        for (j, rw) in entry.rewrite.iter().flatten().enumerate() {
            let at = format!("{at}.rewrite[{j}]");
            rewrites.push(match (&rw.regexp, &rw.transform) {
                (Some(re), None) => Rewrite::Regexp {
                    pattern: compile_regex(&format!("{at}.regexp.source"), &re.source)?,
                    target: re.target.clone(),
                },
                (None, Some(t)) => Rewrite::Transform {
                    template: t.template.clone(),
                },
                _ => return Err(format!("{at} must set exactly one of regexp and transform")),
            });
        }
        match entry.conversion_strategy.as_deref() {
            None | Some("None" | "ReverseUnicode") => {}
            Some(other) => {
                return Err(format!(
                    "{at}.conversionStrategy {other:?} is not None or ReverseUnicode"
                ));
            }
        }
        rules.push(DataToRule {
            index: i,
            store_name,
            store_selector: store.label_selector.clone(),
            store_kind,
            pattern,
            rewrites,
            metadata: entry.metadata.clone(),
            conversion_strategy: entry.conversion_strategy.clone(),
        });
    }
    Ok(rules)
}

impl DataToRule {
    /// Whether this entry pushes to the store `kind`/`name`; `selected` says whether a label
    /// selector matches that store's labels. A name takes precedence over a selector.
    pub fn targets(
        &self,
        kind: StoreKind,
        name: &str,
        selected: impl Fn(&LabelSelector) -> bool,
    ) -> bool {
        if self.store_kind != kind {
            return false;
        }
        match (&self.store_name, &self.store_selector) {
            (Some(n), _) => n == name,
            (None, Some(selector)) => selected(selector),
            (None, None) => false,
        }
    }

    fn rewrite(&self, key: &str, engine: &Engine) -> Result<String, String> {
        let mut current = key.to_string();
        for (j, rw) in self.rewrites.iter().enumerate() {
            current = match rw {
                Rewrite::Regexp { pattern, target } => {
                    pattern.replace_all(&current, target.as_str()).into_owned()
                }
                Rewrite::Transform { template } => {
                    let name = format!("dataTo[{}].rewrite[{j}]", self.index);
                    let dot = Value::Map(
                        [("value".to_string(), Value::String(current.clone()))]
                            .into_iter()
                            .collect(),
                    );
                    engine.render(&name, template, dot, &[]).map_err(|e| {
                        format!(
                            "spec.dataTo[{}].rewrite[{j}].transform on key {current:?}: {e}",
                            self.index
                        )
                    })?
                }
            };
        }
        Ok(current)
    }
}

/// Keys named by `_UXXXX_` escapes (what `conversionStrategy: Unicode` makes of invalid
/// characters on the way in) turned back into those characters.
fn reverse_unicode(key: &str) -> String {
    #[allow(clippy::unwrap_used)] // a constant pattern
    static ESCAPE: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new("_U([0-9a-fA-F]{4,5})_").unwrap());
    ESCAPE
        .replace_all(key, |c: &regex::Captures<'_>| {
            u32::from_str_radix(&c[1], 16)
                .ok()
                .and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_else(|| c[0].to_string())
        })
        .into_owned()
}

/// The source's keys as a `conversionStrategy` sees them (`ReverseUnicode` decodes `_UXXXX_`
/// escapes); two keys that become one are an error.
pub fn convert_keys(
    strategy: Option<&str>,
    values: &BTreeMap<String, SecretBytes>,
) -> Result<BTreeMap<String, SecretBytes>, String> {
    if strategy != Some("ReverseUnicode") {
        return Ok(values.clone());
    }
    let mut out = BTreeMap::new();
    for (k, v) in values {
        let converted = reverse_unicode(k);
        if out.insert(converted.clone(), v.clone()).is_some() {
            return Err(format!(
                "could not apply conversion strategy to keys: key {k:?} collides with another key as {converted:?}"
            ));
        }
    }
    Ok(out)
}

/// The entries `rules` (those targeting one store) make of a source with `keys`: each matching
/// key (after the entry's key conversion) to the remote key its rewrites make of it.
pub fn expand(
    rules: &[&DataToRule],
    values: &BTreeMap<String, SecretBytes>,
    engine: &Engine,
) -> Result<Vec<PlannedPush>, String> {
    let mut out = Vec::new();
    // remote key -> the entry and source key that produced it
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for rule in rules {
        let at = format!("spec.dataTo[{}]", rule.index);
        let keys = convert_keys(rule.conversion_strategy.as_deref(), values)
            .map_err(|e| format!("{at}: {e}"))?;
        for key in keys.keys() {
            if rule.pattern.as_ref().is_some_and(|p| !p.is_match(key)) {
                continue;
            }
            let remote = rule.rewrite(key, engine)?;
            if remote.is_empty() {
                return Err(format!(
                    "{at}: rewrites make an empty remote key of source key {key:?}"
                ));
            }
            let origin = format!("{at} (key {key:?})");
            if let Some(earlier) = seen.insert(remote.clone(), origin.clone()) {
                return Err(format!(
                    "{at}: duplicate remote key {remote:?} from source key {key:?} (conflicts with {earlier})"
                ));
            }
            out.push(PlannedPush {
                origin,
                data: PushSecretData {
                    match_: PushSecretMatch {
                        secret_key: Some(key.clone()),
                        remote_ref: PushSecretRemoteRef {
                            remote_key: remote,
                            property: None,
                        },
                    },
                    metadata: rule.metadata.clone(),
                    conversion_strategy: rule.conversion_strategy.clone(),
                },
            });
        }
    }
    Ok(out)
}

/// The explicit `data[]` entries as planned pushes.
pub fn explicit(data: &[PushSecretData]) -> Vec<PlannedPush> {
    data.iter()
        .enumerate()
        .map(|(i, d)| PlannedPush {
            origin: format!("spec.data[{i}]"),
            data: d.clone(),
        })
        .collect()
}

fn secret_key(d: &PushSecretData) -> &str {
    d.match_.secret_key.as_deref().unwrap_or_default()
}

/// `dataTo` entries and explicit entries together: a `dataTo` entry whose source key an
/// explicit entry names is dropped, and no two entries may write the same remote key and
/// property.
pub fn merge(
    data_to: Vec<PlannedPush>,
    explicit: Vec<PlannedPush>,
) -> Result<Vec<PlannedPush>, String> {
    let named: std::collections::BTreeSet<&str> =
        explicit.iter().map(|p| secret_key(&p.data)).collect();
    let mut merged: Vec<PlannedPush> = data_to
        .into_iter()
        .filter(|p| !named.contains(secret_key(&p.data)))
        .collect();
    merged.extend(explicit);
    let mut seen: BTreeMap<(String, String), &PlannedPush> = BTreeMap::new();
    for p in &merged {
        let r = &p.data.match_.remote_ref;
        let property = r.property.clone().unwrap_or_default();
        if let Some(first) = seen.insert((r.remote_key.clone(), property.clone()), p) {
            let place = if property.is_empty() {
                format!("remote key {:?}", r.remote_key)
            } else {
                format!("remote key {:?} with property {property:?}", r.remote_key)
            };
            return Err(format!(
                "duplicate {place}: {} and {} both write it",
                first.origin, p.origin
            ));
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{
        PushSecretDataToMatch, PushSecretRewrite, RewriteRegexp, RewriteTransform,
    };

    fn values(keys: &[&str]) -> BTreeMap<String, SecretBytes> {
        keys.iter()
            .map(|k| (k.to_string(), SecretBytes::from("v")))
            .collect()
    }

    fn to_store(name: &str) -> Option<PushSecretStoreRef> {
        Some(PushSecretStoreRef {
            name: Some(name.into()),
            ..Default::default()
        })
    }

    fn refs() -> Vec<PushSecretStoreRef> {
        vec![to_store("a").unwrap_or_default()]
    }

    fn regexp(source: &str, target: &str) -> PushSecretRewrite {
        PushSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: source.into(),
                target: target.into(),
            }),
            transform: None,
        }
    }

    fn entry(regexp: Option<&str>, rewrite: Vec<PushSecretRewrite>) -> PushSecretDataTo {
        PushSecretDataTo {
            store_ref: to_store("a"),
            match_: regexp.map(|r| PushSecretDataToMatch {
                regexp: Some(r.into()),
            }),
            rewrite: Some(rewrite),
            ..Default::default()
        }
    }

    fn remote_keys(p: &[PlannedPush]) -> Vec<(String, String)> {
        p.iter()
            .map(|p| {
                (
                    secret_key(&p.data).to_string(),
                    p.data.match_.remote_ref.remote_key.clone(),
                )
            })
            .collect()
    }

    fn expand_all(data_to: &[PushSecretDataTo], keys: &[&str]) -> Result<Vec<PlannedPush>, String> {
        let rules = compile(data_to, &refs())?;
        let rules: Vec<&DataToRule> = rules.iter().collect();
        expand(&rules, &values(keys), &Engine::external_secrets())
    }

    #[test]
    fn matching_keys_are_rewritten_in_order() {
        let got = expand_all(
            &[entry(
                Some("^db-"),
                vec![
                    regexp("^db-", ""),
                    regexp("^", "prod-"),
                    PushSecretRewrite {
                        regexp: None,
                        transform: Some(RewriteTransform {
                            template: "{{ .value | upper }}".into(),
                        }),
                    },
                ],
            )],
            &["db-host", "db-port", "api-key"],
        );
        assert_eq!(
            got.map(|p| remote_keys(&p)),
            Ok(vec![
                ("db-host".into(), "PROD-HOST".into()),
                ("db-port".into(), "PROD-PORT".into()),
            ])
        );
        // no match: every key, under its own name
        let all = expand_all(&[entry(None, vec![])], &["x", "y"]).unwrap_or_default();
        assert_eq!(
            remote_keys(&all),
            [("x".into(), "x".into()), ("y".into(), "y".into())]
        );
        assert_eq!(all[0].origin, "spec.dataTo[0] (key \"x\")");
        // a pattern that matches nothing is no error
        assert_eq!(
            expand_all(&[entry(Some("^zzz"), vec![])], &["x"]).map(|p| p.len()),
            Ok(0)
        );
    }

    #[test]
    fn bad_input_is_named() {
        let err = expand_all(&[entry(Some("[bad("), vec![])], &["x"]).unwrap_err();
        assert!(
            err.starts_with("spec.dataTo[0].match.regexp \"[bad(\" is invalid: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let err = expand_all(&[entry(None, vec![regexp("(", "x")])], &["x"]).unwrap_err();
        assert!(
            err.starts_with("spec.dataTo[0].rewrite[0].regexp.source"),
            "{err}"
        );
        let err = expand_all(&[entry(None, vec![regexp(".*", "same")])], &["a", "b"]).unwrap_err();
        assert!(
            err.contains("duplicate remote key \"same\" from source key \"b\"")
                && err.contains("spec.dataTo[0] (key \"a\")"),
            "{err}"
        );
        // across entries too
        let err =
            expand_all(&[entry(None, vec![]), entry(Some("^a$"), vec![])], &["a"]).unwrap_err();
        assert!(
            err.starts_with("spec.dataTo[1]: duplicate remote key \"a\""),
            "{err}"
        );
        let err = expand_all(&[entry(None, vec![regexp(".*", "")])], &["a"]).unwrap_err();
        assert!(err.contains("empty remote key"), "{err}");
        let err = expand_all(
            &[PushSecretDataTo {
                store_ref: to_store("elsewhere"),
                ..Default::default()
            }],
            &["a"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "spec.dataTo[0].storeRef \"elsewhere\" is not among spec.secretStoreRefs"
        );
        let err = expand_all(&[PushSecretDataTo::default()], &["a"]).unwrap_err();
        assert_eq!(err, "spec.dataTo[0].storeRef is required");
        let err = expand_all(
            &[PushSecretDataTo {
                store_ref: Some(PushSecretStoreRef::default()),
                ..Default::default()
            }],
            &["a"],
        )
        .unwrap_err();
        assert!(err.contains("needs a name or a labelSelector"), "{err}");
    }

    #[test]
    fn store_targeting() {
        let by_label = PushSecretDataTo {
            store_ref: Some(PushSecretStoreRef {
                label_selector: Some(LabelSelector::default()),
                kind: Some(StoreKind::ClusterSecretStore),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rules = compile(&[entry(None, vec![]), by_label], &refs()).unwrap_or_default();
        assert!(rules[0].targets(StoreKind::SecretStore, "a", |_| true));
        assert!(!rules[0].targets(StoreKind::SecretStore, "b", |_| true));
        assert!(!rules[0].targets(StoreKind::ClusterSecretStore, "a", |_| true));
        assert!(rules[1].targets(StoreKind::ClusterSecretStore, "b", |_| true));
        assert!(!rules[1].targets(StoreKind::ClusterSecretStore, "b", |_| false));
        assert!(!rules[1].targets(StoreKind::SecretStore, "b", |_| true));
        // a named store may be selected by a label-selector entry of secretStoreRefs
        let selected = vec![PushSecretStoreRef {
            label_selector: Some(LabelSelector::default()),
            ..Default::default()
        }];
        assert!(compile(&[entry(None, vec![])], &selected).is_ok());
    }

    #[test]
    fn reverse_unicode_keys() {
        assert_eq!(reverse_unicode("a_U002f_b_U1f600_"), "a/b😀");
        assert_eq!(reverse_unicode("plain_U00zz_"), "plain_U00zz_");
        let mut e = entry(Some("/"), vec![regexp("/", "-")]);
        e.conversion_strategy = Some("ReverseUnicode".into());
        let got = expand_all(&[e], &["app_U002f_key", "other"]).unwrap_or_default();
        assert_eq!(remote_keys(&got), [("app/key".into(), "app-key".into())]);
        assert!(convert_keys(Some("ReverseUnicode"), &values(&["a_U002f_", "a/"])).is_err());
    }

    #[test]
    fn explicit_data_wins_and_destinations_stay_unique() {
        let to = |key: &str, remote: &str, property: Option<&str>| PushSecretData {
            match_: PushSecretMatch {
                secret_key: Some(key.into()),
                remote_ref: PushSecretRemoteRef {
                    remote_key: remote.into(),
                    property: property.map(str::to_string),
                },
            },
            ..Default::default()
        };
        let bulk = expand_all(&[entry(None, vec![])], &["db-host", "db-port"]).unwrap_or_default();
        let merged = merge(
            bulk.clone(),
            explicit(&[to("db-host", "custom-hostname", None)]),
        )
        .unwrap_or_default();
        assert_eq!(
            remote_keys(&merged),
            [
                ("db-port".into(), "db-port".into()),
                ("db-host".into(), "custom-hostname".into())
            ]
        );
        assert_eq!(merged[1].origin, "spec.data[0]");
        // an explicit entry writing where a bulk entry writes
        let err = merge(bulk.clone(), explicit(&[to("other", "db-port", None)])).unwrap_err();
        assert_eq!(
            err,
            "duplicate remote key \"db-port\": spec.dataTo[0] (key \"db-port\") and spec.data[0] both write it"
        );
        // properties tell destinations apart
        assert!(
            merge(
                vec![],
                explicit(&[to("a", "r", Some("x")), to("b", "r", Some("y"))])
            )
            .is_ok()
        );
        assert!(
            merge(
                vec![],
                explicit(&[to("a", "r", Some("x")), to("b", "r", Some("x"))])
            )
            .is_err()
        );
    }
}

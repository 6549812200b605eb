//! What happens to keys and values between the provider and the Secret: rewrites, key
//! conversion, key validation, decoding and the null-byte check (upstream's order). The merge
//! rewrite is in [`crate::rewrite_merge`].

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use strongroom_core::crd::external_secrets::{
    ConversionStrategy, DecodingStrategy, ExternalSecretRewrite, ExternalSecretSelect,
    NullBytePolicy, SelectOperation,
};
use strongroom_core::template::{Engine, Value};
use strongroom_provider_api::{SecretBytes, SecretMap};

/// The longest key a Secret may have.
const MAX_KEY_LEN: usize = 253;

/// Whether `key` may be a Secret key: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// A remote name made into a Secret key: `Default` replaces each invalid character with `_`,
/// `Unicode` with `_U<4 hex digits>_`.
pub fn convert_key(key: &str, strategy: ConversionStrategy) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c.to_string()
            } else {
                match strategy {
                    ConversionStrategy::Default => "_".to_string(),
                    ConversionStrategy::Unicode => format!("_U{:04x}_", c as u32),
                }
            }
        })
        .collect()
}

/// Decodes a value as `decodingStrategy` says. `Auto` tries standard base64, then URL-safe
/// base64, and keeps the raw value when neither fits.
pub fn decode(
    key: &str,
    value: SecretBytes,
    strategy: DecodingStrategy,
) -> Result<SecretBytes, String> {
    let try_std = || STANDARD.decode(value.expose()).ok().map(SecretBytes::new);
    let try_url = || URL_SAFE.decode(value.expose()).ok().map(SecretBytes::new);
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => {
            try_std().ok_or_else(|| format!("value of key {key:?} is not valid base64"))
        }
        DecodingStrategy::Base64Url => {
            try_url().ok_or_else(|| format!("value of key {key:?} is not valid base64url"))
        }
        DecodingStrategy::Auto => Ok(try_std().or_else(try_url).unwrap_or(value)),
    }
}

/// Fails when `nullBytePolicy: Fail` and the value holds a NUL byte.
pub fn check_null_bytes(
    key: &str,
    value: &SecretBytes,
    policy: Option<NullBytePolicy>,
) -> Result<(), String> {
    if policy == Some(NullBytePolicy::Fail) && value.expose().contains(&0) {
        return Err(format!(
            "value of key {key:?} contains a null byte (nullBytePolicy: Fail)"
        ));
    }
    Ok(())
}

/// Applies `rewrite[]` in order to the keys of `map`. Later keys overwrite earlier ones.
pub fn rewrite(
    map: SecretMap,
    rewrites: &[ExternalSecretRewrite],
    engine: &Engine,
) -> Result<SecretMap, String> {
    let mut current = map;
    for (i, rw) in rewrites.iter().enumerate() {
        current = match (&rw.regexp, &rw.transform, &rw.merge) {
            (Some(re), None, None) => {
                let pattern = regex::Regex::new(&re.source).map_err(|e| {
                    format!("rewrite[{i}].regexp.source {:?} is invalid: {e}", re.source)
                })?;
                current
                    .into_iter()
                    .map(|(k, v)| (pattern.replace_all(&k, re.target.as_str()).into_owned(), v))
                    .collect()
            }
            (None, Some(t), None) => {
                let mut out = SecretMap::new();
                for (k, v) in current {
                    let dot = Value::Map(
                        [("value".to_string(), Value::String(k.clone()))]
                            .into_iter()
                            .collect(),
                    );
                    let key = engine
                        .render(&format!("rewrite[{i}]"), &t.template, dot, &[])
                        .map_err(|e| format!("rewrite[{i}].transform: {e}"))?;
                    out.insert(key, v);
                }
                out
            }
            (None, None, Some(m)) => {
                crate::rewrite_merge::merge(current, m).map_err(|e| format!("rewrite[{i}]: {e}"))?
            }
            _ => {
                return Err(format!(
                    "rewrite[{i}] must set exactly one of regexp, transform and merge"
                ));
            }
        };
    }
    Ok(current)
}

/// Applies `select[]` in order to the keys of `map` (after any rewrite, before key
/// conversion): `Exclude` drops the keys an entry matches, `Include` keeps only those (an
/// intersection: a key dropped earlier never comes back). A key matches an entry when it is
/// listed in `names` or matches `regexp`; an entry without `operation` includes.
pub fn select(map: SecretMap, selects: &[ExternalSecretSelect]) -> Result<SecretMap, String> {
    let mut current = map;
    for (i, entry) in selects.iter().enumerate() {
        let names = entry.names.as_deref().unwrap_or_default();
        let pattern = match &entry.regexp {
            Some(re) => Some(
                regex::Regex::new(re)
                    .map_err(|e| format!("select[{i}].regexp {re:?} is invalid: {e}"))?,
            ),
            None if names.is_empty() => {
                return Err(format!(
                    "select[{i}] must set regexp or a non-empty names list"
                ));
            }
            None => None,
        };
        let matches = |key: &str| {
            names.iter().any(|n| n == key) || pattern.as_ref().is_some_and(|p| p.is_match(key))
        };
        let keep_matched = entry.operation != Some(SelectOperation::Exclude);
        current.retain(|key, _| matches(key) == keep_matched);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{RewriteMerge, RewriteRegexp, RewriteTransform};

    fn filter(regexp: Option<&str>, names: &[&str], op: SelectOperation) -> ExternalSecretSelect {
        ExternalSecretSelect {
            regexp: regexp.map(str::to_string),
            names: (!names.is_empty()).then(|| names.iter().map(|n| n.to_string()).collect()),
            operation: Some(op),
        }
    }

    fn selected(keys: &[&str], selects: &[ExternalSecretSelect]) -> Vec<String> {
        select(map(keys), selects).unwrap().into_keys().collect()
    }

    #[test]
    fn select_filters_in_order_and_never_restores_a_key() {
        use SelectOperation::{Exclude, Include};
        let keys = ["db_host", "db_port", "db_password", "app_name"];
        // upstream's documented walkthroughs
        assert_eq!(
            selected(
                &keys,
                &[
                    filter(Some("^db_"), &[], Include),
                    filter(None, &["db_password"], Exclude)
                ]
            ),
            ["db_host", "db_port"]
        );
        assert_eq!(
            selected(
                &["host", "port", "password"],
                &[
                    filter(None, &["host"], Exclude),
                    filter(Some(".*"), &[], Include)
                ]
            ),
            ["password", "port"]
        );
        assert!(
            selected(
                &keys,
                &[
                    filter(Some(".*"), &[], Exclude),
                    filter(Some(".*"), &[], Include)
                ]
            )
            .is_empty()
        );
        assert!(
            selected(
                &keys,
                &[
                    filter(Some(".*"), &[], Include),
                    filter(Some(".*"), &[], Exclude)
                ]
            )
            .is_empty()
        );
        // names and regexp in one entry: either matches
        assert_eq!(
            selected(&keys, &[filter(Some("^db_p"), &["app_name"], Exclude)]),
            ["db_host"]
        );
        // a regexp matches anywhere in the key, as Go's MatchString
        assert_eq!(
            selected(&keys, &[filter(Some("name"), &[], Include)]),
            ["app_name"]
        );
        // no operation: include
        let mut keep = filter(None, &["app_name"], Include);
        keep.operation = None;
        assert_eq!(selected(&keys, &[keep]), ["app_name"]);
        assert_eq!(selected(&keys, &[]).len(), 4);
    }

    #[test]
    fn a_bad_select_entry_is_an_error_naming_it() {
        let bad = select(
            map(&["a"]),
            &[filter(Some("("), &[], SelectOperation::Include)],
        );
        assert!(
            bad.unwrap_err()
                .starts_with("select[0].regexp \"(\" is invalid")
        );
        let empty = select(map(&["a"]), &[filter(None, &[], SelectOperation::Exclude)]);
        assert_eq!(
            empty.unwrap_err(),
            "select[0] must set regexp or a non-empty names list"
        );
    }

    fn map(keys: &[&str]) -> SecretMap {
        keys.iter()
            .map(|k| (k.to_string(), SecretBytes::from("v")))
            .collect()
    }

    #[test]
    fn conversion_and_validation() {
        assert_eq!(convert_key("a/b c", ConversionStrategy::Default), "a_b_c");
        assert_eq!(convert_key("a/b", ConversionStrategy::Unicode), "a_U002f_b");
        assert!(valid_key("tls.crt") && valid_key("A-_.9"));
        assert!(!valid_key("a/b") && !valid_key("") && !valid_key(&"a".repeat(254)));
    }

    #[test]
    fn decoding() {
        let text = |r: Result<SecretBytes, String>| {
            r.map(|v| String::from_utf8_lossy(v.expose()).into_owned())
        };
        assert_eq!(
            text(decode("k", "aGk=".into(), DecodingStrategy::Base64)),
            Ok("hi".into())
        );
        assert!(decode("k", "not base64!".into(), DecodingStrategy::Base64).is_err());
        assert_eq!(
            decode("k", "_-8=".into(), DecodingStrategy::Auto).map(|v| v.expose().to_vec()),
            Ok(vec![0xff, 0xef])
        );
        assert_eq!(
            text(decode("k", "plain text".into(), DecodingStrategy::Auto)),
            Ok("plain text".into())
        );
        assert!(check_null_bytes("k", &"a\0".into(), Some(NullBytePolicy::Fail)).is_err());
        assert!(check_null_bytes("k", &"a\0".into(), None).is_ok());
    }

    #[test]
    fn rewrites_apply_in_order() {
        let engine = Engine::external_secrets();
        let rws = vec![
            ExternalSecretRewrite {
                regexp: Some(RewriteRegexp {
                    source: "^db/(.*)$".into(),
                    target: "db-$1".into(),
                }),
                ..Default::default()
            },
            ExternalSecretRewrite {
                transform: Some(RewriteTransform {
                    template: "{{ .value | upper }}".into(),
                }),
                ..Default::default()
            },
        ];
        let out = rewrite(map(&["db/user", "other"]), &rws, &engine).unwrap_or_default();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["DB-USER", "OTHER"]);
        let bad = vec![ExternalSecretRewrite::default()];
        assert!(rewrite(map(&["a"]), &bad, &engine).is_err());
    }

    #[test]
    fn merge_rewrites_chain_with_the_others() {
        let engine = Engine::external_secrets();
        let merge = |m: RewriteMerge| ExternalSecretRewrite {
            merge: Some(m),
            ..Default::default()
        };
        let input: SecretMap = [
            ("db/a", r#"{"host": "dba", "pass": "yola", "port": 123}"#),
            ("db/b", r#"{"host": "dbb", "pass": "yolb"}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), SecretBytes::from(v)))
        .collect();
        let rws = vec![
            ExternalSecretRewrite {
                regexp: Some(RewriteRegexp {
                    source: "db/(.*)".into(),
                    target: "$1".into(),
                }),
                ..Default::default()
            },
            merge(RewriteMerge {
                strategy: Some("JSON".into()),
                conflict_policy: Some("Ignore".into()),
                into: Some("merged".into()),
                priority: Some(vec!["a".into()]),
                ..Default::default()
            }),
            merge(RewriteMerge {
                conflict_policy: Some("Ignore".into()),
                priority: Some(vec!["b".into()]),
                ..Default::default()
            }),
        ];
        let out = rewrite(input, &rws, &engine).unwrap();
        let text: Vec<(&str, String)> = out
            .iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect();
        assert_eq!(
            text,
            [
                ("host", "dbb".to_string()),
                ("pass", "yolb".to_string()),
                ("port", "123".to_string())
            ]
        );
        // the position of the failing rewrite is named
        let err = rewrite(map(&["a"]), &rws[2..], &engine).unwrap_err();
        assert!(
            err.starts_with("rewrite[0]: merge failed with failed to unmarshal JSON"),
            "{err}"
        );
    }
}

//! The hashes and names upstream writes, reproduced exactly so existing Secrets are adopted
//! without a rewrite: `data-hash`, `created-by`, `syncedResourceVersion`, the field manager.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha3::{Digest, Sha3_224};

fn sha3_224_hex(text: &str) -> String {
    let digest = Sha3_224::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(56), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Go's `fmt "%+v"` of a `map[string][]byte`: `map[a:[104 105] b:[]]`, keys sorted.
fn go_fmt_bytes_map<'a>(data: impl Iterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut out = String::from("map[");
    for (i, (key, value)) in data.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push_str(":[");
        for (j, b) in value.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{b}");
        }
        out.push(']');
    }
    out.push(']');
    out
}

/// Go's `fmt "%+v"` of a `map[string]string`: `map[a:b c:d]`, keys sorted.
fn go_fmt_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    let entries: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    format!("map[{}]", entries.join(" "))
}

/// The `reconcile.external-secrets.io/data-hash` annotation of a Secret with this data.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let sorted: BTreeMap<&String, &[u8]> = data.into_iter().collect();
    sha3_224_hex(&go_fmt_bytes_map(sorted.into_iter()))
}

/// The `reconcile.external-secrets.io/created-by` label of a Secret an ExternalSecret owns.
pub fn created_by(namespace: &str, name: &str) -> String {
    sha3_224_hex(&format!("{namespace}/{name}"))
}

/// `status.syncedResourceVersion`: the generation and a hash of labels and annotations, so a
/// label or annotation change (a force-sync) is noticed like a spec change.
pub fn synced_resource_version(
    generation: i64,
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> String {
    let meta = format!(
        "{{annotations:{} labels:{}}}",
        go_fmt_string_map(annotations),
        go_fmt_string_map(labels)
    );
    format!("{generation}-{}", sha3_224_hex(&meta))
}

/// The field manager that writes an ExternalSecret's target:
/// `externalsecrets.external-secrets.io/<name>`, or `…/sha3/<hash of name>` when that would be
/// longer than 63 characters, as upstream.
pub fn field_manager(es_name: &str) -> String {
    let plain = format!("externalsecrets.external-secrets.io/{es_name}");
    if plain.len() > 63 {
        format!(
            "externalsecrets.external-secrets.io/sha3/{}",
            sha3_224_hex(es_name)
        )
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        let a = ("a".to_string(), b"hi".to_vec());
        let b = ("b".to_string(), Vec::new());
        let text = go_fmt_bytes_map([(&b.0, b.1.as_slice()), (&a.0, a.1.as_slice())].into_iter());
        // not sorted by the formatter itself: data_hash sorts
        assert_eq!(text, "map[b:[] a:[104 105]]");
        assert_eq!(
            go_fmt_string_map(Some(&BTreeMap::from([
                ("x".into(), "1".into()),
                ("a".into(), "b".into())
            ]))),
            "map[a:b x:1]"
        );
        assert_eq!(go_fmt_string_map(None), "map[]");
    }

    #[test]
    fn hashes_are_sha3_224_of_the_go_text() {
        // SHA3-224("map[]"), the hash of an empty Secret, computed with Python's hashlib
        assert_eq!(data_hash(std::iter::empty()), sha3_224_hex("map[]"));
        assert_eq!(
            sha3_224_hex(""),
            "6b4e03423667dbb73b6e15454f0eb1abd4597f9a1b078e3f5b5a6bc7"
        );
        // reference values from Python's hashlib.sha3_224
        let (a, b) = ("a".to_string(), "b".to_string());
        assert_eq!(
            data_hash([(&b, &b""[..]), (&a, &b"hi"[..])]),
            "7ea3465c6776a2d21a7c6afaa765c3abc9e38a7cb9b4d770456f0b89"
        );
        assert_eq!(
            created_by("default", "db"),
            "2f9a66a8dc56ede26cf54ed3ebac6898cbf2b8da9d25db95c1eb183b"
        );
        let v = synced_resource_version(3, None, None);
        assert_eq!(
            v,
            format!("3-{}", sha3_224_hex("{annotations:map[] labels:map[]}"))
        );
        assert_eq!(
            field_manager("db"),
            "externalsecrets.external-secrets.io/db"
        );
        // the whole manager name counts: 36 + 27 = 63 characters is the longest plain one
        assert!(!field_manager(&"x".repeat(27)).contains("/sha3/"));
        assert!(field_manager(&"x".repeat(28)).contains("/sha3/"));
    }
}

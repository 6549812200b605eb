//! `PartialObjectMetadata` responses: what a client asking with
//! `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` receives
//! (kube-rs `metadata_watcher`, `Api::list_metadata`, client-go metadata informers).

use serde_json::{Value, json};

const API_VERSION: &str = "meta.k8s.io/v1";

/// Whether the Accept header asks for metadata-only objects. The first media range the server
/// understands wins, as on a real API server; plain JSON after it is only a fallback.
pub fn wanted(accept: &str) -> bool {
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        let as_value = params.iter().find_map(|p| p.strip_prefix("as="));
        match as_value {
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) =>
            {
                return true;
            }
            // Table and other renderings are not served: keep looking for a range we serve.
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

/// One object reduced to its metadata.
pub fn object(full: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": API_VERSION,
        "metadata": full.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list response reduced to metadata: items become `PartialObjectMetadata`.
pub fn list(full: &Value) -> Value {
    let items: Vec<Value> = full
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(object).collect())
        .unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": API_VERSION,
        "metadata": full.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_metadata_media_types() {
        assert!(wanted(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        ));
        assert!(wanted(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
        ));
        assert!(wanted(
            "application/json;as=Table;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
        ));
        assert!(!wanted("application/json"));
        assert!(!wanted(
            "application/json,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
        ));
        assert!(!wanted("application/json;as=Table;g=meta.k8s.io;v=v1"));
    }

    #[test]
    fn keeps_only_metadata() {
        let full = json!({"kind": "SecretList", "metadata": {"resourceVersion": "7"}, "items": [
            {"kind": "Secret", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "dg=="}}
        ]});
        let out = list(&full);
        assert_eq!(out["kind"], "PartialObjectMetadataList");
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        assert_eq!(out["items"][0]["metadata"]["labels"]["x"], "y");
        assert!(out["items"][0].get("data").is_none());
    }
}
